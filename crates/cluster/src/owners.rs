//! Who owns each shard, as routers and queriers see it: read from
//! PostgreSQL's leases and cached, so requests go on while PostgreSQL is
//! down as long as no shard moves. A send that fails marks the cache
//! stale; a refusal saying "not the owner" makes the caller read it again.

use crate::{FrameClient, Meta, Result};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// The cached owners and the connection they are read over.
#[derive(Debug)]
pub(crate) struct OwnerCache {
    postgres_url: String,
    /// Dropped after a metadata error, so the next read reconnects
    /// (PostgreSQL restarted).
    meta: tokio::sync::Mutex<Option<Arc<Meta>>>,
    owners: RwLock<Owners>,
}

#[derive(Debug, Default)]
struct Owners {
    by_shard: HashMap<u32, Owner>,
    stale: bool,
}

/// A shard's owner: where to reach it and its lease epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) address: String,
    pub(crate) epoch: i64,
}

impl OwnerCache {
    /// Reads the owners once; fails when PostgreSQL cannot be reached.
    pub(crate) async fn new(postgres_url: &str) -> Result<Self> {
        let cache = Self {
            postgres_url: postgres_url.to_owned(),
            meta: tokio::sync::Mutex::new(None),
            owners: RwLock::default(),
        };
        cache.refresh().await?;
        Ok(cache)
    }

    /// Reads the owners from PostgreSQL.
    pub(crate) async fn refresh(&self) -> Result<()> {
        let meta = self.meta().await?;
        let owners = self.forget_on_error(meta.shard_owners().await).await?;
        let by_shard = owners
            .into_iter()
            .map(|o| {
                let owner = Owner {
                    address: o.advertise,
                    epoch: o.epoch,
                };
                (o.shard, owner)
            })
            .collect();
        *self.owners.write() = Owners {
            by_shard,
            stale: false,
        };
        Ok(())
    }

    /// Forgets the field kinds of `metric` in `database` (its last series
    /// removed), over the cache's connection.
    pub(crate) async fn forget_kinds(&self, database: &str, metric: &str) -> Result<()> {
        let meta = self.meta().await?;
        self.forget_on_error(meta.forget_kinds(database, metric).await)
            .await
    }

    /// The cache's metadata connection, made again when it broke. Calls
    /// over it run at once (the client pipelines them).
    pub(crate) async fn meta(&self) -> Result<Arc<Meta>> {
        let mut meta = self.meta.lock().await;
        match meta.as_ref() {
            Some(m) if !m.is_closed() => Ok(m.clone()),
            _ => {
                let connected = Arc::new(Meta::connect(&self.postgres_url).await?);
                *meta = Some(connected.clone());
                Ok(connected)
            }
        }
    }

    /// `result`, the connection dropped when an error ended it (the next
    /// call makes it again: PostgreSQL may have restarted). An error of
    /// the statement alone keeps it.
    pub(crate) async fn forget_on_error<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            let mut meta = self.meta.lock().await;
            if meta.as_ref().is_some_and(|m| m.is_closed()) {
                *meta = None;
            }
        }
        result
    }

    /// Reads the owners again first if a send failed since the last read.
    pub(crate) async fn refresh_if_stale(&self) -> Result<()> {
        if self.owners.read().stale {
            self.refresh().await?;
        }
        Ok(())
    }

    pub(crate) fn mark_stale(&self) {
        self.owners.write().stale = true;
    }

    pub(crate) fn owner(&self, shard: u32) -> Option<Owner> {
        self.owners.read().by_shard.get(&shard).cloned()
    }

    /// The first of `shards` without a live owner.
    pub(crate) fn missing(&self, shards: impl IntoIterator<Item = u32>) -> Option<u32> {
        let owners = self.owners.read();
        shards
            .into_iter()
            .find(|s| !owners.by_shard.contains_key(s))
    }
}

/// What routers and queriers share: the shard count, the owner cache and
/// the connections to the owners.
#[derive(Debug)]
pub(crate) struct Peers {
    pub(crate) shards: u32,
    pub(crate) owners: OwnerCache,
    pub(crate) client: FrameClient,
}

impl Peers {
    /// Peers over `shards` shards whose owners PostgreSQL at
    /// `postgres_url` lists, reached with `client`.
    pub(crate) async fn connect(
        postgres_url: &str,
        shards: u32,
        client: FrameClient,
    ) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            shards,
            owners: OwnerCache::new(postgres_url).await?,
            client,
        }))
    }
}
