//! The collection commands: a gRPC client of `vdbd`, one module per group
//! of commands (administration, rows, queries, faiss interchange).
//!
//! Each command prints a human-readable table or line by default and one
//! JSON document with `--json`. Exit codes (documented in `--help`): 0
//! success; 1 a local error (bad file, bad flag); 2 the server refused the
//! request as invalid; 3 not found; 4 already exists; 5 the server could not
//! be reached or is overloaded (retry); 6 any other server error; 7 a
//! missing, invalid or read-only API key.

mod admin;
mod faiss;
mod query;
mod rows;
mod show;
mod snapshot;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::connection::connect;

/// Where the server is and how to print.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server's address: http://HOST:PORT, https://HOST:PORT (with
    /// --tls-ca), or HOST:PORT as vdbd prints it (plain HTTP/2).
    #[arg(
        long,
        global = true,
        env = "VDB_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// API key for a server with keys on (prefer the environment variable).
    #[arg(long, global = true, env = "VDB_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// CA certificate (PEM) to trust for an https:// server.
    #[arg(long, global = true, env = "VDB_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

/// The collection commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a collection.
    ///
    /// Example: vdbctl create-collection images --dim 512 --metric cosine --nlist 1024
    CreateCollection(admin::CreateArgs),
    /// List collections.
    List,
    /// Show a collection's settings and numbers.
    ///
    /// Example: vdbctl describe images --lists
    Describe(admin::DescribeArgs),
    /// Change a collection's default nprobe, nlist or flush size, or declare
    /// typed fields.
    ///
    /// Example: vdbctl alter images --nprobe 16
    Alter(admin::AlterArgs),
    /// Drop a collection and delete its files.
    Drop(admin::NameArgs),
    /// Insert (or replace) one row.
    ///
    /// Example: vdbctl insert images --id 7 --vector 0.1,0.2,0.3 --payload cat.png
    Insert(rows::InsertArgs),
    /// Load rows from a file in batches: vectors from .fvecs, .bvecs or
    /// .npy, or whole rows from JSON lines (.jsonl/.ndjson: one object per
    /// line with "id", "vector" and optional "payload").
    ///
    /// In a vector file row i gets id --first-id + i, or the i-th line of
    /// --ids-from. --skip N resumes an interrupted import after its first N
    /// rows (upserts make re-sent rows harmless).
    ///
    /// Examples:
    ///   vdbctl import images base.fvecs --batch 1000
    ///   vdbctl import docs rows.jsonl --payload-field title
    Import(rows::ImportArgs),
    /// Write a collection's current generation to a file another engine
    /// reads: `--format faiss` (the default) writes a faiss
    /// `IVF{nlist},Flat` index (`faiss.read_index` loads it) with the
    /// collection's centroids, lists and ids. Cosine collections are written
    /// as inner product over their normalised vectors (normalise queries
    /// before searching them in faiss).
    ///
    /// Example: vdbctl export images images.faiss
    Export(faiss::ExportArgs),
    /// Delete rows by id.
    Delete(rows::IdsArgs),
    /// Read rows by id.
    Get(rows::IdsArgs),
    /// Search the k nearest rows to a vector.
    ///
    /// Example: vdbctl search images --file query.fvecs --row 3 --k 10 --nprobe 16
    Search(query::SearchArgs),
    /// Show what a search did: every centroid ranked, the probed lists with
    /// what they hold, the work of each, where each result came from, and
    /// with --exact which true neighbours were missed and what nprobe would
    /// have found them.
    ///
    /// Example: vdbctl explain images --file query.fvecs --row 3 --exact
    Explain(query::ExplainArgs),
    /// Pick nprobe from measured recall: search a sample of stored rows
    /// (each excluded from its own results) over a sweep of nprobe values,
    /// compare with exact search, print recall@k, latency and work per
    /// nprobe, and recommend the smallest nprobe meeting the target.
    ///
    /// Example: vdbctl tune images --target-recall 0.95 --plot tune.svg --apply
    Tune(query::TuneArgs),
    /// Write the memtable to a segment.
    Flush(admin::CollectionArgs),
    /// Rewrite all rows into one segment, dropping deleted ones.
    Compact(admin::CollectionArgs),
    /// Train new centroids and re-cluster.
    Retrain(admin::RetrainArgs),
    /// Split the largest lists and dissolve the smallest (only the rows
    /// that change lists are rewritten) until the lists are about as even
    /// as right after training; the imbalance rule does this after flushes.
    Rebalance(admin::CollectionArgs),
    /// Snapshots (backups): create one of a collection, list them, restore
    /// one as a new collection, delete one.
    ///
    /// Examples:
    ///   vdbctl snapshot create images --name nightly
    ///   vdbctl snapshot list
    ///   vdbctl snapshot restore nightly --as images_restored
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
}

/// Runs one collection command.
pub fn run(args: &ClientArgs, cmd: &ClientCommand) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(run_async(args, cmd))
}

async fn run_async(args: &ClientArgs, cmd: &ClientCommand) -> Result<()> {
    let mut c = connect(
        &args.server,
        args.api_key.as_deref(),
        args.tls_ca.as_deref(),
    )
    .await?;
    let json = args.json;
    match cmd {
        ClientCommand::CreateCollection(a) => admin::create(&mut c, json, a).await,
        ClientCommand::List => admin::list(&mut c, json).await,
        ClientCommand::Describe(a) => admin::describe(&mut c, json, a).await,
        ClientCommand::Alter(a) => admin::alter(&mut c, json, a).await,
        ClientCommand::Drop(a) => admin::drop(&mut c, json, a).await,
        ClientCommand::Flush(a) => admin::maintain(&mut c, json, admin::Task::Flush, a).await,
        ClientCommand::Compact(a) => admin::maintain(&mut c, json, admin::Task::Compact, a).await,
        ClientCommand::Retrain(a) => admin::retrain(&mut c, json, a).await,
        ClientCommand::Rebalance(a) => {
            admin::maintain(&mut c, json, admin::Task::Rebalance, a).await
        }
        ClientCommand::Insert(a) => rows::insert(&mut c, json, a).await,
        ClientCommand::Import(a) => rows::import(&mut c, json, a).await,
        ClientCommand::Delete(a) => rows::delete(&mut c, json, a).await,
        ClientCommand::Get(a) => rows::get(&mut c, json, a).await,
        ClientCommand::Search(a) => query::search(&mut c, json, a).await,
        ClientCommand::Explain(a) => query::explain(&mut c, json, a).await,
        ClientCommand::Tune(a) => query::tune(&mut c, json, a).await,
        ClientCommand::Export(a) => faiss::export(&mut c, json, a).await,
        ClientCommand::Snapshot(cmd) => snapshot::run(&mut c, json, cmd).await,
    }
}
