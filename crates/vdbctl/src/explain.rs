//! `vdbctl explain` and `vdbctl describe --lists`: what a search did, as a
//! table or JSON (the same JSON the HTML view embeds).

use serde_json::{Value, json};
use vdb_proto::v1 as pb;

/// A payload for JSON: `{"payload": text}` when it is UTF-8,
/// `{"payload_base64": …}` otherwise, nothing when absent.
fn payload_fields(p: &Option<Vec<u8>>, into: &mut serde_json::Map<String, Value>) {
    match p {
        None => {}
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => {
                into.insert("payload".into(), json!(s));
            }
            Err(_) => {
                into.insert("payload_base64".into(), json!(base64(b)));
            }
        },
    }
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(A[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn xy(p: &Option<pb::Point>) -> (f32, f32) {
    p.as_ref().map_or((0.0, 0.0), |p| (p.x, p.y))
}

fn hit_json(h: &pb::TracedHit) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(h.id));
    m.insert("distance".into(), json!(h.distance));
    m.insert("list".into(), json!(h.list));
    m.insert("list_rank".into(), json!(h.list_rank));
    payload_fields(&h.payload, &mut m);
    Value::Object(m)
}

fn samples_json(samples: &[pb::Sample]) -> Vec<Value> {
    samples
        .iter()
        .map(|s| {
            let (x, y) = xy(&s.position);
            let mut m = serde_json::Map::new();
            m.insert("id".into(), json!(s.id));
            m.insert("distance".into(), json!(s.distance));
            m.insert("x".into(), json!(x));
            m.insert("y".into(), json!(y));
            payload_fields(&s.payload, &mut m);
            Value::Object(m)
        })
        .collect()
}

/// The whole explanation as JSON.
pub fn to_json(collection: &str, k: u32, r: &pb::ExplainResponse) -> Value {
    let probed_lists: std::collections::HashSet<u32> = r.probed.iter().map(|p| p.list).collect();
    let lists: Vec<Value> = r
        .coarse
        .iter()
        .enumerate()
        .map(|(rank, l)| {
            let (x, y) = xy(&l.position);
            json!({"list": l.list, "rank": rank, "centroid_distance": l.centroid_distance,
                   "size": l.size, "x": x, "y": y, "probed": probed_lists.contains(&l.list)})
        })
        .collect();
    let probed: Vec<Value> = r
        .probed
        .iter()
        .map(|p| {
            let samples = samples_json(&p.samples);
            json!({"list": p.list, "rank": p.rank, "centroid_distance": p.centroid_distance,
                   "size": p.size, "scanned": p.scanned, "deleted_skipped": p.deleted_skipped,
                   "filtered_out": p.filtered_out, "ruled_out": p.ruled_out,
                   "reranked": p.reranked, "refined": p.refined,
                   "results": p.results, "best_distance": p.best_distance,
                   "deciles": p.distance_deciles, "samples": samples})
        })
        .collect();
    let (qx, qy) = xy(&r.query_position);
    let exact = r.exact.as_ref().map(|x| {
        let lists: Vec<Value> = x
            .missed_lists
            .iter()
            .map(|l| json!({"list": l.list, "samples": samples_json(&l.samples)}))
            .collect();
        json!({"hits": x.hits.iter().map(hit_json).collect::<Vec<_>>(),
               "missed": x.missed.iter().map(hit_json).collect::<Vec<_>>(),
               "min_nprobe": x.min_nprobe, "missed_lists": lists})
    });
    json!({
        "collection": collection, "generation": r.generation, "rows": r.rows, "k": k,
        "nlist": r.nlist, "nprobe": r.nprobe, "nprobe_clamped": r.nprobe_clamped,
        "coarse_distances": r.coarse_distances, "fine_distances": r.fine_distances,
        "code_estimates": r.code_estimates,
        "query": {"x": qx, "y": qy},
        "lists": lists, "probed": probed,
        "hits": r.hits.iter().map(hit_json).collect::<Vec<_>>(),
        "exact": exact,
        "filter": r.filter, "filter_target": r.filter_target, "filter_matched": r.filter_matched,
        "filter_estimate": r.filter_estimate, "filter_rows": r.filter_rows,
    })
}

fn short(p: &Option<Vec<u8>>, width: usize) -> String {
    match p {
        None => String::new(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) if s.chars().count() <= width => s.to_string(),
            Ok(s) => format!(
                "{}…",
                s.chars().take(width.saturating_sub(1)).collect::<String>()
            ),
            Err(_) => format!("<{} bytes>", b.len()),
        },
    }
}

fn samples_text(samples: &[pb::Sample]) -> String {
    samples
        .iter()
        .map(|s| match &s.payload {
            Some(_) => format!("{} {}", s.id, short(&s.payload, 24)),
            None => s.id.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The explanation as tables.
pub fn print_text(r: &pb::ExplainResponse) {
    println!(
        "coarse: the query was compared with all {} centroids (generation {}); the {} nearest were probed{}",
        r.nlist,
        r.generation,
        r.nprobe,
        if r.nprobe_clamped {
            " (nprobe clamped to nlist)"
        } else {
            ""
        }
    );
    if let Some(f) = &r.filter {
        let past = r.probed.len().saturating_sub(r.nprobe as usize);
        let ruled: usize = r.probed.iter().filter(|p| p.ruled_out > 0).count();
        println!(
            "filter: {f}; {} of {} rows pass (estimated {:.0} from the list summaries)",
            r.filter_rows, r.rows, r.filter_estimate
        );
        println!(
            "  {} passing rows scored (target {}: the rows of the {} nearest lists); {past} list(s) probed past nprobe, \
             {ruled} skipped untested (no row can pass){}",
            r.filter_matched,
            r.filter_target,
            r.nprobe,
            if r.filter_matched < r.filter_target && r.probed.len() == r.nlist as usize {
                "; every list probed: in effect an exact search over the passing rows"
            } else {
                ""
            }
        );
    }
    println!(
        "{:>5} {:>6} {:>14} {:>9} {:>9} {:>8} {:>9} {:>12} {:>8}",
        "rank",
        "list",
        "centroid dist",
        "rows",
        "scanned",
        "skipped",
        "filtered",
        "best dist",
        "results"
    );
    for p in &r.probed {
        println!(
            "{:>5} {:>6} {:>14.5} {:>9} {:>9} {:>8} {:>9} {:>12} {:>8}",
            p.rank,
            p.list,
            p.centroid_distance,
            p.size,
            p.scanned,
            p.deleted_skipped,
            p.filtered_out,
            p.best_distance.map_or("-".into(), |d| format!("{d:.5}")),
            p.results
        );
    }
    let next: Vec<&pb::RankedList> = r.coarse.iter().skip(r.probed.len()).take(5).collect();
    if !next.is_empty() {
        println!("not probed, nearest first:");
        for (i, l) in next.iter().enumerate() {
            println!(
                "{:>5} {:>6} {:>14.5} {:>9}",
                r.probed.len() + i,
                l.list,
                l.centroid_distance,
                l.size
            );
        }
    }
    println!("what the probed lists hold (the rows nearest each centroid):");
    for p in &r.probed {
        println!("  list {:>5}: {}", p.list, samples_text(&p.samples));
    }
    if r.code_estimates > 0 {
        // ivf_rabitq: "scanned" above counts codes.
        println!(
            "codes: {} distances estimated from 1-bit codes; the bound left {} rows ({:.1} %) for an exact distance (per list: {})",
            r.code_estimates,
            r.fine_distances,
            100.0 * r.fine_distances as f64 / r.code_estimates as f64,
            r.probed
                .iter()
                .map(|p| format!("{}:{}", p.list, p.reranked))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let refined: u64 = r.probed.iter().map(|p| p.refined).sum();
        if refined > 0 {
            let reranked: u64 = r.probed.iter().map(|p| p.reranked).sum();
            println!(
                "extended codes: the 1-bit bound let {refined} rows through to an estimate from their 8-bit codes, whose bound left {reranked} ({:.1} %) for an exact distance",
                100.0 * reranked as f64 / refined as f64,
            );
        }
    }
    let total = r.coarse_distances + r.fine_distances;
    println!(
        "distances: {} coarse + {} fine = {total} for a collection of {} rows ({:.1} % of an exhaustive scan)",
        r.coarse_distances,
        r.fine_distances,
        r.rows,
        100.0 * total as f64 / r.rows.max(1) as f64
    );
    println!(
        "{:>4} {:>10} {:>12} {:>6} {:>5}  payload",
        "rank", "id", "distance", "list", "rank"
    );
    for (i, h) in r.hits.iter().enumerate() {
        println!(
            "{:>4} {:>10} {:>12.5} {:>6} {:>5}  {}",
            i + 1,
            h.id,
            h.distance,
            h.list,
            h.list_rank,
            short(&h.payload, 40)
        );
    }
    if let Some(x) = &r.exact {
        let found = x.hits.len() - x.missed.len();
        println!(
            "exact search: {found} of the {} true nearest neighbours returned (recall {:.2})",
            x.hits.len(),
            found as f64 / x.hits.len().max(1) as f64
        );
        for m in &x.missed {
            if r.probed.iter().any(|p| p.list == m.list) {
                println!(
                    "  missed id {} (distance {:.5}): it is in probed list {}, coarse rank {} — its code estimate's bound ruled it out (a larger --rerank-epsilon lets more through)",
                    m.id, m.distance, m.list, m.list_rank
                );
            } else {
                println!(
                    "  missed id {} (distance {:.5}): it is in list {}, coarse rank {} — not among the {} probed",
                    m.id, m.distance, m.list, m.list_rank, r.nprobe
                );
            }
        }
        if r.code_estimates > 0 {
            // Per probed list: true neighbours in it, and how many the
            // codes' bound let through to an exact distance.
            let per_list: Vec<String> = r
                .probed
                .iter()
                .filter_map(|p| {
                    let truth = x.hits.iter().filter(|h| h.list == p.list).count();
                    let lost = x.missed.iter().filter(|h| h.list == p.list).count();
                    (truth > 0).then(|| format!("{}:{}/{truth}", p.list, truth - lost))
                })
                .collect();
            println!(
                "  true neighbours the bound let through, per probed list (list:through/in it): {}",
                if per_list.is_empty() {
                    "none in the probed lists".to_string()
                } else {
                    per_list.join(" ")
                }
            );
        }
        for l in &x.missed_lists {
            println!(
                "  unprobed list {:>5} holds: {}",
                l.list,
                samples_text(&l.samples)
            );
        }
        if x.missed.is_empty() {
            println!(
                "  nothing missed; nprobe {} would already have been enough",
                x.min_nprobe
            );
        } else {
            println!(
                "  nprobe {} would have returned the exact top-{} for this query",
                x.min_nprobe,
                x.hits.len()
            );
        }
    }
}

/// `describe --lists`: the size distribution of the lists.
pub fn lists_json(sizes: &[u64]) -> Value {
    let s = summary(sizes);
    json!({"lists": sizes.len(), "min": s.min, "p10": s.p10, "p50": s.p50, "p90": s.p90,
           "max": s.max, "empty": s.empty, "imbalance": s.imbalance, "sizes": sizes})
}

struct Summary {
    min: u64,
    p10: u64,
    p50: u64,
    p90: u64,
    max: u64,
    empty: usize,
    imbalance: f64,
}

fn summary(sizes: &[u64]) -> Summary {
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| -> u64 {
        if sorted.is_empty() {
            0
        } else {
            sorted[((sorted.len() - 1) as f64 * q).round() as usize]
        }
    };
    Summary {
        min: at(0.0),
        p10: at(0.1),
        p50: at(0.5),
        p90: at(0.9),
        max: at(1.0),
        empty: sizes.iter().filter(|&&s| s == 0).count(),
        imbalance: imbalance(sizes),
    }
}

/// faiss's imbalance factor: `nlist · Σ size² / (Σ size)²` (1 = even).
pub fn imbalance(sizes: &[u64]) -> f64 {
    let total: f64 = sizes.iter().map(|&s| s as f64).sum();
    if total == 0.0 {
        return 1.0;
    }
    sizes.len() as f64 * sizes.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>()
        / (total * total)
}

/// `describe --lists` as text: the distribution, a histogram, the largest
/// lists.
pub fn print_lists(sizes: &[u64]) {
    let s = summary(sizes);
    println!(
        "lists: {}   rows per list: min {} · p10 {} · median {} · p90 {} · max {}   empty: {}   imbalance {:.3} (1 = even)",
        sizes.len(),
        s.min,
        s.p10,
        s.p50,
        s.p90,
        s.max,
        s.empty,
        s.imbalance
    );
    if sizes.is_empty() || s.max == 0 {
        return;
    }
    // Ten equal-width bins over 0..=max.
    let bins = 10u64;
    let width = s.max.div_ceil(bins).max(1);
    let mut counts = vec![0usize; bins as usize];
    for &x in sizes {
        counts[((x / width).min(bins - 1)) as usize] += 1;
    }
    let most = counts.iter().copied().max().unwrap_or(1).max(1);
    println!("rows per list        lists");
    for (i, &c) in counts.iter().enumerate() {
        let lo = i as u64 * width;
        let hi = if i as u64 == bins - 1 {
            s.max
        } else {
            lo + width - 1
        };
        let bar = "█".repeat((c * 40).div_ceil(most).min(40));
        println!("{:>8}–{:<8} {:>6} {bar}", lo, hi, c);
    }
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    let top: Vec<String> = order
        .iter()
        .take(5)
        .map(|&l| format!("{l} ({})", sizes[l]))
        .collect();
    println!("largest lists: {}", top.join(", "));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn imbalance_is_faiss_s() {
        assert_eq!(imbalance(&[5, 5, 5, 5]), 1.0);
        assert_eq!(imbalance(&[20, 0, 0, 0]), 4.0);
        assert!((imbalance(&[1, 2, 3]) - 3.0 * 14.0 / 36.0).abs() < 1e-12);
        assert_eq!(imbalance(&[]), 1.0);
        let s = summary(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(
            (s.min, s.p10, s.p50, s.p90, s.max, s.empty),
            (0, 1, 5, 9, 10, 1)
        );
    }
}
