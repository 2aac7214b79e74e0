//! Rows: insert one, import files in batches, delete and get by id.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use vdb_proto::v1 as pb;

use super::faiss::create_from_faiss;
use super::query::VectorArgs;
use super::show::{fields_json, fields_text, payload_text};
use crate::connection::{Client, ServerError, server_err};
use crate::vecio;

/// Arguments of `insert`.
#[derive(Debug, Args)]
pub struct InsertArgs {
    /// The collection.
    collection: String,
    /// The row's id.
    #[arg(long)]
    id: u64,
    #[command(flatten)]
    vector: VectorArgs,
    /// Payload text stored with the row.
    #[arg(long)]
    payload: Option<String>,
}

/// Arguments of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The collection.
    collection: String,
    /// The vector or JSON-lines file.
    file: PathBuf,
    /// Id of the file's first row (vector files).
    #[arg(long, default_value_t = 0)]
    first_id: u64,
    /// A text file with one id per line, for the rows of a vector file.
    #[arg(long)]
    ids_from: Option<PathBuf>,
    /// JSON lines: the field holding the payload (a string is stored
    /// as its bytes, anything else as its JSON text).
    #[arg(long, default_value = "payload")]
    payload_field: String,
    /// Rows of the file to skip (already imported).
    #[arg(long, default_value_t = 0)]
    skip: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// The file's format: by its extension, or `faiss` for a faiss
    /// `IVF{nlist},Flat` index, which creates the collection (it must
    /// not exist) with the index's dimension, metric, nprobe and
    /// centroids, then imports its rows with their ids.
    #[arg(long, value_enum, default_value_t = ImportFormat::Auto)]
    format: ImportFormat,
}

/// File formats of `vdbctl import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// By the file's extension: .fvecs, .bvecs, .npy, .jsonl/.ndjson.
    Auto,
    /// A faiss `IndexIVFFlat` file.
    Faiss,
}

/// Ids of one collection (`delete`, `get`).
#[derive(Debug, Args)]
pub struct IdsArgs {
    /// The collection.
    collection: String,
    /// Ids, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    ids: Vec<u64>,
}

pub async fn insert(c: &mut Client, json: bool, a: &InsertArgs) -> Result<()> {
    let w = c
        .upsert(pb::UpsertRequest {
            collection: a.collection.clone(),
            rows: vec![pb::Row {
                id: a.id,
                vector: a.vector.get()?,
                payload: a.payload.as_ref().map(|p| p.clone().into_bytes()),
                fields: Default::default(),
            }],
        })
        .await
        .map_err(server_err)?
        .into_inner();
    if json {
        println!("{}", json!({ "lsn": w.lsn, "rows": w.count }));
    } else {
        println!("inserted 1 row (lsn {})", w.lsn);
    }
    Ok(())
}

pub async fn import(c: &mut Client, json: bool, a: &ImportArgs) -> Result<()> {
    let rows = match a.format {
        ImportFormat::Auto => {
            let fields = declared_fields(c, &a.collection).await?;
            let mut rows = read_rows(&a.file, a.first_id, a.ids_from.as_deref(), &a.payload_field)?;
            if !fields.is_empty() {
                read_fields(&a.file, &fields, &mut rows)?;
            }
            rows
        }
        ImportFormat::Faiss => create_from_faiss(c, json, &a.collection, &a.file).await?,
    };
    send(c, json, &a.collection, rows, a.skip, a.batch).await?;
    if a.format == ImportFormat::Faiss {
        // Into segments now, under the index's centroids.
        c.flush(pb::MaintenanceRequest {
            collection: a.collection.clone(),
            nlist: None,
        })
        .await
        .map_err(server_err)?;
    }
    Ok(())
}

pub async fn delete(c: &mut Client, json: bool, a: &IdsArgs) -> Result<()> {
    let w = c
        .delete(pb::DeleteRequest {
            collection: a.collection.clone(),
            ids: a.ids.clone(),
        })
        .await
        .map_err(server_err)?
        .into_inner();
    if json {
        println!("{}", json!({ "lsn": w.lsn, "ids": w.count }));
    } else {
        println!("deleted {} id(s) (lsn {})", w.count, w.lsn);
    }
    Ok(())
}

pub async fn get(c: &mut Client, json: bool, a: &IdsArgs) -> Result<()> {
    let r = c
        .get(pb::GetRequest {
            collection: a.collection.clone(),
            ids: a.ids.clone(),
        })
        .await
        .map_err(server_err)?
        .into_inner();
    if json {
        let rows: Vec<Value> = r
            .rows
            .iter()
            // A row without a payload has `"payload": null`, an empty one `""`.
            .map(|row| json!({"id": row.id, "vector": row.vector, "payload": row.payload.as_ref().map(|_| payload_text(&row.payload)), "fields": fields_json(&row.fields)}))
            .collect();
        println!("{}", json!({ "rows": rows, "missing": r.missing }));
    } else {
        for row in &r.rows {
            let head: Vec<String> = row
                .vector
                .iter()
                .take(6)
                .map(|x| format!("{x:.4}"))
                .collect();
            let more = if row.vector.len() > 6 { ", …" } else { "" };
            println!(
                "{:>10}  [{}{more}]  {}  {}",
                row.id,
                head.join(", "),
                payload_text(&row.payload),
                fields_text(&row.fields)
            );
        }
        for id in &r.missing {
            println!("{id:>10}  (not found)");
        }
    }
    Ok(())
}

/// The typed fields the collection declares (none if it does not exist
/// yet: the import then fails with the server's error).
async fn declared_fields(c: &mut Client, collection: &str) -> Result<Vec<pb::FieldSpec>> {
    let r = c
        .describe_collection(pb::DescribeCollectionRequest {
            name: collection.to_string(),
            lists: false,
        })
        .await;
    Ok(match r {
        Ok(r) => r.into_inner().config.map(|c| c.fields).unwrap_or_default(),
        Err(_) => Vec::new(),
    })
}

/// Takes the values of the declared `fields` from the keys of the same
/// names in each line of a JSON lines file (other files carry none).
fn read_fields(
    file: &std::path::Path,
    fields: &[pb::FieldSpec],
    rows: &mut [pb::Row],
) -> Result<()> {
    use pb::field_value::Kind;
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    if !matches!(ext, "jsonl" | "ndjson") {
        return Ok(());
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    for ((n, line), row) in lines.zip(rows.iter_mut()) {
        let v: Value = serde_json::from_str(line)?;
        for f in fields {
            let x = &v[&f.name];
            if x.is_null() {
                continue;
            }
            let bad = || {
                anyhow::anyhow!(
                    "{} line {}: \"{}\" is a field of type {}, the value is {x}",
                    file.display(),
                    n + 1,
                    f.name,
                    f.r#type
                )
            };
            let kind = match f.r#type.as_str() {
                "keyword" => Kind::Keyword(x.as_str().ok_or_else(bad)?.to_string()),
                "int" => Kind::Int(x.as_i64().ok_or_else(bad)?),
                "float" => Kind::Float(x.as_f64().ok_or_else(bad)?),
                "bool" => Kind::Bool(x.as_bool().ok_or_else(bad)?),
                "keywords" => Kind::Keywords(pb::Keywords {
                    values: x
                        .as_array()
                        .and_then(|a| {
                            a.iter()
                                .map(|s| s.as_str().map(str::to_string))
                                .collect::<Option<Vec<_>>>()
                        })
                        .ok_or_else(bad)?,
                }),
                _ => continue,
            };
            row.fields
                .insert(f.name.clone(), pb::FieldValue { kind: Some(kind) });
        }
    }
    Ok(())
}

/// The rows of an import file.
fn read_rows(
    file: &std::path::Path,
    first_id: u64,
    ids_from: Option<&std::path::Path>,
    payload_field: &str,
) -> Result<Vec<pb::Row>> {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    if matches!(ext, "jsonl" | "ndjson") {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
        let mut rows = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let at = || format!("{} line {}", file.display(), n + 1);
            let v: Value = serde_json::from_str(line).with_context(at)?;
            let id = v["id"]
                .as_u64()
                .with_context(|| format!("{}: \"id\" must be a non-negative integer", at()))?;
            let vector = v["vector"]
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|x| x.as_f64().map(|f| f as f32))
                        .collect::<Option<Vec<f32>>>()
                })
                .with_context(|| format!("{}: \"vector\" must be an array of numbers", at()))?;
            let payload = match &v[payload_field] {
                Value::Null => None,
                Value::String(s) => Some(s.clone().into_bytes()),
                other => Some(other.to_string().into_bytes()),
            };
            rows.push(pb::Row {
                id,
                vector,
                payload,
                fields: Default::default(),
            });
        }
        return Ok(rows);
    }
    if ext == "json" {
        bail!(
            "{}: JSON imports are JSON lines (.jsonl or .ndjson), one row object per line",
            file.display()
        );
    }
    let m = vecio::read_vectors(file)?;
    let ids: Vec<u64> = match ids_from {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            let ids = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(n, l)| {
                    l.trim()
                        .parse::<u64>()
                        .with_context(|| format!("{} line {}: not an id", p.display(), n + 1))
                })
                .collect::<Result<Vec<u64>>>()?;
            if ids.len() != m.rows {
                bail!(
                    "{} has {} ids for the {} rows of {}",
                    p.display(),
                    ids.len(),
                    m.rows,
                    file.display()
                );
            }
            ids
        }
        None => (0..m.rows as u64).map(|i| first_id + i).collect(),
    };
    Ok(ids
        .into_iter()
        .enumerate()
        .map(|(i, id)| pb::Row {
            id,
            vector: m.row(i).to_vec(),
            payload: None,
            fields: Default::default(),
        })
        .collect())
}

/// Streams `rows` (after the first `skip`) to the server in messages of
/// `batch` rows.
async fn send(
    c: &mut Client,
    as_json: bool,
    collection: &str,
    rows: Vec<pb::Row>,
    skip: usize,
    batch: usize,
) -> Result<()> {
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    if skip > rows.len() {
        bail!("--skip {skip} but the file has {} rows", rows.len());
    }
    let total = rows.len() - skip;
    let bar = if as_json {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    let t = Instant::now();
    let mut sent = 0usize;
    let mut batches = Vec::new();
    let mut rest = rows.into_iter().skip(skip).peekable();
    while rest.peek().is_some() {
        batches.push(pb::ImportRequest {
            collection: if batches.is_empty() {
                collection.to_string()
            } else {
                String::new()
            },
            rows: rest.by_ref().take(batch).collect(),
        });
    }
    // One stream; the progress bar advances as batches are handed over.
    let progress = bar.clone();
    let stream = tokio_stream::iter(
        batches
            .into_iter()
            .inspect(move |b| progress.inc(b.rows.len() as u64)),
    );
    let r = c.import(stream).await;
    bar.finish_and_clear();
    let r = r
        .map_err(|s| {
            anyhow::Error::from(ServerError { status: s }).context(format!(
                "import into {collection} stopped; rows before the failed batch are stored — resume with --skip (see the message for how many)"
            ))
        })?
        .into_inner();
    sent += r.rows as usize;
    let secs = t.elapsed().as_secs_f64();
    if as_json {
        println!(
            "{}",
            json!({"rows": sent, "batches": r.batches, "seconds": secs, "rows_per_s": sent as f64 / secs, "last_lsn": r.last_lsn})
        );
    } else {
        println!(
            "imported {sent} rows in {} batches in {secs:.2} s ({:.0} rows/s)",
            r.batches,
            sent as f64 / secs
        );
    }
    Ok(())
}
