//! `wal = "local"` (docs/cluster.md, "A local log"): an ingester logs each
//! frame on its own disk before applying it. Killed and started again, it
//! replays its own log: every acknowledged point is back. After another
//! node held its shards meanwhile, its old frames are never replayed over
//! what that node wrote (points it had not checkpointed are lost: what a
//! local log gives up against JetStream's). A clean hand-off loses
//! nothing.

mod common;

use common::*;
use std::time::Duration;

const SECRET: &str = "local log test secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_replays_its_own_local_log_and_never_a_stale_one() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let ttl = Duration::from_secs(3);
    let database = DATABASES[0];
    let mut expected = Expected::new();

    // a checkpoints minutes 0..30; 30..60 are only in its log and heads.
    let a = engines.served_local("a", SECRET, ttl).await?;
    write(&a.ingester, database, points(0..30, 1), &mut expected).await?;
    a.ingester.checkpoint_all().await?;
    write(&a.ingester, database, points(30..60, 1), &mut expected).await?;
    a.die("a").await;

    // Started again on its disk: it replays its log.
    let a = engines.served_local("a", SECRET, ttl).await?;
    assert_eq!(stored(&[&a.ingester]).await?, expected);
    let checkpointed = expected.clone();
    a.ingester.checkpoint_all().await?;
    let mut lost = expected.clone();
    write(&a.ingester, database, points(60..70, 2), &mut lost).await?;
    a.die("a").await;

    // b takes the shards from the last checkpoint: a's minutes 60..70
    // were only on a's disk. b writes and hands the shards off cleanly.
    let b = engines.served_local("b", SECRET, ttl).await?;
    assert_eq!(stored(&[&b.ingester]).await?, checkpointed);
    let mut expected = checkpointed;
    write(&b.ingester, database, points(70..80, 3), &mut expected).await?;
    let _ = b.stop.send(());
    b.keeper.await?;

    // a again: its log was written before b held the shards, so none of
    // it comes back; b's points are all there.
    let a = engines.served_local("a", SECRET, ttl).await?;
    let now = stored(&[&a.ingester]).await?;
    assert_eq!(now, expected);
    let gone = lost.keys().filter(|k| !now.contains_key(*k)).count();
    assert_eq!(gone, 10 * 24, "a's minutes 60..70 of 24 hosts");
    a.die("a").await;
    Ok(())
}
