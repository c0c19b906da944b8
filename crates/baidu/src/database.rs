//! The `/v1/database` management API (spec 11): databases created here get
//! an id, quotas and an expiry, kept in `<data_dir>/baidu-databases.json`
//! (replaced atomically) beside the engine's own database directories, or
//! on a cluster node in a document every node shares (docs/cluster.md,
//! "Shared metadata").

use super::error::BaiduError;
use super::write::present;
use axum::http::StatusCode;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use sundial_api::access::{Action, Identity};
use sundial_api::shared::{ShardedData, SharedDocument};
use sundial_storage::Engine;
use sundial_storage::vfs::Vfs;

const MAX_DATABASES: usize = 100;
const TIME_SERIES_QUOTA: u64 = 10_000_000;

/// One created database.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    id: String,
    name: String,
    description: String,
    ingest_monthly: u64,
    query_units_monthly: u64,
    store_bytes_quota: u64,
    create_secs: i64,
    expire_secs: i64,
    client_token: String,
    order_id: String,
}

/// Where the created databases are kept.
#[derive(Debug)]
enum Backend {
    /// A single node: `baidu-databases.json`, replaced atomically.
    File(PathBuf),
    /// A cluster node: one document every node shares (PostgreSQL); each
    /// call reads it fresh, and a change is stored only over the version
    /// it was made from. The data lives in the cluster's shards.
    Shared {
        doc: Arc<dyn SharedDocument>,
        data: Arc<dyn ShardedData>,
    },
}

/// Created databases; the lock orders this node's changes.
#[derive(Debug)]
pub(crate) struct Registry {
    backend: Backend,
    entries: Mutex<Vec<Entry>>,
}

/// Times a create is tried against other nodes' changes.
const ATTEMPTS: usize = 16;

impl Registry {
    pub(crate) fn open(engine: &Engine) -> Result<Self, std::io::Error> {
        let path = engine.data_dir().join("baidu-databases.json");
        let entries = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            backend: Backend::File(path),
            entries: Mutex::new(entries),
        })
    }

    /// The registry in `doc`, which every node of a cluster shares, of
    /// databases whose data `data`'s shards hold.
    pub(crate) fn open_shared(doc: Arc<dyn SharedDocument>, data: Arc<dyn ShardedData>) -> Self {
        Self {
            backend: Backend::Shared { doc, data },
            entries: Mutex::new(Vec::new()),
        }
    }

    /// Brings `entries` up to the stored ones; their version (0 on a
    /// single node, whose entries are always current).
    fn refresh(&self, entries: &mut Vec<Entry>) -> Result<i64, BaiduError> {
        let Backend::Shared { doc, .. } = &self.backend else {
            return Ok(0);
        };
        let (version, stored) = doc.load().map_err(unreachable)?.unwrap_or_default();
        *entries = if stored.is_empty() {
            Vec::new()
        } else {
            serde_json::from_slice(&stored).map_err(|e| BaiduError::internal(&e))?
        };
        Ok(version)
    }

    /// Stores `entries` over `version`; `false` when another node stored
    /// first.
    fn save(&self, version: i64, entries: &[Entry]) -> Result<bool, BaiduError> {
        let bytes = serde_json::to_vec_pretty(entries).map_err(|e| BaiduError::internal(&e))?;
        match &self.backend {
            Backend::File(path) => Vfs::default()
                .write_atomic(path, &bytes)
                .map(|()| true)
                .map_err(|e| BaiduError::internal(&e)),
            Backend::Shared { doc, .. } => doc.store(version, &bytes).map_err(unreachable),
        }
    }

    /// The names of the databases created, as stored now.
    #[cfg(test)]
    pub(crate) fn names(&self) -> Result<Vec<String>, BaiduError> {
        let mut entries = self.entries.lock();
        self.refresh(&mut entries)?;
        Ok(entries.iter().map(|e| e.name.clone()).collect())
    }

    /// Opens `engine`'s handle on each database listed and closes those
    /// of databases no longer listed (a cluster node's handles follow the
    /// shared list): the names opened and closed. Under the registry's
    /// lock, so a create on this node is never half seen.
    pub(crate) fn sync(&self, engine: &Engine) -> Result<(Vec<String>, Vec<String>), BaiduError> {
        let mut entries = self.entries.lock();
        self.refresh(&mut entries)?;
        let mut opened = Vec::new();
        for e in entries.iter() {
            if engine.database(&e.name).is_none() {
                open_locally(engine, &e.name)?;
                opened.push(e.name.clone());
            }
        }
        let mut closed = Vec::new();
        for name in engine.database_names() {
            let listed = entries.iter().any(|e| e.name == name);
            if name != sundial_storage::DEFAULT_DATABASE && !listed {
                close_locally(engine, &name);
                closed.push(name);
            }
        }
        Ok((opened, closed))
    }

    /// `POST /v1/database?clientToken=`; blocking.
    pub(crate) fn create(
        &self,
        engine: &Engine,
        identity: &Identity,
        token: &str,
        body: &Value,
        now_secs: i64,
    ) -> Result<Value, BaiduError> {
        let mut entries = self.entries.lock();
        for _ in 0..ATTEMPTS {
            let version = self.refresh(&mut entries)?;
            // A repeated create answers as the first did, whatever its body.
            if let Some(e) = entries.iter().find(|e| e.client_token == token) {
                may_administer(identity, &e.name)?;
                open_locally(engine, &e.name)?;
                return Ok(created(e));
            }
            let new = NewDatabase::parse(body)?;
            let name = new.name.clone();
            may_administer(identity, &name)?;
            // On a cluster a node's handles are only handles: one not
            // listed is of a database dropped through another node that
            // this node has not closed yet, and may be taken again.
            let here = match &self.backend {
                Backend::File(_) => engine.database(&name).is_some(),
                Backend::Shared { .. } => name == sundial_storage::DEFAULT_DATABASE,
            };
            if entries.iter().any(|e| e.name == name) || here {
                return Err(BaiduError::invalid(format!(
                    "database name {name} is taken"
                )));
            }
            if entries.len() >= MAX_DATABASES {
                return Err(BaiduError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "InsufficientQuota",
                    format!("at most {MAX_DATABASES} databases"),
                ));
            }
            match &self.backend {
                Backend::File(_) => {
                    engine
                        .create_database(&name)
                        .map_err(|e| BaiduError::storage(&e))?;
                }
                // Writes a node took for a dropped database of this name
                // before it learnt of the drop are cleared first: a new
                // database starts empty.
                Backend::Shared { data, .. } => {
                    data.drop_database(&name).map_err(unreachable_shards)?;
                }
            }
            let entry = new.entry(name, token, now_secs);
            let mut changed = entries.clone();
            changed.push(entry.clone());
            if self.save(version, &changed)? {
                open_locally(engine, &entry.name)?;
                *entries = changed;
                return Ok(created(&entry));
            }
        }
        Err(BaiduError::classified(
            sundial_storage::ErrorClass::Busy,
            &"other nodes kept changing the databases; retry",
        ))
    }

    /// A database the caller has a grant on (others look absent).
    pub(crate) fn get(
        &self,
        identity: &Identity,
        id: &str,
        region: &str,
    ) -> Result<Value, BaiduError> {
        let mut entries = self.entries.lock();
        self.refresh(&mut entries)?;
        entries
            .iter()
            .find(|e| e.id == id && identity.knows(&e.name))
            .map(|e| describe(e, region))
            .ok_or_else(|| BaiduError::not_found(format!("no database {id}")))
    }

    /// The databases the caller has a grant on.
    pub(crate) fn list(&self, identity: &Identity, region: &str) -> Result<Value, BaiduError> {
        let mut entries = self.entries.lock();
        self.refresh(&mut entries)?;
        let mut entries: Vec<Entry> = entries
            .iter()
            .filter(|e| identity.knows(&e.name))
            .cloned()
            .collect();
        entries.sort_by(|a, b| (a.create_secs, &a.id).cmp(&(b.create_secs, &b.id)));
        Ok(json!({"databases": entries.iter().map(|e| describe(e, region)).collect::<Vec<_>>()}))
    }

    /// Drops the database and its data; blocking.
    pub(crate) fn delete(
        &self,
        engine: &Engine,
        identity: &Identity,
        id: &str,
    ) -> Result<(), BaiduError> {
        if let Backend::Shared { data, .. } = &self.backend {
            return self.delete_shared(engine, identity, id, data.as_ref());
        }
        let mut entries = self.entries.lock();
        let Some(pos) = entries
            .iter()
            .position(|e| e.id == id && identity.knows(&e.name))
        else {
            return Err(BaiduError::not_found(format!("no database {id}")));
        };
        may_administer(identity, &entries[pos].name)?;
        let entry = entries.remove(pos);
        // Forget it first: a crash after this leaves orphan files, never a
        // listed database without data.
        self.save(0, &entries)?;
        match engine.drop_database(&entry.name) {
            Ok(()) => Ok(()),
            Err(e) if e.class() == sundial_storage::ErrorClass::NotFound => Ok(()),
            Err(e) => Err(BaiduError::storage(&e)),
        }
    }
}

impl Registry {
    /// A cluster's drop: the shards' owners drop their part first (the
    /// database stays listed if they cannot, and the caller retries),
    /// then the shared list forgets it, then this node's handle goes
    /// (other nodes close theirs within a second, `Api::sync_databases`).
    fn delete_shared(
        &self,
        engine: &Engine,
        identity: &Identity,
        id: &str,
        data: &dyn ShardedData,
    ) -> Result<(), BaiduError> {
        let mut entries = self.entries.lock();
        for _ in 0..ATTEMPTS {
            let version = self.refresh(&mut entries)?;
            let Some(pos) = entries
                .iter()
                .position(|e| e.id == id && identity.knows(&e.name))
            else {
                return Err(BaiduError::not_found(format!("no database {id}")));
            };
            let name = entries[pos].name.clone();
            may_administer(identity, &name)?;
            data.drop_database(&name).map_err(unreachable_shards)?;
            let mut changed = entries.clone();
            changed.remove(pos);
            if self.save(version, &changed)? {
                *entries = changed;
                close_locally(engine, &name);
                return Ok(());
            }
        }
        Err(BaiduError::classified(
            sundial_storage::ErrorClass::Busy,
            &"other nodes kept changing the databases; retry",
        ))
    }
}

/// Closes this node's handle on a database the cluster no longer lists.
pub(crate) fn close_locally(engine: &Engine, name: &str) {
    match engine.drop_database(name) {
        Err(e) if e.class() != sundial_storage::ErrorClass::NotFound => {
            tracing::warn!(database = name, error = %e, "cannot close a dropped database here");
        }
        _ => {}
    }
}

/// The shards' owners could not all be reached.
fn unreachable_shards(e: std::io::Error) -> BaiduError {
    BaiduError::classified(
        sundial_storage::ErrorClass::Busy,
        &format!("the cluster's shards: {e}; retry"),
    )
}

/// This node's handle on a database the cluster lists (the data lives
/// with the shards' owners); already open is fine.
pub(crate) fn open_locally(engine: &Engine, name: &str) -> Result<(), BaiduError> {
    if engine.database(name).is_some() {
        return Ok(());
    }
    match engine.create_database(name) {
        Ok(_) => Ok(()),
        Err(e) if e.class() == sundial_storage::ErrorClass::Conflict => Ok(()),
        Err(e) => Err(BaiduError::storage(&e)),
    }
}

/// The shared registry could not be read or written.
fn unreachable(e: std::io::Error) -> BaiduError {
    BaiduError::classified(
        sundial_storage::ErrorClass::Busy,
        &format!("the cluster's metadata store: {e}; retry"),
    )
}

fn may_administer(identity: &Identity, name: &str) -> Result<(), BaiduError> {
    if identity.may(name, Action::Admin) {
        Ok(())
    } else {
        Err(BaiduError::access_denied(
            identity.denial(name, Action::Admin),
        ))
    }
}

/// What a create request asks for (spec 11.1), checked.
struct NewDatabase {
    name: String,
    description: String,
    ingest: u64,
    months: u64,
    query_units: u64,
    store: u64,
}

impl NewDatabase {
    fn parse(body: &Value) -> Result<Self, BaiduError> {
        let Some(b) = body.as_object() else {
            return Err(BaiduError::malformed("the body must be a JSON object"));
        };
        let name = match present(b, "databaseName") {
            None => return Err(BaiduError::missing("databaseName")),
            Some(Value::String(n)) => n.clone(),
            Some(_) => return Err(BaiduError::invalid("databaseName must be a string")),
        };
        let valid = (6..=40).contains(&name.len())
            && name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !valid {
            return Err(BaiduError::invalid(
                "databaseName must be 6 to 40 lowercase letters and digits",
            ));
        }
        let count = |key: &str, required: bool, min: u64| -> Result<u64, BaiduError> {
            match present(b, key) {
                None if required => Err(BaiduError::missing(key)),
                None => Ok(0),
                Some(v) => v.as_u64().filter(|n| *n >= min).ok_or_else(|| {
                    BaiduError::invalid(format!("{key} must be an integer >= {min}"))
                }),
            }
        };
        let ingest = count("ingestDataPointsMonthly", true, 1)?;
        let months = count("purchaseLength", true, 1)?;
        if months > 1200 {
            return Err(BaiduError::invalid("purchaseLength is at most 1200 months"));
        }
        let query_units = count("queryUnitsMonthly", false, 0)?;
        let store = count("storeBytesQuota", false, 0)?;
        let description = match present(b, "description") {
            None => String::new(),
            Some(Value::String(d)) if d.chars().count() <= 256 => d.clone(),
            Some(_) => {
                return Err(BaiduError::invalid(
                    "description must be a string of at most 256 characters",
                ));
            }
        };
        Ok(Self {
            name,
            description,
            ingest,
            months,
            query_units,
            store,
        })
    }

    fn entry(&self, name: String, token: &str, now_secs: i64) -> Entry {
        let random = uuid::Uuid::new_v4().simple().to_string();
        Entry {
            id: format!("tsdb-{}", base36(&random)),
            name,
            description: self.description.clone(),
            ingest_monthly: self.ingest,
            query_units_monthly: self.query_units,
            store_bytes_quota: self.store,
            create_secs: now_secs,
            expire_secs: add_months(now_secs, self.months),
            client_token: token.to_owned(),
            order_id: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

fn created(e: &Entry) -> Value {
    json!({
        "databaseId": e.id,
        "charge": 0,
        "expiredTime": utc(e.expire_secs),
        "orderId": e.order_id,
    })
}

fn describe(e: &Entry, region: &str) -> Value {
    json!({
        "databaseId": e.id,
        "databaseName": e.name,
        "description": e.description,
        "endpoint": format!("{}.tsdb.iot.{region}.baidubce.com", e.name),
        "quota": {
            "ingestDataPointsMonthlyQuota": e.ingest_monthly.saturating_mul(1_000_000),
            "queryUnitsMonthlyQuota": e.query_units_monthly.saturating_mul(10_000),
            "storeBytesQuota": e.store_bytes_quota,
            "timeSeriesQuota": TIME_SERIES_QUOTA,
        },
        "status": "Active",
        "createTime": utc(e.create_secs),
        "expiredTime": utc(e.expire_secs),
    })
}

/// 12 characters of `[a-z0-9]` from random hex.
fn base36(hex: &str) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut n = u128::from_str_radix(hex, 16).unwrap_or_default();
    (0..12)
        .map(|_| {
            let d = (n % 36) as usize;
            n /= 36;
            char::from(DIGITS.get(d).copied().unwrap_or(b'0'))
        })
        .collect()
}

/// `secs` plus whole calendar months, the day clamped to the month's end.
fn add_months(secs: i64, months: u64) -> i64 {
    let later = || {
        let months = i32::try_from(months).ok()?;
        let start = jiff::Timestamp::from_second(secs).ok()?;
        let zoned = start.to_zoned(jiff::tz::TimeZone::UTC);
        // jiff clamps to the month's last day: Jan 31 + 1 month = Feb 28/29.
        let end = zoned
            .checked_add(jiff::Span::new().try_months(months).ok()?)
            .ok()?;
        Some(end.timestamp().as_second())
    };
    later().unwrap_or(jiff::Timestamp::MAX.as_second())
}

/// `yyyy-MM-ddTHH:mm:ssZ`.
pub(crate) fn utc(secs: i64) -> String {
    let time = jiff::Timestamp::from_second(secs).unwrap_or(if secs < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests;
