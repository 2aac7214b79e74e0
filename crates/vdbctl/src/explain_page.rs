//! `vdbctl explain --html FILE`: one self-contained HTML page that draws an
//! explanation — the coarse map of clusters, a clicked cluster's members,
//! the fine stage's distances, the results and (with --exact) the missed
//! neighbours. Everything is inline (CSS, SVG drawn by an inline script,
//! the data as JSON); a Content-Security-Policy forbids every network
//! request, so the page works offline and cannot leak the data.

use serde_json::Value;

const SCRIPT: &str = include_str!("explain_page.js");

const STYLE: &str = r#"
:root { --probed: #e8590c; --hit: #2b8a3e; --missed: #c92a2a; --ink: #212529; --muted: #868e96; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); margin: 0; padding: 18px 24px; background: #f8f9fa; }
h1 { font-size: 20px; margin: 0 0 2px; }
h2 { font-size: 15px; margin: 0 0 8px; }
section { background: #fff; border: 1px solid #dee2e6; border-radius: 6px; padding: 12px 14px; margin: 12px 0; }
#facts, .note { color: var(--muted); }
#work { margin: 6px 0 0; }
.good { color: var(--hit); font-weight: 600; }
.bad { color: var(--missed); font-weight: 600; }
.row { display: flex; gap: 12px; align-items: stretch; flex-wrap: wrap; }
.row > section { margin: 0; }
#map-section { flex: 0 0 auto; max-width: 672px; }
#panel { flex: 1 1 320px; min-width: 300px; }
#map { width: 640px; height: 480px; background: #fcfcfd; border: 1px solid #f1f3f5; }
.cluster { fill: #adb5bd; fill-opacity: .35; stroke: #868e96; stroke-width: 1; cursor: pointer; }
.cluster.probed { fill: var(--probed); fill-opacity: .55; stroke: #a63c06; }
.cluster.filtered-out { fill: #ced4da; fill-opacity: .8; stroke: #868e96; stroke-dasharray: 2 2; }
.cluster.holds-missed { stroke: var(--missed); stroke-width: 2.5; stroke-dasharray: 4 2; }
.cluster.selected { stroke: #1c7ed6; stroke-width: 3.5; stroke-dasharray: none; }
.cluster:hover { fill-opacity: .8; }
.probe-lines line { stroke: var(--probed); stroke-opacity: .45; stroke-width: 1.2; }
.labels text { font-size: 11px; font-weight: 700; text-anchor: middle; pointer-events: none; fill: #fff; }
.query { stroke: #000; stroke-width: 3; }
.query-label { font-size: 12px; font-weight: 700; }
.legend { font-size: 12px; color: var(--muted); margin-top: 6px; }
.legend b.p { color: var(--probed); } .legend b.m { color: var(--missed); }
.grid { display: flex; flex-wrap: wrap; gap: 8px; }
.member { border: 1px solid #dee2e6; border-radius: 4px; padding: 4px; width: 104px; text-align: center; }
.member.is-hit { border-color: var(--hit); box-shadow: 0 0 0 2px #b2f2bb; }
.member.is-missed { border-color: var(--missed); box-shadow: 0 0 0 2px #ffc9c9; }
.member .meta { font-size: 11px; color: var(--muted); }
.payload { display: flex; flex-direction: column; align-items: center; gap: 2px; }
.payload .text { font-size: 12px; word-break: break-word; }
.payload .caption { font-size: 11px; }
canvas.pixels { width: 48px; height: 48px; image-rendering: pixelated; border: 1px solid #e9ecef; }
.payload img { max-width: 96px; max-height: 96px; }
td .payload { flex-direction: row; gap: 6px; }
td canvas.pixels { width: 32px; height: 32px; }
#fine { width: 100%; max-width: 900px; }
#fine .grid { stroke: #f1f3f5; }
#fine .tick, #fine .axis { font-size: 11px; fill: var(--muted); text-anchor: middle; }
#fine .axis { text-anchor: start; }
#fine .row-label { font-size: 12px; text-anchor: end; }
#fine .row-note { font-size: 11px; fill: var(--muted); }
#fine .whisker { stroke: #adb5bd; stroke-width: 1.5; }
#fine .box { fill: #ffe8cc; stroke: var(--probed); }
#fine .median { stroke: var(--probed); stroke-width: 2; }
#fine .unprobed .row-label { fill: var(--missed); }
#fine .hit { fill: var(--hit); stroke: #fff; }
#fine .missed { fill: var(--missed); stroke: #fff; }
#fine .kth { stroke: var(--ink); stroke-dasharray: 5 3; }
#fine .kth-label { font-size: 11px; }
table { border-collapse: collapse; }
th, td { padding: 3px 10px; text-align: left; border-bottom: 1px solid #f1f3f5; vertical-align: middle; }
th { font-weight: 600; color: var(--muted); }
tr.missed-row td { color: var(--missed); font-weight: 600; }
#selftest { font: 12px monospace; }
"#;

/// The page for `data` (the JSON of `vdbctl explain --json`, with an
/// optional `"image": [w, h]` for raw-pixel payloads).
pub fn render(data: &Value) -> String {
    // Inside <script>, "</" could end the element early; "<\/" is the same
    // JSON string.
    let json = data
        .to_string()
        .replace("</", "<\\/")
        .replace("<!--", "<\\!--");
    let title = format!(
        "vdb explain — {}",
        escape(data["collection"].as_str().unwrap_or("collection"))
    );
    format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1 id="title"></h1>
<div id="facts"></div>
<p id="work"></p>
<p id="verdict"></p>
</header>
<div class="row">
<section id="map-section">
<h2>Coarse search: the query among the {nlist} cluster centroids</h2>
<svg id="map" role="img" aria-label="map of the clusters"></svg>
<div class="legend">2-D map: the centroids' first two principal components. Circle area ∝ rows in the list; <b class="p">orange</b>: probed, numbered in probe order; <b class="m">dashed red</b>: holds a missed true neighbour; grey dotted: probed, but no visible row passed the filter; ✚ the query. Click a cluster.</div>
</section>
<section id="panel">
<h2 id="panel-title">Click a cluster</h2>
<div id="members"></div>
</section>
</div>
<section>
<h2>Fine search: distances to the query in the probed lists</h2>
<svg id="fine" role="img" aria-label="distances per probed list"></svg>
<div class="legend">Each row is a list: the line spans its scanned rows' distances, the box the middle 80 %, the tick the median; <b style="color:var(--hit)">green</b>: returned results; <b class="m">red</b>: missed true neighbours.</div>
</section>
<section>
<h2>Results</h2>
<table><thead><tr><th>#</th><th>payload</th><th>id</th><th>distance</th><th>list (coarse rank)</th></tr></thead><tbody id="hits"></tbody></table>
</section>
<section id="exact-section" hidden>
<h2>Exact search: the true nearest neighbours</h2>
<table><thead><tr><th>#</th><th>payload</th><th>id</th><th>distance</th><th>list (coarse rank)</th><th></th></tr></thead><tbody id="exact-hits"></tbody></table>
</section>
<pre id="selftest" hidden></pre>
<script type="application/json" id="data">{json}</script>
<script>{SCRIPT}</script>
</body>
</html>
"##,
        nlist = data["nlist"].as_u64().unwrap_or(0),
    )
}

/// Text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_page_is_self_contained_and_escapes_its_data() {
        let data =
            json!({"collection": "c</script><b>", "nlist": 4, "hits": [], "payload": "<!-- x"});
        let page = render(&data);
        assert!(page.contains("default-src 'none'"));
        assert_eq!(
            page.matches("</script>").count(),
            2,
            "the data cannot close its element"
        );
        assert!(!page.contains("<!-- x"));
        for needle in [
            "src=\"http",
            "href=\"http",
            "url(",
            "@import",
            "fetch(",
            "XMLHttpRequest",
            "<link",
        ] {
            assert!(!page.contains(needle), "{needle}");
        }
    }
}
