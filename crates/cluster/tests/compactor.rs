//! The compactor against real PostgreSQL, nats-server and S3: under its
//! lease it has each shard's owner merge the shard's blocks, the manifest
//! and the store end up naming the same objects, what was written reads
//! the same (also for the next owner, restored from the checkpoint), and
//! one compactor works at a time, another taking over once its lease is
//! gone.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use sundial_cluster::{Compactor, CompactorConfig, FrameClient, Meta, compactor_lease};

const SECRET: &str = "compactor test";

async fn compactor(engines: &Engines, holder: &str, ttl: Duration) -> anyhow::Result<Compactor> {
    let config = CompactorConfig {
        holder: holder.to_owned(),
        ttl,
        every: Duration::from_secs(3600),
        grace: Duration::ZERO,
    };
    let client = FrameClient::new(SECRET, Duration::from_secs(30));
    Ok(Compactor::new(&engines.pg.url(), SHARDS, client, engines.store()?, config).await?)
}

/// `compactor` running until the sender is dropped or sent to.
fn run(
    compactor: &Compactor,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let c = compactor.clone();
    let task = tokio::spawn(async move {
        c.run(async move {
            let _ = stopped.await;
        })
        .await;
    });
    (task, stop)
}

/// The manifest's blocks of `database`, per shard, as keys below the
/// shard's database (how the store lists them).
async fn manifest(meta: &Meta, database: &str) -> anyhow::Result<BTreeMap<u32, BTreeSet<String>>> {
    let mut out: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    for b in meta
        .blocks_overlapping(database, None, i64::MIN, i64::MAX)
        .await?
    {
        let prefix = format!("shard-{:04}/{database}/", b.shard);
        let key = b
            .object_key
            .strip_prefix(&prefix)
            .ok_or_else(|| anyhow::anyhow!("{} is not below {prefix}", b.object_key))?;
        out.entry(b.shard).or_default().insert(key.to_owned());
    }
    Ok(out)
}

/// The objects the store holds for `database`, per shard.
async fn objects(
    engines: &Engines,
    database: &str,
) -> anyhow::Result<BTreeMap<u32, BTreeSet<String>>> {
    let store = engines.store()?;
    let database = database.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut out = BTreeMap::new();
        for shard in 0..SHARDS {
            let keys = store
                .group(&format!("shard-{shard:04}"))
                .database(&database)
                .list()?;
            out.insert(shard, keys.into_iter().collect());
        }
        Ok(out)
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_merge_their_blocks_and_the_replaced_objects_go() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let ttl = Duration::from_secs(3);
    let a = engines
        .served_with("a", SECRET, ttl, |c| c.storage.compaction_settle_secs = 0)
        .await?;
    until("a to own every shard", || {
        a.ingester.shards().len() == SHARDS as usize
    })
    .await?;
    // Three checkpoints, each flushing the same closed day's partition
    // into a block of its own (the third overwrites some points).
    let database = DATABASES[0];
    let mut expected = Expected::new();
    for (times, round) in [(0..30, 1), (30..60, 1), (10..40, 2)] {
        write(&a.ingester, database, points(times, round), &mut expected).await?;
        a.ingester.checkpoint_all().await?;
    }
    let meta = Meta::connect(&engines.pg.url()).await?;
    let before = manifest(&meta, database).await?;
    assert_eq!(before.len(), SHARDS as usize);
    assert!(before.values().all(|keys| keys.len() == 3), "{before:?}");
    assert_eq!(objects(&engines, database).await?, before);

    let c = compactor(&engines, "c1", ttl).await?;
    let (task, stop) = run(&c);
    until("a compaction round", || c.counts().0 >= 1).await?;
    let (_, retired, deleted) = c.counts();
    // Each shard's three blocks became one; the three replaced objects of
    // each shard were retired and deleted (no grace in this test).
    let after = manifest(&meta, database).await?;
    assert!(after.values().all(|keys| keys.len() == 1), "{after:?}");
    for (shard, keys) in &after {
        assert!(before[shard].is_disjoint(keys), "shard {shard}: {keys:?}");
    }
    assert_eq!(retired, 3 * u64::from(SHARDS));
    assert_eq!(deleted, retired);
    assert_eq!(objects(&engines, database).await?, after);
    assert_eq!(stored(&[&a.ingester]).await?, expected);
    let _ = stop.send(());
    task.await?;

    // The owner dies; the next one restores the compacted blocks from the
    // checkpoint and serves the same points.
    a.die("a").await;
    let b = engines.ingester("b").await?;
    let (_b_keeper, _b_stop) = engines.keep_all("b", &b, ttl).await?;
    assert_eq!(stored(&[&b]).await?, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_compactor_works_at_a_time_and_another_takes_over() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let ttl = Duration::from_secs(2);
    let c1 = compactor(&engines, "c1", ttl).await?;
    let c2 = compactor(&engines, "c2", ttl).await?;
    let (c1_task, _c1_stop) = run(&c1);
    until("c1 to lead", || c1.is_leader()).await?;
    let (c2_task, c2_stop) = run(&c2);
    let meta = Meta::connect(&engines.pg.url()).await?;
    // Over two lease times of c2 trying: c1 alone holds the lease.
    let watch = std::time::Instant::now();
    while watch.elapsed() < 2 * ttl {
        assert!(c1.is_leader() && !c2.is_leader());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (holder, first_epoch) = meta
        .lease_holder(&compactor_lease())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no compactor lease"))?;
    assert_eq!(holder, "c1");
    assert!(c1.counts().0 >= 1, "c1 ran no round");

    // c1 dies without giving the lease up: c2 takes it once it expires,
    // under a higher epoch, and works.
    c1_task.abort();
    until("c2 to lead", || c2.is_leader()).await?;
    let (holder, epoch) = meta
        .lease_holder(&compactor_lease())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no compactor lease"))?;
    assert_eq!(holder, "c2");
    assert!(epoch > first_epoch);
    until("a round of c2", || c2.counts().0 >= 1).await?;

    // A clean stop gives the lease up at once.
    let _ = c2_stop.send(());
    c2_task.await?;
    let c3 = compactor(&engines, "c3", ttl).await?;
    let (_c3_task, _c3_stop) = run(&c3);
    until("c3 to lead", || c3.is_leader()).await?;
    Ok(())
}

/// Objects nothing names (an upload never recorded, a checkpoint's state
/// left behind) stay while a checkpoint of their database may still
/// record them, and go once one committed after them; what the manifest
/// and the checkpoints name stays, and the next owner restores from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_go_once_a_checkpoint_has_passed_them() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let ttl = Duration::from_secs(3);
    let a = engines.served_alone("a", SECRET, ttl).await?;
    let database = DATABASES[0];
    let mut expected = Expected::new();
    write(&a.ingester, database, points(0..10, 1), &mut expected).await?;
    a.ingester.checkpoint_all().await?;

    // What a fenced owner might have left in shard 0: a block and a
    // checkpoint's state file, named by nothing.
    let store = engines.store()?;
    let strays = [
        ("shard-0000", "stray-block"),
        ("state-0000", "99-1.catalog"),
    ];
    let uploading = store.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for (group, key) in strays {
            let target = uploading.group(group).database(database);
            target.upload(key, bytes::Bytes::from_static(b"orphan"))?;
        }
        Ok(())
    })
    .await??;
    let present = |store: sundial_storage::RemoteStore| async move {
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<bool>> {
            strays
                .iter()
                .map(|(group, key)| {
                    let keys = store.group(group).database(database).list()?;
                    Ok(keys.iter().any(|k| k == key))
                })
                .collect()
        })
        .await?
    };

    let config = CompactorConfig {
        holder: "c1".into(),
        ttl,
        every: Duration::from_millis(100),
        grace: Duration::ZERO,
    };
    let client = FrameClient::new(SECRET, Duration::from_secs(30));
    let c = Compactor::new(&engines.pg.url(), SHARDS, client, engines.store()?, config).await?;
    let (task, stop) = run(&c);
    // Two rounds with no checkpoint since the upload: they stay.
    until("a compaction round", || c.counts().0 >= 1).await?;
    let rounds = c.counts().0;
    until("two more rounds", || c.counts().0 >= rounds + 2).await?;
    assert_eq!(present(store.clone()).await?, [true, true]);
    assert_eq!(c.orphans_deleted(), 0);

    // Checkpoints that commit after them: they go.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut minute = 10;
    while c.orphans_deleted() < 2 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "orphans never deleted"
        );
        write(
            &a.ingester,
            database,
            points(minute..minute + 1, 1),
            &mut expected,
        )
        .await?;
        a.ingester.checkpoint_all().await?;
        minute += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(present(store).await?, [false, false]);
    let _ = stop.send(());
    task.await?;
    // Nothing named was touched: the store holds what the manifest
    // names, and the next owner restores every point.
    let meta = Meta::connect(&engines.pg.url()).await?;
    assert_eq!(
        objects(&engines, database).await?,
        manifest(&meta, database).await?
    );
    assert_eq!(stored(&[&a.ingester]).await?, expected);
    a.die("a").await;
    let b = engines.ingester("b").await?;
    let (_b_keeper, _b_stop) = engines.keep_all("b", &b, ttl).await?;
    assert_eq!(stored(&[&b]).await?, expected);
    Ok(())
}
