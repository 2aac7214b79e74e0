//! Collections on S3-compatible object storage (AWS S3, MinIO, Ceph RGW,
//! Garage, R2, …) through the `object_store` crate: a [`vdb_fs::Store`]
//! whose collections keep their immutable files and manifests as objects
//! under one prefix, with the node's data directory as their local cache
//! (and, for now, their log).
//!
//! Objects, under `PREFIX/collections/<name>/` (`docs/format.md`):
//!
//! - `files/<file>`: segment, centroid and delete files, uploaded when
//!   written — before the manifest that names them is published — and
//!   never replaced (created with `If-None-Match: *`);
//! - `manifest/<version:020>`: the manifests, each version created once
//!   with `If-None-Match: *`. The highest version is the collection's
//!   state; publishing version `v + 1` fails if any other writer published
//!   it first, which fences the slower writer ([`vdb_fs::Fenced`]).
//!
//! The engine works through `vdb-fs`'s synchronous traits; this crate runs
//! the `object_store` futures on a small runtime of its own and waits for
//! them, so it can be called from any thread.

mod cache;
mod directory;
mod partial;
mod repository;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};
use vdb_fs::{Directory, FsRef, Store};

pub use cache::CacheUsage;
pub use directory::ObjectDirectory;
pub use repository::ObjectRepository;

/// What can go wrong setting a store up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not `s3://BUCKET[/PREFIX]`.
    #[error("object store URL {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option name the S3 client does not know.
    #[error("object store option {key:?}: {source}")]
    Option {
        /// The option.
        key: String,
        /// Why it was refused.
        #[source]
        source: object_store::Error,
    },
    /// An option's value is not what it takes.
    #[error("object store option {key:?}: {value:?} is not {expected}")]
    Value {
        /// The option.
        key: String,
        /// The value given.
        value: String,
        /// What it takes.
        expected: String,
    },
    /// The client could not be built (e.g. no region or bucket).
    #[error("object store {url}: {source}")]
    Client {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: object_store::Error,
    },
    /// The runtime that drives the client could not start.
    #[error("start the object store runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Parts of one large file uploaded at once, unless set otherwise.
const DEFAULT_PARTS_IN_FLIGHT: usize = 4;

/// A bucket and prefix on an S3-compatible store, holding collections.
#[derive(Clone)]
pub struct ObjectRoot {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// `PREFIX` (may be empty).
    pub(crate) prefix: ObjectPath,
    /// `s3://BUCKET[/PREFIX]`, for messages.
    pub(crate) url: String,
    pub(crate) fs: FsRef,
    /// Parts of one file uploaded at once.
    pub(crate) parts_in_flight: usize,
    /// The byte ranges of segments cached on this node.
    pub(crate) cache: Arc<cache::Cache>,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle may go on an async thread (a server's task),
        // where dropping a runtime the usual way (waiting for its threads)
        // panics.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl fmt::Debug for ObjectRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectRoot")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ObjectRoot {
    /// The store at `url` (`s3://BUCKET[/PREFIX]`). Endpoint, region and
    /// credentials come from the standard `AWS_*` environment variables
    /// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, …), then from `options`
    /// (`object_store`'s S3 option names, e.g. `endpoint`, `region`,
    /// `allow_http`), which win. Three options are vdb's own: `max_retries`
    /// (default 10) and `retry_timeout_secs` (default 60), how often and
    /// how long a failing request (a timeout, a 5xx, a refused connection)
    /// is retried, with backoff, before the operation fails;
    /// `upload_parts_in_flight` (default 4), how many 32 MiB parts of a
    /// large file are uploaded at once; and `cache_bytes` (default
    /// unbounded), [`ObjectRoot::set_cache_bytes`].
    pub fn from_url(url: &str, options: &[(String, String)]) -> Result<ObjectRoot, Error> {
        let bad = |reason: &str| Error::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected s3://BUCKET[/PREFIX]"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        // The S3 client's TLS uses the process's default rustls provider:
        // ring, unless the program installed one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let mut parts_in_flight = DEFAULT_PARTS_IN_FLIGHT;
        let mut cache_bytes = None;
        let mut retry = RetryConfig {
            max_retries: 10,
            retry_timeout: Duration::from_secs(60),
            ..RetryConfig::default()
        };
        for (key, value) in options {
            let number = |what: &str| {
                value.parse::<u64>().map_err(|_| Error::Value {
                    key: key.clone(),
                    value: value.clone(),
                    expected: what.to_string(),
                })
            };
            match key.as_str() {
                "max_retries" => {
                    retry.max_retries = usize::try_from(number("a count")?).unwrap_or(usize::MAX);
                }
                "cache_bytes" => cache_bytes = Some(number("a count of bytes")?),
                "retry_timeout_secs" => {
                    retry.retry_timeout = Duration::from_secs(number("seconds")?);
                }
                "upload_parts_in_flight" => {
                    let n = number("a count of at least 1")?;
                    if n == 0 {
                        return Err(Error::Value {
                            key: key.clone(),
                            value: value.clone(),
                            expected: "a count of at least 1".into(),
                        });
                    }
                    parts_in_flight = usize::try_from(n).unwrap_or(usize::MAX);
                }
                _ => {
                    let k: AmazonS3ConfigKey = key.parse().map_err(|source| Error::Option {
                        key: key.clone(),
                        source,
                    })?;
                    builder = builder.with_config(k, value);
                }
            }
        }
        builder = builder.with_retry(retry);
        let store = builder.build().map_err(|source| Error::Client {
            url: url.to_string(),
            source,
        })?;
        let mut root = ObjectRoot::with_store(Arc::new(store), prefix, url, vdb_fs::os())?;
        if let Some(inner) = Arc::get_mut(&mut root.inner) {
            inner.parts_in_flight = parts_in_flight;
        }
        root.set_cache_bytes(cache_bytes);
        Ok(root)
    }

    /// A root over any `object_store` store (another backend, or one
    /// wrapped to inject faults), under `prefix`; `url` names it in
    /// messages, and the local cache is changed through `fs`.
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        url: &str,
        fs: FsRef,
    ) -> Result<ObjectRoot, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vdb-objstore")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        Ok(ObjectRoot {
            inner: Arc::new(Inner {
                store,
                prefix: ObjectPath::from(prefix.trim_matches('/')),
                url: url.trim_end_matches('/').to_string(),
                fs,
                parts_in_flight: DEFAULT_PARTS_IN_FLIGHT,
                cache: Arc::new(cache::Cache::new()),
                runtime: Some(runtime),
            }),
        })
    }

    /// Bounds the bytes of segments cached in part on this node (`None`:
    /// unbounded, the default); blocks no reader holds are given back
    /// past it, roughly least recently used first (a clock sweep).
    pub fn set_cache_bytes(&self, limit: Option<u64>) {
        self.inner.cache.set_limit(limit);
    }

    /// How full the node's cache is, and what it has fetched and evicted.
    pub fn cache_usage(&self) -> CacheUsage {
        self.inner.cache.usage()
    }

    /// The `object_store` client it works through.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner.store)
    }

    /// `s3://BUCKET[/PREFIX]`.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    fn collections_path(&self) -> ObjectPath {
        self.inner.prefix.clone().join("collections")
    }

    /// A snapshot repository at `url` (`s3://BUCKET[/PREFIX]`), reached
    /// like [`ObjectRoot::from_url`] with `options`.
    pub fn repository_at(
        url: &str,
        options: &[(String, String)],
    ) -> Result<ObjectRepository, Error> {
        let root = ObjectRoot::from_url(url, options)?;
        let prefix = root.inner.prefix.clone();
        Ok(ObjectRepository::new(root.inner, prefix))
    }
}

impl Inner {
    /// Runs `f` on this crate's runtime and waits for it: callable from
    /// any thread, async ones included (it blocks that thread meanwhile).
    pub(crate) fn block<F>(&self, f: F) -> std::io::Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let Some(rt) = &self.runtime else {
            return Err(std::io::Error::other("the object store runtime stopped"));
        };
        rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv()
            .map_err(|_| std::io::Error::other("the object store runtime stopped"))
    }

    /// [`Inner::block`] for an `object_store` call: `op` on object `path`,
    /// with its failure as a `vdb_fs` error naming the object.
    pub(crate) fn run<T, F>(&self, op: &'static str, path: &ObjectPath, f: F) -> vdb_fs::Result<T>
    where
        F: Future<Output = object_store::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.block(f)
            .map_err(|e| vdb_fs::Error::new(op, &self.url_of(path), e))?
            .map_err(|e| self.error(op, path, e))
    }

    /// The objects under `at`.
    pub(crate) fn list(&self, at: &ObjectPath) -> vdb_fs::Result<Vec<ObjectPath>> {
        let store = Arc::clone(&self.store);
        let from = at.clone();
        self.run(
            "list",
            at,
            async move { list_all(store.as_ref(), &from).await },
        )
    }

    /// The bucket.
    pub(crate) fn bucket(&self) -> &str {
        let base = self.url.split_once("://").map_or("", |(_, r)| r);
        base.split('/').next().unwrap_or(base)
    }

    /// The URL of object `path`, for messages.
    pub(crate) fn url_of(&self, path: &ObjectPath) -> PathBuf {
        PathBuf::from(format!("s3://{}/{path}", self.bucket()))
    }

    /// An `object_store` error as a `vdb_fs` one: `op` on object `path`.
    pub(crate) fn error(
        &self,
        op: &'static str,
        path: &ObjectPath,
        e: object_store::Error,
    ) -> vdb_fs::Error {
        use object_store::Error as E;
        let kind = match &e {
            E::NotFound { .. } => std::io::ErrorKind::NotFound,
            E::AlreadyExists { .. } | E::Precondition { .. } => std::io::ErrorKind::AlreadyExists,
            _ => std::io::ErrorKind::Other,
        };
        vdb_fs::Error::new(op, &self.url_of(path), std::io::Error::new(kind, e))
    }
}

impl Inner {
    /// The length of object `at`, `None` if there is none (`op` names
    /// the check in errors).
    pub(crate) fn size(&self, op: &'static str, at: &ObjectPath) -> vdb_fs::Result<Option<u64>> {
        let store = Arc::clone(&self.store);
        let object = at.clone();
        self.run(op, at, async move {
            Ok(head(store.as_ref(), &object).await?.map(|m| m.size))
        })
    }

    /// Deletes object `at`; one that is not there is not an error.
    pub(crate) fn delete(&self, at: &ObjectPath) -> vdb_fs::Result<()> {
        let store = Arc::clone(&self.store);
        let object = at.clone();
        self.run("remove", at, async move {
            delete(store.as_ref(), &object).await
        })
    }
}

/// What the store knows of object `at`, `None` if there is none.
pub(crate) async fn head(
    store: &dyn ObjectStore,
    at: &ObjectPath,
) -> object_store::Result<Option<object_store::ObjectMeta>> {
    match store.head(at).await {
        Ok(meta) => Ok(Some(meta)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes object `at`; one that is not there is not an error.
pub(crate) async fn delete(store: &dyn ObjectStore, at: &ObjectPath) -> object_store::Result<()> {
    match store.delete(at).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every object under `at`, as listed.
pub(crate) async fn list_all(
    store: &dyn ObjectStore,
    at: &ObjectPath,
) -> object_store::Result<Vec<ObjectPath>> {
    let mut out = Vec::new();
    let mut objects = store.list(Some(at));
    while let Some(meta) = objects.next().await {
        out.push(meta?.location);
    }
    Ok(out)
}

impl Store for ObjectRoot {
    fn collections(&self) -> vdb_fs::Result<Vec<String>> {
        let base = self.collections_path();
        let store = Arc::clone(&self.inner.store);
        let at = base.clone();
        let listed = self.inner.run("list", &base, async move {
            store.list_with_delimiter(Some(&at)).await
        })?;
        let mut names = Vec::new();
        for p in listed.common_prefixes {
            let Some(name) = p.filename().map(str::to_string) else {
                continue;
            };
            // A collection exists once its first manifest is published.
            let manifests = p.clone().join("manifest");
            let store = Arc::clone(&self.inner.store);
            let at = manifests.clone();
            let any = self.inner.run("list", &manifests, async move {
                store.list(Some(&at)).next().await.transpose()
            })?;
            if any.is_some() {
                names.push(name);
            }
        }
        names.sort_unstable();
        Ok(names)
    }

    fn directory(&self, name: &str, local: &Path) -> vdb_fs::Result<Arc<dyn Directory>> {
        Ok(Arc::new(ObjectDirectory::new(
            Arc::clone(&self.inner),
            self.collections_path().join(name),
            local,
        )))
    }

    /// Deletes the manifests first, oldest first: until the latest goes
    /// the collection is intact, and once it has gone the collection no
    /// longer exists. The log chunks and files follow; files an
    /// interruption leaves behind are removed when a collection of that
    /// name is created again.
    fn remove(&self, name: &str) -> vdb_fs::Result<()> {
        let base = self.collections_path().join(name);
        for dir in ["manifest", "wal", "files"] {
            let at = base.clone().join(dir);
            let store = Arc::clone(&self.inner.store);
            let from = at.clone();
            self.inner.run("remove", &at, async move {
                let mut names = list_all(store.as_ref(), &from).await?;
                // Manifest versions are zero-padded: by name is by age.
                names.sort();
                for name in names {
                    delete(store.as_ref(), &name).await?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn location(&self) -> String {
        self.inner.url.clone()
    }

    fn repository(&self) -> Arc<dyn vdb_fs::Repository> {
        Arc::new(ObjectRepository::new(
            Arc::clone(&self.inner),
            self.inner.prefix.clone().join("snapshots"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str, options: &[(&str, &str)]) -> String {
        let options: Vec<(String, String)> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match ObjectRoot::from_url(url, &options) {
            Ok(root) => panic!("{url} {options:?} was accepted: {root:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_urls_and_options_are_refused_by_name() {
        assert!(refused("http://bucket/p", &[]).contains("expected s3://BUCKET"));
        assert!(refused("s3:///p", &[]).contains("no bucket"));
        let region = [("region", "us-east-1")];
        let e = refused(
            "s3://bucket",
            &[("region", "us-east-1"), ("no_such_key", "1")],
        );
        assert!(e.contains("no_such_key"), "{e}");
        let e = refused("s3://bucket", &[region[0], ("max_retries", "many")]);
        assert!(e.contains("max_retries") && e.contains("a count"), "{e}");
        let e = refused("s3://bucket", &[region[0], ("retry_timeout_secs", "-1")]);
        assert!(e.contains("retry_timeout_secs"), "{e}");
        let e = refused("s3://bucket", &[region[0], ("upload_parts_in_flight", "0")]);
        assert!(
            e.contains("upload_parts_in_flight") && e.contains("at least 1"),
            "{e}"
        );
    }

    #[test]
    fn a_root_can_be_dropped_on_an_async_thread() {
        // A server's task may hold the last handle; dropping a runtime
        // there the usual way panics.
        let opts = [("region".to_string(), "us-east-1".to_string())];
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(async {
            let root = ObjectRoot::from_url("s3://bucket", &opts).unwrap_or_else(|e| panic!("{e}"));
            drop(root);
        });
    }

    #[test]
    fn prefixes_and_object_urls() {
        let opts = [("region".to_string(), "us-east-1".to_string())];
        let root =
            ObjectRoot::from_url("s3://bucket/a/b/", &opts).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(root.url(), "s3://bucket/a/b");
        assert_eq!(root.location(), "s3://bucket/a/b");
        assert_eq!(root.collections_path().as_ref(), "a/b/collections");
        let at = root.collections_path().join("c").join("manifest");
        assert_eq!(
            root.inner.url_of(&at),
            PathBuf::from("s3://bucket/a/b/collections/c/manifest")
        );
        let bare = ObjectRoot::from_url("s3://bucket", &opts).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bare.collections_path().as_ref(), "collections");
    }
}
