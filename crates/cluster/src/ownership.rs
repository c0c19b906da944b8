//! Which ingester owns which shard. Every ingester computes the same
//! answer from the live ingesters alone (rendezvous hashing: a shard goes
//! to the node with the highest score for it), so no coordinator is
//! needed, and a node that joins or leaves moves only the shards it gains
//! or had. A [`Keeper`] brings the leases in line with that answer, one
//! [`Keeper::tick`] at a time: it hands off shards it should no longer own
//! (after its [`ShardHandler`] has flushed them), takes the ones it should
//! (once their previous owner released them or its lease ran out) and
//! renews the rest, in a fixed number of statements per tick.
//!
//! A node keeps its shards while PostgreSQL cannot be reached: writes go
//! on into the shards' JetStream logs, which fence a former owner by
//! themselves (docs/cluster.md, "Without PostgreSQL").

use crate::error::{Error, Result};
use crate::lease::{Lease, shard_lease};
use crate::membership::{Node, Role};
use crate::meta::Meta;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The score of `node_id` for `shard`; the highest wins the shard.
fn score(node_id: &str, shard: u32) -> u64 {
    let mut h = crc32fast::Hasher::new();
    h.update(node_id.as_bytes());
    h.update(&shard.to_le_bytes());
    // CRC-32 alone is linear in its input; the splitmix64 finaliser
    // decorrelates the scores of one node across shards.
    let mut z = u64::from(h.finalize()) ^ (u64::from(shard) << 32);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The node among `nodes` that should own `shard`; `None` without nodes.
pub fn owner_of(shard: u32, nodes: &[String]) -> Option<&str> {
    nodes
        .iter()
        .max_by(|a, b| (score(a, shard), b.as_str()).cmp(&(score(b, shard), a.as_str())))
        .map(String::as_str)
}

/// What a node does when it gains or gives up a shard.
pub trait ShardHandler: Send {
    /// The shard is now this node's under `lease`: replay its WAL from
    /// the flushed position and start taking writes. On an error the
    /// lease is released again and a later tick tries anew.
    fn gained(&mut self, shard: u32, lease: &Lease) -> impl Future<Output = Result<()>> + Send;

    /// The shard should move to another node: stop taking writes and
    /// flush it. The lease is released only when this succeeds.
    fn releasing(&mut self, shard: u32, lease: &Lease) -> impl Future<Output = Result<()>> + Send;

    /// The lease was lost without a hand-off (it ran out and another
    /// node took it): stop at once; whatever was not flushed is in the
    /// WAL, which the new owner replays.
    fn lost(&mut self, shard: u32, lease: &Lease) -> impl Future<Output = ()> + Send;

    /// The leases of `shards` are surely this node's until `until` (a
    /// grant or renewal went through); past it, PostgreSQL has not
    /// confirmed them.
    fn confirmed(&mut self, shards: &[u32], until: Instant) {
        let _ = (shards, until);
    }
}

/// What one [`Keeper::tick`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    pub gained: Vec<u32>,
    pub released: Vec<u32>,
    pub lost: Vec<u32>,
    /// Shards this node should own whose lease someone else still holds.
    pub waiting: Vec<u32>,
    /// Shards whose lease was granted but which could not be opened
    /// (their lease was released again).
    pub failed: Vec<u32>,
}

impl TickReport {
    pub fn settled(&self) -> bool {
        self.gained.is_empty()
            && self.released.is_empty()
            && self.lost.is_empty()
            && self.waiting.is_empty()
            && self.failed.is_empty()
    }
}

/// Keeps one ingester's shard leases in line with the live ingesters.
#[derive(Debug)]
pub struct Keeper {
    meta: Arc<Meta>,
    node: Node,
    shards: u32,
    ttl: Duration,
    held: BTreeMap<u32, Lease>,
    /// The last round failed (PostgreSQL unreachable, most likely).
    failing: bool,
    /// After an outage, no lease is taken before this: every live holder
    /// renews within a lease time, so only dead nodes' shards move, not
    /// every shard whose lease ran out while PostgreSQL was down.
    no_takeover_until: Option<Instant>,
}

impl Keeper {
    /// A keeper for `node_id`, reachable by peers at `advertise`, over
    /// `shards` shards whose leases last `ttl` past each renewal.
    pub fn new(
        meta: Arc<Meta>,
        node_id: &str,
        advertise: &str,
        shards: u32,
        ttl: Duration,
    ) -> Self {
        Self {
            meta,
            node: Node {
                node_id: node_id.to_owned(),
                role: Role::Ingester.name().to_owned(),
                advertise: advertise.to_owned(),
            },
            shards: shards.max(1),
            ttl,
            held: BTreeMap::new(),
            failing: false,
            no_takeover_until: None,
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node.node_id
    }

    /// The shards held now, with their leases.
    pub fn held(&self) -> &BTreeMap<u32, Lease> {
        &self.held
    }

    /// One round: heartbeat, renew, hand off, take over. When the
    /// metadata store cannot be reached the round fails and the node
    /// keeps its shards (their logs fence it if another node takes one
    /// over); once it is back, the renewal says which are still ours.
    pub async fn tick(&mut self, handler: &mut impl ShardHandler) -> Result<TickReport> {
        let mut report = TickReport::default();
        let outcome = self.round(handler, &mut report).await;
        self.failing = outcome.is_err();
        outcome.map(|()| report)
    }

    async fn round(
        &mut self,
        handler: &mut impl ShardHandler,
        report: &mut TickReport,
    ) -> Result<()> {
        if self.meta.is_closed() {
            // PostgreSQL restarted: its connection never comes back.
            self.meta = Arc::new(self.meta.reconnect().await?);
            info!("metadata store connection made again");
        }
        self.meta.heartbeat(&self.node, self.ttl).await?;
        let live: Vec<String> = self
            .meta
            .live_nodes(&[Role::Ingester])
            .await?
            .into_iter()
            .map(|n| n.node_id)
            .collect();
        self.renew(handler, report).await?;
        if self.failing {
            self.no_takeover_until = Some(Instant::now() + self.ttl);
        }
        let me = self.node.node_id.clone();
        let mine = |shard: u32| owner_of(shard, &live) == Some(me.as_str());
        let to_hand_off: Vec<u32> = self.held.keys().copied().filter(|&s| !mine(s)).collect();
        for shard in to_hand_off {
            self.hand_off(shard, handler, report).await?;
        }
        let to_take: Vec<u32> = (0..self.shards)
            .filter(|&s| mine(s) && !self.held.contains_key(&s))
            .collect();
        if self.no_takeover_until.is_some_and(|t| Instant::now() < t) {
            report.waiting.extend(to_take);
            return Ok(());
        }
        for shard in to_take {
            let sent = Instant::now();
            match self.meta.acquire(&shard_lease(shard), &me, self.ttl).await {
                Ok(lease) => {
                    if let Err(e) = handler.gained(shard, &lease).await {
                        warn!(shard, error = %e, "cannot open the gained shard; lease released");
                        self.meta.release(&lease).await?;
                        report.failed.push(shard);
                        continue;
                    }
                    info!(shard, epoch = lease.epoch, "shard gained");
                    self.held.insert(shard, lease);
                    handler.confirmed(&[shard], sent + self.safe_ttl());
                    report.gained.push(shard);
                }
                Err(Error::Held { .. }) => report.waiting.push(shard),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The part of the lease time this node counts on after a grant or
    /// renewal was sent: a tenth less, for clock rates and the round trip.
    fn safe_ttl(&self) -> Duration {
        self.ttl - self.ttl / 10
    }

    /// Ticks every third of the lease time until `stop` completes, then
    /// shuts down cleanly: what an ingester runs for its whole life. A
    /// failed round is logged and the next one tries again.
    pub async fn run(
        mut self,
        handler: &mut impl ShardHandler,
        stop: impl Future<Output = ()>,
    ) -> Result<()> {
        let mut every = tokio::time::interval(self.ttl / 3);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = every.tick() => {
                    if let Err(e) = self.tick(handler).await {
                        warn!(error = %e, "shard ownership round failed");
                    }
                }
            }
        }
        self.shutdown(handler).await
    }

    /// Gives every shard back (flushing each through `handler`) and
    /// leaves the live nodes: a clean shutdown moves shards at once.
    pub async fn shutdown(mut self, handler: &mut impl ShardHandler) -> Result<()> {
        let mut report = TickReport::default();
        let held: Vec<u32> = self.held.keys().copied().collect();
        for shard in held {
            self.hand_off(shard, handler, &mut report).await?;
        }
        self.meta.leave(&self.node.node_id).await
    }

    async fn renew(
        &mut self,
        handler: &mut impl ShardHandler,
        report: &mut TickReport,
    ) -> Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let leases: Vec<&Lease> = self.held.values().collect();
        let sent = Instant::now();
        let renewed: HashSet<String> = self
            .meta
            .renew_all(&leases, self.ttl)
            .await?
            .into_iter()
            .collect();
        let gone: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, l)| !renewed.contains(&l.name))
            .map(|(&s, _)| s)
            .collect();
        let kept: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, l)| renewed.contains(&l.name))
            .map(|(&s, _)| s)
            .collect();
        handler.confirmed(&kept, sent + self.safe_ttl());
        for shard in gone {
            if let Some(lease) = self.held.remove(&shard) {
                warn!(shard, epoch = lease.epoch, "shard lease lost");
                handler.lost(shard, &lease).await;
                report.lost.push(shard);
            }
        }
        Ok(())
    }

    async fn hand_off(
        &mut self,
        shard: u32,
        handler: &mut impl ShardHandler,
        report: &mut TickReport,
    ) -> Result<()> {
        let Some(lease) = self.held.get(&shard) else {
            return Ok(());
        };
        if let Err(e) = handler.releasing(shard, lease).await {
            // Kept (and renewed) until a later tick's flush succeeds.
            warn!(shard, error = %e, "shard hand-off postponed");
            return Ok(());
        }
        self.meta.release(lease).await?;
        info!(shard, epoch = lease.epoch, "shard handed off");
        self.held.remove(&shard);
        report.released.push(shard);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("ingester-{i}")).collect()
    }

    #[test]
    fn every_shard_has_one_owner_and_the_load_is_even() {
        let live = nodes(3);
        let mut counts = BTreeMap::new();
        for shard in 0..3000 {
            *counts
                .entry(owner_of(shard, &live).unwrap_or(""))
                .or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 3, "{counts:?}");
        // 1000 expected per node.
        assert!(
            counts.values().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn a_node_leaving_moves_only_its_own_shards() {
        let live = nodes(4);
        let fewer: Vec<String> = live
            .iter()
            .filter(|n| *n != "ingester-2")
            .cloned()
            .collect();
        for shard in 0..1000 {
            let before = owner_of(shard, &live);
            let after = owner_of(shard, &fewer);
            if before != Some("ingester-2") {
                assert_eq!(before, after, "shard {shard} moved");
            } else {
                assert_ne!(after, Some("ingester-2"));
            }
        }
    }

    #[test]
    fn the_answer_does_not_depend_on_list_order_and_is_pinned() {
        let mut live = nodes(5);
        let forward: Vec<_> = (0..64)
            .map(|s| owner_of(s, &live).map(str::to_owned))
            .collect();
        live.reverse();
        let backward: Vec<_> = (0..64)
            .map(|s| owner_of(s, &live).map(str::to_owned))
            .collect();
        assert_eq!(forward, backward);
        assert_eq!(owner_of(0, &[]), None);
        // Python (zlib.crc32 and the same finaliser) computed these; changing
        // the score moves shards between the nodes of a running
        // cluster that mixes versions: these must never change.
        assert_eq!(score("ingester-0", 0), 0x9c95_a264_34c6_a1e5);
        assert_eq!(score("ingester-1", 63), 0x7db2_8d5c_2a47_da4e);
    }
}
