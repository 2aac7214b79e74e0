//! Guards the collection commands of `vdbctl` against a real server (started
//! in-process on an ephemeral port): create, import with ids, describe,
//! search, explain, get, delete, alter, flush/compact/retrain, drop — in
//! table and JSON form — and the exit codes scripts rely on.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use vdb_engine::{Engine, EngineOptions};

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/digits")
        .join(name)
        .display()
        .to_string()
}

/// A vdbd-equivalent server on its own runtime thread; stops when dropped.
struct Server {
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        Server::start_with(vdb_server::ServerOptions::default())
    }

    fn start_with(server_options: vdb_server::ServerOptions) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_path_buf();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let options = EngineOptions {
                    runtime: Some(tokio::runtime::Handle::current()),
                    ..EngineOptions::default()
                };
                let engine = Arc::new(
                    tokio::task::spawn_blocking(move || Engine::open_with(&data_dir, options))
                        .await
                        .unwrap()
                        .unwrap(),
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                vdb_server::serve(Arc::clone(&engine), listener, server_options, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
                tokio::task::spawn_blocking(move || engine.shutdown())
                    .await
                    .unwrap()
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        Server {
            addr: format!("http://{addr}"),
            stop: Some(stop_tx),
            thread: Some(thread),
            _dir: dir,
        }
    }

    fn vdbctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vdbctl"))
            .args(args)
            .env("VDB_SERVER", &self.addr)
            .output()
            .unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.vdbctl(args);
        assert!(
            out.status.success(),
            "vdbctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects exit code `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.vdbctl(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(code), "vdbctl {args:?}: {stderr}");
        stderr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn json_num(doc: &str, key: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(doc.trim()).unwrap();
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key} in {doc}"))
}

#[test]
fn collection_commands_work_end_to_end() {
    let s = Server::start();
    let base = data("base.fvecs");
    let query = data("query.fvecs");

    let out = s.ok(&[
        "create-collection",
        "digits",
        "--dim",
        "64",
        "--nlist",
        "16",
        "--nprobe",
        "4",
    ]);
    assert!(out.contains("digits"), "{out}");
    let out = s.ok(&["import", "digits", &base, "--batch", "500", "--json"]);
    assert_eq!(json_num(&out, "rows"), 1697.0, "{out}");
    assert_eq!(json_num(&out, "batches"), 4.0);
    assert_eq!(s.ok(&["list"]).trim(), "digits");

    s.ok(&["flush", "digits"]);
    let d = s.ok(&["describe", "digits", "--json"]);
    assert_eq!(json_num(&d, "rows"), 1697.0);
    assert_eq!(json_num(&d, "lists"), 16.0, "trained at the flush: {d}");

    // A base row finds itself first, by table and by JSON.
    let out = s.ok(&[
        "search", "digits", "--file", &base, "--row", "42", "--k", "3",
    ]);
    let first = out.lines().nth(1).unwrap();
    assert_eq!(first.split_whitespace().nth(1), Some("42"), "{out}");
    let out = s.ok(&[
        "search", "digits", "--file", &query, "--row", "0", "--k", "5", "--exact", "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["hits"].as_array().unwrap().len(), 5);
    assert_eq!(v["nprobe"], 16);

    let out = s.ok(&[
        "explain", "digits", "--file", &query, "--row", "0", "--k", "5", "--nprobe", "4",
    ]);
    assert!(
        out.contains("compared with all 16 centroids") && out.contains("the 4 nearest were probed"),
        "{out}"
    );
    assert!(out.contains("for a collection of 1697 rows"), "{out}");
    assert!(out.contains("what the probed lists hold"), "{out}");
    let out = s.ok(&[
        "explain", "digits", "--file", &query, "--row", "0", "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["probed"].as_array().unwrap().len(),
        4,
        "the collection's default nprobe"
    );
    assert_eq!(v["lists"].as_array().unwrap().len(), 16);
    assert_eq!(v["probed"][0]["samples"].as_array().unwrap().len(), 9);
    assert!(v["exact"].is_null());
    // With --exact at nprobe 1: the missed neighbours are the exact top-k
    // minus the returned, and the suggested nprobe finds them all.
    let out = s.ok(&[
        "explain", "digits", "--file", &query, "--row", "3", "--nprobe", "1", "--exact", "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let ids = |a: &serde_json::Value| -> Vec<u64> {
        a.as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_u64().unwrap())
            .collect()
    };
    let returned = ids(&v["hits"]);
    let exact = ids(&v["exact"]["hits"]);
    let missed = ids(&v["exact"]["missed"]);
    let want: Vec<u64> = exact
        .iter()
        .copied()
        .filter(|i| !returned.contains(i))
        .collect();
    assert_eq!(missed, want);
    let min = v["exact"]["min_nprobe"].as_u64().unwrap();
    let at_min = s.ok(&[
        "search",
        "digits",
        "--file",
        &query,
        "--row",
        "3",
        "--nprobe",
        &min.to_string(),
        "--json",
    ]);
    let at_min: serde_json::Value = serde_json::from_str(at_min.trim()).unwrap();
    assert_eq!(ids(&at_min["hits"]), exact);
    let text = s.ok(&[
        "explain", "digits", "--file", &query, "--row", "3", "--nprobe", "1", "--exact",
    ]);
    assert!(text.contains("exact search:"), "{text}");
    assert!(text.contains(&format!("nprobe {min}")), "{text}");

    // Tune: a recommendation, a plot, and --apply sets the default.
    let plot = tempfile::NamedTempFile::new().unwrap();
    let plot_path = plot.path().display().to_string();
    let out = s.ok(&[
        "tune",
        "--collection",
        "digits",
        "--target-recall",
        "0.95",
        "--plot",
        &plot_path,
        "--apply",
    ]);
    assert!(out.contains("recommended nprobe"), "{out}");
    assert!(out.contains("applied: the default nprobe"), "{out}");
    let svg = std::fs::read_to_string(plot.path()).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("target 0.95"),
        "{svg}"
    );
    let out = s.ok(&["tune", "digits", "--target-recall", "0.95", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let recommended = v["recommended"].as_u64().unwrap();
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.last().unwrap()["nprobe"], 16);
    let first_ok = points
        .iter()
        .find(|p| p["recall"].as_f64().unwrap() >= 0.95)
        .unwrap();
    assert_eq!(first_ok["nprobe"].as_u64().unwrap(), recommended);
    let d: serde_json::Value =
        serde_json::from_str(s.ok(&["describe", "digits", "--json"]).trim()).unwrap();
    assert_eq!(d["nprobe"].as_u64().unwrap(), recommended, "{d}");

    // Export as a faiss IVF_Flat file: the lists of describe --lists, every
    // visible row once, vectors as get returns them.
    let exported = tempfile::tempdir().unwrap();
    let path = exported.path().join("digits.faiss");
    let out = s.ok(&[
        "export",
        "digits",
        &path.display().to_string(),
        "--format",
        "faiss",
    ]);
    assert!(out.contains("IVF16,Flat"), "{out}");
    let index = vdb_format::read_faiss_ivf_flat(&path).unwrap();
    assert_eq!(index.header.dim, 64);
    assert_eq!(index.header.metric, vdb_format::FaissMetric::L2);
    let d: serde_json::Value =
        serde_json::from_str(s.ok(&["describe", "digits", "--lists", "--json"]).trim()).unwrap();
    let sizes: Vec<u64> = d["lists"]["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(index.header.sizes, sizes);
    let ids: std::collections::HashSet<i64> = index
        .lists
        .iter()
        .flat_map(|(ids, _)| ids.iter().copied())
        .collect();
    assert_eq!(ids.len() as u64, d["rows"].as_u64().unwrap());
    let (list_ids, vectors) = index.lists.iter().find(|(ids, _)| !ids.is_empty()).unwrap();
    let got = s.ok(&["get", "digits", "--ids", &list_ids[0].to_string(), "--json"]);
    let got: serde_json::Value = serde_json::from_str(got.trim()).unwrap();
    let vector: Vec<f32> = got["rows"][0]["vector"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(vector, vectors[..64]);
    // And back: a collection created from the file keeps its centroids and
    // answers like the original.
    let path_s = path.display().to_string();
    let out = s.ok(&["import", "again", &path_s, "--format", "faiss"]);
    assert!(out.contains("with the index's centroids"), "{out}");
    let again_path = exported.path().join("again.faiss");
    s.ok(&["export", "again", &again_path.display().to_string()]);
    let again = vdb_format::read_faiss_ivf_flat(&again_path).unwrap();
    assert_eq!(again.header.centroids, index.header.centroids);
    assert_eq!(again.header.sizes, index.header.sizes);
    for nprobe in ["1", "3"] {
        let search = |c: &str| -> serde_json::Value {
            serde_json::from_str(
                s.ok(&[
                    "search", c, "--file", &query, "--row", "7", "--nprobe", nprobe, "--json",
                ])
                .trim(),
            )
            .unwrap()
        };
        assert_eq!(search("digits")["hits"], search("again")["hits"]);
    }
    let e = s.vdbctl(&["import", "again", &path_s, "--format", "faiss"]);
    assert_eq!(e.status.code(), Some(4), "already exists");
    // faiss allows an id twice, vdb refuses the file before creating
    // anything.
    let mut twice = index.clone();
    let (first_ids, _) = twice
        .lists
        .iter_mut()
        .find(|(ids, _)| ids.len() >= 2)
        .unwrap();
    first_ids[1] = first_ids[0];
    let twice_path = exported.path().join("twice.faiss");
    vdb_format::write_faiss_ivf_flat(&twice_path, &twice).unwrap();
    let e = s.vdbctl(&[
        "import",
        "twice",
        &twice_path.display().to_string(),
        "--format",
        "faiss",
    ]);
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("twice"));
    assert!(!s.ok(&["list"]).contains("twice"), "nothing was created");
    let bogus = exported.path().join("bogus.faiss");
    std::fs::write(&bogus, b"IwPQ not an IVF_Flat file").unwrap();
    let e = s.vdbctl(&[
        "import",
        "bogus",
        &bogus.display().to_string(),
        "--format",
        "faiss",
    ]);
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("IndexIVFFlat"));

    let lists = s.ok(&["describe", "digits", "--lists"]);
    assert!(
        lists.contains("lists: 16") && lists.contains("imbalance"),
        "{lists}"
    );
    assert!(lists.contains("largest lists:"), "{lists}");
    let lists = s.ok(&["describe", "digits", "--lists", "--json"]);
    let v: serde_json::Value = serde_json::from_str(lists.trim()).unwrap();
    let sizes = v["lists"]["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 16);
    assert_eq!(sizes.iter().map(|x| x.as_u64().unwrap()).sum::<u64>(), 1697);

    s.ok(&[
        "insert",
        "digits",
        "--id",
        "5000",
        "--vector",
        &vec!["1.5"; 64].join(","),
        "--payload",
        "hello",
    ]);
    let out = s.ok(&["get", "digits", "--ids", "5000,99999"]);
    assert!(
        out.contains("hello") && out.contains("(not found)"),
        "{out}"
    );
    s.ok(&["delete", "digits", "--ids", "5000,1,2"]);
    let d = s.ok(&["describe", "digits", "--json"]);
    assert_eq!(json_num(&d, "rows"), 1695.0);
    let d = s.ok(&["alter", "digits", "--nprobe", "8", "--json"]);
    assert_eq!(json_num(&d, "nprobe"), 8.0);
    let out = s.ok(&["compact", "digits", "--json"]);
    assert_eq!(json_num(&out, "deleted_rows"), 0.0);
    let out = s.ok(&["retrain", "digits", "--nlist", "8", "--json"]);
    assert_eq!(json_num(&out, "lists"), 8.0);
    // Just trained: the lists are as even as they get, nothing is split.
    let out = s.ok(&["rebalance", "digits", "--json"]);
    assert!(out.contains("\"changed\":false"), "{out}");
    assert_eq!(json_num(&out, "rebalances"), 0.0);
    assert_eq!(json_num(&out, "rows"), 1695.0);

    // Exit codes.
    s.fails(&["describe", "nope"], 3);
    s.fails(&["create-collection", "digits", "--dim", "4"], 4);
    let e = s.fails(&["search", "digits", "--vector", "1,2,3", "--k", "3"], 2);
    assert!(e.contains("queries[0]"), "{e}");
    s.fails(&["create-collection", "../x", "--dim", "4"], 2);
    s.fails(&["search", "digits", "--k", "3"], 1);
    let out = Command::new(env!("CARGO_BIN_EXE_vdbctl"))
        .args(["list", "--server", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The address as vdbd prints it, without a scheme, works too.
    let bare = s.addr.trim_start_matches("http://").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_vdbctl"))
        .args(["--server", &bare, "list"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("again"));

    s.ok(&["drop", "digits"]);
    s.ok(&["drop", "again"]);
    assert_eq!(s.ok(&["list"]).trim(), "");
}

#[test]
fn bench_reaches_a_server_with_keys_at_the_address_vdbd_prints() {
    let s = Server::start_with(vdb_server::ServerOptions {
        keys: vdb_server::ApiKeys {
            full: vec!["bench-key".into()],
            read_only: Vec::new(),
        },
        ..vdb_server::ServerOptions::default()
    });
    let bare = s.addr.trim_start_matches("http://").to_string();
    let (base, query) = (data("base.fvecs"), data("query.fvecs"));
    let bench = |key: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vdbctl"));
        cmd.args(["bench", "--base", &base, "--query", &query, "--nlist", "16"])
            .args([
                "--nprobe",
                "4",
                "--min-seconds",
                "0",
                "--json",
                "--server",
                &bare,
            ])
            .env_remove("VDB_API_KEY");
        if let Some(k) = key {
            cmd.args(["--api-key", k]);
        }
        cmd.output().unwrap()
    };
    let out = bench(Some("bench-key"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"mode\":\"server\""), "{stdout}");
    assert!(json_num(&stdout, "recall") >= 0.99, "{stdout}");
    // Without the key: refused, with the exit code of a missing key.
    let out = bench(None);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_demo_searches_images_over_grpc_and_reports_recall() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vdbctl"))
        .args(["demo", "--show", "1", "--digits", &data(""), "--data-dir"])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("imported 1697 digit images"), "{stdout}");
    assert!(
        stdout.contains("query 0 and its 5 nearest images"),
        "{stdout}"
    );
    // The query shows a 6 and so do its neighbours (payload labels).
    assert!(stdout.matches("digit 6").count() >= 6, "{stdout}");
    assert!(stdout.contains('█'), "pictures are drawn");
    let recall_at_16 = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("16 "))
        .unwrap_or_else(|| panic!("no nprobe 16 row: {stdout}"));
    assert!(recall_at_16.contains("1.000"), "{recall_at_16}");
    // Running it again starts over cleanly.
    let again = Command::new(env!("CARGO_BIN_EXE_vdbctl"))
        .args(["demo", "--show", "0", "--digits", &data(""), "--data-dir"])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn imports_json_lines_and_ids_from_a_file() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    s.ok(&["create-collection", "docs", "--dim", "3", "--nlist", "1"]);
    let jsonl = dir.path().join("rows.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\": 10, \"vector\": [1, 0, 0], \"title\": \"first\"}\n\n{\"id\": 11, \"vector\": [0, 1, 0], \"title\": {\"n\": 2}}\n",
    )
    .unwrap();
    let out = s.ok(&[
        "import",
        "docs",
        jsonl.to_str().unwrap(),
        "--payload-field",
        "title",
        "--json",
    ]);
    assert_eq!(json_num(&out, "rows"), 2.0);
    let got = s.ok(&["get", "docs", "--ids", "10,11", "--json"]);
    assert!(
        got.contains("\"first\"") && got.contains(r#"{\"n\":2}"#),
        "{got}"
    );

    // A bad line is refused with file and line, and nothing is sent.
    std::fs::write(
        &jsonl,
        "{\"id\": 12, \"vector\": [1, 0, 0]}\n{\"id\": -1, \"vector\": [1]}\n",
    )
    .unwrap();
    let e = s.fails(&["import", "docs", jsonl.to_str().unwrap()], 1);
    assert!(
        e.contains("rows.jsonl line 2") && e.contains("\"id\""),
        "{e}"
    );
    assert_eq!(
        json_num(&s.ok(&["describe", "docs", "--json"]), "rows"),
        2.0
    );

    // Vector files take their ids from a file.
    s.ok(&["create-collection", "digits", "--dim", "64", "--nlist", "4"]);
    let ids = dir.path().join("ids.txt");
    let base = data("base.fvecs");
    let n = 1697;
    std::fs::write(
        &ids,
        (0..n)
            .map(|i| format!("{}\n", 1_000_000 + i))
            .collect::<String>(),
    )
    .unwrap();
    s.ok(&[
        "import",
        "digits",
        &base,
        "--ids-from",
        ids.to_str().unwrap(),
        "--skip",
        "1000",
    ]);
    let got = s.ok(&["get", "digits", "--ids", "1001000,1000999", "--json"]);
    let v: serde_json::Value = serde_json::from_str(got.trim()).unwrap();
    assert_eq!(
        v["rows"].as_array().unwrap().len(),
        1,
        "skipped rows are not sent: {got}"
    );
    assert_eq!(v["missing"][0], 1_000_999);
    std::fs::write(&ids, "1\n2\n").unwrap();
    let e = s.fails(
        &[
            "import",
            "digits",
            &base,
            "--ids-from",
            ids.to_str().unwrap(),
        ],
        1,
    );
    assert!(e.contains("2 ids for the 1697 rows"), "{e}");
}

#[test]
fn typed_fields_and_filtered_search_through_the_cli() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    s.ok(&[
        "create-collection",
        "docs",
        "--dim",
        "2",
        "--nlist",
        "1",
        "--field",
        "album:keyword",
        "--field",
        "year:int",
        "--field",
        "tags:keywords",
    ]);
    let described = s.ok(&["describe", "docs", "--json"]);
    assert!(
        described.contains("album:keyword year:int tags:keywords"),
        "{described}"
    );
    let jsonl = dir.path().join("rows.jsonl");
    let lines: String = (0..40)
        .map(|i| {
            let album = if i % 4 == 0 { "cats" } else { "dogs" };
            format!(
                "{{\"id\": {i}, \"vector\": [{i}, 0], \"album\": \"{album}\", \"year\": {}, \"tags\": [\"t{}\"]}}\n",
                2000 + i,
                i % 3
            )
        })
        .collect();
    std::fs::write(&jsonl, lines).unwrap();
    s.ok(&["import", "docs", jsonl.to_str().unwrap()]);
    let got = s.ok(&["get", "docs", "--ids", "4", "--json"]);
    let v: serde_json::Value = serde_json::from_str(got.trim()).unwrap();
    assert_eq!(
        v["rows"][0]["fields"],
        serde_json::json!({"album": "cats", "tags": ["t1"], "year": 2004}),
        "{got}"
    );
    let out = s.ok(&[
        "search",
        "docs",
        "--vector",
        "0,0",
        "--k",
        "3",
        "--filter",
        "album = 'cats' and year >= 2010",
        "--with-fields",
        "--json",
    ]);
    let ids = hit_ids(&out);
    assert_eq!(ids, vec![12, 16, 20], "{out}");
    let table = s.ok(&[
        "search",
        "docs",
        "--vector",
        "0,0",
        "--k",
        "2",
        "--filter",
        "tags contains 't2'",
        "--with-fields",
    ]);
    assert!(
        table.contains("album=\"dogs\"") && table.contains("tags=[\"t2\"]"),
        "{table}"
    );

    // Explain and tune take the filter too.
    let ex = s.ok(&[
        "explain",
        "docs",
        "--vector",
        "0,0",
        "--k",
        "3",
        "--filter",
        "album = 'cats'",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(ex.trim()).unwrap();
    assert_eq!(v["filter"], "album = 'cats'", "{ex}");
    assert_eq!(v["filter_rows"], 10, "{ex}");
    assert_eq!(v["hits"].as_array().unwrap().len(), 3, "{ex}");
    let text = s.ok(&[
        "explain",
        "docs",
        "--vector",
        "0,0",
        "--filter",
        "album = 'cats'",
    ]);
    assert!(
        text.contains("filter: album = 'cats'; 10 of 40 rows pass"),
        "{text}"
    );
    let tuned = s.ok(&[
        "tune",
        "docs",
        "--target-recall",
        "0.9",
        "--sample",
        "20",
        "--filter",
        "year >= 2020",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(tuned.trim()).unwrap();
    let points = v["points"].as_array().unwrap();
    assert!(
        !points.is_empty() && points.iter().all(|p| p["recall"] == 1.0),
        "{tuned}"
    );

    // A syntax error is refused before sending, with its position; an
    // unknown field by the server, naming it.
    let e = s.fails(
        &[
            "search",
            "docs",
            "--vector",
            "0,0",
            "--filter",
            "album = cats",
        ],
        1,
    );
    assert!(e.contains("at 8") && e.contains("quote strings"), "{e}");
    let e = s.fails(
        &[
            "search",
            "docs",
            "--vector",
            "0,0",
            "--filter",
            "albun = 'x'",
        ],
        2,
    );
    assert!(e.contains("unknown field \"albun\""), "{e}");
    // A value of the wrong type in a JSON line names the line and field.
    std::fs::write(
        &jsonl,
        "{\"id\": 99, \"vector\": [1, 1], \"year\": \"old\"}\n",
    )
    .unwrap();
    let e = s.fails(&["import", "docs", jsonl.to_str().unwrap()], 1);
    assert!(
        e.contains("line 1") && e.contains("\"year\" is a field of type int"),
        "{e}"
    );
    let e = s.fails(
        &[
            "create-collection",
            "bad",
            "--dim",
            "2",
            "--field",
            "x:text",
        ],
        1,
    );
    assert!(e.contains("unknown field type"), "{e}");

    // A field declared later: the import takes it from then on.
    let e = s.fails(&["alter", "docs", "--add-field", "year:float"], 2);
    assert!(e.contains("\"year\" is already declared (as int)"), "{e}");
    let altered = s.ok(&["alter", "docs", "--add-field", "color:keyword", "--json"]);
    assert!(
        altered.contains("album:keyword year:int tags:keywords color:keyword"),
        "{altered}"
    );
    std::fs::write(
        &jsonl,
        "{\"id\": 100, \"vector\": [1, 1], \"color\": \"red\"}\n",
    )
    .unwrap();
    s.ok(&["import", "docs", jsonl.to_str().unwrap()]);
    let out = s.ok(&[
        "search",
        "docs",
        "--vector",
        "0,0",
        "--filter",
        "color = 'red'",
        "--json",
    ]);
    let ids = hit_ids(&out);
    assert_eq!(ids, vec![100], "{out}");
}

/// The ids of the hits of `search --json`, in order.
fn hit_ids(out: &str) -> Vec<u64> {
    hits(out)
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect()
}

/// The hits of `search --json` (ids and distances), without the timing.
fn hits(out: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    v["hits"].clone()
}

#[test]
fn snapshots_back_up_and_restore_through_the_cli() {
    let s = Server::start();
    let base = data("base.fvecs");
    let query = data("query.fvecs");
    s.ok(&[
        "create-collection",
        "digits",
        "--dim",
        "64",
        "--nlist",
        "16",
    ]);
    s.ok(&["import", "digits", &base, "--json"]);
    s.ok(&["flush", "digits"]);
    let search = |name: &str, row: &str| {
        s.ok(&[
            "search", name, "--file", &query, "--row", row, "--k", "10", "--json",
        ])
    };
    let before: Vec<serde_json::Value> = (0..5)
        .map(|r| hits(&search("digits", &r.to_string())))
        .collect();

    let out = s.ok(&[
        "snapshot", "create", "digits", "--name", "nightly", "--json",
    ]);
    assert!(
        json_num(&out, "files") >= 2.0,
        "centroids and a segment: {out}"
    );
    assert_eq!(
        json_num(&out, "bytes"),
        json_num(&out, "added_bytes"),
        "{out}"
    );
    // The collection moves on.
    s.ok(&["delete", "digits", "--ids", "0,1,2,3,4,5,6,7,8,9"]);
    s.ok(&["compact", "digits"]);
    let listed = s.ok(&["snapshot", "list"]);
    assert!(
        listed.contains("nightly") && listed.contains("digits"),
        "{listed}"
    );

    let out = s.ok(&["snapshot", "restore", "nightly", "--as", "back", "--json"]);
    assert_eq!(json_num(&out, "rows"), 1697.0, "{out}");
    for (r, want) in before.iter().enumerate() {
        assert_eq!(&hits(&search("back", &r.to_string())), want, "query {r}");
    }

    // Elsewhere: a directory given by absolute path.
    let repo = tempfile::tempdir().unwrap();
    let to = repo.path().join("backups");
    let to = to.to_str().unwrap();
    let out = s.ok(&["snapshot", "create", "back", "--to", to, "--json"]);
    let name = serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(name.starts_with("back-"), "{out}");
    let listed = s.ok(&["snapshot", "list", "--from", to, "--json"]);
    assert!(listed.contains(&name), "{listed}");

    // Refusals, with the exit codes of the other commands.
    let e = s.fails(&["snapshot", "restore", "missing", "--as", "x"], 3);
    assert!(e.contains("missing"), "{e}");
    let e = s.fails(&["snapshot", "create", "digits", "--name", "nightly"], 4);
    assert!(e.contains("nightly"), "{e}");
    let e = s.fails(&["snapshot", "restore", "nightly", "--as", "digits"], 4);
    assert!(e.contains("digits"), "{e}");
    let e = s.fails(&["snapshot", "list", "--from", "relative/dir"], 2);
    assert!(e.contains("repository") && e.contains("absolute"), "{e}");
    let e = s.fails(&["snapshot", "create", "digits", "--name", "a.b"], 2);
    assert!(e.contains("snapshot"), "{e}");

    s.ok(&["snapshot", "delete", "nightly"]);
    assert!(s.ok(&["snapshot", "list"]).contains("no snapshots"));
    s.fails(&["snapshot", "delete", "nightly"], 3);
    // The restored collection does not need the snapshot.
    assert_eq!(
        json_num(&s.ok(&["describe", "back", "--json"]), "rows"),
        1697.0
    );
    assert_eq!(&hits(&search("back", "0")), &before[0]);
}

#[test]
fn the_default_nprobe_follows_the_recall_target() {
    let s = Server::start();
    let base = data("base.fvecs");
    s.ok(&["create-collection", "d", "--dim", "64", "--nlist", "16"]);
    let before = s.ok(&["describe", "d", "--json"]);
    assert_eq!(json_num(&before, "target_recall"), 0.95, "{before}");
    assert_eq!(json_num(&before, "nprobe"), 8.0, "{before}");
    s.ok(&["import", "d", &base]);
    s.ok(&["flush", "d"]);
    // Trained: nprobe chosen for the target, with the recall measured.
    let after = s.ok(&["describe", "d", "--json"]);
    let (nprobe, tuned) = (json_num(&after, "nprobe"), json_num(&after, "tuned_recall"));
    assert!(json_num(&after, "generation") >= 1.0, "{after}");
    assert!(tuned >= 0.95 && (1.0..=16.0).contains(&nprobe), "{after}");
    let low = s.ok(&["alter", "d", "--target-recall", "0.5", "--json"]);
    assert!(json_num(&low, "nprobe") <= nprobe, "{low}");
    assert!(json_num(&low, "tuned_recall") >= 0.5, "{low}");
    let e = s.fails(&["alter", "d", "--target-recall", "1.5"], 2);
    assert!(e.contains("target_recall: 1.5 is not in (0, 1]"), "{e}");
    let e = s.fails(
        &["alter", "d", "--nprobe", "3", "--target-recall", "0.9"],
        2,
    );
    assert!(e.contains("cannot be used with"), "{e}");
    // A fixed nprobe clears the target.
    let fixed = s.ok(&["alter", "d", "--nprobe", "3"]);
    assert!(
        fixed.contains("target_recall  -") && fixed.contains("nprobe  3"),
        "{fixed}"
    );
}

#[test]
fn an_ivf_rabitq_collection_through_the_cli() {
    let s = Server::start();
    let base = data("base.fvecs");
    let query = data("query.fvecs");
    let e = s.fails(
        &[
            "create-collection",
            "d",
            "--dim",
            "64",
            "--index-type",
            "lsh",
        ],
        2,
    );
    assert!(e.contains("index_type"), "{e}");
    s.ok(&[
        "create-collection",
        "d",
        "--dim",
        "64",
        "--nlist",
        "16",
        "--nprobe",
        "4",
        "--index-type",
        "ivf_rabitq",
    ]);
    s.ok(&["import", "d", &base]);
    s.ok(&["flush", "d"]);
    let d = s.ok(&["describe", "d", "--json"]);
    let v: serde_json::Value = serde_json::from_str(d.trim()).unwrap();
    assert_eq!(v["index_type"], "ivf_rabitq", "{d}");

    // A base row finds itself first; with every list probed and a wide
    // bound, the hits are the exact search's.
    let out = s.ok(&["search", "d", "--file", &base, "--row", "42", "--k", "3"]);
    assert_eq!(
        out.lines().nth(1).unwrap().split_whitespace().nth(1),
        Some("42"),
        "{out}"
    );
    let ids = |extra: &[&str]| {
        let mut args = vec![
            "search", "d", "--file", &query, "--row", "1", "--k", "10", "--json",
        ];
        args.extend_from_slice(extra);
        hit_ids(&s.ok(&args))
    };
    assert_eq!(
        ids(&["--nprobe", "16", "--rerank-epsilon", "6"]),
        ids(&["--exact"])
    );
    let out = s.ok(&["explain", "d", "--file", &query, "--row", "1", "--k", "5"]);
    assert!(
        out.contains("distances estimated from 1-bit codes"),
        "{out}"
    );
    // With every list probed, what the comparison finds missing was ruled
    // out by its code; per list, the neighbours the bound let through.
    let out = s.ok(&[
        "explain",
        "d",
        "--file",
        &query,
        "--row",
        "1",
        "--k",
        "10",
        "--nprobe",
        "16",
        "--exact",
        "--rerank-epsilon",
        "0",
    ]);
    assert!(
        out.contains("true neighbours the bound let through"),
        "{out}"
    );
    assert!(!out.contains("not among the"), "{out}");
    let e = s.fails(&["search", "d", "--file", &query, "--rerank-epsilon=-2"], 2);
    assert!(e.contains("rerank_epsilon"), "{e}");

    let out = s.ok(&["alter", "d", "--index-type", "ivf_flat", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["index_type"], "ivf_flat", "{out}");
}
