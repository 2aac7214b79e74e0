//! The flags of `vdbctl bench`.

use std::path::PathBuf;

use vdb_core::Metric;
use vdb_engine::IndexType;

/// Arguments of `vdbctl bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Example:\n  vdbctl bench --base data/digits/base.fvecs --query data/digits/query.fvecs \\\n      --gt data/digits/gt.ivecs --nlist 16 --nprobe 1,4,16 --k 10"
)]
pub struct BenchArgs {
    /// Base vectors (.fvecs, .bvecs or .npy float32); row i gets id i.
    #[arg(long)]
    pub base: PathBuf,
    /// Query vectors (same formats).
    #[arg(long)]
    pub query: PathBuf,
    /// Ground truth (.ivecs of base row numbers per query); computed by exact
    /// search when absent.
    #[arg(long)]
    pub gt: Option<PathBuf>,
    /// Number of inverted lists (k-means clusters).
    #[arg(long)]
    pub nlist: usize,
    /// Comma-separated nprobe values to sweep; values above nlist are
    /// clamped to nlist.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub nprobe: Vec<usize>,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Distance metric: l2, ip or cosine.
    #[arg(long, default_value = "l2")]
    pub metric: Metric,
    /// Index type: ivf_flat (every probed row's exact distance) or
    /// ivf_rabitq (1-bit codes scanned, exact distances only for the rows
    /// their error bound cannot rule out).
    #[arg(long, default_value = "ivf_flat")]
    pub index_type: IndexType,
    /// With ivf_rabitq: the error bound's multiplier (default 1.9);
    /// larger misses fewer neighbours and computes more exact distances.
    #[arg(long)]
    pub rerank_epsilon: Option<f32>,
    /// Also measure one query at a time with the segment's vectors taken
    /// out of memory before each query (ids, codes and centroids stay):
    /// what a search costs when the vectors do not fit in RAM, and the
    /// bytes it reads from the disk (keys `cold_*`). Without --data-dir
    /// or --server; Linux only.
    #[arg(long)]
    pub cold_vectors: bool,
    /// Threads for training and batch search (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// One JSON object per line per nprobe instead of a table (set by the
    /// global `--json`).
    #[arg(skip)]
    pub json: bool,
    /// k-means seed.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// k-means iterations.
    #[arg(long, default_value_t = 10)]
    pub niter: usize,
    /// k-means trains on at most this many points per centroid.
    #[arg(long, default_value_t = 256)]
    pub max_points_per_centroid: usize,
    /// k-means runs its first rounds on this many points per centroid and
    /// the last three on the whole sample (0: every round on the whole
    /// sample; the engine's trainings use the default).
    #[arg(long, default_value_t = 96)]
    pub warm_points_per_centroid: usize,
    /// Minimum seconds each QPS measurement runs (passes over the queries
    /// repeat until it is reached).
    #[arg(long, default_value_t = 1.0)]
    pub min_seconds: f64,
    /// Directory for the index files (default: a temporary directory that is
    /// removed afterwards).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Run against a real collection ("bench", replaced if present) in this
    /// data directory through the engine: rows are inserted through the
    /// write-ahead log in batches of 1,000 (sync=always), flushed and trained
    /// by the engine, then searched through the collection API.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// With --data-dir or --server: memtable rows per flush.
    #[arg(long, default_value_t = 100_000)]
    pub flush_rows: usize,
    /// With --data-dir: the compaction policy's segment cap, a fraction of
    /// the collection (0: no cap, every rewrite one segment; default: the
    /// engine's, 0.15).
    #[arg(long)]
    pub max_segment_fraction: Option<f64>,
    /// With --data-dir or --server: train once, never retrain automatically (to measure
    /// what retraining saves).
    #[arg(long)]
    pub no_retrain: bool,
    /// With --data-dir: the retraining policy's growth, drift and
    /// imbalance factors, e.g. `0,0,1.2` (0 turns a rule off; default: the
    /// engine's defaults).
    #[arg(
        long,
        value_name = "GROWTH,DRIFT,IMBALANCE",
        conflicts_with = "no_retrain"
    )]
    pub retrain: Option<String>,
    /// With --server: write nothing, measure the searches of the server's
    /// `bench` collection as an earlier run left it (e.g. after starting
    /// the server again on an empty cache).
    #[arg(long, requires = "server")]
    pub existing: bool,
    /// With --data-dir: also measure single-query search latency at the
    /// first nprobe while a retraining, a local rebalancing and a
    /// compaction run, against idle, and how much the collection's
    /// directory grew meanwhile (keys `idle_p99_ms`, `retrain_p99_ms`,
    /// `rebalance_p99_ms`, `compact_p99_ms`, `*_peak_extra_disk`).
    #[arg(long)]
    pub maintenance_latency: bool,
    /// With --data-dir or --server: insert this many rows first and let the
    /// collection flush and train, then time the ingest of the rest only
    /// (durable ingest into a trained collection; `ingest_rows` says how
    /// many). Over gRPC the timed rows go in ten alternating rounds as
    /// Upsert requests of 1,000 rows (`upsert_rows_per_s`) and as Import
    /// streams of 1,000-row messages (`ingest_rows_per_s`).
    #[arg(long, default_value_t = 0)]
    pub train_first: usize,
    /// With --data-dir: churn. The ids of the base's second half are first
    /// written as copies of the first half's vectors (row n/2 + i as row
    /// i), alongside the first half, then replaced by upserts with their
    /// own vectors in order: half the collection replaced by rows from
    /// wherever the second half lies (with `benches/drift.py`'s ordering,
    /// the other end of the space). The load's rows/s counts every write
    /// (1.5 × the base rows).
    #[arg(long, conflicts_with = "train_first")]
    pub churn: bool,
    /// With --server: the bench collection's sync mode (always, none,
    /// interval:<n>ms, or object for a server on object storage).
    #[arg(long)]
    pub sync: Option<String>,
    /// With --server: clients sending the timed Upsert requests at once,
    /// each on its own connection (`upsert_writers`).
    #[arg(long, default_value_t = 1)]
    pub writers: usize,
    /// Measure over gRPC against this server (`--server` given on the
    /// command line; `local` starts one in this process).
    #[arg(skip)]
    pub server: Option<String>,
    /// The API key and CA certificate for `server` (the global flags).
    #[arg(skip)]
    pub api_key: Option<String>,
    #[arg(skip)]
    pub tls_ca: Option<PathBuf>,
}
