//! The set of databases under one data directory. Each database is its own
//! `Db` in `<data_dir>/db/<name>/` with its own WAL, so retention and
//! deletion stay per database. `default` always exists.

use crate::config::Config;
use crate::db::Db;
use crate::error::{Error, Result};
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;

/// The database every API uses when none is named.
pub const DEFAULT_DATABASE: &str = "default";

/// All databases of one data directory.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    default: Db,
    databases: RwLock<BTreeMap<String, Db>>,
    /// Held (locked) for the life of the engine: one server per directory.
    _lock: File,
}

impl Engine {
    /// Opens every database under `config.data_dir`, creating the
    /// directory and the `default` database when missing. Fails if another
    /// process has the directory open.
    pub fn open(config: Config) -> Result<Self> {
        let root = config.data_dir.clone();
        crate::block::cache::CACHE.set_capacity(config.chunk_cache_bytes);
        crate::block::cache::PRESAMPLED.set_capacity(config.chunk_cache_bytes / 4);
        let dbs_dir = root.join("db");
        config
            .vfs
            .create_dir_all(&dbs_dir)
            .map_err(|e| Error::io("create data directory", &dbs_dir, e))?;
        let lock_path = root.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("open", &lock_path, e))?;
        lock.try_lock()
            .map_err(|_| Error::Locked { path: root.clone() })?;
        let mut databases = BTreeMap::new();
        for entry in fs::read_dir(&dbs_dir).map_err(|e| Error::io("list", &dbs_dir, e))? {
            let entry = entry.map_err(|e| Error::io("list", &dbs_dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') && name.ends_with(".deleted") {
                // A drop that crashed after its rename: finish it.
                let path = entry.path();
                config
                    .vfs
                    .remove_dir_all(&path)
                    .map_err(|e| Error::io("remove", &path, e))?;
                continue;
            }
            if entry.path().is_dir() && is_valid_name(&name) {
                let db = Db::open(db_config(&config, &name))?;
                databases.insert(name, db);
            }
        }
        let default = match databases.get(DEFAULT_DATABASE) {
            Some(db) => db.clone(),
            None => {
                let db = Db::open(db_config(&config, DEFAULT_DATABASE))?;
                databases.insert(DEFAULT_DATABASE.to_owned(), db.clone());
                db
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                default,
                databases: RwLock::new(databases),
                _lock: lock,
            }),
        })
    }

    /// The `default` database.
    pub fn default_db(&self) -> Db {
        self.inner.default.clone()
    }

    pub fn database(&self, name: &str) -> Option<Db> {
        self.inner.databases.read().get(name).cloned()
    }

    /// Database names, sorted.
    pub fn database_names(&self) -> Vec<String> {
        self.inner.databases.read().keys().cloned().collect()
    }

    /// Creates a database; `Conflict` if it exists.
    pub fn create_database(&self, name: &str) -> Result<Db> {
        if !is_valid_name(name) {
            return Err(Error::InvalidName { name: name.into() });
        }
        let mut dbs = self.inner.databases.write();
        if dbs.contains_key(name) {
            return Err(Error::Exists { name: name.into() });
        }
        let db = Db::open(db_config(&self.inner.config, name))?;
        dbs.insert(name.to_owned(), db.clone());
        Ok(db)
    }

    /// Closes a database and deletes its files. The `default` database
    /// cannot be dropped. Blocking.
    pub fn drop_database(&self, name: &str) -> Result<()> {
        if name == DEFAULT_DATABASE {
            return Err(Error::InvalidName { name: name.into() });
        }
        let Some(db) = self.inner.databases.write().remove(name) else {
            return Err(Error::NoDatabase { name: name.into() });
        };
        db.close();
        drop(db);
        let dir = PathBuf::from(&self.inner.config.data_dir)
            .join("db")
            .join(name);
        // Renamed first so a crash mid-delete never leaves a half database
        // that the next start would open.
        let doomed = PathBuf::from(&self.inner.config.data_dir).join(format!("db/.{name}.deleted"));
        let vfs = &self.inner.config.vfs;
        vfs.rename(&dir, &doomed)
            .map_err(|e| Error::io("rename", &dir, e))?;
        if let Some(remote) = &self.inner.config.remote {
            // What a failure leaves, a database of the same name sweeps
            // when it is created (nothing of it is in its manifest).
            let pinned = crate::snapshots::pinned_keys(&self.inner.config.data_dir, name);
            if let Err(e) = remote.database(name).delete_all_but(&pinned) {
                tracing::warn!(database = name, error = %e, "cannot delete the dropped database's blocks from the object store");
            }
        }
        vfs.remove_dir_all(&doomed)
            .map_err(|e| Error::io("remove", &doomed, e))
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The object store the blocks live in, when they do.
    pub fn remote(&self) -> Option<&crate::remote::RemoteStore> {
        self.inner.config.remote.as_ref()
    }

    /// The engine's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.config.data_dir
    }

    /// What every file write of the server goes through (the APIs keep
    /// their metadata files with it too).
    pub fn vfs(&self) -> &crate::vfs::Vfs {
        &self.inner.config.vfs
    }

    /// Flushes every database and runs its compactions (`force`: merge all
    /// adjacent blocks up to the size limit). Blocking.
    pub fn flush_and_compact(&self, force: bool) -> Result<()> {
        let dbs: Vec<Db> = self.inner.databases.read().values().cloned().collect();
        for db in dbs {
            db.flush()?;
            db.compact(force)?;
        }
        Ok(())
    }

    /// Flushes and closes every database. Blocking.
    pub fn close(&self) {
        for db in self.inner.databases.read().values() {
            db.close();
        }
    }
}

/// Database names: 1–64 of `[A-Za-z0-9_-]`, not starting with `-`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(crate) fn db_config(config: &Config, name: &str) -> Config {
    let mut c = config.clone();
    c.data_dir = PathBuf::from(&config.data_dir).join("db").join(name);
    c.remote = config.remote.as_ref().map(|r| r.database(name));
    c.engine_dir = Some(PathBuf::from(&config.data_dir));
    if let Some(secs) = config.database_retention_secs.get(name) {
        c.retention_secs = *secs;
    }
    if let Some(widths) = config.database_rollup_secs.get(name) {
        c.rollup_secs.clone_from(widths);
    }
    if let Some(secs) = config.database_rollup_retention_secs.get(name) {
        c.rollup_retention_secs = Some(*secs);
    }
    if let Some(n) = config.database_max_series.get(name) {
        c.max_series = *n;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_are_separate_and_reopen() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
        let config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let engine = Engine::open(config.clone())?;
        assert_eq!(engine.database_names(), vec!["default".to_owned()]);
        engine.create_database("metrics_2")?;
        assert!(matches!(
            engine.create_database("metrics_2"),
            Err(Error::Exists { .. })
        ));
        assert!(matches!(
            engine.create_database("bad/name"),
            Err(Error::InvalidName { .. })
        ));
        // A second engine on the same directory is refused while the first runs.
        assert!(matches!(
            Engine::open(config.clone()),
            Err(Error::Locked { .. })
        ));
        engine.close();
        drop(engine);
        let engine = Engine::open(config)?;
        assert_eq!(
            engine.database_names(),
            vec!["default".to_owned(), "metrics_2".to_owned()]
        );
        engine.close();
        Ok(())
    }

    #[test]
    fn retention_can_differ_per_database() -> Result<()> {
        use sundial_model::{FieldValue, SeriesKey, ValueInput, WritePoint};
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        config.database_retention_secs.insert("short".into(), 3600);
        let engine = Engine::open(config)?;
        let short = engine.create_database("short")?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let two_hours_ago = now_ms - 7_200_000;
        let point = || WritePoint {
            series: SeriesKey::new("m", vec![("k".into(), "v".into())]).into(),
            field: "value".into(),
            timestamp: two_hours_ago,
            value: ValueInput::Typed(FieldValue::Long(1)),
        };
        let default = engine.default_db();
        let mut visible = Vec::new();
        for db in [&default, &short] {
            db.write(vec![point()], false)?.commit.wait_blocking()?;
            let id = db.read(|v| v.series_of("m").first().copied());
            let n = match id {
                Some(id) => db.read(|v| v.points(id, "value", 0, i64::MAX))?.len(),
                None => 0,
            };
            visible.push(n);
        }
        // The default database keeps everything; "short" keeps one hour.
        assert_eq!(visible, vec![1, 0]);
        engine.drop_database("short")?;
        assert!(engine.database("short").is_none());
        assert!(!dir.path().join("db/short").exists());
        engine.close();
        Ok(())
    }
}
