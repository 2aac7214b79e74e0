//! `vdbctl tune`: the recall/latency curve over nprobe as a table, JSON or
//! an SVG plot, and the recommended nprobe.

use std::fmt::Write as _;

use serde_json::{Value, json};
use vdb_proto::v1 as pb;

/// The report as JSON.
pub fn to_json(collection: &str, target: f64, r: &pb::TuneResponse) -> Value {
    let points: Vec<Value> = r
        .points
        .iter()
        .map(|p| {
            json!({"nprobe": p.nprobe, "recall": p.recall, "mean_ms": p.mean_ms,
                   "p99_ms": p.p99_ms, "distances_per_query": p.distances_per_query})
        })
        .collect();
    json!({"collection": collection, "target_recall": target, "k": r.k, "sample": r.sample,
           "recommended": r.recommended, "applied": r.applied, "points": points})
}

/// The report as a table and a verdict.
pub fn print_text(collection: &str, target: f64, current: u32, r: &pb::TuneResponse) {
    println!(
        "recall@{} against exact search on {} stored rows of {collection:?} used as queries:",
        r.k, r.sample
    );
    println!(
        "{:>7} {:>10} {:>10} {:>10} {:>9} {:>16}",
        "nprobe", "recall", "mean ms", "p99 ms", "QPS", "distances/query"
    );
    for p in &r.points {
        let mark = if Some(p.nprobe) == r.recommended {
            "  ← recommended"
        } else if p.nprobe == current {
            "  (current default)"
        } else {
            ""
        };
        println!(
            "{:>7} {:>10.4} {:>10.3} {:>10.3} {:>9.0} {:>16.0}{mark}",
            p.nprobe,
            p.recall,
            p.mean_ms,
            p.p99_ms,
            1e3 / p.mean_ms.max(1e-9),
            p.distances_per_query
        );
    }
    match r.recommended {
        Some(n) => {
            let p = r.points.iter().find(|p| p.nprobe == n);
            println!(
                "recommended nprobe {n}: the smallest measured with recall ≥ {target} ({:.4} at {:.3} ms per query)",
                p.map_or(0.0, |p| p.recall),
                p.map_or(0.0, |p| p.mean_ms)
            );
            if r.applied {
                println!(
                    "applied: the default nprobe of {collection:?} is now {n} (was {current})"
                );
            } else if n != current {
                println!("(run again with --apply to make it the default; it is {current})");
            }
        }
        None => println!(
            "no measured nprobe reaches recall {target}; the best is {:.4}",
            r.points.iter().map(|p| p.recall).fold(0.0, f64::max)
        ),
    }
}

/// An SVG plot: recall (left axis) and mean latency (right axis) against
/// nprobe (log scale), the target as a line, the recommendation marked.
pub fn plot(collection: &str, target: f64, r: &pb::TuneResponse) -> String {
    const W: f64 = 720.0;
    const H: f64 = 420.0;
    const L: f64 = 64.0;
    const R: f64 = 72.0;
    const T: f64 = 44.0;
    const B: f64 = 52.0;
    let pts = &r.points;
    let max_n = pts.iter().map(|p| p.nprobe).max().unwrap_or(1).max(2) as f64;
    let x = |n: u32| L + (f64::from(n).ln() / max_n.ln()) * (W - L - R);
    let min_recall = pts.iter().map(|p| p.recall).fold(target, f64::min).min(0.9);
    let lo = (min_recall * 10.0).floor() / 10.0;
    let y = |rec: f64| T + (1.0 - (rec - lo) / (1.0 - lo).max(1e-9)) * (H - T - B);
    let max_ms = pts.iter().map(|p| p.mean_ms).fold(0.0, f64::max).max(1e-6);
    let y_ms = |ms: f64| T + (1.0 - ms / max_ms) * (H - T - B);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="system-ui, sans-serif" font-size="12">
<rect width="{W}" height="{H}" fill="#fff"/>
<text x="{L}" y="22" font-size="15" font-weight="600">recall@{k} and latency against nprobe — {name} ({sample} sampled queries)</text>
"##,
        k = r.k,
        name = crate::explain_page::escape(collection),
        sample = r.sample
    );
    // Grid and axes.
    let mut tick = lo;
    while tick <= 1.0 + 1e-9 {
        let _ = writeln!(
            s,
            r##"<line x1="{L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end" fill="#555">{tick:.2}</text>"##,
            W - R,
            L - 6.0,
            y(tick) + 4.0,
            y = y(tick)
        );
        tick += if 1.0 - lo > 0.3 { 0.1 } else { 0.05 };
    }
    for p in pts {
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            x(p.nprobe),
            H - B + 18.0,
            p.nprobe
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#333">nprobe (log scale)</text>
<text x="16" y="{}" fill="#1c7ed6" transform="rotate(-90 16 {})" text-anchor="middle">recall@{}</text>
<text x="{}" y="{}" fill="#e8590c" transform="rotate(90 {} {})" text-anchor="middle">mean ms per query</text>
<text x="{}" y="{:.1}" fill="#e8590c">{max_ms:.3}</text><text x="{}" y="{:.1}" fill="#e8590c">0</text>"##,
        (L + W - R) / 2.0,
        H - 12.0,
        (T + H - B) / 2.0,
        (T + H - B) / 2.0,
        r.k,
        W - 18.0,
        (T + H - B) / 2.0,
        W - 18.0,
        (T + H - B) / 2.0,
        W - R + 6.0,
        y_ms(max_ms) + 4.0,
        W - R + 6.0,
        y_ms(0.0) + 4.0,
    );
    // Target line.
    let _ = writeln!(
        s,
        r##"<line x1="{L}" x2="{}" y1="{ty:.1}" y2="{ty:.1}" stroke="#2b8a3e" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" fill="#2b8a3e">target {target}</text>"##,
        W - R,
        L + 6.0,
        y(target) - 6.0,
        ty = y(target)
    );
    let line = |f: &dyn Fn(&pb::TunePoint) -> (f64, f64)| -> String {
        pts.iter()
            .map(|p| {
                let (a, b) = f(p);
                format!("{a:.1},{b:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#e8590c" stroke-width="2" points="{}"/>"##,
        line(&|p| (x(p.nprobe), y_ms(p.mean_ms)))
    );
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#1c7ed6" stroke-width="2.5" points="{}"/>"##,
        line(&|p| (x(p.nprobe), y(p.recall)))
    );
    for p in pts {
        let _ = writeln!(
            s,
            r##"<circle class="point" cx="{:.1}" cy="{:.1}" r="3.5" fill="#1c7ed6"><title>nprobe {}: recall {:.4}, {:.3} ms</title></circle>"##,
            x(p.nprobe),
            y(p.recall),
            p.nprobe,
            p.recall,
            p.mean_ms
        );
    }
    if let Some(p) = r
        .recommended
        .and_then(|n| pts.iter().find(|p| p.nprobe == n))
    {
        let (cx, cy) = (x(p.nprobe), y(p.recall));
        let _ = writeln!(
            s,
            r##"<circle cx="{cx:.1}" cy="{cy:.1}" r="8" fill="none" stroke="#2b8a3e" stroke-width="2.5"/><text x="{:.1}" y="{:.1}" fill="#2b8a3e" font-weight="600">recommended nprobe {}</text>"##,
            cx + 10.0,
            cy + 22.0,
            p.nprobe,
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_has_every_point_the_target_and_the_recommendation() {
        let r = pb::TuneResponse {
            points: [
                (1, 0.7, 0.1),
                (2, 0.85, 0.15),
                (4, 0.96, 0.3),
                (8, 1.0, 0.6),
            ]
            .into_iter()
            .map(|(n, rec, ms)| pb::TunePoint {
                nprobe: n,
                recall: rec,
                mean_ms: ms,
                p99_ms: ms * 2.0,
                distances_per_query: f64::from(n) * 100.0,
            })
            .collect(),
            recommended: Some(4),
            applied: false,
            sample: 200,
            k: 10,
            info: None,
        };
        let svg = plot("a<b", 0.95, &r);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("class=\"point\"").count(), 4);
        assert!(svg.contains("target 0.95"));
        assert!(svg.contains("recommended nprobe 4"));
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
        let v = to_json("c", 0.95, &r);
        assert_eq!(v["recommended"], 4);
        assert_eq!(v["points"].as_array().unwrap().len(), 4);
    }
}
