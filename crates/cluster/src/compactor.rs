//! The compactor (docs/cluster.md, "The compactor"): one node at a time,
//! by the `compactor` lease, walks the shards and asks each owner to
//! compact its shard (retention, then the merges that are due; the owner
//! records the merged blocks and retires the replaced ones in its
//! checkpoint), then deletes the objects retired longer ago than the
//! grace period and forgets them, and the objects nothing names
//! (`orphans`).
//!
//! The merge runs where the shard's blocks are read (its owner, which
//! also serves every query of the shard), so no second node ever reads a
//! block list that may change under it; the lease keeps compaction to one
//! shard at a time across the cluster, and the grace period lets a query
//! that still holds a replaced block finish reading it.

mod orphans;

use crate::lease::compactor_lease;
use crate::owners::Peers;
use crate::{Error, FrameClient, Lease, Meta, Result};
use parking_lot::Mutex;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use sundial_storage::RemoteStore;
use tracing::{info, warn};

/// How a compactor works.
#[derive(Debug, Clone)]
pub struct CompactorConfig {
    /// This node's name in the lease.
    pub holder: String,
    /// The lease lasts this long past each renewal (renewed every third).
    pub ttl: Duration,
    /// A round starts this long after the previous one started.
    pub every: Duration,
    /// A retired object is deleted this long after it was retired.
    pub grace: Duration,
}

/// Retired objects deleted per round at most (the rest wait a round).
const DELETES_PER_ROUND: i64 = 10_000;

/// The compactor's state; clones share it.
#[derive(Debug, Clone)]
pub struct Compactor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    meta: tokio::sync::Mutex<Meta>,
    peers: Arc<Peers>,
    store: RemoteStore,
    config: CompactorConfig,
    /// The lease while this node holds it.
    lease: Mutex<Option<Lease>>,
    rounds: AtomicU64,
    retired: AtomicU64,
    deleted: AtomicU64,
    orphans: AtomicU64,
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    /// Shards whose owner compacted them.
    pub shards: usize,
    /// Blocks the owners replaced (merged or expired).
    pub retired: usize,
    /// Retired objects deleted from the store.
    pub deleted: usize,
    /// Objects nothing named deleted from the store (see `orphans`).
    pub orphans: usize,
}

impl Compactor {
    /// A compactor over `shards` shards whose owners PostgreSQL at
    /// `postgres_url` lists, asking them with `client`, deleting from the
    /// cluster's object store `store`.
    pub async fn new(
        postgres_url: &str,
        shards: u32,
        client: FrameClient,
        store: RemoteStore,
        config: CompactorConfig,
    ) -> Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                meta: tokio::sync::Mutex::new(Meta::connect(postgres_url).await?),
                peers: Peers::connect(postgres_url, shards, client).await?,
                store,
                config,
                lease: Mutex::new(None),
                rounds: AtomicU64::new(0),
                retired: AtomicU64::new(0),
                deleted: AtomicU64::new(0),
                orphans: AtomicU64::new(0),
            }),
        })
    }

    /// Whether this node holds the compactor lease now.
    pub fn is_leader(&self) -> bool {
        self.inner.lease.lock().is_some()
    }

    /// Orphaned objects deleted since this node started.
    pub fn orphans_deleted(&self) -> u64 {
        self.inner.orphans.load(Ordering::Relaxed)
    }

    /// Rounds finished, blocks retired and objects deleted at this node's
    /// request since it started.
    pub fn counts(&self) -> (u64, u64, u64) {
        let i = &self.inner;
        (
            i.rounds.load(Ordering::Relaxed),
            i.retired.load(Ordering::Relaxed),
            i.deleted.load(Ordering::Relaxed),
        )
    }

    /// Holds the lease while it can and runs a round every `every` while
    /// it does, until `stop` completes; then gives the lease up.
    pub async fn run(&self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut tick = tokio::time::interval(self.inner.config.ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round: Option<tokio::task::JoinHandle<()>> = None;
        let mut last_start: Option<Instant> = None;
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = tick.tick() => {}
            }
            self.hold_lease().await;
            let idle = round.as_ref().is_none_or(|r| r.is_finished());
            let due = last_start.is_none_or(|t| t.elapsed() >= self.inner.config.every);
            if self.is_leader() && idle && due {
                last_start = Some(Instant::now());
                let this = self.clone();
                round = Some(tokio::spawn(async move {
                    match this.round().await {
                        Ok(report) => info!(?report, "compaction round done"),
                        Err(e) => {
                            warn!(error = %e, "compaction round stopped; the next one goes on")
                        }
                    }
                }));
            }
        }
        if let Some(r) = round {
            r.abort();
        }
        let held = self.inner.lease.lock().take();
        if let Some(lease) = held
            && let Err(e) = self.inner.meta.lock().await.release(&lease).await
        {
            warn!(error = %e, "cannot release the compactor lease; it expires");
        }
    }

    /// Takes the lease when free, or renews it; forgets it when lost.
    async fn hold_lease(&self) {
        let config = &self.inner.config;
        let held = self.inner.lease.lock().clone();
        let mut meta = self.inner.meta.lock().await;
        if meta.is_closed() {
            match meta.reconnect().await {
                Ok(m) => *meta = m,
                Err(e) => {
                    warn!(error = %e, "compactor: metadata store unreachable");
                    // Without renewals the lease lapses; stop using it.
                    *self.inner.lease.lock() = None;
                    return;
                }
            }
        }
        let now = match held {
            Some(lease) => match meta.renew(&lease, config.ttl).await {
                Ok(()) => Some(lease),
                Err(e) => {
                    warn!(error = %e, "compactor lease lost");
                    None
                }
            },
            None => match meta
                .acquire(&compactor_lease(), &config.holder, config.ttl)
                .await
            {
                Ok(lease) => {
                    info!(epoch = lease.epoch, "compactor lease taken");
                    Some(lease)
                }
                Err(Error::Held { .. }) => None,
                Err(e) => {
                    warn!(error = %e, "cannot take the compactor lease");
                    None
                }
            },
        };
        *self.inner.lease.lock() = now;
    }

    /// One round: each shard's owner compacts it, one shard at a time,
    /// while this node holds the lease; then retired objects past the
    /// grace period are deleted.
    pub async fn round(&self) -> Result<RoundReport> {
        let mut report = RoundReport::default();
        let peers = &self.inner.peers;
        peers.owners.refresh().await?;
        for shard in 0..peers.shards {
            if !self.is_leader() {
                return Ok(report);
            }
            let Some(owner) = peers.owners.owner(shard) else {
                continue;
            };
            match peers.client.compact(&owner.address, shard, false).await {
                Ok(retired) => {
                    report.shards += 1;
                    report.retired += retired;
                    self.inner
                        .retired
                        .fetch_add(retired as u64, Ordering::Relaxed);
                }
                // Moving or moved: its next owner is asked next round.
                Err(e) => warn!(shard, error = %e, "a shard was not compacted this round"),
            }
        }
        report.deleted = self.delete_retired().await?;
        report.orphans = self.delete_orphans().await?;
        self.inner
            .orphans
            .fetch_add(report.orphans as u64, Ordering::Relaxed);
        self.inner.rounds.fetch_add(1, Ordering::Relaxed);
        Ok(report)
    }

    /// Deletes the objects retired longer ago than the grace period, then
    /// forgets them (under the lease).
    async fn delete_retired(&self) -> Result<usize> {
        let Some(lease) = self.inner.lease.lock().clone() else {
            return Ok(0);
        };
        let grace = self.inner.config.grace;
        let keys = self
            .inner
            .meta
            .lock()
            .await
            .retired_before(grace, DELETES_PER_ROUND)
            .await?;
        if keys.is_empty() {
            return Ok(0);
        }
        let store = self.inner.store.clone();
        let deleting = keys.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            for key in &deleting {
                delete(&store, key)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        self.inner
            .meta
            .lock()
            .await
            .forget_retired(&lease, &keys)
            .await?;
        self.inner
            .deleted
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        Ok(keys.len())
    }
}

/// Deletes `shard-<n>/<database>/<key>` of the cluster's store.
fn delete(store: &RemoteStore, key: &str) -> Result<()> {
    let mut parts = key.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(group), Some(database), Some(rest)) => {
            Ok(store.group(group).database(database).delete(rest)?)
        }
        _ => Err(Error::Internal(format!(
            "retired object {key:?} is not a block's"
        ))),
    }
}
