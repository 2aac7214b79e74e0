//! Collection administration: create, list, describe, alter, drop, and
//! the maintenance commands (flush, compact, retrain).

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use vdb_proto::v1 as pb;

use super::show::{info_json, print_info};
use crate::connection::{Client, server_err};
use crate::explain;

/// Arguments of `create-collection`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name: [A-Za-z0-9_-]{1,64}.
    name: String,
    /// Vector dimension.
    #[arg(long)]
    dim: u32,
    /// l2, ip or cosine.
    #[arg(long, default_value = "l2")]
    metric: String,
    /// Inverted lists (default 256).
    #[arg(long)]
    nlist: Option<u32>,
    /// ivf_flat (every probed row's exact distance; the default) or
    /// ivf_rabitq (1-bit codes of every row scanned first, exact distances
    /// only for the rows they cannot rule out).
    #[arg(long)]
    index_type: Option<String>,
    /// Default lists probed per search, fixed (default: chosen for
    /// --target-recall).
    #[arg(long, conflicts_with = "target_recall")]
    nprobe: Option<u32>,
    /// The recall@10 to choose the default nprobe for after each training
    /// (default 0.95).
    #[arg(long)]
    target_recall: Option<f64>,
    /// always, none, interval:<n>ms, or object (acknowledged once shipped
    /// to the server's object store; default always).
    #[arg(long)]
    sync: Option<String>,
    /// Memtable rows per flush (default 100000).
    #[arg(long)]
    flush_rows: Option<u64>,
    /// A typed field rows may carry, as NAME:TYPE (keyword, int, float,
    /// bool, keywords); repeat for several.
    #[arg(long = "field", value_name = "NAME:TYPE")]
    fields: Vec<String>,
}

/// Arguments of `describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The collection.
    name: String,
    /// Also show how rows spread over the lists: size distribution,
    /// histogram, imbalance factor, largest lists.
    #[arg(long)]
    lists: bool,
}

/// Arguments of `alter`.
#[derive(Debug, Args)]
pub struct AlterArgs {
    /// The collection.
    name: String,
    /// New default nprobe, fixed (clears the recall target).
    #[arg(long, conflicts_with = "target_recall")]
    nprobe: Option<u32>,
    /// A recall@10 target to choose the default nprobe by, measured now and
    /// after each training.
    #[arg(long)]
    target_recall: Option<f64>,
    /// New nlist (retrains at the next flush).
    #[arg(long)]
    nlist: Option<u32>,
    /// New index type, ivf_flat or ivf_rabitq (retrains, rewriting the
    /// segments, at the next flush).
    #[arg(long)]
    index_type: Option<String>,
    /// New memtable rows per flush.
    #[arg(long)]
    flush_rows: Option<u64>,
    /// Declare a typed field, as NAME:TYPE (keyword, int, float, bool,
    /// keywords); repeat for several. Rows written before have no value
    /// for it.
    #[arg(long = "add-field", value_name = "NAME:TYPE")]
    add_fields: Vec<String>,
}

/// A collection named by its first argument (`drop`).
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The collection.
    name: String,
}

/// A collection named by its first argument (`flush`, `compact`).
#[derive(Debug, Args)]
pub struct CollectionArgs {
    /// The collection.
    collection: String,
}

/// Arguments of `retrain`.
#[derive(Debug, Args)]
pub struct RetrainArgs {
    /// The collection.
    collection: String,
    /// Lists to train (default: the configured nlist).
    #[arg(long)]
    nlist: Option<u32>,
}

/// A maintenance command without arguments of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Flush,
    Compact,
    Rebalance,
}

fn metric(s: &str) -> Result<pb::Metric> {
    Ok(match s {
        "l2" => pb::Metric::L2,
        "ip" | "inner_product" => pb::Metric::InnerProduct,
        "cosine" => pb::Metric::Cosine,
        other => bail!("unknown metric {other:?}; expected l2, ip or cosine"),
    })
}

/// `NAME:TYPE` arguments of option `flag` as the proto's field specs.
fn field_specs(flag: &str, args: &[String]) -> Result<Vec<pb::FieldSpec>> {
    args.iter()
        .map(|f| {
            let def: vdb_engine::FieldDef = f.parse().with_context(|| format!("{flag} {f}"))?;
            Ok(vdb_server::fields::field_def_to_pb(&def))
        })
        .collect()
}

pub async fn create(c: &mut Client, json: bool, a: &CreateArgs) -> Result<()> {
    let info = c
        .create_collection(pb::CreateCollectionRequest {
            name: a.name.clone(),
            config: Some(pb::CollectionConfig {
                dim: a.dim,
                metric: metric(&a.metric)? as i32,
                nlist: a.nlist,
                nprobe: a.nprobe,
                target_recall: a.target_recall,
                index_type: a.index_type.clone(),
                sync: a.sync.clone(),
                flush_rows: a.flush_rows,
                fields: field_specs("--field", &a.fields)?,
                ..Default::default()
            }),
            centroids: None,
        })
        .await
        .map_err(server_err)?
        .into_inner();
    print_info(&info, json);
    Ok(())
}

pub async fn list(c: &mut Client, json: bool) -> Result<()> {
    let names = c
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .map_err(server_err)?
        .into_inner()
        .names;
    if json {
        println!("{}", json!({ "collections": names }));
    } else {
        for n in names {
            println!("{n}");
        }
    }
    Ok(())
}

pub async fn describe(c: &mut Client, json: bool, a: &DescribeArgs) -> Result<()> {
    let info = c
        .describe_collection(pb::DescribeCollectionRequest {
            name: a.name.clone(),
            lists: a.lists,
        })
        .await
        .map_err(server_err)?
        .into_inner();
    match (a.lists, json) {
        (false, _) => print_info(&info, json),
        (true, true) => {
            let mut v = info_json(&info);
            if let Value::Object(m) = &mut v {
                m.insert("lists".into(), explain::lists_json(&info.list_sizes));
            }
            println!("{v}");
        }
        (true, false) => {
            print_info(&info, false);
            let st = info.stats.unwrap_or_default();
            if st.generation == 0 {
                println!("not trained yet: {} rows searched as one list", st.rows);
            } else {
                println!(
                    "centroid generation {} trained at {} (unix seconds) on {} rows; {} rows now ({:+} since)",
                    st.generation,
                    st.trained_at,
                    st.trained_rows,
                    st.rows,
                    st.rows as i64 - st.trained_rows as i64
                );
            }
            explain::print_lists(&info.list_sizes);
        }
    }
    Ok(())
}

pub async fn alter(c: &mut Client, json: bool, a: &AlterArgs) -> Result<()> {
    let info = c
        .alter_collection(pb::AlterCollectionRequest {
            name: a.name.clone(),
            nprobe: a.nprobe,
            nlist: a.nlist,
            flush_rows: a.flush_rows,
            target_recall: a.target_recall,
            index_type: a.index_type.clone(),
            add_fields: field_specs("--add-field", &a.add_fields)?,
            ..Default::default()
        })
        .await
        .map_err(server_err)?
        .into_inner();
    print_info(&info, json);
    Ok(())
}

pub async fn drop(c: &mut Client, json: bool, a: &NameArgs) -> Result<()> {
    let name = &a.name;
    c.drop_collection(pb::DropCollectionRequest { name: name.clone() })
        .await
        .map_err(server_err)?;
    if json {
        println!("{}", json!({ "dropped": name }));
    } else {
        println!("dropped {name}");
    }
    Ok(())
}

pub async fn maintain(c: &mut Client, json: bool, task: Task, a: &CollectionArgs) -> Result<()> {
    let req = pb::MaintenanceRequest {
        collection: a.collection.clone(),
        nlist: None,
    };
    let r = match task {
        Task::Flush => c.flush(req).await,
        Task::Compact => c.compact(req).await,
        Task::Rebalance => c.rebalance(req).await,
    }
    .map_err(server_err)?
    .into_inner();
    maintenance_done(&r, json);
    Ok(())
}

pub async fn retrain(c: &mut Client, json: bool, a: &RetrainArgs) -> Result<()> {
    let r = c
        .retrain(pb::MaintenanceRequest {
            collection: a.collection.clone(),
            nlist: a.nlist,
        })
        .await
        .map_err(server_err)?
        .into_inner();
    maintenance_done(&r, json);
    Ok(())
}

fn maintenance_done(r: &pb::MaintenanceResponse, as_json: bool) {
    let info = r.info.clone().unwrap_or_default();
    if as_json {
        let mut v = info_json(&info);
        if let Value::Object(m) = &mut v {
            m.insert("changed".into(), json!(r.changed));
        }
        println!("{v}");
    } else {
        let s = info.stats.unwrap_or_default();
        println!(
            "{}: {} rows in {} segment(s), generation {}, {} lists",
            if r.changed { "done" } else { "nothing to do" },
            s.rows,
            s.segments,
            s.generation,
            s.lists
        );
    }
}
