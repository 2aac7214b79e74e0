//! `vdbd`: vdb's gRPC server.
//!
//! Serves the data directory's collections on a loopback address by
//! default (never on all interfaces unless asked). Every flag can also be
//! set with the environment variable named in `--help`, or in a TOML file
//! given with `--config` (a flag or variable wins over the file). On SIGTERM or
//! SIGINT it stops accepting connections, finishes the requests in flight,
//! flushes every collection and exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use vdb_engine::{Engine, EngineOptions};
use vdb_server::{ApiKeys, Limits, ServerOptions, TlsFiles};

#[derive(Debug, Parser)]
#[command(
    name = "vdbd",
    version,
    about = "vdb's gRPC server",
    after_help = "Examples:\n  vdbd                                  # 127.0.0.1:50051, data in ./data\n  vdbd --listen 127.0.0.1:0             # any free port (printed on stdout)\n  VDB_DATA_DIR=/srv/vdb vdbd --listen 0.0.0.0:50051"
)]
struct Args {
    /// A TOML file with any of these settings (keys as the long flags with
    /// `_` for `-`, e.g. `max_batch = 5000`, `api_keys = ["..."]`).
    #[arg(long, env = "VDB_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free one). The bound address is
    /// printed on stdout as `vdbd listening on ADDR`.
    #[arg(long, env = "VDB_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Serve Prometheus metrics at http://ADDR/metrics (plain HTTP; off
    /// when not given). The bound address is printed on stdout as `vdbd
    /// metrics on ADDR`. Every metric is described in docs/server.md.
    #[arg(long, env = "VDB_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Export a trace span per request (method, status, collection; for
    /// searches nprobe, lists probed, rows scanned) over OTLP/gRPC to the
    /// collector at this URL, e.g. http://127.0.0.1:4317 (off when not
    /// given).
    #[arg(long, env = "VDB_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// With --metrics-listen: at most one search per collection per this
    /// many milliseconds is searched again exactly (off the request path)
    /// for the online recall estimate; 0 turns the estimate off.
    #[arg(long, env = "VDB_RECALL_SAMPLE_INTERVAL_MS", default_value_t = 1000)]
    recall_sample_interval_ms: u64,
    /// Data directory (created if missing).
    #[arg(long, env = "VDB_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Keep the collections in an S3-compatible bucket, `s3://BUCKET[/PREFIX]`
    /// (AWS S3, MinIO, Ceph RGW, Garage, R2, …): files and manifests are
    /// objects there and the data directory is this node's cache and log
    /// (it may start empty). Endpoint, region and credentials come from
    /// the `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`) or
    /// --object-store-option. One writer per prefix: a node that opens it
    /// fences the one before (docs/server.md).
    #[arg(long, env = "VDB_OBJECT_STORE", value_name = "URL")]
    object_store: Option<String>,
    /// Serve the collections of --object-store as a read replica: answer
    /// reads, follow the writer's manifests (and, with sync=object, its
    /// shipped log), refuse writes with FAILED_PRECONDITION. Any number of
    /// replicas may follow one writer.
    #[arg(long, env = "VDB_REPLICA")]
    replica: bool,
    /// Bound the bytes of segments cached in part on this node (with
    /// --object-store): segments it did not write are fetched in byte
    /// ranges as searches need them, and past this many bytes the ranges
    /// no search holds are given back, roughly least recently used first.
    /// Unbounded when not given. Suffixes K, M, G, T (powers of 1024).
    #[arg(long, env = "VDB_CACHE_BYTES", value_name = "BYTES", value_parser = byte_count)]
    cache_bytes: Option<u64>,
    /// Bound the memory of each collection's memtable: past this many
    /// bytes its writers flush it themselves (they wait) instead of
    /// leaving it to the background; a background flush is asked for at
    /// a quarter of it. Default 1G. Suffixes K, M, G, T (powers of 1024).
    #[arg(long, env = "VDB_MEMTABLE_LIMIT", value_name = "BYTES", value_parser = byte_count)]
    memtable_limit: Option<u64>,
    /// How often a replica asks the store for changes, in milliseconds.
    #[arg(long, env = "VDB_FOLLOW_INTERVAL_MS", default_value_t = 1000)]
    follow_interval_ms: u64,
    /// An S3 client setting as KEY=VALUE (repeatable; e.g.
    /// `endpoint=http://127.0.0.1:9000`, `region=us-east-1`,
    /// `allow_http=true`); these win over the environment.
    #[arg(long = "object-store-option", value_name = "KEY=VALUE", value_parser = key_value)]
    object_store_options: Vec<(String, String)>,
    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "VDB_MAX_MESSAGE_BYTES", default_value_t = ServerOptions::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Most rows per write, ids per delete/get, queries per search.
    #[arg(long, env = "VDB_MAX_BATCH", default_value_t = Limits::default().max_batch)]
    max_batch: usize,
    /// Most results per query.
    #[arg(long, env = "VDB_MAX_K", default_value_t = Limits::default().max_k)]
    max_k: usize,
    /// Requests served at once; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "VDB_MAX_CONCURRENT", default_value_t = Limits::default().max_concurrent)]
    max_concurrent: usize,
    /// Searches expected to compare at most this many vector components
    /// (per query: every centroid plus the probed share of the rows, times
    /// the dimension) run on the thread that received them instead of
    /// being handed to the blocking pool; 0 hands every search over.
    #[arg(long, env = "VDB_INLINE_SEARCH_WORK", default_value_t = Limits::default().inline_search_work)]
    inline_search_work: u64,
    /// Seconds requests in flight get to finish after SIGTERM/SIGINT before
    /// remaining connections are closed.
    #[arg(long, env = "VDB_SHUTDOWN_GRACE_SECS", default_value_t = ServerOptions::default().shutdown_grace.as_secs())]
    shutdown_grace_secs: u64,
    /// API keys allowed everything (comma-separated in the environment
    /// variable; prefer it to the flag, which other users can see in `ps`).
    /// With no key configured, requests need none.
    #[arg(
        long = "api-key",
        env = "VDB_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_keys: Vec<String>,
    /// API keys allowed to read only (the calls are listed in the help,
    /// from the server's own table).
    #[arg(
        long = "read-only-key",
        env = "VDB_READ_ONLY_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    read_only_keys: Vec<String>,
    /// TLS certificate chain (PEM); with --tls-key, serve TLS only.
    #[arg(long, env = "VDB_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "VDB_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "VDB_LOG", default_value = "info")]
    log: tracing::Level,
}

/// The settings a `--config` file may hold.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    otlp_endpoint: Option<String>,
    recall_sample_interval_ms: Option<u64>,
    data_dir: Option<PathBuf>,
    object_store: Option<String>,
    object_store_options: Option<std::collections::BTreeMap<String, String>>,
    replica: Option<bool>,
    cache_bytes: Option<u64>,
    memtable_limit: Option<u64>,
    follow_interval_ms: Option<u64>,
    max_message_bytes: Option<usize>,
    max_batch: Option<usize>,
    max_k: Option<usize>,
    max_concurrent: Option<usize>,
    inline_search_work: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    api_keys: Option<Vec<String>>,
    read_only_keys: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    log: Option<String>,
}

/// Fills every setting not given as a flag or variable from the file.
fn apply_file(args: &mut Args, matches: &ArgMatches) -> anyhow::Result<()> {
    let Some(path) = args.config.clone() else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("read --config {}", path.display()))?;
    let file: FileConfig =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let unset = |id: &str| {
        !matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    macro_rules! take {
        ($($field:ident),*) => {$(
            if unset(stringify!($field)) && let Some(v) = file.$field {
                args.$field = v.into();
            }
        )*};
    }
    take!(
        listen,
        metrics_listen,
        otlp_endpoint,
        recall_sample_interval_ms,
        data_dir,
        object_store,
        replica,
        cache_bytes,
        memtable_limit,
        follow_interval_ms,
        max_message_bytes,
        max_batch,
        max_k,
        max_concurrent,
        inline_search_work,
        shutdown_grace_secs,
        api_keys,
        read_only_keys,
        tls_cert,
        tls_key
    );
    if unset("object_store_options")
        && let Some(table) = file.object_store_options
    {
        args.object_store_options = table.into_iter().collect();
    }
    if unset("log")
        && let Some(l) = file.log
    {
        args.log = l
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: log: {e}", path.display()))?;
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        anyhow::bail!("TLS needs both tls_cert and tls_key");
    }
    Ok(())
}

/// A count of bytes, with an optional K, M, G or T suffix (powers of
/// 1024).
fn byte_count(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => Some(10),
                'M' => Some(20),
                'G' => Some(30),
                'T' => Some(40),
                _ => None,
            };
            (&t[..i], shift)
        }
        _ => (t, Some(0)),
    };
    shift
        .zip(digits.parse::<u64>().ok())
        .and_then(|(shift, n)| n.checked_mul(1u64 << shift))
        .ok_or_else(|| {
            format!(
                "{s:?} is not a count of bytes (digits with an optional K, M, G or T suffix, e.g. 1073741824 or 1G)"
            )
        })
}

/// A `KEY=VALUE` flag value.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// How `vdbd` ended, and the exit code each way maps to (`docs/server.md`).
enum Exit {
    /// Stopped on a signal and closed every collection cleanly: 0.
    Clean,
    /// Could not start (configuration, data directory, address, TLS): 1.
    /// (Flags clap refuses exit 2.)
    Start(anyhow::Error),
    /// Served and stopped, but a collection could not be flushed at
    /// shutdown (it had stopped accepting writes after a failure, or the
    /// flush failed): 3. Its write-ahead log keeps every acknowledged
    /// write; the next start replays it.
    Close(vdb_engine::Error),
}

fn main() -> ExitCode {
    match start() {
        Exit::Clean => ExitCode::SUCCESS,
        Exit::Start(e) => {
            eprintln!("vdbd: {e:#}");
            ExitCode::from(1)
        }
        Exit::Close(e) if e.is_fenced() => {
            eprintln!(
                "vdbd: stopped, but a collection could not be flushed: {e}; writes it acknowledged since its last flush are only in this node's log, which the next start sets aside (as wal.stale-*) since another node writes the collection now"
            );
            ExitCode::from(3)
        }
        Exit::Close(e) => {
            // The engine's message says which collection and why; its
            // cause is part of the message, so no chain is printed.
            eprintln!(
                "vdbd: stopped, but a collection could not be flushed: {e}; every acknowledged write is in its write-ahead log and is replayed at the next start"
            );
            ExitCode::from(3)
        }
    }
}

fn start() -> Exit {
    let read_only = format!(
        "API keys allowed to read only: {} (comma-separated in the environment variable)",
        vdb_server::read_only_rpcs()
    );
    let matches = Args::command()
        .mut_arg("read_only_keys", |a| a.help(read_only))
        .get_matches();
    let mut args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = apply_file(&mut args, &matches) {
        return Exit::Start(e);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vdbd")
        .build()
        .context("start the async runtime")
    {
        Ok(rt) => rt,
        Err(e) => return Exit::Start(e),
    };
    // Logs on stderr at --log; request spans over OTLP when asked for
    // (the exporter's connection runs on the runtime).
    let provider = match &args.otlp_endpoint {
        None => None,
        Some(url) => match runtime.block_on(async { vdb_server::traces::otlp_provider(url) }) {
            Ok(p) => Some(p),
            Err(e) => return Exit::Start(e),
        },
    };
    {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(tracing_subscriber::filter::LevelFilter::from_level(
                args.log,
            ));
        tracing_subscriber::registry()
            .with(logs)
            .with(provider.as_ref().map(vdb_server::traces::layer))
            .init();
    }
    let exit = runtime.block_on(run(args));
    if let Some(p) = provider
        && let Err(e) = p.shutdown()
    {
        eprintln!("vdbd: the last trace spans could not be exported: {e}");
    }
    exit
}

async fn run(args: Args) -> Exit {
    // Caught before the address is printed: a signal sent as soon as the
    // server says it listens still shuts it down cleanly.
    let signals = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => return Exit::Start(e),
    };
    let (engine, listener, metrics, options) = match open(&args).await {
        Ok(opened) => opened,
        Err(e) => return Exit::Start(e),
    };
    let served =
        vdb_server::serve_with_metrics(Arc::clone(&engine), listener, metrics, options, signals)
            .await;
    tracing::info!("stopped accepting requests; flushing collections");
    // Connections cut at the end of the grace period may still hold the
    // engine; shut it down through the shared handle.
    let closed = tokio::task::spawn_blocking(move || engine.shutdown()).await;
    match (served, closed) {
        // Serving never started (e.g. TLS refused): a start failure, after
        // closing what was opened.
        (Err(e), _) => Exit::Start(e),
        (Ok(()), Ok(Ok(()))) => {
            tracing::info!("closed cleanly");
            Exit::Clean
        }
        (Ok(()), Ok(Err(e))) => Exit::Close(e),
        (Ok(()), Err(e)) => Exit::Start(anyhow::anyhow!("the shutdown task failed: {e}")),
    }
}

/// The engine, the gRPC listener, the metrics listener if asked for, and
/// the server's options.
type Opened = (
    Arc<Engine>,
    tokio::net::TcpListener,
    Option<tokio::net::TcpListener>,
    ServerOptions,
);

/// Opens the data directory and binds the listeners.
async fn open(args: &Args) -> anyhow::Result<Opened> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(TlsFiles {
            cert_pem: std::fs::read(c)
                .with_context(|| format!("read --tls-cert {}", c.display()))?,
            key_pem: std::fs::read(k).with_context(|| format!("read --tls-key {}", k.display()))?,
        }),
        _ => None,
    };
    let store: Option<Arc<dyn vdb_engine::Store>> = match &args.object_store {
        None => None,
        Some(url) => {
            let root = vdb_objstore::ObjectRoot::from_url(url, &args.object_store_options)
                .context("--object-store")?;
            if args.cache_bytes.is_some() {
                root.set_cache_bytes(args.cache_bytes);
            }
            Some(Arc::new(root))
        }
    };
    if args.cache_bytes.is_some() && args.object_store.is_none() {
        anyhow::bail!("--cache-bytes bounds the cache of --object-store, which is not given");
    }
    let data_dir = args.data_dir.clone();
    let options = EngineOptions {
        runtime: Some(tokio::runtime::Handle::current()),
        store,
        replica: args.replica,
        follow_interval: std::time::Duration::from_millis(args.follow_interval_ms.max(1)),
        memtable_limit: args
            .memtable_limit
            .unwrap_or(vdb_engine::DEFAULT_MEMTABLE_LIMIT)
            .max(1),
        ..EngineOptions::default()
    };
    let engine = tokio::task::spawn_blocking(move || Engine::open_with(&data_dir, options))
        .await?
        .with_context(|| format!("open data directory {}", args.data_dir.display()))?;
    let engine = Arc::new(engine);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let metrics = match args.metrics_listen {
        None => None,
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("listen on --metrics-listen {at}"))?,
        ),
    };
    tracing::info!(
        %addr,
        data_dir = %args.data_dir.display(),
        object_store = args.object_store.as_deref().unwrap_or("none"),
        replica = args.replica,
        collections = engine.list_collections().len(),
        auth = !args.api_keys.is_empty() || !args.read_only_keys.is_empty(),
        tls = args.tls_cert.is_some(),
        "serving"
    );
    println!("vdbd listening on {addr}");
    if let Some(m) = &metrics {
        println!("vdbd metrics on {}", m.local_addr()?);
    }
    let options = ServerOptions {
        limits: Limits {
            max_batch: args.max_batch,
            max_k: args.max_k,
            max_concurrent: args.max_concurrent,
            inline_search_work: args.inline_search_work,
        },
        keys: ApiKeys {
            full: args
                .api_keys
                .iter()
                .filter(|k| !k.is_empty())
                .cloned()
                .collect(),
            read_only: args
                .read_only_keys
                .iter()
                .filter(|k| !k.is_empty())
                .cloned()
                .collect(),
        },
        max_message_bytes: args.max_message_bytes,
        shutdown_grace: std::time::Duration::from_secs(args.shutdown_grace_secs),
        tls,
        object_store_options: args.object_store_options.clone(),
        recall_sample_interval: (args.recall_sample_interval_ms > 0)
            .then(|| std::time::Duration::from_millis(args.recall_sample_interval_ms)),
    };
    Ok((engine, listener, metrics, options))
}

/// Catches SIGINT and SIGTERM from now on; the future completes on the
/// first of them.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("catch SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("catch SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        tracing::info!("shutdown signal received");
    })
}

#[cfg(test)]
mod tests {
    use super::byte_count;

    #[test]
    fn byte_counts_take_binary_suffixes_and_name_bad_ones() {
        assert_eq!(byte_count("4096"), Ok(4096));
        assert_eq!(byte_count("64M"), Ok(64 << 20));
        assert_eq!(byte_count("2g"), Ok(2 << 30));
        assert!(
            byte_count("5X")
                .unwrap_err()
                .contains("K, M, G or T suffix")
        );
        assert!(byte_count("lots").unwrap_err().contains("count of bytes"));
        assert!(byte_count("99999999999T").is_err());
    }
}
