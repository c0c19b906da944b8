//! Blocks in object storage (`storage.object_store`, any S3-compatible
//! server through the `object_store` crate). Flush and compaction still
//! write a block to the data directory first; it is then uploaded under a
//! key never used before, recorded in the database's manifest
//! (`blocks.remote`) and only then made visible, after which the local copy
//! goes. Reads fetch a block's index once, when it is opened, and then only
//! the byte ranges of the chunks a query needs, through a bounded cache.
//! The WAL, the head, the catalog and the manifest stay local. Layout and
//! operation: `docs/storage.md`.

pub(crate) mod manifest;
mod prefetch;

pub(crate) use prefetch::BlockRanges;
pub use prefetch::Prefetch;

use crate::block::cache::ChunkCache;
use crate::error::{Error, Result};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ClientConfigKey;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Blocks at least this large go up in parts (S3 takes at most 5 GiB in
/// one PUT, and a failed part is retried alone).
const MULTIPART_BYTES: usize = 16 << 20;
/// Size of one part of a multipart upload.
const PART_BYTES: usize = 8 << 20;

/// One bucket and prefix holding the blocks of every database, each under
/// `<prefix>/<database>/`.
#[derive(Debug, Clone)]
pub struct RemoteStore {
    shared: Arc<Shared>,
    /// `<prefix>/<database>` once [`RemoteStore::database`] chose one.
    prefix: ObjectPath,
    /// The path below the store's URL (`<group>/<database>`), for
    /// [`RemoteStore::location`]; empty at the root.
    below: String,
    /// Blocks this large or larger go up in parts.
    multipart_bytes: usize,
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn ObjectStore>,
    /// The URL it was opened from, for messages and the manifest.
    url: String,
    /// Object-store I/O runs here, so storage threads can wait for it
    /// whatever runtime (if any) they belong to. Always `Some` until
    /// dropped.
    runtime: Option<tokio::runtime::Runtime>,
    /// Bytes of chunks fetched, by (block uid, offset).
    cache: ChunkCache<Bytes>,
    fetched: AtomicU64,
    /// Bytes of the chunks queries asked for, from the cache or not: what
    /// `fetched` is measured against.
    chunk_bytes: AtomicU64,
}

impl Shared {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        if let Some(rt) = &self.runtime {
            rt.spawn(task);
        }
    }
}

impl Drop for Shared {
    /// The last holder may be a block released on an async worker, where
    /// a blocking shutdown is not allowed. Deletes still pending are
    /// dropped: their objects are swept at the next start.
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl RemoteStore {
    /// Opens `url` (`s3://bucket/prefix` or `file:///dir`). S3 settings
    /// come from the usual `AWS_*` variables (`AWS_ENDPOINT_URL`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ALLOW_HTTP`), then from `options` (the same names in lower
    /// case, as `[storage.object_store_options]` holds them).
    /// `cache_bytes` bounds the fetched-chunk cache.
    pub fn open(url: &str, options: &BTreeMap<String, String>, cache_bytes: usize) -> Result<Self> {
        let bad = |reason: String| Error::ObjectStoreConfig {
            reason: format!("storage.object_store {url:?}: {reason}"),
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let (store, prefix): (Arc<dyn ObjectStore>, ObjectPath) = match parsed.scheme() {
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| bad("no bucket".into()))?;
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry())
                    .with_config(
                        AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                        "5s",
                    )
                    .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "60s");
                for (key, value) in options {
                    let key: AmazonS3ConfigKey = key
                        .parse()
                        .map_err(|_| bad(format!("unknown option {key:?}")))?;
                    builder = builder.with_config(key, value);
                }
                let store = builder.build().map_err(|e| bad(e.to_string()))?;
                (Arc::new(store), ObjectPath::from(parsed.path()))
            }
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| bad("not a local path".into()))?;
                std::fs::create_dir_all(&dir).map_err(|e| bad(e.to_string()))?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(store), ObjectPath::default())
            }
            other => return Err(bad(format!("unsupported scheme {other:?} (s3 or file)"))),
        };
        Self::with_store(store, prefix, url, cache_bytes)
    }

    /// Blocks in `store` under `prefix` (tests wrap a store to inject
    /// faults).
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        url: &str,
        cache_bytes: usize,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sundial-object-store")
            .enable_all()
            .build()
            .map_err(|e| Error::ObjectStoreConfig {
                reason: format!("cannot start the object-store runtime: {e}"),
            })?;
        Ok(Self {
            shared: Arc::new(Shared {
                store,
                url: url.trim_end_matches('/').to_owned(),
                runtime: Some(runtime),
                cache: ChunkCache::new(cache_bytes),
                fetched: AtomicU64::new(0),
                chunk_bytes: AtomicU64::new(0),
            }),
            prefix,
            below: String::new(),
            multipart_bytes: MULTIPART_BYTES,
        })
    }

    /// Uploads of `bytes` or more go in parts (tests lower it).
    #[cfg(test)]
    pub(crate) fn with_multipart_bytes(mut self, bytes: usize) -> Self {
        self.multipart_bytes = bytes;
        self
    }

    /// The same store under `prefix/name` (a database's blocks, a
    /// backup's parts).
    pub fn database(&self, name: &str) -> Self {
        self.below(name)
    }

    /// The same store under `prefix/group`, whose databases are then
    /// `prefix/group/<database>` (a cluster keeps each shard's databases
    /// in a group of their own). The cache is shared.
    pub fn group(&self, group: &str) -> Self {
        self.below(group)
    }

    fn below(&self, name: &str) -> Self {
        Self {
            shared: self.shared.clone(),
            prefix: self.prefix.clone().join(name),
            below: if self.below.is_empty() {
                name.to_owned()
            } else {
                format!("{}/{name}", self.below)
            },
            multipart_bytes: self.multipart_bytes,
        }
    }

    /// Where this database's blocks live, as a URL.
    pub fn location(&self) -> String {
        if self.below.is_empty() {
            self.shared.url.clone()
        } else {
            format!("{}/{}", self.shared.url, self.below)
        }
    }

    /// Bytes fetched from the store so far (chunks and indexes).
    pub fn fetched_bytes(&self) -> u64 {
        self.shared.fetched.load(Ordering::Relaxed)
    }

    /// Lookups of fetched chunks the cache answered and did not.
    pub fn cache_counts(&self) -> crate::block::cache::CacheCounts {
        self.shared.cache.counts()
    }

    /// Bytes of the chunks queries have read so far, cached or fetched.
    pub fn chunk_bytes_read(&self) -> u64 {
        self.shared.chunk_bytes.load(Ordering::Relaxed)
    }

    fn path(&self, key: &str) -> ObjectPath {
        self.prefix.clone().join(key)
    }

    /// Where `key` of this database is in the store.
    #[cfg(test)]
    pub(crate) fn object_path(&self, key: &str) -> ObjectPath {
        self.path(key)
    }

    /// The store itself (tests wrap it).
    #[cfg(test)]
    pub(crate) fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.shared.store.clone()
    }

    /// Runs `fut` on the store's runtime and waits for it.
    fn wait<T: Send + 'static>(
        &self,
        fut: impl Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> object_store::Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.shared.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(object_store::Error::Generic {
                store: "sundial",
                source: "the object-store runtime stopped".into(),
            })
        })
    }

    fn error(&self, op: &'static str, key: &str, source: object_store::Error) -> Error {
        Error::ObjectStore {
            op,
            key: format!("{}/{key}", self.location()),
            source: Box::new(source),
        }
    }

    /// Uploads `bytes` as `key` in one request.
    pub fn upload(&self, key: &str, bytes: Bytes) -> Result<()> {
        let store = self.shared.store.clone();
        let path = self.path(key);
        self.wait(async move { store.put(&path, PutPayload::from(bytes)).await.map(drop) })
            .map_err(|e| self.error("upload", key, e))
    }

    /// Uploads the file at `local` as `key`: in one request when small,
    /// else in parts read one at a time (a 1 GiB block never sits in
    /// memory whole). The object exists whole or not at all.
    pub fn upload_file(&self, key: &str, local: &Path) -> Result<()> {
        let io = |e| Error::io("read block", local, e);
        let file = std::fs::File::open(local).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < self.multipart_bytes as u64 {
            return self.upload(key, std::fs::read(local).map_err(io)?.into());
        }
        let store = self.shared.store.clone();
        let path = self.path(key);
        let mut upload = self
            .wait(async move { store.put_multipart(&path).await })
            .map_err(|e| self.error("upload", key, e))?;
        let mut sent = Ok(());
        for at in (0..len).step_by(PART_BYTES) {
            let mut part = vec![0u8; (len - at).min(PART_BYTES as u64) as usize];
            if let Err(e) = std::os::unix::fs::FileExt::read_exact_at(&file, &mut part, at) {
                sent = Err(io(e));
                break;
            }
            let put = upload.put_part(PutPayload::from(part));
            if let Err(e) = self.wait(put) {
                sent = Err(self.error("upload", key, e));
                break;
            }
        }
        let finished = match sent {
            Ok(()) => self.wait(async move { upload.complete().await.map(drop) }),
            Err(e) => {
                // The parts of an upload never completed cost storage
                // until it is aborted.
                let _ = self.wait(async move { upload.abort().await });
                return Err(e);
            }
        };
        finished.map_err(|e| self.error("upload", key, e))
    }

    /// `len` bytes of `key` from `at`, through the cache under `(uid, at)`.
    pub(crate) fn read(&self, uid: u64, key: &str, at: u64, len: usize) -> Result<Arc<Bytes>> {
        self.shared
            .chunk_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        if let Some(hit) = self.shared.cache.get((uid, at))
            && hit.len() == len
        {
            return Ok(hit);
        }
        let bytes = Arc::new(self.fetch(key, at, len)?);
        self.shared.cache.insert((uid, at), bytes.clone());
        Ok(bytes)
    }

    /// `len` bytes of `key` from `at`, not cached.
    pub fn fetch(&self, key: &str, at: u64, len: usize) -> Result<Bytes> {
        let store = self.shared.store.clone();
        let path = self.path(key);
        let range = at..at + len as u64;
        let bytes = self
            .wait(async move { store.get_range(&path, range).await })
            .map_err(|e| self.error("read", key, e))?;
        self.shared
            .fetched
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if bytes.len() != len {
            return Err(Error::Corrupt {
                path: format!("{}/{key}", self.location()).into(),
                offset: at,
                reason: format!("asked for {len} bytes, the store sent {}", bytes.len()),
            });
        }
        Ok(bytes)
    }

    /// The whole object `key` (a small one: backup manifests).
    pub fn get(&self, key: &str) -> Result<Bytes> {
        let store = self.shared.store.clone();
        let path = self.path(key);
        self.wait(async move { store.get(&path).await?.bytes().await })
            .map_err(|e| self.error("read", key, e))
    }

    /// Deletes `key`; one already gone is no error.
    pub fn delete(&self, key: &str) -> Result<()> {
        let store = self.shared.store.clone();
        let path = self.path(key);
        match self.wait(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", key, e)),
        }
    }

    /// Deletes `key` in the background (a replaced block, once the last
    /// reader let go of it); a failure leaves an orphan the next start
    /// sweeps.
    pub(crate) fn delete_later(&self, key: &str) {
        let store = self.shared.store.clone();
        let path = self.path(key);
        self.shared.spawn(async move {
            if let Err(e) = store.delete(&path).await {
                tracing::warn!(key = %path, error = %e, "cannot delete a replaced block; the next start sweeps it");
            }
        });
    }

    /// Deletes every object of this database but the `kept` ones (named
    /// by a snapshot).
    pub(crate) fn delete_all_but(&self, kept: &std::collections::HashSet<String>) -> Result<()> {
        for key in self.list()?.into_iter().filter(|k| !kept.contains(k)) {
            self.delete(&key)?;
        }
        Ok(())
    }

    /// Keys (relative to this database) of every object stored for it.
    pub fn list(&self) -> Result<Vec<String>> {
        Ok(self.list_modified()?.into_iter().map(|(k, _)| k).collect())
    }

    /// [`RemoteStore::list`] with each object's last modification, in
    /// seconds since the epoch as the store's clock gave it (a cluster's
    /// compactor tells orphans by it).
    pub fn list_modified(&self) -> Result<Vec<(String, i64)>> {
        let store = self.shared.store.clone();
        let prefix = self.prefix.clone();
        let metas = self
            .wait(async move { store.list(Some(&prefix)).try_collect::<Vec<_>>().await })
            .map_err(|e| self.error("list", "", e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.prefix_match(&self.prefix).map(|parts| {
                    parts
                        .map(|p| p.as_ref().to_owned())
                        .collect::<Vec<_>>()
                        .join("/")
                })?;
                Some((key, m.last_modified.timestamp()))
            })
            .collect())
    }
}

/// Transient failures (5xx, timeouts, resets) are retried with backoff
/// for up to a minute before a flush gives up (its points stay in the
/// head and the WAL, and a later flush tries again).
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 6,
        retry_timeout: Duration::from_secs(60),
        ..Default::default()
    }
}

/// A key no earlier upload used: a merged block takes the name of its
/// newest input, and readers of the old object must never see the new
/// bytes at their offsets.
pub(crate) fn fresh_key(file_name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let stem = file_name.strip_suffix(".sdb").unwrap_or(file_name);
    format!("{stem}.{nanos:x}{n:x}.sdb")
}
