//! Queries: search, explain (text, JSON and the HTML page) and tune.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use vdb_proto::v1 as pb;

use super::show::{fields_json, fields_text, payload_text};
use crate::connection::{Client, server_err};
use crate::{explain, explain_page, tune, vecio};

/// A vector given inline or as a row of a file.
#[derive(Debug, Args)]
pub struct VectorArgs {
    /// The vector inline, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        conflicts_with = "file"
    )]
    vector: Option<Vec<f32>>,
    /// A vector file (.fvecs, .bvecs, .npy) to take the vector from.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The row of --file.
    #[arg(long, default_value_t = 0, requires = "file")]
    row: usize,
}

impl VectorArgs {
    pub fn get(&self) -> Result<Vec<f32>> {
        match (&self.vector, &self.file) {
            (Some(v), _) => Ok(v.clone()),
            (None, Some(f)) => {
                let m = vecio::read_vectors(f)?;
                if self.row >= m.rows {
                    bail!(
                        "{}: --row {} but the file has {} rows",
                        f.display(),
                        self.row,
                        m.rows
                    );
                }
                Ok(m.row(self.row).to_vec())
            }
            (None, None) => bail!("give the vector with --vector x,y,… or --file F [--row N]"),
        }
    }
}

/// What search and explain share: the collection, the query, and how
/// many results from how many lists.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The collection.
    collection: String,
    #[command(flatten)]
    vector: VectorArgs,
    /// Results.
    #[arg(long, default_value_t = 10)]
    k: u32,
    /// Lists to probe (default: the collection's).
    #[arg(long)]
    nprobe: Option<u32>,
    /// Only rows this filter holds for, e.g. "album = 'cats' and year >=
    /// 2020" (docs/filters.md).
    #[arg(long)]
    filter: Option<String>,
    /// With --filter: most lists searched when the nprobe nearest hold
    /// fewer than k matching rows (default: every list).
    #[arg(long)]
    max_probes: Option<u32>,
    /// ivf_rabitq: the error bound's multiplier that decides which rows
    /// get their exact distance (default 1.9; larger misses fewer).
    #[arg(long)]
    rerank_epsilon: Option<f32>,
}

impl QueryArgs {
    fn filter(&self) -> Result<Option<pb::Filter>> {
        filter_arg(self.filter.as_deref())
    }
}

/// `--filter` as the API's, parsed here so a syntax error names its
/// position before anything is sent.
fn filter_arg(text: Option<&str>) -> Result<Option<pb::Filter>> {
    text.map(|text| {
        let f = vdb_engine::Filter::parse(text).with_context(|| format!("--filter {text:?}"))?;
        Ok(vdb_server::fields::filter_to_pb(&f))
    })
    .transpose()
}

/// Arguments of `search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    query: QueryArgs,
    /// Exact search over every row.
    #[arg(long)]
    exact: bool,
    /// Show payloads.
    #[arg(long)]
    with_payload: bool,
    /// Show typed field values.
    #[arg(long)]
    with_fields: bool,
}

/// Arguments of `explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    query: QueryArgs,
    /// Also search exhaustively: show the missed neighbours and the
    /// smallest nprobe that returns the exact top-k.
    #[arg(long)]
    exact: bool,
    /// Example members shown per probed list (0..=100).
    #[arg(long, default_value_t = 9)]
    samples: u32,
    /// Also write the explanation as one self-contained HTML page (no
    /// network requests): the map of clusters, their members, the
    /// distances scanned, the results and missed neighbours.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Draw binary payloads of W·H bytes as W×H greyscale pictures in
    /// the HTML page (text payloads "... WxH <hex pixels>" and
    /// data:image URIs are drawn without it).
    #[arg(long, value_name = "WxH", value_parser = parse_image_size)]
    image: Option<(u32, u32)>,
}

/// Arguments of `tune`.
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// The collection (or --collection).
    #[arg(required_unless_present = "collection")]
    name: Option<String>,
    /// The collection.
    #[arg(long, conflicts_with = "name")]
    collection: Option<String>,
    /// Recall@k wanted, in (0, 1].
    #[arg(long)]
    target_recall: f64,
    /// Stored rows used as queries (1..=10000).
    #[arg(long, default_value_t = 200)]
    sample: u32,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    k: u32,
    /// Comma-separated nprobe values to measure (default: 1, 2, 3, 4,
    /// 6, 8, 12, … up to nlist).
    #[arg(long, value_delimiter = ',')]
    nprobe: Vec<u32>,
    /// Also write the recall/latency curve as an SVG plot.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Make the recommended nprobe the collection's default.
    #[arg(long)]
    apply: bool,
    /// Which rows are sampled (default 42).
    #[arg(long)]
    seed: Option<u64>,
    /// Tune filtered searches: recall against the exact top-k of the rows
    /// this filter holds for.
    #[arg(long)]
    filter: Option<String>,
}

/// `WxH` (e.g. `8x8`) as a picture size.
fn parse_image_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?} is not WxH (e.g. 28x28)"))?;
    let n = |v: &str| -> Result<u32, String> {
        match v.parse::<u32>() {
            Ok(n) if (1..=4096).contains(&n) => Ok(n),
            _ => Err(format!("{v:?} in {s:?} is not a side of 1..=4096 pixels")),
        }
    };
    Ok((n(w)?, n(h)?))
}

pub async fn search(c: &mut Client, json: bool, a: &SearchArgs) -> Result<()> {
    let q = &a.query;
    let t = Instant::now();
    let r = c
        .search(pb::SearchRequest {
            collection: q.collection.clone(),
            queries: vec![pb::Vector {
                values: q.vector.get()?,
            }],
            k: q.k,
            nprobe: q.nprobe,
            with_payload: a.with_payload,
            with_vectors: false,
            exact: a.exact,
            filter: q.filter()?,
            max_probes: q.max_probes,
            with_fields: a.with_fields,
            rerank_epsilon: q.rerank_epsilon,
        })
        .await
        .map_err(server_err)?
        .into_inner();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let hits = r.results.into_iter().next().unwrap_or_default().hits;
    if json {
        let hs: Vec<Value> = hits
            .iter()
            .map(|h| json!({"id": h.id, "distance": h.distance, "payload": h.payload.as_ref().map(|_| payload_text(&h.payload)), "fields": fields_json(&h.fields)}))
            .collect();
        println!("{}", json!({ "nprobe": r.nprobe, "hits": hs, "ms": ms }));
    } else {
        println!("{:>4} {:>10} {:>12}  payload", "rank", "id", "distance");
        for (i, h) in hits.iter().enumerate() {
            println!(
                "{:>4} {:>10} {:>12.5}  {}  {}",
                i + 1,
                h.id,
                h.distance,
                payload_text(&h.payload),
                fields_text(&h.fields)
            );
        }
        println!(
            "({} hits, nprobe {}, {ms:.2} ms round trip)",
            hits.len(),
            r.nprobe
        );
    }
    Ok(())
}

pub async fn explain(c: &mut Client, json: bool, a: &ExplainArgs) -> Result<()> {
    let q = &a.query;
    let r = c
        .explain(pb::ExplainRequest {
            collection: q.collection.clone(),
            query: Some(pb::Vector {
                values: q.vector.get()?,
            }),
            k: q.k,
            nprobe: q.nprobe,
            with_payload: true,
            exact: a.exact,
            samples: Some(a.samples),
            filter: q.filter()?,
            max_probes: q.max_probes,
            rerank_epsilon: q.rerank_epsilon,
        })
        .await
        .map_err(server_err)?
        .into_inner();
    let data = explain::to_json(&q.collection, q.k, &r);
    if json {
        println!("{data}");
    } else {
        explain::print_text(&r);
    }
    if let Some(path) = &a.html {
        let mut data = data;
        if let (Some((w, h)), Value::Object(m)) = (a.image, &mut data) {
            m.insert("image".into(), json!([w, h]));
        }
        std::fs::write(path, explain_page::render(&data))
            .with_context(|| format!("cannot write {}", path.display()))?;
        if !json {
            println!("wrote {} (open it in a browser)", path.display());
        }
    }
    Ok(())
}

pub async fn tune(c: &mut Client, json: bool, a: &TuneArgs) -> Result<()> {
    let name = a
        .name
        .clone()
        .or_else(|| a.collection.clone())
        .context("name the collection")?;
    let current = c
        .describe_collection(pb::DescribeCollectionRequest {
            name: name.clone(),
            lists: false,
        })
        .await
        .map_err(server_err)?
        .into_inner()
        .config
        .and_then(|c| c.nprobe)
        .unwrap_or(0);
    let r = c
        .tune(pb::TuneRequest {
            collection: name.clone(),
            target_recall: a.target_recall,
            k: Some(a.k),
            sample: Some(a.sample),
            nprobes: a.nprobe.clone(),
            apply: a.apply,
            seed: a.seed,
            filter: filter_arg(a.filter.as_deref())?,
        })
        .await
        .map_err(server_err)?
        .into_inner();
    if json {
        println!("{}", tune::to_json(&name, a.target_recall, &r));
    } else {
        tune::print_text(&name, a.target_recall, current, &r);
    }
    if let Some(path) = &a.plot {
        std::fs::write(path, tune::plot(&name, a.target_recall, &r))
            .with_context(|| format!("cannot write {}", path.display()))?;
        if !json {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
