//! Metadata every node of a cluster shares: BlueKing's groups and data
//! ids as one versioned document, replaced whole with optimistic
//! concurrency (and so the access keys made at run time), OpenTSDB's UIDs,
//! and the shards' data of each database.
//! On a single node the APIs keep such
//! state in files; on a cluster node in PostgreSQL
//! (`sundial_cluster::PgDocument`, `sundial_cluster::PgUids`), so a change
//! made through any node is seen by every other (docs/cluster.md,
//! "Shared metadata").

use std::fmt::Debug;

/// One named document in a store every node reaches. Calls block: the
/// callers keep them off the async workers or inside `block_in_place`.
pub trait SharedDocument: Send + Sync + Debug {
    /// The document and its version; `None` before the first store.
    fn load(&self) -> std::io::Result<Option<(i64, Vec<u8>)>>;

    /// The version stored now (0 before the first store).
    fn version(&self) -> std::io::Result<i64>;

    /// Stores `body` as version `expected + 1` if the stored version is
    /// still `expected`; `false` when another node stored first (the
    /// caller loads again and retries).
    fn store(&self, expected: i64, body: &[u8]) -> std::io::Result<bool>;
}

/// OpenTSDB's UIDs in a store every node reaches: per database and kind
/// (0 metric, 1 tag key, 2 tag value) a number per name. Calls block, as
/// [`SharedDocument`]'s.
pub trait SharedUids: Send + Sync + Debug {
    /// The UID of each of `names`, new names taking the kind's next ones;
    /// `None` for a name left without one (the kind's numbers are used up).
    fn assign(
        &self,
        database: &str,
        kind: u8,
        names: &[String],
    ) -> std::io::Result<Vec<Option<u32>>>;

    /// The name of each of `uids`, `None` for one never given.
    fn names(&self, database: &str, kind: u8, uids: &[u32])
    -> std::io::Result<Vec<Option<String>>>;

    /// Gives `name` the kind's next UID unless it has one (OpenTSDB's
    /// `/api/uid/assign`).
    fn assign_new(&self, database: &str, kind: u8, name: &str) -> std::io::Result<Assigned>;

    /// The name and creation time (epoch seconds) of `uid`, if given.
    fn describe(
        &self,
        database: &str,
        kind: u8,
        uid: u32,
    ) -> std::io::Result<Option<(String, i64)>>;
}

/// The data a cluster's shards hold of each database. Calls block, as
/// [`SharedDocument`]'s.
pub trait ShardedData: Send + Sync + Debug {
    /// Drops `database` from every shard (each owner retires its blocks
    /// and forgets it): Baidu's drop, and a create's purge of what a
    /// dropped name may have left. The objects retired.
    fn drop_database(&self, database: &str) -> std::io::Result<u64>;

    /// Has every shard keep `secs` of `database`'s data (0: all) now
    /// (`/api/ttl`); the shard databases changed.
    fn set_retention(&self, database: &str, secs: u64) -> std::io::Result<u64>;
}

/// The databases a cluster's nodes share (Baidu's `/v1/database`): a
/// request naming one this node has no handle on yet asks it to catch up
/// before answering "does not exist", so a database created through
/// another node is usable here at once.
pub trait DatabaseDirectory: Send + Sync + Debug {
    /// Opens this node's handles on every database listed now (and closes
    /// those dropped). Blocks.
    fn catch_up(&self) -> std::io::Result<()>;
}

/// Database `name` of `engine`, after catching up with `directory` (a
/// cluster node's shared list, off the async workers) when the engine has
/// no handle on it; `None` if absent still, or without a directory. A
/// failure comes as the text of the API's busy answer.
pub async fn database_caught_up(
    directory: Option<&std::sync::Arc<dyn DatabaseDirectory>>,
    engine: &sundial_storage::Engine,
    name: &str,
) -> Result<Option<sundial_storage::Db>, String> {
    if let Some(db) = engine.database(name) {
        return Ok(Some(db));
    }
    let Some(directory) = directory.cloned() else {
        return Ok(None);
    };
    match tokio::task::spawn_blocking(move || directory.catch_up()).await {
        Ok(Ok(())) => Ok(engine.database(name)),
        Ok(Err(e)) => Err(format!("the cluster's databases: {e}; retry")),
        Err(e) => Err(format!("the cluster's databases: {e}")),
    }
}

/// What [`SharedUids::assign_new`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigned {
    /// The name had no UID; now this one.
    New(u32),
    /// The name had this UID already.
    Existing(u32),
    /// The kind's numbers are used up.
    Exhausted,
}

/// A [`SharedDocument`] in memory: what nodes in one process sharing it
/// see, as they would see PostgreSQL's (tests of the shared backends).
#[derive(Debug, Default)]
pub struct MemoryDocument(std::sync::Mutex<Option<(i64, Vec<u8>)>>);

impl MemoryDocument {
    fn stored(&self) -> std::sync::MutexGuard<'_, Option<(i64, Vec<u8>)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SharedDocument for MemoryDocument {
    fn load(&self) -> std::io::Result<Option<(i64, Vec<u8>)>> {
        Ok(self.stored().clone())
    }

    fn version(&self) -> std::io::Result<i64> {
        Ok(self.stored().as_ref().map_or(0, |(v, _)| *v))
    }

    fn store(&self, expected: i64, body: &[u8]) -> std::io::Result<bool> {
        let mut doc = self.stored();
        if doc.as_ref().map_or(0, |(v, _)| *v) != expected {
            return Ok(false);
        }
        *doc = Some((expected + 1, body.to_vec()));
        Ok(true)
    }
}

/// A [`SharedDocument`] in a file, for a single node: one process owns
/// the data directory, so the version lives in memory (1 once the file
/// exists). The file is written aside and renamed over, readable by its
/// owner only (it may hold secrets).
#[derive(Debug)]
pub struct FileDocument {
    path: std::path::PathBuf,
    version: std::sync::Mutex<i64>,
}

impl FileDocument {
    pub fn open(path: std::path::PathBuf) -> Self {
        let version = i64::from(path.exists());
        Self {
            path,
            version: std::sync::Mutex::new(version),
        }
    }

    fn version_lock(&self) -> std::sync::MutexGuard<'_, i64> {
        self.version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn replace(&self, body: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut aside = self.path.clone().into_os_string();
        aside.push(".tmp");
        let aside = std::path::PathBuf::from(aside);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&aside)?;
        file.write_all(body)?;
        file.sync_all()?;
        std::fs::rename(&aside, &self.path)?;
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
            _ => Ok(()),
        }
    }
}

impl SharedDocument for FileDocument {
    fn load(&self) -> std::io::Result<Option<(i64, Vec<u8>)>> {
        let version = *self.version_lock();
        match std::fs::read(&self.path) {
            Ok(body) => Ok(Some((version.max(1), body))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn version(&self) -> std::io::Result<i64> {
        Ok(*self.version_lock())
    }

    fn store(&self, expected: i64, body: &[u8]) -> std::io::Result<bool> {
        let mut version = self.version_lock();
        if *version != expected {
            return Ok(false);
        }
        self.replace(body)?;
        *version += 1;
        Ok(true)
    }
}
