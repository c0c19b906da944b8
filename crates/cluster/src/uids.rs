//! OpenTSDB's UIDs shared by every node (docs/cluster.md, "UIDs"): per
//! database and kind a name's number in PostgreSQL, taken from the kind's
//! counter the first time a node needs it (a TSUID printed, or a name
//! assigned through `/api/uid/assign`), so every node prints and reads
//! the same TSUIDs.

use crate::{Meta, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use sundial_api::shared::{Assigned, SharedUids};
use tokio::runtime::Handle;

/// UIDs are three bytes wide.
const MAX_UID: i32 = (1 << 24) - 1;
/// Names and numbers a node remembers (they never change) before it
/// starts over.
const CACHED: usize = 1 << 20;

impl Meta {
    /// The UID of each of `names` of `kind` in `database`, the new ones
    /// numbered from the kind's counter; `None` where the numbers ran out.
    pub async fn assign_uids(
        &mut self,
        database: &str,
        kind: i16,
        names: &[String],
        now_secs: i64,
    ) -> Result<Vec<Option<u32>>> {
        let mut known = self.uids_of(database, kind, names).await?;
        let mut missing: Vec<String> = names
            .iter()
            .filter(|n| !known.contains_key(*n))
            .cloned()
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let tx = self.client.transaction().await?;
            let first = next_uid(&tx, database, kind).await?;
            let room = usize::try_from(MAX_UID.saturating_add(1).saturating_sub(first))
                .unwrap_or(0)
                .min(missing.len());
            missing.truncate(room);
            let uids: Vec<i32> = (first..).take(room).collect();
            let next = first.saturating_add(i32::try_from(room).unwrap_or(0));
            tx.execute(
                "UPDATE uid_counters SET next = $3 WHERE database = $1 AND kind = $2",
                &[&database, &kind, &next],
            )
            .await?;
            tx.execute(
                "INSERT INTO uids (database, kind, name, uid, created_secs)
                 SELECT $1, $2, n, u, $5 FROM unnest($3::text[], $4::integer[]) AS t(n, u)
                 ON CONFLICT (database, kind, name) DO NOTHING",
                &[&database, &kind, &missing, &uids, &now_secs],
            )
            .await?;
            tx.commit().await?;
            known = self.uids_of(database, kind, names).await?;
        }
        Ok(names.iter().map(|n| known.get(n).copied()).collect())
    }

    async fn uids_of(
        &self,
        database: &str,
        kind: i16,
        names: &[String],
    ) -> Result<HashMap<String, u32>> {
        let rows = self
            .client
            .query(
                "SELECT name, uid FROM uids
                 WHERE database = $1 AND kind = $2 AND name = ANY($3)",
                &[&database, &kind, &names],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), u32::try_from(r.get::<_, i32>(1)).unwrap_or(0)))
            .collect())
    }

    /// Gives `name` of `kind` in `database` the kind's next UID unless it
    /// has one; a lost race to another node finds the winner's.
    pub async fn assign_uid(
        &mut self,
        database: &str,
        kind: i16,
        name: &str,
        now_secs: i64,
    ) -> Result<Assigned> {
        let names = [name.to_owned()];
        if let Some(uid) = self.uids_of(database, kind, &names).await?.get(name) {
            return Ok(Assigned::Existing(*uid));
        }
        let tx = self.client.transaction().await?;
        let uid = next_uid(&tx, database, kind).await?;
        if uid > MAX_UID {
            return Ok(Assigned::Exhausted);
        }
        let inserted = tx
            .query_opt(
                "INSERT INTO uids (database, kind, name, uid, created_secs)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (database, kind, name) DO NOTHING RETURNING uid",
                &[&database, &kind, &name, &uid, &now_secs],
            )
            .await?;
        if inserted.is_none() {
            // Another node gave it one meanwhile; nothing of ours is kept.
            drop(tx);
            let found = self.uids_of(database, kind, &names).await?;
            return Ok(found
                .get(name)
                .map_or(Assigned::Exhausted, |u| Assigned::Existing(*u)));
        }
        tx.execute(
            "UPDATE uid_counters SET next = $3 WHERE database = $1 AND kind = $2",
            &[&database, &kind, &uid.saturating_add(1)],
        )
        .await?;
        tx.commit().await?;
        Ok(Assigned::New(u32::try_from(uid).unwrap_or(0)))
    }

    /// The name and creation time of each of `uids` of `kind` in
    /// `database`, if given.
    pub async fn describe_uids(
        &self,
        database: &str,
        kind: i16,
        uids: &[u32],
    ) -> Result<Vec<Option<(String, i64)>>> {
        let wanted: Vec<i32> = uids.iter().filter_map(|u| i32::try_from(*u).ok()).collect();
        let rows = self
            .client
            .query(
                "SELECT uid, name, created_secs FROM uids
                 WHERE database = $1 AND kind = $2 AND uid = ANY($3)",
                &[&database, &kind, &wanted],
            )
            .await?;
        let found: HashMap<u32, (String, i64)> = rows
            .iter()
            .map(|r| {
                let uid = u32::try_from(r.get::<_, i32>(0)).unwrap_or(0);
                (uid, (r.get(1), r.get(2)))
            })
            .collect();
        Ok(uids.iter().map(|u| found.get(u).cloned()).collect())
    }
}

/// The next number of `kind` in `database`, its counter row locked until
/// `tx` ends: the lock orders nodes numbering at once, each taking its
/// own numbers (one that lost a name's race leaves its number unused).
async fn next_uid(tx: &tokio_postgres::Transaction<'_>, database: &str, kind: i16) -> Result<i32> {
    tx.execute(
        "INSERT INTO uid_counters (database, kind, next) VALUES ($1, $2, 1)
         ON CONFLICT DO NOTHING",
        &[&database, &kind],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT next FROM uid_counters WHERE database = $1 AND kind = $2 FOR UPDATE",
            &[&database, &kind],
        )
        .await?;
    Ok(row.get(0))
}

/// The cluster's UIDs as the APIs' [`SharedUids`]: calls wait on the
/// runtime it was made on (callers keep them off the async workers) and
/// make the connection again after PostgreSQL restarted; numbers once
/// read are remembered, as they never change.
#[derive(Debug)]
pub struct PgUids {
    meta: tokio::sync::Mutex<Meta>,
    runtime: Handle,
    cache: Mutex<Cache>,
}

/// Per database, per kind: numbers by name and names by number. Looked
/// up by borrowed names, so a hit (every name of every TSUID printed)
/// allocates nothing.
#[derive(Debug, Default)]
struct Cache {
    databases: HashMap<String, [Kind; 3]>,
    size: usize,
}

#[derive(Debug, Default)]
struct Kind {
    uids: HashMap<String, u32>,
    names: HashMap<u32, String>,
}

impl Cache {
    fn kind(&self, database: &str, kind: u8) -> Option<&Kind> {
        self.databases.get(database)?.get(usize::from(kind))
    }

    fn uid(&self, database: &str, kind: u8, name: &str) -> Option<u32> {
        self.kind(database, kind)?.uids.get(name).copied()
    }

    fn name(&self, database: &str, kind: u8, uid: u32) -> Option<String> {
        self.kind(database, kind)?.names.get(&uid).cloned()
    }

    fn keep(&mut self, database: &str, kind: u8, name: &str, uid: u32) {
        if self.size >= CACHED {
            *self = Cache::default();
        }
        if !self.databases.contains_key(database) {
            self.databases
                .insert(database.to_owned(), Default::default());
        }
        let kinds = self.databases.get_mut(database);
        if let Some(of_kind) = kinds.and_then(|k| k.get_mut(usize::from(kind))) {
            if of_kind.uids.insert(name.to_owned(), uid).is_none() {
                self.size += 1;
            }
            of_kind.names.insert(uid, name.to_owned());
        }
    }
}

impl PgUids {
    /// The UIDs in the metadata at `postgres_url`.
    pub async fn connect(postgres_url: &str) -> Result<Self> {
        Ok(Self {
            meta: tokio::sync::Mutex::new(Meta::connect(postgres_url).await?),
            runtime: Handle::current(),
            cache: Mutex::default(),
        })
    }

    async fn meta(&self) -> Result<tokio::sync::MutexGuard<'_, Meta>> {
        let mut meta = self.meta.lock().await;
        if meta.is_closed() {
            *meta = meta.reconnect().await?;
        }
        Ok(meta)
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl SharedUids for PgUids {
    fn assign(&self, database: &str, kind: u8, names: &[String]) -> io::Result<Vec<Option<u32>>> {
        let cached: Vec<Option<u32>> = {
            let cache = self.cache.lock();
            names.iter().map(|n| cache.uid(database, kind, n)).collect()
        };
        if cached.iter().all(Option::is_some) {
            return Ok(cached);
        }
        let uids = self
            .runtime
            .block_on(async {
                self.meta()
                    .await?
                    .assign_uids(database, i16::from(kind), names, now_secs())
                    .await
            })
            .map_err(io::Error::other)?;
        let mut cache = self.cache.lock();
        for (name, uid) in names.iter().zip(&uids) {
            if let Some(uid) = uid {
                cache.keep(database, kind, name, *uid);
            }
        }
        Ok(uids)
    }

    fn names(&self, database: &str, kind: u8, uids: &[u32]) -> io::Result<Vec<Option<String>>> {
        let cached: Vec<Option<String>> = {
            let cache = self.cache.lock();
            uids.iter()
                .map(|u| cache.name(database, kind, *u))
                .collect()
        };
        if cached.iter().all(Option::is_some) {
            return Ok(cached);
        }
        let names: Vec<Option<String>> = self
            .runtime
            .block_on(async {
                self.meta()
                    .await?
                    .describe_uids(database, i16::from(kind), uids)
                    .await
            })
            .map_err(io::Error::other)?
            .into_iter()
            .map(|d| d.map(|(name, _)| name))
            .collect();
        let mut cache = self.cache.lock();
        for (uid, name) in uids.iter().zip(&names) {
            if let Some(name) = name {
                cache.keep(database, kind, name, *uid);
            }
        }
        Ok(names)
    }

    fn assign_new(&self, database: &str, kind: u8, name: &str) -> io::Result<Assigned> {
        self.runtime
            .block_on(async {
                self.meta()
                    .await?
                    .assign_uid(database, i16::from(kind), name, now_secs())
                    .await
            })
            .map_err(io::Error::other)
    }

    fn describe(&self, database: &str, kind: u8, uid: u32) -> io::Result<Option<(String, i64)>> {
        let described = self
            .runtime
            .block_on(async {
                self.meta()
                    .await?
                    .describe_uids(database, i16::from(kind), &[uid])
                    .await
            })
            .map_err(io::Error::other)?;
        Ok(described.into_iter().next().flatten())
    }
}
