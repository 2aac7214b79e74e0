//! Fault injection at every object store operation: a scenario (create,
//! write, flush, delete, retrain, compact, close) runs once per operation
//! it makes, with that operation failing — before it reaches the store, or
//! (for changes) after the store made it but before the answer came back.
//! A creation the store made though its answer was lost is recognised as
//! made. Whatever fails, nothing acknowledged is lost: the node reopens with
//! exactly its acknowledged rows (its log holds what the store lacks), and
//! any other node finds a state the writer published or was publishing,
//! never a damaged one.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod data;
mod s3server;

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use vdb_engine::{CollectionConfig, Engine, EngineOptions, SyncMode};
use vdb_objstore::ObjectRoot;

use data::{row, rows};
use s3server::S3Server;

/// When the chosen operation fails.
#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    /// The request never reaches the store.
    Before,
    /// The store makes the change; the answer is lost.
    After,
}

/// An object store whose operation number `fail_at` (counting from 0)
/// fails.
#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn ObjectStore>,
    ops: AtomicU64,
    fail_at: AtomicU64,
    when: When,
    /// The operation that failed, once it has.
    failed: std::sync::Mutex<Option<&'static str>>,
    /// The part (counting from 0) of every multipart upload that fails,
    /// if any.
    fail_part: AtomicU64,
}

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

fn injected(op: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: format!("injected failure of {op}").into(),
    }
}

impl Faulty {
    fn new(inner: Arc<dyn ObjectStore>, fail_at: u64, when: When) -> Faulty {
        Faulty {
            inner,
            ops: AtomicU64::new(0),
            fail_at: AtomicU64::new(fail_at),
            when,
            failed: std::sync::Mutex::new(None),
            fail_part: AtomicU64::new(u64::MAX),
        }
    }

    /// Whether this operation, `op`, fails (and counts it).
    fn hit(&self, op: &'static str) -> bool {
        let hit = self.ops.fetch_add(1, Ordering::SeqCst) == self.fail_at.load(Ordering::SeqCst);
        if hit {
            *self.failed.lock().unwrap() = Some(op);
        }
        hit
    }

    fn failed(&self) -> Option<&'static str> {
        *self.failed.lock().unwrap()
    }

    /// Fails the `k`-th operation from now (counting from 0).
    fn arm(&self, k: u64) {
        self.fail_at
            .store(self.ops.load(Ordering::SeqCst) + k, Ordering::SeqCst);
    }

    /// Runs a change, failing it before or after as chosen.
    async fn change<T>(
        &self,
        op: &'static str,
        f: impl Future<Output = object_store::Result<T>>,
    ) -> object_store::Result<T> {
        if !self.hit(op) {
            return f.await;
        }
        if self.when == When::After {
            f.await?;
        }
        Err(injected(op))
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        // A manifest's publication is the commit point: told apart.
        let op = if location.as_ref().contains("/manifest/") {
            "put manifest"
        } else {
            "put"
        };
        self.change(op, self.inner.put_opts(location, payload, opts))
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if self.hit("put_multipart") {
            return Err(injected("put_multipart"));
        }
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultyUpload {
            inner: upload,
            next: 0,
            fail: self.fail_part.load(Ordering::SeqCst),
        }))
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if self.hit("get") {
            return Err(injected("get"));
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        let fail = self.hit("delete");
        let when = self.when;
        let deleted = self.inner.delete_stream(locations);
        if !fail {
            return deleted;
        }
        if when == When::Before {
            return futures_util::stream::once(async { Err(injected("delete")) }).boxed();
        }
        deleted
            .map(|r| r.and_then(|_| Err(injected("delete"))))
            .boxed()
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if self.hit("list") {
            return futures_util::stream::once(async { Err(injected("list")) }).boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        if self.hit("list") {
            return Err(injected("list"));
        }
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.change("copy", self.inner.copy_opts(from, to, options))
            .await
    }
}

/// A multipart upload whose part `fail` fails before it is sent.
#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    next: u64,
    fail: u64,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        let n = self.next;
        self.next += 1;
        if n == self.fail {
            return Box::pin(async { Err(injected("put_part")) });
        }
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

/// What the scenario got acknowledged.
#[derive(Debug, Default)]
struct Outcome {
    /// Whether the collection was created (`Ok` from create).
    created: bool,
    /// The rows acknowledged (writes and deletes that returned `Ok`).
    live: BTreeSet<u64>,
    /// What each publication (flush, retrain, compact, close) would
    /// publish, in order, and whether it returned `Ok`.
    publications: Vec<(BTreeSet<u64>, bool)>,
    /// The rows if the write that failed took effect after all (a chunk
    /// shipped as its writer learnt it was fenced: its outcome unknown).
    maybe: Option<BTreeSet<u64>>,
}

impl Outcome {
    /// The states another node may find: the last one published with
    /// `Ok` (or the empty collection), or one attempted after it.
    fn visible(&self) -> Vec<BTreeSet<u64>> {
        let last_ok = self.publications.iter().rposition(|(_, ok)| *ok);
        let mut states = match last_ok {
            Some(i) => vec![self.publications[i].0.clone()],
            None => vec![BTreeSet::new()],
        };
        let after = last_ok.map_or(0, |i| i + 1);
        states.extend(self.publications[after..].iter().map(|(s, _)| s.clone()));
        states
    }
}

/// A root at `url` (in bucket `vdb` of `s3`) whose requests go through a
/// [`Faulty`] store failing operation `fail_at` as `when` says.
fn faulty_root(s3: &S3Server, url: &str, fail_at: u64, when: When) -> (ObjectRoot, Arc<Faulty>) {
    let faulty = Arc::new(Faulty::new(s3.root(url).store(), fail_at, when));
    let root = ObjectRoot::with_store(
        Arc::clone(&faulty) as Arc<dyn ObjectStore>,
        url.trim_start_matches("s3://vdb/"),
        url,
        vdb_fs::os(),
    )
    .unwrap();
    (root, faulty)
}

/// An engine on `dir` whose collections live at `root`.
fn open_on(dir: &Path, root: ObjectRoot) -> vdb_engine::Result<Engine> {
    let options = EngineOptions {
        store: Some(Arc::new(root)),
        ..EngineOptions::default()
    };
    Engine::open_with(dir, options)
}

/// Runs the scenario on `dir` against `root` with collections of sync mode
/// `sync`, stopping at the first error.
fn scenario(dir: &Path, root: ObjectRoot, sync: SyncMode) -> Outcome {
    let mut out = Outcome::default();
    let Ok(engine) = open_on(dir, root) else {
        return out;
    };
    let config = CollectionConfig {
        nlist: 4,
        min_rows_per_list: 10,
        flush_rows: 1_000_000,
        sync,
        ..CollectionConfig::new(8)
    };
    let Ok(c) = engine.create_collection("docs", config) else {
        return out;
    };
    out.created = true;
    enum Step {
        Upsert(Range<u64>),
        Delete(Range<u64>),
        Flush,
        Retrain,
        Compact,
    }
    let steps = [
        Step::Upsert(0..30),
        Step::Flush,
        Step::Upsert(30..60),
        Step::Delete(0..5),
        Step::Flush,
        Step::Retrain,
        Step::Upsert(60..70),
        Step::Upsert(10..12),
        Step::Flush,
        Step::Compact,
        Step::Upsert(70..75),
    ];
    for step in steps {
        let ok = match step {
            Step::Upsert(ids) => {
                let ok = c.upsert(rows(ids.clone(), 8)).is_ok();
                let mut after = out.live.clone();
                after.extend(ids);
                if ok {
                    out.live = after;
                } else {
                    out.maybe = Some(after);
                }
                ok
            }
            Step::Delete(ids) => {
                let list: Vec<u64> = ids.clone().collect();
                let ok = c.delete(&list).is_ok();
                let mut after = out.live.clone();
                for id in ids {
                    after.remove(&id);
                }
                if ok {
                    out.live = after;
                } else {
                    out.maybe = Some(after);
                }
                ok
            }
            Step::Flush | Step::Retrain | Step::Compact => {
                let done = match step {
                    Step::Flush => c.flush(),
                    Step::Retrain => c.retrain(Some(4)),
                    _ => c.compact().map(|_| ()),
                };
                out.publications.push((out.live.clone(), done.is_ok()));
                done.is_ok()
            }
        };
        if !ok {
            return out;
        }
    }
    drop(c);
    let closed = engine.close().is_ok();
    out.publications.push((out.live.clone(), closed));
    out
}

/// The live rows of `docs` on an engine opened on `dir` with a healthy
/// store, each checked against what was written (`None` if it has no such
/// collection); the engine is closed, publishing what it replayed.
fn rows_on(dir: &Path, s3: &S3Server, url: &str) -> Option<BTreeSet<u64>> {
    let engine =
        open_on(dir, s3.root(url)).unwrap_or_else(|e| panic!("reopen {}: {e}", dir.display()));
    let live = rows_of(&engine, "docs");
    engine.close().unwrap();
    live
}

/// The live rows of collection `name` on `engine`, each checked against
/// what was written (`None` if it has no such collection).
fn rows_of(engine: &Engine, name: &str) -> Option<BTreeSet<u64>> {
    let c = engine.collection(name).ok()?;
    let mut live = BTreeSet::new();
    for id in 0..80 {
        if let Some(got) = c.get(id).unwrap() {
            assert_eq!(got, row(id, 8), "{name}: row {id} changed");
            live.insert(id);
        }
    }
    assert_eq!(c.stats().rows, live.len() as u64, "{name}");
    Some(live)
}

#[test]
fn no_failed_object_store_operation_loses_or_damages_anything() {
    run(SyncMode::Always);
}

/// With the log shipped as chunks, even a node lost after a failure has
/// lost nothing acknowledged.
#[test]
fn with_sync_object_no_failure_loses_an_acknowledged_write_even_with_the_node() {
    run(SyncMode::Object);
}

fn run(sync: SyncMode) {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let faulty = |url: &str, fail_at: u64, when: When| faulty_root(&s3, url, fail_at, when);

    // A clean run counts the operations.
    let dir = tempfile::tempdir().unwrap();
    let (root, counted) = faulty("s3://vdb/clean", u64::MAX, When::Before);
    let clean = scenario(dir.path(), root, sync);
    assert!(clean.publications.iter().all(|(_, ok)| *ok), "{clean:?}");
    assert!(clean.maybe.is_none(), "{clean:?}");
    let ops = counted.ops.load(Ordering::SeqCst);
    assert!(ops > 20, "only {ops} operations");

    let mut met = 0;
    for fail_at in 0..ops {
        for when in [When::Before, When::After] {
            let name = format!("{sync}: operation {fail_at} failing {when:?}");

            // The node recovers: what it acknowledged (and, shipped, maybe
            // the write refused with its outcome unknown), which its close
            // then publishes for any other node.
            let url = format!("s3://vdb/node-{fail_at}-{when:?}");
            let dir = tempfile::tempdir().unwrap();
            let (root, store) = faulty(&url, fail_at, when);
            let out = scenario(dir.path(), root, sync);
            let failed =
                !out.created || out.maybe.is_some() || out.publications.iter().any(|(_, ok)| !ok);
            if failed {
                met += 1;
            }
            // A creation the store made though its answer was lost is
            // recognised as made: nothing fails.
            if when == When::After && matches!(store.failed(), Some("put" | "put manifest")) {
                assert!(!failed, "{name}: {out:?}");
            }
            let recovered = rows_on(dir.path(), &s3, &url);
            match &recovered {
                Some(live) => assert!(
                    *live == out.live || Some(live) == out.maybe.as_ref(),
                    "{name}: {live:?} from {out:?}"
                ),
                // A create that failed may or may not have left an (empty)
                // collection in the store.
                None => assert!(!out.created, "{name}: {out:?}"),
            }
            let other = tempfile::tempdir().unwrap();
            let seen = rows_on(other.path(), &s3, &url);
            if out.created {
                assert_eq!(seen, recovered, "{name}: {out:?}");
            }

            // The node is lost instead. Shipped: nothing acknowledged is
            // lost. Otherwise: a state the writer published or was
            // publishing.
            let url = format!("s3://vdb/lost-{fail_at}-{when:?}");
            let dir = tempfile::tempdir().unwrap();
            let out = scenario(dir.path(), faulty(&url, fail_at, when).0, sync);
            drop(dir);
            let other = tempfile::tempdir().unwrap();
            match rows_on(other.path(), &s3, &url) {
                Some(seen) if sync == SyncMode::Object => assert!(
                    seen == out.live || Some(&seen) == out.maybe.as_ref(),
                    "{name}: {seen:?} from {out:?}"
                ),
                Some(seen) => {
                    let states = out.visible();
                    assert!(states.contains(&seen), "{name}: {seen:?} not in {states:?}");
                }
                None => assert!(!out.created, "{name}: {out:?}"),
            }
        }
    }
    // Failures reach the caller, except of best-effort steps (removing
    // replaced files and log chunks, pruning old manifests) and of
    // creations that the store did make.
    eprintln!(
        "{sync}: {ops} operations; {met} of {} runs failed a step",
        2 * ops
    );
    assert!(met >= ops / 2, "{met} of {} runs failed a step", 2 * ops);
}

/// A snapshot and its restore, with each of their object store operations
/// failing in turn (before, or after the store made a change): the source
/// keeps every row; the snapshot exists whole or not at all, and if not it
/// can be taken again; the restored collection holds the snapshot's rows
/// or does not exist, and if not it can be restored again.
#[test]
fn no_failed_object_store_operation_damages_a_snapshot_or_its_restore() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let want: BTreeSet<u64> = (0..40).collect();
    // The collection, written through a healthy store; the last rows only
    // in the shipped log.
    let prepare = |url: &str, dir: &Path| {
        let engine = open_on(dir, s3.root(url)).unwrap();
        let config = CollectionConfig {
            nlist: 2,
            min_rows_per_list: 10,
            flush_rows: 1_000_000,
            sync: SyncMode::Object,
            ..CollectionConfig::new(8)
        };
        let c = engine.create_collection("docs", config).unwrap();
        c.upsert(rows(0..30, 8)).unwrap();
        c.flush().unwrap();
        c.upsert(rows(30..40, 8)).unwrap();
        drop(c);
        // Dropped without close: nothing more is published.
        drop(engine);
    };
    let attempt = |url: &str, dir: &Path, fail_at: u64, when: When| {
        let (root, faulty) = faulty_root(&s3, url, fail_at, when);
        // Opening (claiming the collection) is counted too.
        if let Ok(engine) = open_on(dir, root) {
            let repo = engine.default_repository();
            if engine
                .create_snapshot("docs", repo.as_ref(), Some("s"))
                .is_ok()
            {
                let _ = engine.restore_snapshot(repo.as_ref(), "s", "back");
            }
        }
        faulty
    };

    let dir = tempfile::tempdir().unwrap();
    prepare("s3://vdb/snap-clean", dir.path());
    let counted = attempt("s3://vdb/snap-clean", dir.path(), u64::MAX, When::Before);
    let ops = counted.ops.load(Ordering::SeqCst);
    assert!(ops > 10, "only {ops} operations");
    for fail_at in 0..ops {
        for when in [When::Before, When::After] {
            let name = format!("operation {fail_at} failing {when:?}");
            let url = format!("s3://vdb/snap-{fail_at}-{when:?}");
            let dir = tempfile::tempdir().unwrap();
            prepare(&url, dir.path());
            let faulty = attempt(&url, dir.path(), fail_at, when);
            let what = format!("{name} ({:?})", faulty.failed());
            // Another node, healthy.
            let other = tempfile::tempdir().unwrap();
            let engine = open_on(other.path(), s3.root(&url))
                .unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
            assert_eq!(rows_of(&engine, "docs").as_ref(), Some(&want), "{what}");
            let repo = engine.default_repository();
            let listed = engine
                .list_snapshots(repo.as_ref())
                .unwrap_or_else(|e| panic!("{what}: list: {e}"));
            if listed.is_empty() {
                engine
                    .create_snapshot("docs", repo.as_ref(), Some("s"))
                    .unwrap_or_else(|e| panic!("{what}: snapshot again: {e}"));
            }
            match rows_of(&engine, "back") {
                Some(rows) => assert_eq!(rows, want, "{what}"),
                None => {
                    engine
                        .restore_snapshot(repo.as_ref(), "s", "back")
                        .unwrap_or_else(|e| panic!("{what}: restore again: {e}"));
                    assert_eq!(rows_of(&engine, "back").as_ref(), Some(&want), "{what}");
                }
            }
            engine.close().unwrap();
        }
    }
    eprintln!("snapshot and restore: {ops} operations");
}

/// A flush, compaction or training that an object store fails before
/// its manifest is published changes nothing: the collection keeps its
/// rows and its writes, and the task succeeds when tried again — no
/// reopen. A failure while publishing the manifest (its outcome unknown)
/// stops the collection instead, and a reopen has every row.
#[test]
fn maintenance_that_fails_before_publishing_is_tried_again() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    for task in ["flush", "compact", "retrain"] {
        let mut ops = None;
        let mut k = 0;
        let (mut retried, mut stopped) = (0, 0);
        while ops.is_none_or(|n| k < n) {
            let counting = ops.is_none();
            for when in [When::Before, When::After] {
                let url = match counting {
                    true => format!("s3://vdb/retry-{task}-clean"),
                    false => format!("s3://vdb/retry-{task}-{k}-{when:?}"),
                };
                let (root, faulty) = faulty_root(&s3, &url, u64::MAX, when);
                let dir = tempfile::tempdir().unwrap();
                let engine = open_on(dir.path(), root).unwrap();
                let config = CollectionConfig {
                    nlist: 2,
                    min_rows_per_list: 10,
                    flush_rows: 1_000_000,
                    ..CollectionConfig::new(8)
                };
                let c = engine.create_collection("docs", config).unwrap();
                c.upsert(rows(0..40, 8)).unwrap();
                c.flush().unwrap();
                c.upsert(rows(40..60, 8)).unwrap();
                c.delete(&[0, 1, 2]).unwrap();
                let mut live: BTreeSet<u64> = (3..60).collect();
                let run = |c: &vdb_engine::Collection| match task {
                    "flush" => c.flush(),
                    "compact" => c.compact().map(|_| ()),
                    _ => c.retrain(Some(3)),
                };
                let before = faulty.ops.load(Ordering::SeqCst);
                if ops.is_none() {
                    // The clean run counts the task's operations.
                    run(&c).unwrap();
                    ops = Some(faulty.ops.load(Ordering::SeqCst) - before);
                    break;
                }
                faulty.arm(k);
                let what = format!("{task}, operation {k} failing {when:?}");
                let result = run(&c);
                let failed = faulty.failed();
                match (&result, failed) {
                    (Err(e), Some("put manifest")) => {
                        // The commit point: stopped, not retried.
                        assert!(
                            matches!(e, vdb_engine::Error::Poisoned { .. }),
                            "{what}: {e}"
                        );
                        assert!(c.upsert(rows(60..61, 8)).is_err(), "{what}");
                        stopped += 1;
                    }
                    (Err(e), _) => {
                        assert!(
                            !matches!(e, vdb_engine::Error::Poisoned { .. }),
                            "{what}: {e}"
                        );
                        // Nothing changed: reads and writes go on, the task
                        // succeeds when tried again.
                        assert_eq!(c.stats().rows, live.len() as u64, "{what}");
                        c.upsert(rows(60..70, 8)).unwrap();
                        live.extend(60..70);
                        run(&c).unwrap_or_else(|e| panic!("{what}, again: {e}"));
                        retried += 1;
                    }
                    (Ok(()), _) => {}
                }
                for id in 0..70 {
                    let got = c.get(id).unwrap();
                    assert_eq!(got.is_some(), live.contains(&id), "{what}: row {id}");
                }
                drop(c);
                let _ = engine.close();
                // Another node, healthy, finds every acknowledged row.
                let other = tempfile::tempdir().unwrap();
                let engine = open_on(other.path(), s3.root(&url)).unwrap();
                let seen = rows_of(&engine, "docs").unwrap();
                // With the local log, a stopped collection's unflushed rows
                // are on its node only.
                if failed != Some("put manifest") || result.is_ok() {
                    assert_eq!(seen, live, "{what}");
                }
                engine.close().unwrap();
            }
            if !counting {
                k += 1;
            }
        }
        eprintln!("{task}: {ops:?} operations; {retried} failures retried, {stopped} stopped");
        assert!(retried > 0, "{task}: no failure was retried");
    }
}

/// A part of a large file failing fails its upload (parts go up several at
/// once): nothing of it is stored, the flush is tried again and succeeds,
/// and another node reads the file whole.
#[test]
fn a_failed_part_fails_the_upload_and_the_flush_is_tried_again() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    // 9,000 rows of 1,024 components: a segment of two parts of 32 MiB.
    let dim = 1024;
    for part in [0, 1] {
        let url = format!("s3://vdb/part-{part}");
        let (root, faulty) = faulty_root(&s3, &url, u64::MAX, When::Before);
        faulty.fail_part.store(part, Ordering::SeqCst);
        let dir = tempfile::tempdir().unwrap();
        let engine = open_on(dir.path(), root).unwrap();
        let c = engine
            .create_collection("big", CollectionConfig::new(dim))
            .unwrap();
        for start in (0..9000).step_by(1000) {
            c.upsert(rows(start..start + 1000, dim)).unwrap();
        }
        let e = c.flush().unwrap_err();
        assert!(e.to_string().contains("put_part"), "part {part}: {e}");
        let stored = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(
                faulty
                    .inner
                    .list(Some(&ObjectPath::from(format!("part-{part}"))))
                    .collect::<Vec<_>>(),
            );
        assert!(
            !stored.iter().any(|o| o
                .as_ref()
                .is_ok_and(|m| m.location.as_ref().ends_with(".seg"))),
            "part {part}: a segment was stored: {stored:?}"
        );
        faulty.fail_part.store(u64::MAX, Ordering::SeqCst);
        c.flush().unwrap();
        drop(c);
        engine.close().unwrap();

        let other = tempfile::tempdir().unwrap();
        let engine = open_on(other.path(), s3.root(&url)).unwrap();
        let c = engine.collection("big").unwrap();
        assert_eq!(c.stats().rows, 9000, "part {part}");
        assert_eq!(c.get(8999).unwrap(), Some(rows(8999..9000, dim).remove(0)));
        drop(c);
        engine.close().unwrap();
    }
}

/// A node with a small cache reading a collection it did not write, with
/// each object store operation of its open and its searches failing in
/// turn: the failure fails that open or that search (naming the object),
/// never answers wrongly, and leaves nothing behind — once the store is
/// healthy every search and get answers as the writer did.
#[test]
fn a_failed_fetch_fails_only_its_read_and_leaves_no_hole_behind() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let url = "s3://vdb/cache-faults";
    let dim = 16;
    let writer_dir = tempfile::tempdir().unwrap();
    let writer = open_on(writer_dir.path(), s3.root(url)).unwrap();
    let config = CollectionConfig {
        nlist: 16,
        min_rows_per_list: 10,
        flush_rows: 1_000_000,
        ..CollectionConfig::new(dim)
    };
    let c = writer.create_collection("docs", config).unwrap();
    c.upsert(rows(0..12_000, dim)).unwrap();
    c.flush().unwrap();
    c.retrain(None).unwrap();
    c.upsert(rows(12_000..15_000, dim)).unwrap();
    c.flush().unwrap();
    let queries: Vec<Vec<f32>> = rows(90_000..90_012, dim)
        .into_iter()
        .map(|r| r.vector)
        .collect();
    let opts = vdb_engine::SearchOptions {
        k: 5,
        nprobe: Some(3),
        with_payload: true,
        with_vectors: true,
        ..Default::default()
    };
    let want = c.search(&queries, opts.clone()).unwrap();
    let gets: Vec<u64> = (0..15_000).step_by(997).collect();
    let want_rows: Vec<_> = gets.iter().map(|&id| c.get(id).unwrap()).collect();
    drop(c);
    writer.close().unwrap();

    // Open, then each query alone and each get: what may fail.
    let reads = |engine: &Engine| -> Vec<bool> {
        let c = engine.collection("docs").unwrap();
        let mut ok = Vec::new();
        for (q, want) in queries.iter().zip(&want) {
            match c.search(std::slice::from_ref(q), opts.clone()) {
                Ok(got) => {
                    assert!(got[0] == *want, "a search answered wrongly");
                    ok.push(true);
                }
                Err(e) => {
                    assert!(e.to_string().contains("s3://vdb/cache-faults"), "{e}");
                    ok.push(false);
                }
            }
        }
        for (&id, want) in gets.iter().zip(&want_rows) {
            match c.get(id) {
                Ok(got) => {
                    assert_eq!(&got, want, "get {id}");
                    ok.push(true);
                }
                Err(e) => {
                    assert!(e.to_string().contains("s3://vdb/cache-faults"), "{e}");
                    ok.push(false);
                }
            }
        }
        ok
    };
    let mut ops = None;
    let mut k = 0;
    let mut failed_reads = 0;
    while ops.is_none_or(|n| k < n) {
        let (root, faulty) = faulty_root(&s3, url, u64::MAX, When::Before);
        // A quarter of the vectors: searches evict what others fetched.
        root.set_cache_bytes(Some(256 << 10));
        let dir = tempfile::tempdir().unwrap();
        if ops.is_some() {
            faulty.arm(k);
        }
        let engine = match open_on(dir.path(), root.clone()) {
            Ok(e) => e,
            Err(e) => {
                assert!(faulty.failed().is_some(), "open failed unprompted: {e}");
                // The same root, healthy again (the failure was one-shot).
                open_on(dir.path(), root.clone()).unwrap()
            }
        };
        let first = reads(&engine);
        if ops.is_none() {
            assert!(first.iter().all(|&ok| ok));
            ops = Some(faulty.ops.load(Ordering::SeqCst));
            assert!(root.cache_usage().evicted_bytes > 0);
            continue;
        }
        failed_reads += first.iter().filter(|&&ok| !ok).count();
        // Healthy now: everything answers as the writer did.
        assert!(reads(&engine).iter().all(|&ok| ok), "operation {k}");
        engine.close().unwrap();
        k += 1;
    }
    assert!(failed_reads > 0, "no read ever failed: the faults missed");
    eprintln!(
        "{} operations failed in turn, {failed_reads} reads failed",
        ops.unwrap_or(0)
    );
}
