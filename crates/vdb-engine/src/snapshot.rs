//! Snapshots: a collection's files and manifest at one point in time,
//! copied into a [`Repository`] and restorable as a new collection.
//!
//! A repository holds (`docs/format.md`, "Snapshots"):
//!
//! - `<name>.snapshot`: the descriptor, created once and last — the
//!   snapshot exists when it does;
//! - `files/<uid>/<file>`: the files the snapshots of the collection with
//!   identity `uid` name. A file name is never reused within one identity,
//!   so a file already there is the same file, and a later snapshot of the
//!   collection stores only the files written since.

use vdb_fs::{Directory, Repository};

use crate::collection::{Collection, unix_now};
use crate::config::{CollectionConfig, validate_name};
use crate::error::{Error, Result};
use crate::manifest::Manifest;

const HEADER: &str = "vdb-snapshot 1";
const SUFFIX: &str = ".snapshot";

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Its name in the collection.
    pub name: String,
    /// Its length in bytes.
    pub bytes: u64,
}

/// A snapshot in a repository.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotInfo {
    /// Its name, unique in the repository.
    pub name: String,
    /// The collection it was taken of.
    pub collection: String,
    /// When (Unix seconds).
    pub created_at: u64,
    /// The repository, as a path or URL.
    pub location: String,
    /// The files it names.
    pub files: Vec<SnapshotFile>,
    /// Bytes the snapshot added to the repository when it was created
    /// (the rest it shares with earlier snapshots, or links to the
    /// collection's own files); 0 when listed.
    pub added_bytes: u64,
    /// The collection's manifest then (its `uid` is the key its files are
    /// kept under).
    manifest: Manifest,
}

impl SnapshotInfo {
    /// The bytes of every file it names.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// The collection's settings then.
    pub fn config(&self) -> &CollectionConfig {
        &self.manifest.config
    }

    /// Its centroid generation then.
    pub fn generation(&self) -> u64 {
        self.manifest.generation
    }

    /// Every write up to this log sequence number is in it.
    pub fn flushed_lsn(&self) -> u64 {
        self.manifest.flushed_lsn.0
    }
}

fn descriptor_key(name: &str) -> String {
    format!("{name}{SUFFIX}")
}

/// Where the files of the collection with identity `uid` are kept.
fn files_dir(uid: u64) -> String {
    format!("files/{uid:016x}")
}

fn file_key(uid: u64, file: &str) -> String {
    format!("{}/{file}", files_dir(uid))
}

/// Copies `collection`'s state after a flush into `repo` as snapshot
/// `name` (default: the collection's name and the time).
pub(crate) fn create(
    collection: &Collection,
    repo: &dyn Repository,
    name: Option<&str>,
) -> Result<SnapshotInfo> {
    let created_at = unix_now();
    let name = match name {
        Some(n) => n.to_string(),
        None => {
            let base: String = collection.name().chars().take(46).collect();
            format!("{base}-{}", utc_stamp(created_at))
        }
    };
    validate_name(&name).map_err(|_| {
        Error::invalid(
            "snapshot",
            format!("{name:?} must be 1 to 64 ASCII letters, digits, '_' or '-'"),
        )
    })?;
    let exists = || Error::SnapshotExists {
        name: name.clone(),
        location: repo.location(),
    };
    let key = descriptor_key(&name);
    if repo.size(&key)?.is_some() {
        return Err(exists());
    }
    let info = collection.with_flushed(|manifest, files| {
        let mut info = SnapshotInfo {
            name: name.clone(),
            collection: collection.name().to_string(),
            created_at,
            location: repo.location(),
            files: Vec::new(),
            added_bytes: 0,
            manifest: manifest.clone(),
        };
        for file in manifest.live_files() {
            let key = file_key(manifest.uid, file);
            let bytes = match repo.size(&key)? {
                Some(bytes) => bytes,
                None => {
                    repo.put_file(&key, files, file)?;
                    let bytes = repo.size(&key)?.unwrap_or(0);
                    info.added_bytes += bytes;
                    bytes
                }
            };
            info.files.push(SnapshotFile {
                name: file.to_string(),
                bytes,
            });
        }
        Ok(info)
    })?;
    repo.put(&key, encode(&info).as_bytes()).map_err(|e| {
        let e = Error::from(e);
        if e.is_already_there() { exists() } else { e }
    })?;
    Ok(info)
}

/// The snapshots in `repo`, by name.
pub(crate) fn list(repo: &dyn Repository) -> Result<Vec<SnapshotInfo>> {
    let mut out = Vec::new();
    for blob in repo.list("")? {
        if let Some(name) = blob.strip_suffix(SUFFIX) {
            out.push(read(repo, name)?);
        }
    }
    Ok(out)
}

/// Snapshot `name` of `repo`.
pub(crate) fn read(repo: &dyn Repository, name: &str) -> Result<SnapshotInfo> {
    let key = descriptor_key(name);
    let bytes = repo.get(&key).map_err(|e| {
        let e = Error::from(e);
        if e.is_not_found() {
            Error::SnapshotNotFound {
                name: name.to_string(),
                location: repo.location(),
            }
        } else {
            e
        }
    })?;
    let at = format!("{}/{key}", repo.location());
    decode(&bytes, repo.location()).map_err(|reason| Error::Corrupt {
        file: at.into(),
        reason,
    })
}

/// The manifest a collection restored from `info` starts with: the
/// snapshot's, under a new identity (its files are then its own). With
/// no object store to ship the log to, sync mode `object` becomes
/// `always`.
pub(crate) fn restored_manifest(info: &SnapshotInfo, shared_store: bool) -> Manifest {
    let mut m = info.manifest.clone();
    m.uid = crate::manifest::random_id();
    m.writer = 0;
    if !shared_store && m.config.sync == vdb_wal::SyncMode::Object {
        m.config.sync = vdb_wal::SyncMode::Always;
    }
    m
}

/// Copies the files of `info` into `files` (a new collection's).
pub(crate) fn copy_files(
    repo: &dyn Repository,
    info: &SnapshotInfo,
    files: &dyn Directory,
) -> Result<()> {
    for f in &info.files {
        repo.get_file(&file_key(info.manifest.uid, &f.name), files, &f.name)?;
    }
    Ok(())
}

/// Deletes snapshot `name`: its descriptor, then the files no other
/// snapshot of the same collection names.
pub(crate) fn delete(repo: &dyn Repository, name: &str) -> Result<()> {
    let gone = read(repo, name)?;
    repo.remove(&[&descriptor_key(name)])?;
    let mut kept = std::collections::HashSet::new();
    for other in list(repo)? {
        if other.manifest.uid == gone.manifest.uid {
            kept.extend(other.files.into_iter().map(|f| f.name));
        }
    }
    let dir = files_dir(gone.manifest.uid);
    let unused: Vec<String> = repo
        .list(&dir)?
        .into_iter()
        .filter(|f| !kept.contains(f))
        .map(|f| format!("{dir}/{f}"))
        .collect();
    let unused: Vec<&str> = unused.iter().map(String::as_str).collect();
    repo.remove(&unused)?;
    Ok(())
}

fn encode(info: &SnapshotInfo) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "{HEADER}");
    let _ = writeln!(s, "name {}", info.name);
    let _ = writeln!(s, "collection {}", info.collection);
    let _ = writeln!(s, "created_at {}", info.created_at);
    let _ = writeln!(s, "uid {:016x}", info.manifest.uid);
    for f in &info.files {
        let _ = writeln!(s, "file {} {}", f.name, f.bytes);
    }
    let manifest = info.manifest.encode();
    let _ = writeln!(s, "manifest {}", manifest.len());
    s.push_str(&manifest);
    let crc = crc32fast::hash(s.as_bytes());
    let _ = writeln!(s, "crc {crc:08x}");
    s
}

fn decode(bytes: &[u8], location: String) -> std::result::Result<SnapshotInfo, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let body = crate::manifest::checked_body(text)?;
    let (head, manifest) = match body.find("\nmanifest ") {
        Some(at) => {
            let rest = &body[at + 1..];
            let (line, manifest) = rest.split_once('\n').ok_or("no manifest")?;
            let len: usize = line["manifest ".len()..]
                .parse()
                .map_err(|_| format!("malformed line {line:?}"))?;
            if manifest.len() != len {
                return Err(format!(
                    "the manifest is {} bytes, not {len}",
                    manifest.len()
                ));
            }
            (&body[..at], manifest)
        }
        None => return Err("no manifest".into()),
    };
    let mut lines = head.lines();
    if lines.next() != Some(HEADER) {
        return Err(format!("first line is not {HEADER:?}"));
    }
    let (mut name, mut collection, mut created_at, mut uid) = (None, None, None, None);
    let mut files = Vec::new();
    for line in lines {
        let (key, value) = line
            .split_once(' ')
            .ok_or_else(|| format!("malformed line {line:?}"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{key}: {v:?} is not a number"))
        };
        match key {
            "name" => name = Some(value.to_string()),
            "collection" => collection = Some(value.to_string()),
            "created_at" => created_at = Some(num(value)?),
            "uid" => {
                uid = Some(
                    u64::from_str_radix(value, 16)
                        .map_err(|_| format!("uid: {value:?} is not hexadecimal"))?,
                );
            }
            "file" => {
                let (f, bytes) = value
                    .split_once(' ')
                    .ok_or_else(|| format!("malformed line {line:?}"))?;
                files.push(SnapshotFile {
                    name: f.to_string(),
                    bytes: num(bytes)?,
                });
            }
            _ => return Err(format!("unknown key {key:?}")),
        }
    }
    let missing = |k: &str| format!("no {k} line");
    let m = Manifest::decode(manifest.as_bytes().to_vec(), location.clone().into())
        .map_err(|e| format!("its manifest: {e}"))?;
    let named: Vec<&str> = m.live_files().collect();
    let listed: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    if named != listed {
        return Err("its files are not those its manifest names".into());
    }
    if uid.ok_or_else(|| missing("uid"))? != m.uid {
        return Err("its uid is not its manifest's".into());
    }
    Ok(SnapshotInfo {
        name: name.ok_or_else(|| missing("name"))?,
        collection: collection.ok_or_else(|| missing("collection"))?,
        created_at: created_at.ok_or_else(|| missing("created_at"))?,
        location,
        files,
        added_bytes: 0,
        manifest: m,
    })
}

/// `secs` after the Unix epoch as `YYYYMMDDTHHMMSSZ` (UTC).
fn utc_stamp(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (the proleptic Gregorian calendar), counting
    // in 400-year eras from 0000-03-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

    use super::*;

    #[test]
    fn stamps_are_utc_dates() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_795_867_932), "20261128T121212Z");
        assert_eq!(utc_stamp(4_107_542_399), "21000228T235959Z");
    }

    fn sample() -> SnapshotInfo {
        let mut m = Manifest::new(CollectionConfig::new(4));
        m.uid = 0x9f3c_0a1b_2c3d_4e5f;
        m.segments = vec![(1, "seg-0000000000000001.seg".into())];
        SnapshotInfo {
            name: "nightly".into(),
            collection: "images".into(),
            created_at: 1_795_867_932,
            location: "/r".into(),
            files: vec![SnapshotFile {
                name: "seg-0000000000000001.seg".into(),
                bytes: 4096,
            }],
            added_bytes: 0,
            manifest: m,
        }
    }

    #[test]
    fn descriptors_round_trip_and_damage_is_named() {
        let info = sample();
        let text = encode(&info);
        assert_eq!(decode(text.as_bytes(), "/r".into()).unwrap(), info);
        let flipped = text.replacen("images", "imagez", 1);
        let e = decode(flipped.as_bytes(), "/r".into()).unwrap_err();
        assert!(e.contains("checksum mismatch"), "{e}");
        let e = decode(&text.as_bytes()[..text.len() - 20], "/r".into()).unwrap_err();
        assert!(e.contains("crc"), "{e}");
        let mut other = info.clone();
        other.files.clear();
        let e = decode(encode(&other).as_bytes(), "/r".into()).unwrap_err();
        assert!(e.contains("not those its manifest names"), "{e}");
    }
}
