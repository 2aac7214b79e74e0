//! `vdbctl demo`: reverse image search over gRPC in one command.
//!
//! Starts a server in this process on a free loopback port over
//! `./data/demo`, creates the collection `digits`, imports the bundled
//! 8×8 digit images with each image (and its label) as the payload, and
//! for a few held-out query images prints the query and its nearest stored
//! images side by side as terminal pictures. Then recall@10 against exact
//! search across nprobe values, and one search explained.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use vdb_proto::v1 as pb;

use crate::connection::{Client, connect, server_err};
use crate::vecio;

/// Options of the demo.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The bundled digits: base.fvecs, query.fvecs and the label files.
    #[arg(long, default_value = "data/digits")]
    pub digits: PathBuf,
    /// Data directory of the demo's server (the collection is recreated).
    #[arg(long, default_value = "data/demo")]
    pub data_dir: PathBuf,
    /// Query images to show.
    #[arg(long, default_value_t = 3)]
    pub show: usize,
    /// Neighbours shown per query.
    #[arg(long, default_value_t = 5)]
    pub neighbours: usize,
    /// Where to write the explain page (default: explain.html in the data
    /// directory).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

const SIDE: usize = 8;
const COLLECTION: &str = "digits";

/// A payload: `digit <label> 8x8 <64 pixels as two hex digits each>`.
fn payload(label: u8, pixels: &[f32]) -> Vec<u8> {
    let mut s = format!("digit {label} {SIDE}x{SIDE} ");
    for &p in pixels {
        s.push_str(&format!("{:02x}", p.round().clamp(0.0, 255.0) as u8));
    }
    s.into_bytes()
}

/// The label and pixels of a payload written by [`payload`].
fn parse_payload(p: &[u8]) -> Option<(String, Vec<u8>)> {
    let s = std::str::from_utf8(p).ok()?;
    let mut parts = s.split(' ');
    if parts.next()? != "digit" {
        return None;
    }
    let label = parts.next()?.to_string();
    parts.next()?;
    let hex = parts.next()?;
    let pixels = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some((label, pixels))
}

/// One picture row (2 characters per pixel, 0..16 intensity).
fn picture_row(pixels: &[u8], row: usize) -> String {
    const SHADES: [&str; 5] = ["  ", "░░", "▒▒", "▓▓", "██"];
    (0..SIDE)
        .map(|c| {
            let v = pixels.get(row * SIDE + c).copied().unwrap_or(0) as usize;
            SHADES[(v * 4).div_ceil(16).min(4)]
        })
        .collect()
}

fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            l.trim()
                .parse::<u8>()
                .with_context(|| format!("{} line {}: not a digit", path.display(), i + 1))
        })
        .collect()
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<()> {
    let base_path = args.digits.join("base.fvecs");
    if !base_path.exists() {
        bail!(
            "{} not found: run the demo from the repository root, or pass --digits DIR",
            base_path.display()
        );
    }
    let base = vecio::read_vectors(&base_path)?;
    let queries = vecio::read_vectors(&args.digits.join("query.fvecs"))?;
    let base_labels = read_labels(&args.digits.join("base_labels.txt"))?;
    let query_labels = read_labels(&args.digits.join("query_labels.txt"))?;
    if base_labels.len() != base.rows || query_labels.len() != queries.rows {
        bail!(
            "label files do not match the vector files in {}",
            args.digits.display()
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("create {}", args.data_dir.display()))?;
    let (server, addr) = crate::local::start_local(Some(&args.data_dir))?;
    println!(
        "vdbd (in this process) listening on {addr}, data in {}",
        args.data_dir.display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(demo(
        args,
        &addr,
        &base,
        &queries,
        &base_labels,
        &query_labels,
    ));
    // Close the client's connection before stopping the server.
    drop(rt);
    drop(server);
    result
}

async fn demo(
    args: &DemoArgs,
    addr: &str,
    base: &vecio::Matrix<f32>,
    queries: &vecio::Matrix<f32>,
    base_labels: &[u8],
    query_labels: &[u8],
) -> Result<()> {
    let mut c: Client = connect(addr, None, None).await?;
    let _ = c
        .drop_collection(pb::DropCollectionRequest {
            name: COLLECTION.into(),
        })
        .await;
    c.create_collection(pb::CreateCollectionRequest {
        name: COLLECTION.into(),
        config: Some(pb::CollectionConfig {
            dim: base.dim as u32,
            nlist: Some(16),
            nprobe: Some(4),
            ..Default::default()
        }),
        centroids: None,
    })
    .await
    .map_err(server_err)?;
    let batches: Vec<pb::ImportRequest> = (0..base.rows)
        .collect::<Vec<_>>()
        .chunks(500)
        .enumerate()
        .map(|(b, ids)| pb::ImportRequest {
            collection: if b == 0 {
                COLLECTION.into()
            } else {
                String::new()
            },
            rows: ids
                .iter()
                .map(|&i| pb::Row {
                    id: i as u64,
                    vector: base.row(i).to_vec(),
                    payload: Some(payload(base_labels[i], base.row(i))),
                    fields: Default::default(),
                })
                .collect(),
        })
        .collect();
    let imported = c
        .import(tokio_stream::iter(batches))
        .await
        .map_err(server_err)?
        .into_inner();
    let trained = c
        .flush(pb::MaintenanceRequest {
            collection: COLLECTION.into(),
            nlist: None,
        })
        .await
        .map_err(server_err)?
        .into_inner();
    let stats = trained.info.and_then(|i| i.stats).unwrap_or_default();
    println!(
        "imported {} digit images (8x8) with their pictures as payloads; trained {} lists\n",
        imported.rows, stats.lists
    );

    // Reverse image search for a few queries, pictures side by side.
    let k = args.neighbours.max(1);
    for (q, label) in query_labels
        .iter()
        .enumerate()
        .take(args.show.min(queries.rows))
    {
        let query = queries.row(q).to_vec();
        let res = c
            .search(pb::SearchRequest {
                collection: COLLECTION.into(),
                queries: vec![pb::Vector {
                    values: query.clone(),
                }],
                k: k as u32,
                nprobe: Some(4),
                with_payload: true,
                ..Default::default()
            })
            .await
            .map_err(server_err)?
            .into_inner();
        let hits = res.results.into_iter().next().unwrap_or_default().hits;
        let qpixels: Vec<u8> = query.iter().map(|&v| v.round() as u8).collect();
        let mut pictures = vec![(format!("query {q}"), format!("digit {label}"), qpixels)];
        for h in &hits {
            let (label, pixels) = h
                .payload
                .as_deref()
                .and_then(parse_payload)
                .unwrap_or_else(|| ("?".into(), vec![0; SIDE * SIDE]));
            pictures.push((
                format!("#{} d={:.0}", h.id, h.distance),
                format!("digit {label}"),
                pixels,
            ));
        }
        println!(
            "query {q} and its {} nearest images (nprobe 4 of 16 lists):",
            hits.len()
        );
        for row in 0..SIDE {
            let line: Vec<String> = pictures
                .iter()
                .enumerate()
                .map(|(i, (_, _, px))| {
                    let sep = if i == 0 { " │ " } else { "  " };
                    format!("{}{sep}", picture_row(px, row))
                })
                .collect();
            println!("  {}", line.concat().trim_end());
        }
        for caption in [0, 1] {
            let line: Vec<String> = pictures
                .iter()
                .enumerate()
                .map(|(i, (a, b, _))| {
                    let text = if caption == 0 { a } else { b };
                    let sep = if i == 0 { " │ " } else { "  " };
                    format!("{text:<16}{sep}")
                })
                .collect();
            println!("  {}", line.concat().trim_end());
        }
        println!();
    }

    // Recall@10 against exact search, over gRPC, across nprobe.
    let all: Vec<pb::Vector> = (0..queries.rows)
        .map(|q| pb::Vector {
            values: queries.row(q).to_vec(),
        })
        .collect();
    let search = |nprobe: Option<u32>, exact: bool| pb::SearchRequest {
        collection: COLLECTION.into(),
        queries: all.clone(),
        k: 10,
        nprobe,
        exact,
        ..Default::default()
    };
    let truth = c
        .search(search(None, true))
        .await
        .map_err(server_err)?
        .into_inner();
    println!(
        "recall@10 against exact search ({} queries) and vectors scanned per query:",
        queries.rows
    );
    println!(
        "  {:>6}  {:>9}  {:>18}",
        "nprobe", "recall@10", "scanned (query 0)"
    );
    for nprobe in [1u32, 2, 4, 8, 16] {
        let got = c
            .search(search(Some(nprobe), false))
            .await
            .map_err(server_err)?
            .into_inner();
        let (mut found, mut total) = (0usize, 0usize);
        for (g, t) in got.results.iter().zip(&truth.results) {
            let want: Vec<u64> = t.hits.iter().map(|h| h.id).collect();
            found += g.hits.iter().filter(|h| want.contains(&h.id)).count();
            total += want.len();
        }
        let ex = c
            .explain(pb::ExplainRequest {
                collection: COLLECTION.into(),
                query: Some(pb::Vector {
                    values: queries.row(0).to_vec(),
                }),
                k: 10,
                nprobe: Some(nprobe),
                with_payload: false,
                exact: false,
                samples: Some(0),
                ..Default::default()
            })
            .await
            .map_err(server_err)?
            .into_inner();
        println!(
            "  {nprobe:>6}  {:>9.3}  {:>18}",
            found as f64 / total.max(1) as f64,
            ex.fine_distances
        );
    }

    // One search explained as a page: the first query whose search at
    // nprobe 2 misses a true neighbour (query 0 if none does).
    const NPROBE: u32 = 2;
    let mut chosen: Option<(usize, pb::ExplainResponse)> = None;
    for q in 0..queries.rows.min(100) {
        let ex = c
            .explain(pb::ExplainRequest {
                collection: COLLECTION.into(),
                query: Some(pb::Vector {
                    values: queries.row(q).to_vec(),
                }),
                k: 10,
                nprobe: Some(NPROBE),
                with_payload: true,
                exact: true,
                samples: Some(9),
                ..Default::default()
            })
            .await
            .map_err(server_err)?
            .into_inner();
        let misses = ex.exact.as_ref().map_or(0, |x| x.missed.len());
        if chosen.is_none() || misses > 0 {
            chosen = Some((q, ex));
        }
        if misses > 0 {
            break;
        }
    }
    if let Some((q, ex)) = chosen {
        let path = args
            .html
            .clone()
            .unwrap_or_else(|| args.data_dir.join("explain.html"));
        let data = crate::explain::to_json(COLLECTION, 10, &ex);
        std::fs::write(&path, crate::explain_page::render(&data))
            .with_context(|| format!("cannot write {}", path.display()))?;
        let (missed, min_nprobe) = ex
            .exact
            .as_ref()
            .map_or((0, NPROBE), |x| (x.missed.len(), x.min_nprobe));
        println!(
            "\nExplained query {q} (a {}) at nprobe {NPROBE}: {} of its 10 true nearest neighbours returned, {missed} missed in lists not probed; nprobe {min_nprobe} would return them all.",
            query_labels.get(q).copied().unwrap_or(0),
            10 - missed
        );
        println!(
            "Open {} in a browser to see the clusters it visited, what is in them and what it missed.",
            path.display()
        );
    }
    println!(
        "\nNext: `vdbctl explain {COLLECTION} --file {} --row 0 --exact --html explain.html` against a running vdbd explains any query.",
        args.digits.join("query.fvecs").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_draw() {
        let pixels: Vec<f32> = (0..64).map(|i| (i % 17) as f32).collect();
        let p = payload(7, &pixels);
        let (label, px) = parse_payload(&p).unwrap();
        assert_eq!(label, "7");
        assert_eq!(px, pixels.iter().map(|&v| v as u8).collect::<Vec<_>>());
        let row = picture_row(&px, 0);
        assert_eq!(row.chars().count(), 16);
        assert!(row.starts_with("  "), "0 is blank");
        assert!(parse_payload(b"not a digit").is_none());
    }
}
