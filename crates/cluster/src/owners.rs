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
    meta: tokio::sync::Mutex<Option<Meta>>,
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
        let mut meta = self.meta.lock().await;
        if meta.as_ref().is_some_and(Meta::is_closed) {
            *meta = None;
        }
        let read = match meta.as_ref() {
            Some(m) => m.shard_owners().await,
            None => {
                let connected = Meta::connect(&self.postgres_url).await?;
                meta.insert(connected).shard_owners().await
            }
        };
        let owners = read.inspect_err(|_| *meta = None)?;
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
        let mut meta = self.meta.lock().await;
        if meta.as_ref().is_none_or(Meta::is_closed) {
            *meta = Some(Meta::connect(&self.postgres_url).await?);
        }
        let Some(m) = meta.as_ref() else {
            return Ok(());
        };
        m.forget_kinds(database, metric)
            .await
            .inspect_err(|_| *meta = None)
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
