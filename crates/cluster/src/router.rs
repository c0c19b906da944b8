//! The router (docs/cluster.md, "The router"): the cluster's side of the
//! write seam. An adapter's checked points are split by shard, each
//! shard's share (with its share of the adapter's rules) is framed and
//! sent to the shard's owner, all shards at once, and the owners'
//! per-point answers are put back in request order.
//!
//! Owners come from PostgreSQL's leases and are cached: an owner that
//! says it no longer owns the shard (or holds it under another epoch)
//! makes the router read them again and resend once, with the same batch
//! id so the log keeps the frame once. A shard without a live owner, one
//! that is moving, or an owner that does not answer make the whole write
//! a busy answer: the client's retry rewrites the same points, which a
//! time-series store keeps once.

use crate::frame::{BatchRules, ShardBatch};
use crate::owners::Peers;
use crate::{Error, FrameClient, Result, split_by_shard};
use std::sync::Arc;
use sundial_api::sink::{PointSink, PointWrite, SinkFuture};
use sundial_model::{PointError, WriteOutcome, WritePoint};
use sundial_storage::{Commit, Written};
use tracing::warn;

/// Sends writes to their shards' owners; clones share the owner cache
/// and the connections.
#[derive(Debug, Clone)]
pub struct Router {
    pub(crate) inner: Arc<Peers>,
}

/// One shard's share of a write and where its answers go.
struct Part {
    batch: ShardBatch,
    indices: Vec<usize>,
}

impl Router {
    /// A router over `shards` shards whose owners PostgreSQL at
    /// `postgres_url` lists, sending frames with `client`.
    pub async fn new(postgres_url: &str, shards: u32, client: FrameClient) -> Result<Self> {
        Ok(Self {
            inner: Peers::connect(postgres_url, shards, client).await?,
        })
    }

    /// A querier sharing this router's owner cache and connections.
    pub fn querier(&self) -> crate::Querier {
        crate::Querier {
            inner: self.inner.clone(),
            blocks: None,
        }
    }

    /// Stores `points` of `database` at their shards' owners: the outcome
    /// per point, in request order. `rules` are the adapter's, for the
    /// whole request; a group that spans shards is applied per shard.
    pub async fn route(
        &self,
        database: &str,
        points: Vec<WritePoint>,
        rules: BatchRules,
    ) -> Result<WriteOutcome> {
        let total = points.len();
        let group_of = group_numbers(&rules.groups, total);
        let mut parts: Vec<Part> = split_by_shard(points, self.inner.shards)
            .into_iter()
            .map(|(shard, share)| {
                let rules = shard_rules(&share.indices, &group_of, &rules.vetoed);
                Part {
                    batch: ShardBatch {
                        database: database.to_owned(),
                        shard,
                        epoch: 0,
                        id: uuid::Uuid::new_v4().as_u128(),
                        points: share.points,
                        rules,
                    },
                    indices: share.indices,
                }
            })
            .collect();
        let mut results: Vec<std::result::Result<(), PointError>> = vec![Ok(()); total];
        for attempt in 0..2 {
            if attempt > 0 {
                self.inner.owners.refresh().await
            } else {
                self.inner.owners.refresh_if_stale().await
            }
            .map_err(unavailable_owners)?;
            self.address(&mut parts, attempt > 0).await?;
            let answers = futures::future::join_all(parts.iter().map(|p| {
                let address = self.owner_address(p.batch.shard);
                async move { self.inner.client.send(&address, &p.batch).await }
            }))
            .await;
            let mut again = Vec::new();
            for (part, answer) in parts.into_iter().zip(answers) {
                match answer {
                    Ok(outcome) => place(&mut results, &part.indices, outcome),
                    Err(Error::NotOwner { .. } | Error::StaleEpoch { .. }) if attempt == 0 => {
                        again.push(part);
                    }
                    Err(e) => return Err(self.failed(e)),
                }
            }
            if again.is_empty() {
                return Ok(WriteOutcome { results });
            }
            parts = again;
        }
        Err(Error::Moving {
            shard: parts.first().map_or(0, |p| p.batch.shard),
        })
    }

    /// Stamps each part with its owner's epoch; a shard without a live
    /// owner is read again once (`refreshed`: already done).
    async fn address(&self, parts: &mut [Part], refreshed: bool) -> Result<()> {
        let owners = &self.inner.owners;
        let shards = || parts.iter().map(|p| p.batch.shard).collect::<Vec<_>>();
        if !refreshed && owners.missing(shards()).is_some() {
            owners.refresh().await.map_err(unavailable_owners)?;
        }
        if let Some(shard) = owners.missing(shards()) {
            return Err(Error::NoOwner { shard });
        }
        for part in parts {
            if let Some(owner) = owners.owner(part.batch.shard) {
                part.batch.epoch = owner.epoch;
            }
        }
        Ok(())
    }

    fn owner_address(&self, shard: u32) -> String {
        self.inner
            .owners
            .owner(shard)
            .map(|o| o.address)
            .unwrap_or_default()
    }

    /// A send that failed for good: the owners are read again before the
    /// next write (the owner may have died and its shards moved).
    fn failed(&self, e: Error) -> Error {
        if let Error::Peer { .. } | Error::PeerBusy { .. } = e {
            warn!(error = %e, "a shard owner did not take a write");
            self.inner.owners.mark_stale();
        }
        e
    }
}

impl PointSink for Router {
    fn write(&self, write: PointWrite) -> SinkFuture<'_> {
        Box::pin(async move {
            let rules = BatchRules {
                groups: write.groups,
                vetoed: write.vetoed,
            };
            let outcome = self
                .route(write.db.name(), write.points, rules)
                .await
                .map_err(to_storage)?;
            // The owners answered after JetStream kept the frames.
            Ok(Written {
                outcome,
                commit: Commit::done(),
            })
        })
    }
}

/// A router's failure in the adapters' terms: anything a retry can fix
/// is busy (the API's busy answer with its retry hint).
fn to_storage(e: Error) -> sundial_storage::Error {
    use sundial_storage::ErrorClass;
    let class = match &e {
        Error::Storage(e) => e.class(),
        Error::BadDatabase(_) => ErrorClass::InvalidInput,
        Error::PeerRefused { class, .. } => *class,
        Error::NotOwner { .. }
        | Error::Moving { .. }
        | Error::StaleEpoch { .. }
        | Error::NoOwner { .. }
        | Error::PeerBusy { .. }
        | Error::Peer { .. }
        | Error::Postgres(_) => ErrorClass::Busy,
        _ => ErrorClass::Internal,
    };
    if let Error::Storage(e) = e {
        return e;
    }
    sundial_storage::Error::Remote {
        reason: e.to_string(),
        class,
    }
}

/// Reading the owners failed: writes cannot be placed now.
fn unavailable_owners(e: Error) -> Error {
    warn!(error = %e, "cannot read the shard owners");
    e
}

/// Each point's group number: the listed sizes in order, then one group
/// per point (`Rules::groups`).
fn group_numbers(sizes: &[usize], total: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(total);
    let mut sizes = sizes.iter();
    let mut group = 0;
    while out.len() < total {
        let size = sizes
            .next()
            .copied()
            .unwrap_or(1)
            .clamp(1, total - out.len());
        out.extend(std::iter::repeat_n(group, size));
        group += 1;
    }
    out
}

/// One shard's share of the request's rules: a group's points in the
/// shard stay consecutive (both keep request order), so they form one
/// group there.
fn shard_rules(indices: &[usize], group_of: &[usize], vetoed: &[bool]) -> BatchRules {
    let mut groups: Vec<usize> = Vec::new();
    let mut last = None;
    for i in indices {
        let group = group_of.get(*i).copied();
        match groups.last_mut() {
            Some(size) if group == last => *size += 1,
            _ => groups.push(1),
        }
        last = group;
    }
    // Only singletons: the same as no groups.
    if groups.iter().all(|g| *g == 1) {
        groups.clear();
    }
    let mut shard_vetoed: Vec<bool> = indices
        .iter()
        .map(|i| vetoed.get(*i).copied().unwrap_or(false))
        .collect();
    while shard_vetoed.last() == Some(&false) {
        shard_vetoed.pop();
    }
    BatchRules {
        groups,
        vetoed: shard_vetoed,
    }
}

/// Puts one shard's answers at their request indices.
fn place(
    results: &mut [std::result::Result<(), PointError>],
    indices: &[usize],
    outcome: WriteOutcome,
) {
    for (i, r) in indices.iter().zip(outcome.results) {
        if let Some(slot) = results.get_mut(*i) {
            *slot = r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_keeps_its_points_together_in_each_shard() {
        // Groups [2, 3], then singles; points 0..8 over two shards.
        let group_of = group_numbers(&[2, 3], 8);
        assert_eq!(group_of, [0, 0, 1, 1, 1, 2, 3, 4]);
        let vetoed = [false, false, false, true, false, false, false, true];
        // Shard A has 0, 2, 3, 6; shard B 1, 4, 5, 7.
        let a = shard_rules(&[0, 2, 3, 6], &group_of, &vetoed);
        assert_eq!(a.groups, [1, 2, 1]);
        assert_eq!(a.vetoed, [false, false, true]);
        let b = shard_rules(&[1, 4, 5, 7], &group_of, &vetoed);
        assert!(b.groups.is_empty(), "no group spans two points: {b:?}");
        assert_eq!(b.vetoed, [false, false, false, true]);
        // No rules: none in any shard.
        let none = shard_rules(&[0, 1, 2], &group_numbers(&[], 3), &[]);
        assert_eq!(none, BatchRules::default());
        // A whole-request group (Baidu's rule): one group per shard.
        let whole = group_numbers(&[8], 8);
        assert_eq!(shard_rules(&[1, 4, 5, 7], &whole, &[]).groups, [4]);
    }
}
