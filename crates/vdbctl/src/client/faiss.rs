//! faiss interchange: `export --format faiss` writes a faiss
//! `IVF{nlist},Flat` file from the `Export` stream, and `import --format
//! faiss` creates a collection from one.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use vdb_proto::v1 as pb;

use crate::connection::{Client, server_err};
use crate::explain;

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The collection.
    collection: String,
    /// The file to write.
    file: PathBuf,
    /// The file format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Faiss)]
    format: ExportFormat,
}

/// File formats of `vdbctl export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// A faiss `IndexIVFFlat` file (`IVF{nlist},Flat`).
    Faiss,
}

pub async fn export(c: &mut Client, json: bool, a: &ExportArgs) -> Result<()> {
    let ExportFormat::Faiss = a.format;
    let file = &a.file;
    let started = Instant::now();
    let mut stream = c
        .export(pb::ExportRequest {
            collection: a.collection.clone(),
        })
        .await
        .map_err(server_err)?
        .into_inner();
    let first = stream
        .message()
        .await
        .map_err(server_err)?
        .context("the server sent an empty export")?;
    let h = first
        .header
        .context("the export did not start with its header")?;
    let metric = match pb::Metric::try_from(h.metric) {
        Ok(pb::Metric::L2 | pb::Metric::Unspecified) => vdb_format::FaissMetric::L2,
        Ok(pb::Metric::InnerProduct | pb::Metric::Cosine) => vdb_format::FaissMetric::InnerProduct,
        Err(_) => bail!("the server sent an unknown metric {}", h.metric),
    };
    let header = vdb_format::FaissIvfHeader {
        dim: h.dim as usize,
        metric,
        nprobe: h.nprobe as usize,
        centroids: h.centroids,
        sizes: h.sizes,
    };
    let total: u64 = header.sizes.iter().sum();
    let mut w = vdb_format::FaissIvfWriter::create(file, &header)
        .with_context(|| format!("cannot write {}", file.display()))?;
    let mut ids = Vec::new();
    while let Some(chunk) = stream.message().await.map_err(server_err)? {
        ids.clear();
        for &id in &chunk.ids {
            ids.push(i64::try_from(id).map_err(|_| {
                anyhow::anyhow!(
                    "id {id} does not fit faiss's signed 64-bit ids; nothing usable was written"
                )
            })?);
        }
        w.push(chunk.list as usize, &ids, &chunk.vectors)
            .with_context(|| format!("writing {}", file.display()))?;
    }
    w.finish()
        .with_context(|| format!("cannot finish {}", file.display()))?;
    let secs = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            json!({"file": file.display().to_string(), "format": "faiss", "rows": total,
                   "nlist": header.sizes.len(), "dim": header.dim, "generation": h.generation})
        );
    } else {
        println!(
            "wrote {} rows in {} lists (generation {}) to {} as a faiss IVF{},Flat index in {secs:.2} s",
            total,
            header.sizes.len(),
            h.generation,
            file.display(),
            header.sizes.len()
        );
    }
    Ok(())
}

/// Reads a faiss IVF_Flat file, creates `collection` with its dimension,
/// metric, nprobe and centroids, and returns its rows.
pub async fn create_from_faiss(
    c: &mut Client,
    as_json: bool,
    collection: &str,
    file: &std::path::Path,
) -> Result<Vec<pb::Row>> {
    let index = vdb_format::read_faiss_ivf_flat(file)
        .with_context(|| format!("cannot import {}", file.display()))?;
    let h = &index.header;
    let mut rows = Vec::with_capacity(h.sizes.iter().sum::<u64>() as usize);
    for (ids, vectors) in &index.lists {
        for (&id, v) in ids.iter().zip(vectors.chunks_exact(h.dim.max(1))) {
            let id = u64::try_from(id).map_err(|_| {
                anyhow::anyhow!(
                    "{}: id {id} is negative; vdb ids are 0..2^64",
                    file.display()
                )
            })?;
            rows.push(pb::Row {
                id,
                vector: v.to_vec(),
                payload: None,
                fields: Default::default(),
            });
        }
    }
    // faiss allows an id twice; vdb does not. Refuse before creating
    // anything.
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    if let Some(dup) = rows.iter().find(|r| !seen.insert(r.id)) {
        bail!(
            "{}: id {} is in the index twice; vdb ids are unique (nothing was created)",
            file.display(),
            dup.id
        );
    }
    let metric = match h.metric {
        vdb_format::FaissMetric::L2 => pb::Metric::L2,
        vdb_format::FaissMetric::InnerProduct => pb::Metric::InnerProduct,
    };
    let imbalance = explain::imbalance(&h.sizes);
    let info = c
        .create_collection(pb::CreateCollectionRequest {
            name: collection.to_string(),
            config: Some(pb::CollectionConfig {
                dim: h.dim as u32,
                metric: metric as i32,
                nprobe: Some(h.nprobe.clamp(1, h.nlist()) as u32),
                ..Default::default()
            }),
            centroids: Some(pb::TrainedCentroids {
                values: h.centroids.clone(),
                trained_rows: rows.len() as u64,
                imbalance,
            }),
        })
        .await
        .map_err(server_err)?
        .into_inner();
    if !as_json {
        println!(
            "created {collection:?} from {}: dimension {}, {:?}, {} lists with the index's centroids (generation {}); importing its {} rows",
            file.display(),
            h.dim,
            h.metric,
            h.nlist(),
            info.stats.map_or(0, |s| s.generation),
            rows.len()
        );
    }
    Ok(rows)
}
