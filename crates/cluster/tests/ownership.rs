//! Shard ownership against a real PostgreSQL (`scripts/test` installs
//! it; the tests fail, never skip, when it is missing): ingesters split
//! the shards by rendezvous hashing, hand shards over when one joins,
//! take over a dead one's shards when its leases run out, and a dead
//! owner's epoch is fenced; without PostgreSQL they keep their shards,
//! and none move when it is back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_cluster::{
    Error, Keeper, Lease, Meta, Role, ShardHandler, TickReport, owner_of, shard_lease,
};
use sundial_testkit::postgres::Postgres;

const SHARDS: u32 = 16;
const LONG: Duration = Duration::from_secs(60);

/// Records what a keeper told it; refuses hand-offs while `refuse`.
#[derive(Debug, Default)]
struct Recorder {
    gained: Vec<u32>,
    released: Vec<u32>,
    lost: Vec<u32>,
    /// Per shard, until when the keeper last said its lease is sure.
    confirmed: BTreeMap<u32, Instant>,
    refuse: bool,
}

impl ShardHandler for Recorder {
    async fn gained(&mut self, shard: u32, _: &Lease) -> sundial_cluster::Result<()> {
        self.gained.push(shard);
        Ok(())
    }

    async fn releasing(&mut self, shard: u32, lease: &Lease) -> sundial_cluster::Result<()> {
        if self.refuse {
            return Err(Error::Held {
                name: lease.name.clone(),
                holder: "a flush that failed".to_owned(),
            });
        }
        self.released.push(shard);
        Ok(())
    }

    async fn lost(&mut self, shard: u32, _: &Lease) {
        self.lost.push(shard);
    }

    fn confirmed(&mut self, shards: &[u32], until: Instant) {
        for &shard in shards {
            self.confirmed.insert(shard, until);
        }
    }
}

struct Node {
    keeper: Keeper,
    handler: Recorder,
}

async fn node(pg: &Postgres, id: &str, ttl: Duration) -> anyhow::Result<Node> {
    let meta = Arc::new(Meta::connect(&pg.url()).await?);
    Ok(Node {
        keeper: Keeper::new(meta, id, &format!("{id}.local:4242"), SHARDS, ttl),
        handler: Recorder::default(),
    })
}

impl Node {
    async fn tick(&mut self) -> anyhow::Result<TickReport> {
        Ok(self.keeper.tick(&mut self.handler).await?)
    }

    fn held(&self) -> Vec<u32> {
        self.keeper.held().keys().copied().collect()
    }
}

/// Ticks every node, round after round, until a round changes nothing;
/// gives up at `deadline` (leases of dead nodes take their ttl to run out).
async fn settle(nodes: &mut [&mut Node], deadline: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let mut settled = true;
        for n in nodes.iter_mut() {
            settled &= n.tick().await?.settled();
        }
        if settled {
            return Ok(());
        }
        anyhow::ensure!(start.elapsed() < deadline, "ownership did not settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every shard is held by exactly the node rendezvous hashing names.
fn assert_split(nodes: &[&Node]) {
    let ids: Vec<String> = nodes.iter().map(|n| n.keeper_id()).collect();
    let mut holders: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for n in nodes {
        for s in n.held() {
            holders.entry(s).or_default().push(n.keeper_id());
        }
    }
    for shard in 0..SHARDS {
        let expected = owner_of(shard, &ids).map(str::to_owned);
        assert_eq!(
            holders.get(&shard).cloned().unwrap_or_default(),
            expected.into_iter().collect::<Vec<_>>(),
            "shard {shard}"
        );
    }
}

impl Node {
    fn keeper_id(&self) -> String {
        self.keeper.node_id().to_owned()
    }
}

#[tokio::test]
async fn ingesters_split_the_shards_and_hand_them_over_on_join() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let mut a = node(&pg, "ingester-a", LONG).await?;
    settle(&mut [&mut a], LONG).await?;
    assert_eq!(a.held(), (0..SHARDS).collect::<Vec<_>>());
    let mut b = node(&pg, "ingester-b", LONG).await?;
    let mut c = node(&pg, "ingester-c", LONG).await?;
    // No lease has to run out: a hands over what b and c should own.
    settle(&mut [&mut a, &mut b, &mut c], Duration::from_secs(20)).await?;
    assert_split(&[&a, &b, &c]);
    for joined in [&b, &c] {
        assert!(
            !joined.held().is_empty(),
            "{} got nothing",
            joined.keeper_id()
        );
        assert_eq!(joined.handler.gained, joined.held());
    }
    let mut handed: Vec<u32> = [b.held(), c.held()].concat();
    handed.sort_unstable();
    assert_eq!(a.handler.released, handed);
    assert!(a.handler.lost.is_empty());
    // Routers see the same owners.
    let meta = Meta::connect(&pg.url()).await?;
    let owners = meta.shard_owners().await?;
    assert_eq!(owners.len(), SHARDS as usize);
    for o in &owners {
        assert_eq!(o.advertise, format!("{}.local:4242", o.node_id));
        let holder = [&a, &b, &c]
            .into_iter()
            .find(|n| n.keeper_id() == o.node_id)
            .ok_or_else(|| anyhow::anyhow!("unknown owner {}", o.node_id))?;
        assert_eq!(
            holder.keeper.held().get(&o.shard).map(|l| l.epoch),
            Some(o.epoch)
        );
    }
    let live = meta.live_nodes(&[Role::Ingester]).await?;
    assert_eq!(live.len(), 3);
    Ok(())
}

#[tokio::test]
async fn a_dead_ingesters_shards_move_when_its_leases_run_out_and_it_is_fenced()
-> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let ttl = Duration::from_secs(1);
    let mut a = node(&pg, "ingester-a", ttl).await?;
    let mut b = node(&pg, "ingester-b", ttl).await?;
    let mut c = node(&pg, "ingester-c", ttl).await?;
    settle(&mut [&mut a, &mut b, &mut c], Duration::from_secs(20)).await?;
    let dead: BTreeMap<u32, Lease> = c.keeper.held().clone();
    assert!(!dead.is_empty());
    let (a_before, b_before) = (a.held(), b.held());
    // c stops without a word (kill -9): neither heartbeat nor release.
    drop(c);
    // a and b keep ticking (their own rows live on) until c's row has
    // expired, then until they hold c's shards.
    let meta = Meta::connect(&pg.url()).await?;
    let start = Instant::now();
    while meta
        .live_nodes(&[Role::Ingester])
        .await?
        .iter()
        .any(|n| n.node_id == "ingester-c")
    {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(20), "c stays live");
        a.tick().await?;
        b.tick().await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    settle(&mut [&mut a, &mut b], Duration::from_secs(20)).await?;
    assert_split(&[&a, &b]);
    let mut taken: Vec<u32> = a
        .held()
        .into_iter()
        .filter(|s| !a_before.contains(s))
        .chain(b.held().into_iter().filter(|s| !b_before.contains(s)))
        .collect();
    taken.sort_unstable();
    assert_eq!(taken, dead.keys().copied().collect::<Vec<_>>());
    // The dead owner's epochs are fenced: a paused c that wakes up can
    // neither renew nor record a flush.
    for (shard, lease) in &dead {
        let (_, epoch) = meta
            .lease_holder(&shard_lease(*shard))
            .await?
            .ok_or_else(|| anyhow::anyhow!("shard {shard} has no lease"))?;
        assert!(epoch > lease.epoch);
        assert!(matches!(
            meta.renew(lease, LONG).await,
            Err(Error::Fenced { .. })
        ));
    }
    Ok(())
}

#[tokio::test]
async fn a_clean_shutdown_moves_shards_at_once_and_a_failed_flush_keeps_them() -> anyhow::Result<()>
{
    let pg = Postgres::start()?;
    let mut a = node(&pg, "ingester-a", LONG).await?;
    let mut b = node(&pg, "ingester-b", LONG).await?;
    settle(&mut [&mut a, &mut b], Duration::from_secs(20)).await?;
    let b_had = b.held();
    // While b cannot flush, it keeps its shards.
    b.handler.refuse = true;
    let Node {
        keeper,
        mut handler,
    } = b;
    let kept = keeper.shutdown(&mut handler).await;
    assert!(kept.is_ok(), "{kept:?}");
    assert!(handler.released.is_empty());
    // The refused shutdown still left the live nodes, so a now wants
    // b's shards, but their leases are b's for another minute.
    let report = a.tick().await?;
    assert_eq!(report.waiting, b_had);
    // A second ingester that can flush: a hands it its share of a's
    // shards (b's stay locked), then d shuts down cleanly and a takes
    // them back at once.
    let mut d = node(&pg, "ingester-d", LONG).await?;
    d.tick().await?;
    a.tick().await?;
    d.tick().await?;
    let d_had = d.held();
    assert!(!d_had.is_empty());
    let Node {
        keeper,
        mut handler,
    } = d;
    keeper.shutdown(&mut handler).await?;
    assert_eq!(handler.released, d_had);
    let report = a.tick().await?;
    assert_eq!(report.gained, d_had, "a takes d's shards without waiting");
    assert_eq!(report.waiting, b_had);
    Ok(())
}

#[tokio::test]
async fn without_postgres_ingesters_keep_their_shards_and_none_move_when_it_is_back()
-> anyhow::Result<()> {
    let mut pg = Postgres::start()?;
    let ttl = Duration::from_secs(2);
    let mut a = node(&pg, "ingester-a", ttl).await?;
    let mut b = node(&pg, "ingester-b", ttl).await?;
    settle(&mut [&mut a, &mut b], Duration::from_secs(20)).await?;
    let (a_had, b_had) = (a.held(), b.held());
    assert!(!a_had.is_empty() && !b_had.is_empty());
    // Hand-offs so far (b joined after a took every shard).
    let handed_off = [a.handler.released.len(), b.handler.released.len()];

    // PostgreSQL goes away for twice the lease time: every round fails,
    // the confirmations lapse, and no shard is dropped (the logs fence a
    // node that would be taken over meanwhile).
    pg.kill();
    let start = Instant::now();
    while start.elapsed() < 2 * ttl {
        assert!(a.tick().await.is_err(), "a round without PostgreSQL");
        assert!(b.tick().await.is_err(), "a round without PostgreSQL");
        tokio::time::sleep(ttl / 4).await;
    }
    let now = Instant::now();
    for n in [&a, &b] {
        assert!(n.handler.lost.is_empty(), "{:?}", n.handler.lost);
        assert!(n.handler.confirmed.values().all(|until| *until < now));
    }
    assert_eq!((a.held(), b.held()), (a_had.clone(), b_had.clone()));

    // Back. a's first round finds b's leases and heartbeat expired, yet
    // takes nothing for a lease time; b renews its own meanwhile.
    pg.restart()?;
    let report = until_ok(&mut a).await?;
    assert!(report.gained.is_empty(), "{report:?}");
    assert_eq!(report.waiting, b_had, "b's shards look free to a");
    until_ok(&mut b).await?;
    settle(&mut [&mut a, &mut b], Duration::from_secs(20)).await?;
    assert_eq!((a.held(), b.held()), (a_had, b_had));
    let now = Instant::now();
    for (n, handed_off) in [&a, &b].into_iter().zip(handed_off) {
        assert!(n.handler.lost.is_empty(), "{:?}", n.handler.lost);
        assert_eq!(n.handler.released.len(), handed_off);
        let confirmed = |s: &u32| n.handler.confirmed.get(s).is_some_and(|until| *until > now);
        assert!(n.held().iter().all(confirmed));
    }
    Ok(())
}

/// A node's first successful round after PostgreSQL came back (its
/// connection is made again within a few rounds).
async fn until_ok(n: &mut Node) -> anyhow::Result<TickReport> {
    let start = Instant::now();
    loop {
        match n.tick().await {
            Ok(report) => return Ok(report),
            Err(_) if start.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[tokio::test]
async fn a_running_keeper_takes_its_shards_and_gives_them_back_when_stopped() -> anyhow::Result<()>
{
    let pg = Postgres::start()?;
    let Node {
        keeper,
        mut handler,
    } = node(&pg, "ingester-a", Duration::from_secs(3)).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        let outcome = keeper
            .run(&mut handler, async {
                let _ = stopped.await;
            })
            .await;
        (outcome, handler)
    });
    let meta = Meta::connect(&pg.url()).await?;
    let start = Instant::now();
    while meta.shard_owners().await?.len() < SHARDS as usize {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(20),
            "shards not taken"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        meta.shard_owners()
            .await?
            .iter()
            .all(|o| o.node_id == "ingester-a")
    );
    let _ = stop.send(());
    let (outcome, handler) = running.await?;
    outcome?;
    // Every shard handed back, the node gone from the live ones: a
    // successor need not wait for anything to expire.
    let mut released = handler.released.clone();
    released.sort_unstable();
    assert_eq!(released, (0..SHARDS).collect::<Vec<_>>());
    assert!(meta.shard_owners().await?.is_empty());
    assert!(meta.live_nodes(&[Role::Ingester]).await?.is_empty());
    Ok(())
}
