//! The manifest: the one file that names a collection's live files and
//! settings. It is published through the collection's `vdb_fs::Directory`,
//! which replaces it atomically (locally: write `MANIFEST.tmp`, fsync,
//! rename to `MANIFEST`, fsync the directory), so a reader sees either the
//! old or the new state. Files in the directory that it does not name are garbage.
//!
//! Text, one `key value…` per line, ending with `crc <hex>`: the CRC32 of
//! every byte before that line. Specified in `docs/format.md`.

use std::fmt::Write as _;

use vdb_core::{Lsn, Metric};
use vdb_wal::SyncMode;

use crate::config::CollectionConfig;
use crate::error::{Error, Result};
use crate::index::IndexType;

/// File name of the manifest.
pub use vdb_fs::MANIFEST;
const HEADER: &str = "vdb-manifest 1";

/// The durable state of a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Settings.
    pub config: CollectionConfig,
    /// Centroid generation; 0 = untrained (one list, searched flat).
    pub generation: u64,
    /// Centroid file of `generation`, if trained.
    pub centroids: Option<String>,
    /// The generation of the last training. Later generations come from
    /// local rebalancing, which changes a few lists' centroids and moves
    /// their rows to a newer segment: a segment of any generation from
    /// this one on is searched with the current centroids.
    pub trained_generation: u64,
    /// Local rebalancing steps (list splits) since the last training.
    pub rebalances: u64,
    /// When the lists were last rebalanced locally (Unix seconds; 0 =
    /// never since the last training).
    pub rebalanced_at: u64,
    /// Every WAL record up to this LSN is in the files below.
    pub flushed_lsn: Lsn,
    /// The next flush sequence number.
    pub next_seq: u64,
    /// Segment files with their flush sequence, ascending.
    pub segments: Vec<(u64, String)>,
    /// Delete files with their flush sequence, ascending.
    pub deletes: Vec<(u64, String)>,
    /// Rows when the current generation was trained.
    pub trained_rows: u64,
    /// The recall@10 measured when `config.target_recall` last chose
    /// `config.nprobe` (0: never).
    pub tuned_recall: f64,
    /// Their mean distance to their centroid.
    pub trained_error: f64,
    /// List imbalance right after training.
    pub trained_imbalance: f64,
    /// When the current generation was trained (Unix seconds; 0 = never).
    pub trained_at: u64,
    /// When the collection was last compacted (Unix seconds; 0 = never).
    pub compacted_at: u64,
    /// The node that published it, for collections in a shared store (0:
    /// none; not written then).
    pub writer: u64,
    /// This collection's identity, random at creation (and at the first
    /// open of a collection older than the key); a restored snapshot
    /// gets a new one. File names are unique within one identity, so a
    /// snapshot repository keeps one copy of a file per identity and name.
    /// 0: none yet (not written then).
    pub uid: u64,
}

impl Manifest {
    /// The manifest of a new, empty collection (without an identity: its
    /// creator draws one).
    pub fn new(config: CollectionConfig) -> Manifest {
        Manifest {
            config,
            generation: 0,
            centroids: None,
            trained_generation: 0,
            rebalances: 0,
            rebalanced_at: 0,
            flushed_lsn: Lsn(0),
            next_seq: 1,
            segments: Vec::new(),
            deletes: Vec::new(),
            trained_rows: 0,
            tuned_recall: 0.0,
            trained_error: 0.0,
            trained_imbalance: 0.0,
            trained_at: 0,
            compacted_at: 0,
            writer: 0,
            uid: 0,
        }
    }

    /// Every file name the manifest keeps alive.
    pub fn live_files(&self) -> impl Iterator<Item = &str> {
        self.centroids
            .iter()
            .map(String::as_str)
            .chain(self.segments.iter().map(|(_, f)| f.as_str()))
            .chain(self.deletes.iter().map(|(_, f)| f.as_str()))
    }

    pub(crate) fn encode(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        let _ = writeln!(s, "{HEADER}");
        let _ = writeln!(s, "dim {}", c.dim);
        let _ = writeln!(s, "metric {}", c.metric.name());
        let _ = writeln!(s, "nlist {}", c.nlist);
        let _ = writeln!(s, "nprobe {}", c.nprobe);
        if let Some(t) = c.target_recall {
            let _ = writeln!(s, "target_recall {t}");
        }
        if self.tuned_recall > 0.0 {
            let _ = writeln!(s, "tuned_recall {}", self.tuned_recall);
        }
        let _ = writeln!(s, "sync {}", c.sync);
        let _ = writeln!(s, "flush_rows {}", c.flush_rows);
        let _ = writeln!(s, "min_rows_per_list {}", c.min_rows_per_list);
        let _ = writeln!(s, "retrain_growth {}", c.retrain.growth);
        let _ = writeln!(s, "retrain_error_drift {}", c.retrain.error_drift);
        let _ = writeln!(s, "retrain_imbalance {}", c.retrain.imbalance);
        let _ = writeln!(s, "retrain_min_new_rows {}", c.retrain.min_new_rows);
        let _ = writeln!(s, "compact_max_segments {}", c.compaction.max_segments);
        let _ = writeln!(s, "compact_max_hidden {}", c.compaction.max_hidden);
        let _ = writeln!(s, "compact_fanout {}", c.compaction.fanout);
        let _ = writeln!(
            s,
            "compact_max_segment_fraction {}",
            c.compaction.max_segment_fraction
        );
        for f in &c.fields {
            let _ = writeln!(s, "field {} {}", f.name, f.ty);
        }
        // Only when not the default, so collections without codes stay
        // readable by versions that predate index types (which refuse the
        // key, as they refuse the coded segments' flag).
        if c.index_type != IndexType::IvfFlat {
            let _ = writeln!(s, "index_type {}", c.index_type);
        }
        let _ = writeln!(s, "generation {}", self.generation);
        let _ = writeln!(s, "centroids {}", self.centroids.as_deref().unwrap_or("-"));
        if self.trained_generation != self.generation {
            let _ = writeln!(s, "trained_generation {}", self.trained_generation);
        }
        if self.rebalances != 0 {
            let _ = writeln!(s, "rebalances {}", self.rebalances);
            let _ = writeln!(s, "rebalanced_at {}", self.rebalanced_at);
        }
        let _ = writeln!(s, "flushed_lsn {}", self.flushed_lsn.0);
        let _ = writeln!(s, "next_seq {}", self.next_seq);
        let _ = writeln!(s, "trained_rows {}", self.trained_rows);
        let _ = writeln!(s, "trained_error {}", self.trained_error);
        let _ = writeln!(s, "trained_imbalance {}", self.trained_imbalance);
        let _ = writeln!(s, "trained_at {}", self.trained_at);
        let _ = writeln!(s, "compacted_at {}", self.compacted_at);
        if self.writer != 0 {
            let _ = writeln!(s, "writer {:016x}", self.writer);
        }
        if self.uid != 0 {
            let _ = writeln!(s, "uid {:016x}", self.uid);
        }
        for (seq, f) in &self.segments {
            let _ = writeln!(s, "segment {seq} {f}");
        }
        for (seq, f) in &self.deletes {
            let _ = writeln!(s, "deletes {seq} {f}");
        }
        let crc = crc32fast::hash(s.as_bytes());
        let _ = writeln!(s, "crc {crc:08x}");
        s
    }

    /// Publishes the manifest in `files`, atomically and durably.
    pub fn store(&self, files: &dyn vdb_fs::Directory) -> Result<()> {
        Ok(files.publish_manifest(self.encode().as_bytes())?)
    }

    /// Reads and checks the manifest of `files`.
    pub fn load(files: &dyn vdb_fs::Directory) -> Result<Manifest> {
        let bytes = files.read_manifest()?;
        Manifest::decode(bytes, files.path(MANIFEST))
    }

    /// Checks and reads a manifest's bytes; `path` names where they came
    /// from in errors.
    pub(crate) fn decode(bytes: Vec<u8>, path: std::path::PathBuf) -> Result<Manifest> {
        let text = String::from_utf8(bytes).map_err(|_| Error::Corrupt {
            file: path.clone(),
            reason: "not UTF-8 text".into(),
        })?;
        parse(&text).map_err(|reason| Error::Corrupt { file: path, reason })
    }
}

/// Keys every manifest has had since version 1 was first written; the
/// ones added later (`compact_*`, `trained_at`, `compacted_at`) take their
/// defaults when absent.
const REQUIRED: [&str; 18] = [
    "dim",
    "metric",
    "nlist",
    "nprobe",
    "sync",
    "flush_rows",
    "min_rows_per_list",
    "retrain_growth",
    "retrain_error_drift",
    "retrain_imbalance",
    "retrain_min_new_rows",
    "generation",
    "centroids",
    "flushed_lsn",
    "next_seq",
    "trained_rows",
    "trained_error",
    "trained_imbalance",
];

/// A random, non-zero 64-bit id: `RandomState`'s keys are random per
/// process, mixed with the time and the process id, so two nodes (or two
/// collections) never draw the same one.
pub(crate) fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish() | 1
}

/// The text before its last line, `crc <8 hex digits>`, checked against
/// it: the frame of vdb's text files (a manifest, a snapshot's descriptor,
/// which embeds a manifest: only the very last line counts).
pub(crate) fn checked_body(text: &str) -> std::result::Result<&str, String> {
    let last = text.strip_suffix('\n').ok_or("no crc line")?;
    let crc_at = last.rfind('\n').map_or(0, |at| at + 1);
    let (body, crc_line) = text.split_at(crc_at);
    let hex = crc_line
        .trim_end_matches('\n')
        .strip_prefix("crc ")
        .ok_or("no crc line")?;
    let stored = u32::from_str_radix(hex, 16)
        .ok()
        .filter(|_| hex.len() == 8)
        .ok_or_else(|| "unreadable crc line".to_string())?;
    let actual = crc32fast::hash(body.as_bytes());
    if stored != actual {
        return Err(format!(
            "checksum mismatch: stored {stored:08x}, computed {actual:08x}"
        ));
    }
    Ok(body)
}

fn parse(text: &str) -> std::result::Result<Manifest, String> {
    let body = checked_body(text)?;
    let mut lines = body.lines();
    if lines.next() != Some(HEADER) {
        return Err(format!("first line is not {HEADER:?}"));
    }
    let mut config = CollectionConfig::new(1);
    // Written only when set (and by versions that know it).
    config.target_recall = None;
    // The default when the key was added; a manifest has had it since.
    config.compaction.max_segments = 8;
    let mut m = Manifest::new(config.clone());
    let num = |k: &str, v: &str| {
        v.parse::<u64>()
            .map_err(|_| format!("{k}: {v:?} is not a number"))
    };
    let real = |k: &str, v: &str| {
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("{k}: {v:?} is not a finite number"))
    };
    let mut seen = std::collections::HashSet::new();
    let mut trained_generation = None;
    for line in lines {
        let (key, value) = line
            .split_once(' ')
            .ok_or_else(|| format!("malformed line {line:?}"))?;
        if !matches!(key, "segment" | "deletes" | "field") && !seen.insert(key) {
            return Err(format!("key {key:?} appears twice"));
        }
        match key {
            "dim" => config.dim = num(key, value)? as usize,
            "metric" => config.metric = value.parse::<Metric>().map_err(|e| e.to_string())?,
            "nlist" => config.nlist = num(key, value)? as usize,
            "nprobe" => config.nprobe = num(key, value)? as usize,
            "target_recall" => config.target_recall = Some(real(key, value)?),
            "tuned_recall" => m.tuned_recall = real(key, value)?,
            "sync" => config.sync = value.parse::<SyncMode>()?,
            "flush_rows" => config.flush_rows = num(key, value)? as usize,
            "min_rows_per_list" => config.min_rows_per_list = num(key, value)? as usize,
            "retrain_growth" => config.retrain.growth = real(key, value)?,
            "retrain_error_drift" => config.retrain.error_drift = real(key, value)?,
            "retrain_imbalance" => config.retrain.imbalance = real(key, value)?,
            "retrain_min_new_rows" => config.retrain.min_new_rows = num(key, value)?,
            "compact_max_segments" => config.compaction.max_segments = num(key, value)? as usize,
            "compact_max_hidden" => config.compaction.max_hidden = real(key, value)?,
            "compact_fanout" => config.compaction.fanout = num(key, value)? as usize,
            "compact_max_segment_fraction" => {
                config.compaction.max_segment_fraction = real(key, value)?
            }
            "field" => {
                let (name, ty) = value
                    .split_once(' ')
                    .ok_or_else(|| format!("malformed line {line:?}"))?;
                let ty = ty
                    .parse()
                    .map_err(|e: String| format!("field {name}: {e}"))?;
                config.fields.push(vdb_core::FieldDef::new(name, ty));
            }
            "index_type" => config.index_type = value.parse()?,
            "trained_at" => m.trained_at = num(key, value)?,
            "compacted_at" => m.compacted_at = num(key, value)?,
            "writer" => {
                m.writer = u64::from_str_radix(value, 16)
                    .map_err(|_| format!("writer: {value:?} is not a hexadecimal node id"))?;
            }
            "uid" => {
                m.uid = u64::from_str_radix(value, 16)
                    .map_err(|_| format!("uid: {value:?} is not a hexadecimal identity"))?;
            }
            "trained_rows" => m.trained_rows = num(key, value)?,
            "trained_error" => m.trained_error = real(key, value)?,
            "trained_imbalance" => m.trained_imbalance = real(key, value)?,
            "generation" => m.generation = num(key, value)?,
            "trained_generation" => trained_generation = Some(num(key, value)?),
            "rebalances" => m.rebalances = num(key, value)?,
            "rebalanced_at" => m.rebalanced_at = num(key, value)?,
            "centroids" => m.centroids = (value != "-").then(|| value.to_string()),
            "flushed_lsn" => m.flushed_lsn = Lsn(num(key, value)?),
            "next_seq" => m.next_seq = num(key, value)?,
            "segment" | "deletes" => {
                let (seq, file) = value
                    .split_once(' ')
                    .ok_or_else(|| format!("malformed line {line:?}"))?;
                check_file_name(file)?;
                let entry = (num(key, seq)?, file.to_string());
                if key == "segment" {
                    m.segments.push(entry);
                } else {
                    m.deletes.push(entry);
                }
            }
            other => return Err(format!("unknown key {other:?}")),
        }
    }
    if let Some(missing) = REQUIRED.iter().find(|k| !seen.contains(*k)) {
        return Err(format!("required key {missing:?} is missing"));
    }
    if let Some(c) = &m.centroids {
        check_file_name(c)?;
    }
    m.trained_generation = trained_generation.unwrap_or(m.generation);
    if m.trained_generation > m.generation {
        return Err(format!(
            "trained_generation {} is after generation {}",
            m.trained_generation, m.generation
        ));
    }
    config.validate().map_err(|e| e.to_string())?;
    m.config = config;
    Ok(m)
}

/// Manifest entries name files inside the collection directory, never paths.
fn check_file_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(format!("file name {name:?} is not a plain file name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::new(CollectionConfig {
            sync: SyncMode::Interval(Duration::from_millis(250)),
            metric: Metric::Cosine,
            ..CollectionConfig::new(7)
        });
        m.generation = 2;
        m.centroids = Some("centroids-00000000000000000002.cen".into());
        m.segments.push((3, "seg-0000000000000003.seg".into()));
        m.deletes.push((4, "del-0000000000000004.del".into()));
        m.flushed_lsn = Lsn(99);
        m.trained_rows = 1234;
        m.trained_error = 0.125;
        m.trained_imbalance = 1.5;
        m.tuned_recall = 0.955;
        let files = vdb_fs::LocalDirectory::new(vdb_fs::os(), dir.path());
        m.store(&files).unwrap();
        assert_eq!(Manifest::load(&files).unwrap(), m);
        // Generations from local rebalancing after the training.
        let mut r = m.clone();
        r.trained_generation = 2;
        r.generation = 5;
        r.rebalances = 7;
        r.rebalanced_at = 1_800_000_000;
        r.store(&files).unwrap();
        assert_eq!(Manifest::load(&files).unwrap(), r);
        let path = dir.path().join(MANIFEST);
        let text = std::fs::read(&path).unwrap();
        for i in 0..text.len() - 1 {
            let mut b = text.clone();
            b[i] ^= 0x01;
            std::fs::write(&path, &b).unwrap();
            assert!(Manifest::load(&files).is_err(), "byte {i}");
        }
    }

    #[test]
    fn a_missing_required_key_or_a_repeated_one_is_refused() {
        let text = Manifest::new(CollectionConfig::new(3)).encode();
        let body = &text[..text.rfind("crc ").unwrap()];
        let with_crc = |body: &str| format!("{body}crc {:08x}\n", crc32fast::hash(body.as_bytes()));
        let no_dim = body.replace("dim 3\n", "");
        assert!(parse(&with_crc(&no_dim)).unwrap_err().contains("\"dim\""));
        let twice = body.replace("nprobe 8\n", "nprobe 8\nnprobe 9\n");
        assert!(parse(&with_crc(&twice)).unwrap_err().contains("twice"));
        let ahead = body.replace("generation 0\n", "generation 0\ntrained_generation 1\n");
        assert!(
            parse(&with_crc(&ahead))
                .unwrap_err()
                .contains("after generation")
        );
        // Keys added later may be absent.
        let old = body
            .replace("trained_at 0\n", "")
            .replace("compacted_at 0\n", "");
        assert!(parse(&with_crc(&old)).is_ok());
        // A manifest from before recall targets fixes its nprobe.
        assert!(body.contains("target_recall 0.95\n"), "{body}");
        let old = body.replace("target_recall 0.95\n", "");
        assert_eq!(parse(&with_crc(&old)).unwrap().config.target_recall, None);
        let bad = body.replace("target_recall 0.95\n", "target_recall 1.5\n");
        assert!(
            parse(&with_crc(&bad))
                .unwrap_err()
                .contains("target_recall")
        );
    }

    #[test]
    fn the_writer_is_written_only_for_a_shared_store() {
        let mut m = Manifest::new(CollectionConfig::new(3));
        assert!(!m.encode().contains("writer"));
        m.writer = 0x00c0_ffee_0000_0001;
        let text = m.encode();
        assert!(text.contains("\nwriter 00c0ffee00000001\n"), "{text}");
        assert_eq!(parse(&text).unwrap(), m);
        let body = &text[..text.rfind("crc ").unwrap()];
        let bad = body.replace("writer 00c0ffee00000001", "writer node-7");
        let bad = format!("{bad}crc {:08x}\n", crc32fast::hash(bad.as_bytes()));
        assert!(parse(&bad).unwrap_err().contains("writer"));
    }

    #[test]
    fn entries_cannot_escape_the_directory() {
        let mut m = Manifest::new(CollectionConfig::new(2));
        m.segments.push((1, "../../etc/passwd".into()));
        let text = m.encode();
        assert!(parse(&text).unwrap_err().contains("not a plain file name"));
    }
}
