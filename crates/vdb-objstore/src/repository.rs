//! A snapshot repository under a prefix of a bucket.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use vdb_fs::{Directory, Repository};

use crate::Inner;
use crate::directory::create_small;

/// Blobs under `ROOT/<key>` in a bucket. A collection's file in the same
/// bucket is copied by the store (no bytes through the node); any other is
/// uploaded from, or downloaded into, the node.
#[derive(Debug, Clone)]
pub struct ObjectRepository {
    inner: Arc<Inner>,
    root: ObjectPath,
}

impl ObjectRepository {
    pub(crate) fn new(inner: Arc<Inner>, root: ObjectPath) -> ObjectRepository {
        ObjectRepository { inner, root }
    }

    fn key(&self, key: &str) -> ObjectPath {
        key.split('/')
            .fold(self.root.clone(), |path, part| path.join(part))
    }

    /// The object `url` names, if it is in this repository's bucket.
    fn in_bucket(&self, url: &str) -> Option<ObjectPath> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/')?;
        (bucket == self.inner.bucket()).then(|| ObjectPath::from(key))
    }

    /// Copies object `from` to `to` within the bucket.
    fn copy(&self, from: ObjectPath, to: &ObjectPath) -> vdb_fs::Result<()> {
        let store = Arc::clone(&self.inner.store);
        let at = to.clone();
        self.inner
            .run("copy", to, async move { store.copy(&from, &at).await })
    }

    fn refuse_existing(&self, at: &ObjectPath) -> vdb_fs::Result<()> {
        if self.inner.size("check", at)?.is_some() {
            return Err(vdb_fs::Error::new(
                "create",
                &self.inner.url_of(at),
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it exists"),
            ));
        }
        Ok(())
    }
}

impl Repository for ObjectRepository {
    fn location(&self) -> String {
        self.inner.url_of(&self.root).display().to_string()
    }

    fn size(&self, key: &str) -> vdb_fs::Result<Option<u64>> {
        self.inner.size("check", &self.key(key))
    }

    fn put_file(&self, key: &str, from: &dyn Directory, name: &str) -> vdb_fs::Result<()> {
        let to = self.key(key);
        self.refuse_existing(&to)?;
        match from.object(name).and_then(|url| self.in_bucket(&url)) {
            Some(source) => self.copy(source, &to),
            None => self.inner.upload(&from.fetch(name)?, &to),
        }
    }

    fn get_file(&self, key: &str, into: &dyn Directory, name: &str) -> vdb_fs::Result<()> {
        let from = self.key(key);
        match into.object(name).and_then(|url| self.in_bucket(&url)) {
            Some(to) => self.copy(from, &to),
            None => {
                let mut file = into.create(name)?;
                self.inner.download(&from, file.as_mut())?;
                file.commit()
            }
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> vdb_fs::Result<()> {
        let at = self.key(key);
        let store = Arc::clone(&self.inner.store);
        let object = at.clone();
        let bytes = Bytes::from(bytes.to_vec());
        self.inner.run("create", &at, async move {
            create_small(store.as_ref(), &object, bytes).await
        })
    }

    fn get(&self, key: &str) -> vdb_fs::Result<Vec<u8>> {
        let at = self.key(key);
        let store = Arc::clone(&self.inner.store);
        let object = at.clone();
        let bytes = self.inner.run("read", &at, async move {
            store.get(&object).await?.bytes().await
        })?;
        Ok(bytes.to_vec())
    }

    fn list(&self, dir: &str) -> vdb_fs::Result<Vec<String>> {
        let at = if dir.is_empty() {
            self.root.clone()
        } else {
            self.key(dir)
        };
        let store = Arc::clone(&self.inner.store);
        let from = at.clone();
        let listed = self.inner.run("list", &at, async move {
            store.list_with_delimiter(Some(&from)).await
        })?;
        let mut names: Vec<String> = listed
            .objects
            .iter()
            .filter_map(|o| o.location.filename().map(str::to_string))
            .collect();
        names.sort_unstable();
        Ok(names)
    }

    fn remove(&self, keys: &[&str]) -> vdb_fs::Result<()> {
        for key in keys {
            self.inner.delete(&self.key(key))?;
        }
        Ok(())
    }
}
