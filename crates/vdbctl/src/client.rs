//! The collection commands: a gRPC client of `vdbd`.
//!
//! Each command prints a human-readable table or line by default and one
//! JSON document with `--json`. Exit codes (documented in `--help`): 0
//! success; 1 a local error (bad file, bad flag); 2 the server refused the
//! request as invalid; 3 not found; 4 already exists; 5 the server could not
//! be reached or is overloaded (retry); 6 any other server error.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tonic::transport::Channel;
use vdb_proto::v1 as pb;
use vdb_proto::v1::vdb_client::VdbClient;

use crate::{explain, explain_page, tune, vecio};

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

/// Adds `authorization: Bearer <key>` to every request.
#[derive(Clone)]
pub(crate) struct Auth(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub(crate) type Client = VdbClient<tonic::service::interceptor::InterceptedService<Channel, Auth>>;

/// The collection commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a collection.
    ///
    /// Example: vdbctl create-collection images --dim 512 --metric cosine --nlist 1024
    CreateCollection {
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
        /// Default lists probed per search (default 8).
        #[arg(long)]
        nprobe: Option<u32>,
        /// always, none or interval:<n>ms (default always).
        #[arg(long)]
        sync: Option<String>,
        /// Memtable rows per flush (default 100000).
        #[arg(long)]
        flush_rows: Option<u64>,
    },
    /// List collections.
    List,
    /// Show a collection's settings and numbers.
    ///
    /// Example: vdbctl describe images --lists
    Describe {
        /// The collection.
        name: String,
        /// Also show how rows spread over the lists: size distribution,
        /// histogram, imbalance factor, largest lists.
        #[arg(long)]
        lists: bool,
    },
    /// Change a collection's default nprobe, nlist or flush size.
    ///
    /// Example: vdbctl alter images --nprobe 16
    Alter {
        /// The collection.
        name: String,
        /// New default nprobe.
        #[arg(long)]
        nprobe: Option<u32>,
        /// New nlist (retrains at the next flush).
        #[arg(long)]
        nlist: Option<u32>,
        /// New memtable rows per flush.
        #[arg(long)]
        flush_rows: Option<u64>,
    },
    /// Drop a collection and delete its files.
    Drop {
        /// The collection.
        name: String,
    },
    /// Insert (or replace) one row.
    ///
    /// Example: vdbctl insert images --id 7 --vector 0.1,0.2,0.3 --payload cat.png
    Insert {
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
    },
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
    Import {
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
    },
    /// Write a collection's current generation to a file another engine
    /// reads: `--format faiss` (the default) writes a faiss
    /// `IVF{nlist},Flat` index (`faiss.read_index` loads it) with the
    /// collection's centroids, lists and ids. Cosine collections are written
    /// as inner product over their normalised vectors (normalise queries
    /// before searching them in faiss).
    ///
    /// Example: vdbctl export images images.faiss
    Export {
        /// The collection.
        collection: String,
        /// The file to write.
        file: PathBuf,
        /// The file format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Faiss)]
        format: ExportFormat,
    },
    /// Delete rows by id.
    Delete {
        /// The collection.
        collection: String,
        /// Ids, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        ids: Vec<u64>,
    },
    /// Read rows by id.
    Get {
        /// The collection.
        collection: String,
        /// Ids, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        ids: Vec<u64>,
    },
    /// Search the k nearest rows to a vector.
    ///
    /// Example: vdbctl search images --file query.fvecs --row 3 --k 10 --nprobe 16
    Search {
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
        /// Exact search over every row.
        #[arg(long)]
        exact: bool,
        /// Show payloads.
        #[arg(long)]
        with_payload: bool,
    },
    /// Show what a search did: every centroid ranked, the probed lists with
    /// what they hold, the work of each, where each result came from, and
    /// with --exact which true neighbours were missed and what nprobe would
    /// have found them.
    ///
    /// Example: vdbctl explain images --file query.fvecs --row 3 --exact
    Explain {
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
    },
    /// Pick nprobe from measured recall: search a sample of stored rows
    /// (each excluded from its own results) over a sweep of nprobe values,
    /// compare with exact search, print recall@k, latency and work per
    /// nprobe, and recommend the smallest nprobe meeting the target.
    ///
    /// Example: vdbctl tune images --target-recall 0.95 --plot tune.svg --apply
    Tune {
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
    },
    /// Write the memtable to a segment.
    Flush {
        /// The collection.
        collection: String,
    },
    /// Rewrite all rows into one segment, dropping deleted ones.
    Compact {
        /// The collection.
        collection: String,
    },
    /// Train new centroids and re-cluster.
    Retrain {
        /// The collection.
        collection: String,
        /// Lists to train (default: the configured nlist).
        #[arg(long)]
        nlist: Option<u32>,
    },
}

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
    fn get(&self) -> Result<Vec<f32>> {
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

/// An error from the server, with the exit code it maps to.
#[derive(Debug)]
pub struct ServerError {
    /// The status.
    pub status: tonic::Status,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.status.code(), self.status.message())
    }
}

impl std::error::Error for ServerError {}

impl ServerError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        use tonic::Code;
        match self.status.code() {
            Code::InvalidArgument | Code::OutOfRange => 2,
            Code::Unauthenticated | Code::PermissionDenied => 7,
            Code::NotFound => 3,
            Code::AlreadyExists => 4,
            Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded => 5,
            _ => 6,
        }
    }
}

pub(crate) fn server_err(status: tonic::Status) -> anyhow::Error {
    ServerError { status }.into()
}

/// Runs one collection command.
pub fn run(args: &ClientArgs, cmd: &ClientCommand) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(run_async(args, cmd))
}

pub(crate) async fn connect(
    server: &str,
    api_key: Option<&str>,
    tls_ca: Option<&std::path::Path>,
) -> Result<Client> {
    let auth = match api_key {
        Some(k) => Some(
            format!("Bearer {k}")
                .parse()
                .context("the API key has characters a header cannot carry")?,
        ),
        None => None,
    };
    // "host:port", as vdbd prints it, means plain HTTP/2.
    let server = if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    };
    let server = server.as_str();
    let endpoint = Channel::from_shared(server.to_string())
        .with_context(|| {
            format!("bad server address {server:?} (expected e.g. http://127.0.0.1:50051)")
        })?
        .connect_timeout(Duration::from_secs(5));
    let endpoint = if server.starts_with("https://") {
        let ca = tls_ca.context(
            "an https:// server needs --tls-ca (or VDB_TLS_CA) naming the CA certificate to trust",
        )?;
        let pem = std::fs::read(ca).with_context(|| format!("read --tls-ca {}", ca.display()))?;
        endpoint
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            )
            .context("TLS configuration")?
    } else {
        endpoint
    };
    let channel = endpoint.connect().await.map_err(|e| {
        server_err(tonic::Status::unavailable(format!(
            "cannot reach vdbd at {server}: {e} (is it running? set --server or VDB_SERVER)"
        )))
    })?;
    Ok(VdbClient::with_interceptor(channel, Auth(auth))
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20))
}

fn metric(s: &str) -> Result<pb::Metric> {
    Ok(match s {
        "l2" => pb::Metric::L2,
        "ip" | "inner_product" => pb::Metric::InnerProduct,
        "cosine" => pb::Metric::Cosine,
        other => bail!("unknown metric {other:?}; expected l2, ip or cosine"),
    })
}

fn info_json(i: &pb::CollectionInfo) -> Value {
    let c = i.config.clone().unwrap_or_default();
    let s = i.stats.unwrap_or_default();
    json!({
        "name": i.name,
        "dim": c.dim,
        "metric": pb::Metric::try_from(c.metric).map(|m| m.as_str_name()).unwrap_or("?"),
        "nlist": c.nlist,
        "nprobe": c.nprobe,
        "sync": c.sync,
        "flush_rows": c.flush_rows,
        "rows": s.rows,
        "deleted_rows": s.deleted_rows,
        "segments": s.segments,
        "memtable_rows": s.memtable_rows,
        "segment_bytes": s.segment_bytes,
        "generation": s.generation,
        "lists": s.lists,
        "imbalance": s.imbalance,
        "trained_at": s.trained_at,
        "trained_rows": s.trained_rows,
        "compacted_at": s.compacted_at,
        "last_lsn": s.last_lsn,
        "flushed_lsn": s.flushed_lsn,
    })
}

fn print_info(i: &pb::CollectionInfo, as_json: bool) {
    let v = info_json(i);
    if as_json {
        println!("{v}");
        return;
    }
    if let Value::Object(map) = v {
        for (k, val) in map {
            let shown = match val {
                Value::String(s) => s,
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            println!("{k:>14}  {shown}");
        }
    }
}

/// File formats of `vdbctl import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// By the file's extension: .fvecs, .bvecs, .npy, .jsonl/.ndjson.
    Auto,
    /// A faiss `IndexIVFFlat` file.
    Faiss,
}

/// File formats of `vdbctl export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// A faiss `IndexIVFFlat` file (`IVF{nlist},Flat`).
    Faiss,
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

fn payload_text(p: &Option<Vec<u8>>) -> String {
    match p {
        None => String::new(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) if s.len() <= 60 => s.to_string(),
            Ok(s) => format!("{}…", s.chars().take(57).collect::<String>()),
            Err(_) => format!("<{} bytes>", b.len()),
        },
    }
}

async fn run_async(args: &ClientArgs, cmd: &ClientCommand) -> Result<()> {
    let mut c = connect(
        &args.server,
        args.api_key.as_deref(),
        args.tls_ca.as_deref(),
    )
    .await?;
    match cmd {
        ClientCommand::CreateCollection {
            name,
            dim,
            metric: m,
            nlist,
            nprobe,
            sync,
            flush_rows,
        } => {
            let info = c
                .create_collection(pb::CreateCollectionRequest {
                    name: name.clone(),
                    config: Some(pb::CollectionConfig {
                        dim: *dim,
                        metric: metric(m)? as i32,
                        nlist: *nlist,
                        nprobe: *nprobe,
                        sync: sync.clone(),
                        flush_rows: *flush_rows,
                        ..Default::default()
                    }),
                    centroids: None,
                })
                .await
                .map_err(server_err)?
                .into_inner();
            print_info(&info, args.json);
        }
        ClientCommand::List => {
            let names = c
                .list_collections(pb::ListCollectionsRequest {})
                .await
                .map_err(server_err)?
                .into_inner()
                .names;
            if args.json {
                println!("{}", json!({ "collections": names }));
            } else {
                for n in names {
                    println!("{n}");
                }
            }
        }
        ClientCommand::Describe { name, lists } => {
            let info = c
                .describe_collection(pb::DescribeCollectionRequest {
                    name: name.clone(),
                    lists: *lists,
                })
                .await
                .map_err(server_err)?
                .into_inner();
            match (*lists, args.json) {
                (false, _) => print_info(&info, args.json),
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
        }
        ClientCommand::Alter {
            name,
            nprobe,
            nlist,
            flush_rows,
        } => {
            let info = c
                .alter_collection(pb::AlterCollectionRequest {
                    name: name.clone(),
                    nprobe: *nprobe,
                    nlist: *nlist,
                    flush_rows: *flush_rows,
                    ..Default::default()
                })
                .await
                .map_err(server_err)?
                .into_inner();
            print_info(&info, args.json);
        }
        ClientCommand::Drop { name } => {
            c.drop_collection(pb::DropCollectionRequest { name: name.clone() })
                .await
                .map_err(server_err)?;
            if args.json {
                println!("{}", json!({ "dropped": name }));
            } else {
                println!("dropped {name}");
            }
        }
        ClientCommand::Insert {
            collection,
            id,
            vector,
            payload,
        } => {
            let w = c
                .upsert(pb::UpsertRequest {
                    collection: collection.clone(),
                    rows: vec![pb::Row {
                        id: *id,
                        vector: vector.get()?,
                        payload: payload.as_ref().map(|p| p.clone().into_bytes()),
                    }],
                })
                .await
                .map_err(server_err)?
                .into_inner();
            if args.json {
                println!("{}", json!({ "lsn": w.lsn, "rows": w.count }));
            } else {
                println!("inserted 1 row (lsn {})", w.lsn);
            }
        }
        ClientCommand::Import {
            collection,
            file,
            first_id,
            ids_from,
            payload_field,
            skip,
            batch,
            format,
        } => {
            let rows = match format {
                ImportFormat::Auto => {
                    read_rows(file, *first_id, ids_from.as_deref(), payload_field)?
                }
                ImportFormat::Faiss => {
                    create_from_faiss(&mut c, args.json, collection, file).await?
                }
            };
            import(&mut c, args.json, collection, rows, *skip, *batch).await?;
            if *format == ImportFormat::Faiss {
                // Into segments now, under the index's centroids.
                c.flush(pb::MaintenanceRequest {
                    collection: collection.clone(),
                    nlist: None,
                })
                .await
                .map_err(server_err)?;
            }
        }
        ClientCommand::Delete { collection, ids } => {
            let w = c
                .delete(pb::DeleteRequest {
                    collection: collection.clone(),
                    ids: ids.clone(),
                })
                .await
                .map_err(server_err)?
                .into_inner();
            if args.json {
                println!("{}", json!({ "lsn": w.lsn, "ids": w.count }));
            } else {
                println!("deleted {} id(s) (lsn {})", w.count, w.lsn);
            }
        }
        ClientCommand::Get { collection, ids } => {
            let r = c
                .get(pb::GetRequest {
                    collection: collection.clone(),
                    ids: ids.clone(),
                })
                .await
                .map_err(server_err)?
                .into_inner();
            if args.json {
                let rows: Vec<Value> = r
                    .rows
                    .iter()
                    .map(|row| json!({"id": row.id, "vector": row.vector, "payload": payload_text(&row.payload)}))
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
                        "{:>10}  [{}{more}]  {}",
                        row.id,
                        head.join(", "),
                        payload_text(&row.payload)
                    );
                }
                for id in &r.missing {
                    println!("{id:>10}  (not found)");
                }
            }
        }
        ClientCommand::Search {
            collection,
            vector,
            k,
            nprobe,
            exact,
            with_payload,
        } => {
            let t = Instant::now();
            let r = c
                .search(pb::SearchRequest {
                    collection: collection.clone(),
                    queries: vec![pb::Vector {
                        values: vector.get()?,
                    }],
                    k: *k,
                    nprobe: *nprobe,
                    with_payload: *with_payload,
                    with_vectors: false,
                    exact: *exact,
                })
                .await
                .map_err(server_err)?
                .into_inner();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let hits = r.results.into_iter().next().unwrap_or_default().hits;
            if args.json {
                let hs: Vec<Value> = hits
                    .iter()
                    .map(|h| json!({"id": h.id, "distance": h.distance, "payload": h.payload.as_ref().map(|_| payload_text(&h.payload))}))
                    .collect();
                println!("{}", json!({ "nprobe": r.nprobe, "hits": hs, "ms": ms }));
            } else {
                println!("{:>4} {:>10} {:>12}  payload", "rank", "id", "distance");
                for (i, h) in hits.iter().enumerate() {
                    println!(
                        "{:>4} {:>10} {:>12.5}  {}",
                        i + 1,
                        h.id,
                        h.distance,
                        payload_text(&h.payload)
                    );
                }
                println!(
                    "({} hits, nprobe {}, {ms:.2} ms round trip)",
                    hits.len(),
                    r.nprobe
                );
            }
        }
        ClientCommand::Explain {
            collection,
            vector,
            k,
            nprobe,
            exact,
            samples,
            html,
            image,
        } => {
            let r = c
                .explain(pb::ExplainRequest {
                    collection: collection.clone(),
                    query: Some(pb::Vector {
                        values: vector.get()?,
                    }),
                    k: *k,
                    nprobe: *nprobe,
                    with_payload: true,
                    exact: *exact,
                    samples: Some(*samples),
                })
                .await
                .map_err(server_err)?
                .into_inner();
            let data = explain::to_json(collection, *k, &r);
            if args.json {
                println!("{data}");
            } else {
                explain::print_text(&r);
            }
            if let Some(path) = html {
                let mut data = data;
                if let (Some((w, h)), Value::Object(m)) = (image, &mut data) {
                    m.insert("image".into(), json!([w, h]));
                }
                std::fs::write(path, explain_page::render(&data))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                if !args.json {
                    println!("wrote {} (open it in a browser)", path.display());
                }
            }
        }
        ClientCommand::Export {
            collection,
            file,
            format: ExportFormat::Faiss,
        } => {
            let started = Instant::now();
            let mut stream = c
                .export(pb::ExportRequest {
                    collection: collection.clone(),
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
                Ok(pb::Metric::InnerProduct | pb::Metric::Cosine) => {
                    vdb_format::FaissMetric::InnerProduct
                }
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
            if args.json {
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
        }
        ClientCommand::Tune {
            name,
            collection,
            target_recall,
            sample,
            k,
            nprobe,
            plot,
            apply,
            seed,
        } => {
            let name = name
                .clone()
                .or_else(|| collection.clone())
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
                    target_recall: *target_recall,
                    k: Some(*k),
                    sample: Some(*sample),
                    nprobes: nprobe.clone(),
                    apply: *apply,
                    seed: *seed,
                })
                .await
                .map_err(server_err)?
                .into_inner();
            if args.json {
                println!("{}", tune::to_json(&name, *target_recall, &r));
            } else {
                tune::print_text(&name, *target_recall, current, &r);
            }
            if let Some(path) = plot {
                std::fs::write(path, tune::plot(&name, *target_recall, &r))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                if !args.json {
                    println!("wrote {}", path.display());
                }
            }
        }
        ClientCommand::Flush { collection } | ClientCommand::Compact { collection } => {
            let req = pb::MaintenanceRequest {
                collection: collection.clone(),
                nlist: None,
            };
            let r = if matches!(cmd, ClientCommand::Flush { .. }) {
                c.flush(req).await
            } else {
                c.compact(req).await
            }
            .map_err(server_err)?
            .into_inner();
            maintenance_done(&r, args.json);
        }
        ClientCommand::Retrain { collection, nlist } => {
            let r = c
                .retrain(pb::MaintenanceRequest {
                    collection: collection.clone(),
                    nlist: *nlist,
                })
                .await
                .map_err(server_err)?
                .into_inner();
            maintenance_done(&r, args.json);
        }
    }
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
        })
        .collect())
}

/// Reads a faiss IVF_Flat file, creates `collection` with its dimension,
/// metric, nprobe and centroids, and returns its rows.
async fn create_from_faiss(
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

async fn import(
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
