//! The explain page in a real browser: `vdbctl demo` writes it for a digit
//! query, headless Chromium opens it with `#selftest`, the page's script
//! draws it, clicks a probed cluster and reports what is on the page. The
//! test checks the number of clusters and probed clusters, that the click
//! showed the cluster's members as pictures, that the missed neighbours are
//! marked, and that no network request was attempted.
//!
//! Needs Debian's `chromium` (`.ci/run` installs it). Without it the test
//! says so and passes, unless `VDB_REQUIRE_BROWSER=1` (set by `.ci/run`).

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::path::Path;
use std::process::Command;

fn browser() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_string)
}

#[test]
fn the_demo_explain_page_draws_clusters_members_and_misses_offline() {
    let Some(chromium) = browser() else {
        assert!(
            std::env::var_os("VDB_REQUIRE_BROWSER").is_none(),
            "VDB_REQUIRE_BROWSER is set but no chromium was found"
        );
        eprintln!("skipped: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/digits");
    let page = dir.path().join("explain.html");
    let out = Command::new(env!("CARGO_BIN_EXE_vdbctl"))
        .args(["demo", "--show", "1", "--digits"])
        .arg(&digits)
        .arg("--data-dir")
        .arg(dir.path().join("demo"))
        .arg("--html")
        .arg(&page)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&page.display().to_string()), "{stdout}");
    // The demo explains a query at nprobe 2 that misses neighbours; its
    // numbers come from the page's own data.
    let html = std::fs::read_to_string(&page).unwrap();
    let data_start = html
        .find(r#"<script type="application/json" id="data">"#)
        .unwrap();
    let json = &html[data_start..];
    let json = &json[json.find('>').unwrap() + 1..json.find("</script>").unwrap()];
    let data: serde_json::Value = serde_json::from_str(&json.replace("<\\/", "</")).unwrap();
    let nlist = data["nlist"].as_u64().unwrap();
    let nprobe = data["nprobe"].as_u64().unwrap();
    let missed = data["exact"]["missed"].as_array().unwrap().len();

    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}#selftest", page.display());
    let run = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&run.stdout);
    let start = dom
        .find(r#"<pre id="selftest">"#)
        .unwrap_or_else(|| panic!("no self-test report in the page:\n{dom}"));
    let report = &dom[start + r#"<pre id="selftest">"#.len()..];
    let report = &report[..report.find("</pre>").unwrap()];
    let r: serde_json::Value = serde_json::from_str(&report.replace("&quot;", "\"")).unwrap();
    assert_eq!(r["clusters"].as_u64().unwrap(), nlist, "{r}");
    assert_eq!(r["probed"].as_u64().unwrap(), nprobe, "{r}");
    // The click on a probed cluster showed its members, drawn as pictures.
    let clicked = r["clicked"].as_u64().unwrap();
    assert_eq!(r["panel"], format!("List {clicked}"), "{r}");
    assert_eq!(r["members"].as_u64().unwrap(), 9, "{r}");
    assert_eq!(r["pictures"].as_u64().unwrap(), 9, "{r}");
    assert_eq!(r["hits"].as_u64().unwrap(), 10, "{r}");
    assert_eq!(r["missed_rows"].as_u64().unwrap() as usize, missed, "{r}");
    // Nothing was fetched, nothing was blocked trying.
    assert_eq!(r["resources"].as_u64().unwrap(), 0, "{r}");
    assert_eq!(r["violations"].as_array().unwrap().len(), 0, "{r}");
}
