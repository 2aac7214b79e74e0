//! Guards the `vdbctl bench` interface other tools depend on: the flags, the
//! JSON keys, recall on the bundled digits, and one clear error line (exit
//! code 1) for each kind of bad input.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/digits")
        .join(name)
        .display()
        .to_string()
}

/// The number under `key` in the JSON lines of `stdout` (the first).
fn json_num(stdout: &str, key: &str) -> f64 {
    let v = stdout
        .split(&format!("\"{key}\":"))
        .nth(1)
        .unwrap_or_else(|| panic!("missing {key} in {stdout}"));
    v.split([',', '}']).next().unwrap().parse().unwrap()
}

fn vdbctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vdbctl"))
        .args(args)
        .output()
        .unwrap()
}

fn digits_args<'a>(extra: &[&'a str], owned: &'a [String; 3]) -> Vec<&'a str> {
    let mut v = vec![
        "bench", "--base", &owned[0], "--query", &owned[1], "--gt", &owned[2],
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn json_lines_have_the_documented_keys_and_real_recall() {
    let files = [data("base.fvecs"), data("query.fvecs"), data("gt.ivecs")];
    let out = vdbctl(&digits_args(
        &[
            "--nlist",
            "16",
            "--nprobe",
            "1,4,16,99",
            "--k",
            "10",
            "--json",
            "--min-seconds",
            "0",
            "--threads",
            "2",
        ],
        &files,
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    for key in [
        "nlist",
        "nprobe",
        "k",
        "recall",
        "qps",
        "p50_ms",
        "p99_ms",
        "batch_qps",
        "train_s",
        "build_s",
        "disk_bytes",
    ] {
        for l in &lines {
            assert!(l.contains(&format!("\"{key}\":")), "missing {key} in {l}");
        }
    }
    let recall = |l: &str| -> f64 {
        let v = l.split("\"recall\":").nth(1).unwrap();
        v.split(',').next().unwrap().parse().unwrap()
    };
    assert!(recall(lines[1]) >= 0.99, "{}", lines[1]);
    assert_eq!(recall(lines[2]), 1.0);
    assert!(lines[3].contains("\"nprobe\":16") && lines[3].contains("\"nprobe_clamped\":true"));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("nprobe 99 is larger than nlist 16: clamped to 16"),
        "{stderr}"
    );
}

#[test]
fn table_output_without_ground_truth() {
    let out = vdbctl(&[
        "bench",
        "--base",
        &data("base.fvecs"),
        "--query",
        &data("query.fvecs"),
        "--nlist",
        "8",
        "--nprobe",
        "8",
        "--min-seconds",
        "0",
        "--metric",
        "cosine",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("recall@10"), "{stdout}");
    // nprobe = nlist is exact search: recall 1.
    assert!(
        stdout.lines().last().unwrap().contains("1.0000"),
        "{stdout}"
    );
}

#[test]
fn bad_input_gets_one_clear_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let empty = write("empty.fvecs", b"");
    let mut mixed = Vec::new();
    for d in [2i32, 3] {
        mixed.extend(d.to_le_bytes());
        for _ in 0..d {
            mixed.extend(1.0f32.to_le_bytes());
        }
    }
    let mixed = write("mixed.fvecs", &mixed);
    let mut nan = 1i32.to_le_bytes().to_vec();
    nan.extend(f32::NAN.to_le_bytes());
    let nan = write("nan.fvecs", &nan);
    let base = data("base.fvecs");
    let query = data("query.fvecs");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--base".into(),
                empty.display().to_string(),
                "--query".into(),
                query.clone(),
                "--nlist".into(),
                "4".into(),
            ],
            "empty",
        ),
        (
            vec![
                "--base".into(),
                mixed.display().to_string(),
                "--query".into(),
                query.clone(),
                "--nlist".into(),
                "1".into(),
            ],
            "record 1 has dimension 3",
        ),
        (
            vec![
                "--base".into(),
                nan.display().to_string(),
                "--query".into(),
                query.clone(),
                "--nlist".into(),
                "1".into(),
            ],
            "must be finite",
        ),
        (
            vec![
                "--base".into(),
                base.clone(),
                "--query".into(),
                query.clone(),
                "--nlist".into(),
                "99999".into(),
            ],
            "larger than the 1697 base vectors",
        ),
        (
            vec![
                "--base".into(),
                base.clone(),
                "--query".into(),
                query.clone(),
                "--nlist".into(),
                "4".into(),
                "--nprobe".into(),
                "0".into(),
            ],
            "nprobe must be at least 1",
        ),
        (
            vec![
                "--base".into(),
                base.clone(),
                "--query".into(),
                query.clone(),
                "--nlist".into(),
                "4".into(),
                "--k".into(),
                "0".into(),
            ],
            "--k must be at least 1",
        ),
        (
            vec![
                "--base".into(),
                base.clone(),
                "--query".into(),
                mixed.display().to_string(),
                "--nlist".into(),
                "4".into(),
            ],
            "record 1 has dimension 3",
        ),
        (
            vec![
                "--base".into(),
                base.clone(),
                "--query".into(),
                query.clone(),
                "--nlist".into(),
                "4".into(),
                "--gt".into(),
                data("gt.ivecs"),
                "--k".into(),
                "500".into(),
            ],
            "fewer than k = 500",
        ),
        (
            vec![
                "--base".into(),
                base.clone(),
                "--query".into(),
                query.clone(),
                "--nlist".into(),
                "4".into(),
                "--metric".into(),
                "hamming".into(),
            ],
            "unknown metric",
        ),
    ];
    for (args, want) in cases {
        let mut full = vec!["bench".to_string()];
        full.extend(args);
        full.extend(["--min-seconds".into(), "0".into()]);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let out = vdbctl(&refs);
        assert!(!out.status.success(), "{refs:?} succeeded");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(want), "{refs:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{refs:?}: {stderr}");
    }
}

/// `--index-type ivf_rabitq` in each mode (a segment, the engine, a
/// server): codes are scanned, few exact distances computed, and with a
/// bound wide enough at every list the answers are exact.
#[test]
fn every_mode_measures_ivf_rabitq() {
    let files = [data("base.fvecs"), data("query.fvecs"), data("gt.ivecs")];
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    for mode in [
        &[][..],
        &["--data-dir", &data_dir][..],
        &["--server", "local"][..],
    ] {
        let run = |extra: &[&str]| -> String {
            let mut args = vec![
                "--nlist",
                "16",
                "--nprobe",
                "16",
                "--json",
                "--min-seconds",
                "0",
                "--index-type",
                "ivf_rabitq",
            ];
            args.extend_from_slice(mode);
            args.extend_from_slice(extra);
            let out = vdbctl(&digits_args(&args, &files));
            assert!(
                out.status.success(),
                "{mode:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let out = run(&[]);
        assert!(out.contains("\"index_type\":\"ivf_rabitq\""), "{out}");
        let (scanned, exact) = (
            json_num(&out, "scanned_per_query"),
            json_num(&out, "exact_per_query"),
        );
        assert_eq!(
            scanned, 1697.0,
            "{mode:?}: every row's code at nprobe = nlist"
        );
        assert!(
            exact * 4.0 < scanned,
            "{mode:?}: {exact} exact of {scanned}"
        );
        assert!(json_num(&out, "recall") >= 0.97, "{mode:?}: {out}");
        let out = run(&["--rerank-epsilon", "8"]);
        assert_eq!(json_num(&out, "recall"), 1.0, "{mode:?}: {out}");
        assert_eq!(json_num(&out, "rerank_epsilon"), 8.0, "{mode:?}: {out}");
    }
    // Searches with the vectors evicted before each query: both ways of
    // reading them back, with the bytes read where the kernel counts them.
    let out = vdbctl(&digits_args(
        &[
            "--nlist",
            "16",
            "--nprobe",
            "4",
            "--json",
            "--min-seconds",
            "0",
            "--index-type",
            "ivf_rabitq",
            "--cold-vectors",
        ],
        &files,
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8(out.stdout).unwrap();
    for key in [
        "cold_p50_ms",
        "cold_qps",
        "cold_random_p50_ms",
        "cold_random_qps",
    ] {
        assert!(json_num(&out, key) > 0.0, "{key}: {out}");
    }
    assert!(json_num(&out, "cold_queries") >= 50.0, "{out}");
    for (flag, want) in [
        ("--cold-vectors", "--cold-vectors measures a segment"),
        ("--index-type=lsh", "unknown index type"),
        ("--rerank-epsilon=-1", "--rerank-epsilon -1 must be"),
    ] {
        let out = vdbctl(&digits_args(
            &["--nlist", "16", flag, "--data-dir", &data_dir],
            &files,
        ));
        assert!(!out.status.success(), "{flag}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{flag}: {stderr}");
    }
}

#[test]
fn engine_runs_report_ingest_disk_bound_and_latency_during_maintenance() {
    let files = [data("base.fvecs"), data("query.fvecs"), data("gt.ivecs")];
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let out = vdbctl(&digits_args(
        &[
            "--nlist",
            "16",
            "--nprobe",
            "4",
            "--k",
            "10",
            "--json",
            "--min-seconds",
            "0",
            "--data-dir",
            &data_dir,
            "--maintenance-latency",
        ],
        &files,
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let num = |key: &str| json_num(&stdout, key);
    assert!(num("ingest_rows_per_s") > 0.0);
    assert!(num("disk_bound_rows_per_s") > 0.0);
    assert!(num("ingest_batch_p50_ms") > 0.0);
    for key in ["idle", "retrain", "rebalance", "compact"] {
        let (p50, p99) = (num(&format!("{key}_p50_ms")), num(&format!("{key}_p99_ms")));
        assert!(p50 > 0.0 && p99 >= p50, "{key}: {p50} {p99}");
    }
    for key in ["retrain", "rebalance", "compact"] {
        let extra = num(&format!("{key}_peak_extra_disk"));
        assert!((0.0..10.0).contains(&extra), "{key}: {extra}");
        assert!(num(&format!("{key}_s")) >= 0.0);
    }
    assert!(num("rebalance_splits") >= 0.0);
    assert!(num("retrain_searches") >= 100.0);
    assert!(stdout.contains("\"mode\":\"engine\""), "{stdout}");

    // Without --data-dir the flag is an error, not silently ignored.
    let out = vdbctl(&digits_args(
        &["--nlist", "16", "--maintenance-latency"],
        &files,
    ));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--maintenance-latency needs --data-dir")
    );
}

#[test]
fn churn_overwrites_the_second_half_and_ends_with_the_base_rows() {
    let files = [data("base.fvecs"), data("query.fvecs"), data("gt.ivecs")];
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let out = vdbctl(&digits_args(
        &[
            "--nlist",
            "16",
            "--nprobe",
            "16",
            "--k",
            "10",
            "--json",
            "--min-seconds",
            "0",
            "--data-dir",
            &data_dir,
            "--flush-rows",
            "300",
            "--churn",
        ],
        &files,
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let num = |key: &str| json_num(&stdout, key);
    // Every copy was overwritten: the base rows, searched exactly, are
    // the ground truth's.
    let rows = num("rows");
    assert_eq!(num("ingest_rows"), rows + (rows / 2.0).floor(), "{stdout}");
    assert_eq!(num("recall"), 1.0, "{stdout}");

    let out = vdbctl(&digits_args(&["--nlist", "16", "--churn"], &files));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--churn needs --data-dir"));
}

#[test]
fn server_runs_measure_over_grpc_with_the_same_keys() {
    let files = [data("base.fvecs"), data("query.fvecs"), data("gt.ivecs")];
    let out = vdbctl(&digits_args(
        &[
            "--nlist",
            "16",
            "--nprobe",
            "4",
            "--k",
            "10",
            "--json",
            "--min-seconds",
            "0",
            "--server",
            "local",
        ],
        &files,
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    for key in [
        "nlist",
        "nprobe",
        "k",
        "recall",
        "qps",
        "p50_ms",
        "p99_ms",
        "batch_qps",
        "train_s",
        "build_s",
        "disk_bytes",
        "qps_16_clients",
        "inproc_qps",
        "grpc_overhead",
        "grpc_floor_p50_ms",
        "grpc_floor_overhead",
        "inproc_paced_p50_ms",
        "grpc_paced_overhead",
        "ingest_rows_per_s",
        "upsert_rows_per_s",
    ] {
        assert!(
            stdout.contains(&format!("\"{key}\":")),
            "missing {key} in {stdout}"
        );
    }
    assert!(stdout.contains("\"mode\":\"server\""), "{stdout}");
    // Recall over gRPC is the engine's: 0.999 at nprobe 4 on digits.
    let recall: f64 = stdout
        .split("\"recall\":")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(recall >= 0.99, "{recall}");
}
