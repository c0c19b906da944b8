//! The write-ahead log against a real NATS server with JetStream (Debian's
//! nats-server, started by `sundial_testkit::nats`; the tests fail, never
//! skip, when it is missing): positions, replay after a position per
//! shard, a retried append stored once, durability across a SIGKILL of
//! the server, truncation after a flush, and the hand-over through the
//! manifest's flushed position (PostgreSQL).

use anyhow::Context;
use bytes::Bytes;
use sundial_cluster::{BlockRow, Flush, JetStreamWal, Meta, WalConfig, shard_lease};
use sundial_testkit::nats::{Nats, NatsCluster};
use sundial_testkit::postgres::Postgres;

/// A batch's payload as an ingester would frame it: here, text naming
/// its shard and number, so that every read-back can be checked.
fn batch(shard: u32, n: u32) -> Bytes {
    Bytes::from(format!("shard {shard} batch {n}"))
}

fn payloads(entries: &[sundial_cluster::WalEntry]) -> Vec<Bytes> {
    entries.iter().map(|e| e.payload.clone()).collect()
}

#[tokio::test]
async fn batches_replay_in_order_per_shard_and_survive_a_crash() -> anyhow::Result<()> {
    let mut nats = Nats::start()?;
    let config = WalConfig::default();
    let wal = JetStreamWal::connect(&nats.url(), &config).await?;
    // Shards interleaved, as concurrent writers would append.
    let mut positions = Vec::new();
    for n in 0..5 {
        for shard in [0, 1] {
            let at = wal
                .append(shard, &format!("{shard}-{n}"), batch(shard, n))
                .await?;
            positions.push((shard, n, at));
        }
    }
    // Each shard has its own stream: positions count its batches from 1.
    for shard in [0, 1] {
        let mine: Vec<u64> = positions
            .iter()
            .filter(|p| p.0 == shard)
            .map(|p| p.2)
            .collect();
        assert_eq!(mine, [1, 2, 3, 4, 5], "shard {shard}");
    }
    for shard in [0, 1] {
        let all = wal.replay(shard, 0).await?;
        let want: Vec<Bytes> = (0..5).map(|n| batch(shard, n)).collect();
        assert_eq!(payloads(&all), want, "shard {shard}");
        // After the third batch's position: the last two only.
        let third = all[2].position;
        let rest = wal.replay(shard, third).await?;
        assert_eq!(payloads(&rest), want[3..].to_vec(), "shard {shard}");
        assert!(wal.replay(shard, all[4].position).await?.is_empty());
    }

    // A retried append (same batch id) is stored once, at its first
    // position.
    let first = positions[0].2;
    assert_eq!(wal.append(0, "0-0", batch(0, 0)).await?, first);
    assert_eq!(wal.replay(0, 0).await?.len(), 5);

    // What JetStream acknowledged survives a SIGKILL of the server.
    nats.crash_and_restart()?;
    let wal = JetStreamWal::connect(&nats.url(), &config).await?;
    for shard in [0, 1] {
        let want: Vec<Bytes> = (0..5).map(|n| batch(shard, n)).collect();
        assert_eq!(payloads(&wal.replay(shard, 0).await?), want);
    }
    // An unknown shard has nothing to replay.
    assert!(wal.replay(7, 0).await?.is_empty());
    Ok(())
}

/// An ingester flushes shard 2 up to a position and records it; the WAL
/// drops what the blocks hold; the next owner replays from the recorded
/// position and gets exactly the batches the blocks do not hold.
#[tokio::test]
async fn a_new_owner_replays_what_the_last_flush_did_not_cover() -> anyhow::Result<()> {
    let nats = Nats::start()?;
    let pg = Postgres::start()?;
    let wal = JetStreamWal::connect(&nats.url(), &WalConfig::default()).await?;
    let shard = 2;
    let mut at = Vec::new();
    for n in 0..6 {
        at.push(wal.append(shard, &format!("b{n}"), batch(shard, n)).await?);
    }
    let mut owner = Meta::connect(&pg.url()).await?;
    let lease = owner
        .acquire(
            &shard_lease(shard),
            "ingester-a",
            std::time::Duration::from_secs(60),
        )
        .await?;
    // Batches 0..4 went into one block.
    let block = BlockRow {
        object_key: "default/2/flush-1".to_owned(),
        database: "default".to_owned(),
        shard,
        min_ts: 0,
        max_ts: 10,
        bytes: 100,
    };
    let flushed = at[3];
    owner
        .commit_flush(
            &lease,
            &Flush {
                database: "default",
                shard,
                blocks: std::slice::from_ref(&block),
                wal_flushed: flushed,
                checkpoint: &[],
                retired: &[],
            },
        )
        .await?;
    wal.truncate(shard, flushed).await?;

    let next = Meta::connect(&pg.url()).await?;
    let from = next.wal_flushed("default", shard).await?.unwrap_or(0);
    assert_eq!(from, flushed);
    let replayed = wal.replay(shard, from).await?;
    assert_eq!(payloads(&replayed), vec![batch(shard, 4), batch(shard, 5)]);
    // Truncated batches are gone even for a reader starting at zero.
    assert_eq!(wal.replay(shard, 0).await?, replayed);
    Ok(())
}

/// Frames as an ingester logs them: a resent frame (same batch id) is
/// logged once, replay gives back the points sent, and an entry that is
/// not a frame stops the replay with its position instead of being
/// skipped.
#[tokio::test]
async fn frames_replay_as_sent_and_damage_is_named() -> anyhow::Result<()> {
    use std::sync::Arc;
    use sundial_cluster::{Error, ShardBatch};
    use sundial_model::{FieldValue, SeriesKey, ValueInput, WritePoint};

    let nats = Nats::start()?;
    let wal = JetStreamWal::connect(&nats.url(), &WalConfig::default()).await?;
    let shard = 5;
    let frames: Vec<ShardBatch> = (0..3u32)
        .map(|n| {
            let key = Arc::new(SeriesKey::new(
                "cpu",
                vec![("host".to_owned(), format!("h{n}"))],
            ));
            ShardBatch {
                rules: Default::default(),
                database: "default".to_owned(),
                shard,
                epoch: 1,
                id: u128::from(n) << 64 | 0xabc,
                points: (0..4)
                    .map(|i| WritePoint {
                        series: key.clone(),
                        field: "value".into(),
                        timestamp: 1_700_000_000_000 + i64::from(i) * 10_000,
                        value: ValueInput::Typed(FieldValue::Double(f64::from(n * 10 + i))),
                    })
                    .collect(),
            }
        })
        .collect();
    let mut at = Vec::new();
    for f in &frames {
        at.push(wal.append_frame(f).await?);
    }
    // The router resends the second frame after a lost acknowledgement.
    assert_eq!(wal.append_frame(&frames[1]).await?, at[1]);
    let shown = |b: &ShardBatch| format!("{} {} {} {:?}", b.database, b.shard, b.id, b.points);
    let replayed = wal.replay_frames(shard, 0).await?;
    assert_eq!(
        replayed
            .iter()
            .map(|(p, b)| (*p, shown(b)))
            .collect::<Vec<_>>(),
        at.iter()
            .zip(&frames)
            .map(|(p, b)| (*p, shown(b)))
            .collect::<Vec<_>>()
    );
    assert_eq!(wal.replay_frames(shard, at[1]).await?.len(), 1);

    let bad = wal.append(shard, "not-a-frame", batch(shard, 9)).await?;
    match wal.replay_frames(shard, 0).await {
        Err(Error::DamagedWal { position, .. }) => assert_eq!(position, bad),
        other => anyhow::bail!("a damaged log replayed: {other:?}"),
    }
    Ok(())
}

/// Retries `op` until it succeeds, up to a bound: while a lost server's
/// streams and the metadata elect new leaders (seconds), requests time
/// out; an append retried with its batch id lands once.
async fn retrying<T, F: Future<Output = sundial_cluster::Result<T>>>(
    what: &str,
    mut op: impl FnMut() -> F,
) -> anyhow::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("{what} retried: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(anyhow::Error::new(e).context(what.to_owned())),
        }
    }
}

/// Three NATS servers, streams with three replicas: losing the stream's
/// leader loses no acknowledged batch, another is elected and appends go
/// on; with two of three gone
/// appends fail (no quorum) rather than being acknowledged unsafely, and
/// resume once a server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_log_survives_a_lost_server() -> anyhow::Result<()> {
    let mut cluster = tokio::task::spawn_blocking(|| NatsCluster::start(3)).await??;
    let config = WalConfig {
        replicas: 3,
        request_timeout: std::time::Duration::from_secs(1),
        ..WalConfig::default()
    };
    let wal = JetStreamWal::connect(&cluster.urls(), &config).await?;
    // A new stream's replicas elect their leader first: until then an
    // append may time out. The first append is retried (its batch id
    // makes a retry of a stored one store nothing), the others not.
    retrying("the new stream's leader", || async {
        match wal.leader(0).await? {
            Some(leader) => Ok(leader),
            None => Err(sundial_cluster::Error::Internal("no leader yet".into())),
        }
    })
    .await?;
    retrying("the first append", || wal.append(0, "r0", batch(0, 0))).await?;
    let mut want: Vec<Bytes> = vec![batch(0, 0)];
    for n in 1..10 {
        wal.append(0, &format!("r{n}"), batch(0, n))
            .await
            .context("append with all three up")?;
        want.push(batch(0, n));
    }
    // The stream's leader dies: another is elected, nothing
    // acknowledged is lost, appends go on.
    let leader = wal.leader(0).await?.context("the stream has no leader")?;
    let lost: usize = leader
        .strip_prefix('n')
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("leader {leader:?} is not one of ours"))?;
    tokio::task::block_in_place(|| cluster.kill(lost));
    let wal = JetStreamWal::connect(&cluster.urls(), &config).await?;
    let replayed = retrying("replay without the leader", || wal.replay(0, 0)).await?;
    assert_eq!(payloads(&replayed), want);
    for n in 10..15 {
        let id = format!("r{n}");
        retrying("append without the leader", || {
            wal.append(0, &id, batch(0, n))
        })
        .await?;
        want.push(batch(0, n));
    }
    let replayed = retrying("replay without the leader", || wal.replay(0, 0)).await?;
    assert_eq!(payloads(&replayed), want);
    let new_leader = retrying("a new leader", || wal.leader(0)).await?;
    assert!(new_leader.is_some_and(|l| l != leader));
    tokio::task::block_in_place(|| cluster.restart(lost))?;

    // Two of three down: no quorum, so no acknowledgement.
    let survivor = (lost + 1) % 3;
    tokio::task::block_in_place(|| {
        for i in (0..3).filter(|&i| i != survivor) {
            cluster.kill(i);
        }
    });
    let alone = JetStreamWal::connect(&cluster.urls(), &config).await?;
    assert!(alone.append(0, "no-quorum", batch(0, 99)).await.is_err());
    tokio::task::block_in_place(|| cluster.restart(lost))?;
    let wal = JetStreamWal::connect(&cluster.urls(), &config).await?;
    retrying("append after the quorum is back", || {
        wal.append(0, "after", batch(0, 100))
    })
    .await?;
    let stored = payloads(&retrying("replay", || wal.replay(0, 0)).await?);
    // The refused append may still have been stored once the quorum was
    // back (its sender was told it failed, as with any timed-out write);
    // everything acknowledged is there, in order, once.
    let acknowledged: Vec<Bytes> = stored
        .iter()
        .filter(|p| **p != batch(0, 99))
        .cloned()
        .collect();
    want.push(batch(0, 100));
    assert_eq!(acknowledged, want);
    Ok(())
}
