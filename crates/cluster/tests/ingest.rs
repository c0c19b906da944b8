//! Ingesters against a real PostgreSQL, nats-server with JetStream and an
//! S3 server (all started by `sundial_testkit`; the tests fail, never
//! skip, when one is missing): every acknowledged point survives its
//! owner's death (checkpointed points from the object store, later ones
//! from the log), a clean hand-off moves shards with their data, and
//! frames routed to a former owner or under an old epoch are refused.

mod common;

use common::*;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_cluster::{
    Error, JetStreamWal, Meta, ShardBatch, ShardHandler, WalConfig, owner_of, shard_lease,
    split_by_shard,
};
use sundial_model::{Listing, Names};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owners_acknowledged_points_are_all_served_by_the_next() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let mut a = engines.ingester("a").await?;
    let (a_keeper, _a_stop) = engines.keep_all("a", &a, Duration::from_secs(2)).await?;

    let mut expected = Expected::new();
    write(&a, DATABASES[0], points(0..30, 1), &mut expected).await?;
    write(&a, DATABASES[1], points(0..5, 1), &mut expected).await?;
    a.checkpoint_all().await?;
    // Checkpointed: blocks and position recorded, the log dropped to it.
    let meta = Meta::connect(&engines.pg.url()).await?;
    let blocks = meta
        .blocks_overlapping(DATABASES[0], None, i64::MIN, i64::MAX)
        .await?;
    let shards_with_blocks: HashSet<u32> = blocks.iter().map(|b| b.shard).collect();
    assert_eq!(shards_with_blocks.len(), SHARDS as usize, "{blocks:?}");
    let positions = meta.shard_positions(0).await?;
    assert_eq!(positions.len(), DATABASES.len(), "{positions:?}");
    assert!(
        positions
            .iter()
            .all(|p| p.flushed > 0 && !p.checkpoint.is_empty())
    );

    // After the checkpoint, only in the log: new times, and overwrites of
    // checkpointed points with other values.
    write(&a, DATABASES[0], points(20..40, 2), &mut expected).await?;
    write(&a, DATABASES[1], points(3..8, 2), &mut expected).await?;
    assert_eq!(stored(&[&a]).await?, expected);
    let old_epochs: BTreeMap<u32, i64> = a
        .shards()
        .into_iter()
        .filter_map(|s| Some((s, a.epoch(s)?)))
        .collect();

    // SIGKILL, in effect: no flush, no release; its leases run out.
    a_keeper.abort();
    for shard in a.shards() {
        a.lost(
            shard,
            &sundial_cluster::Lease {
                name: shard_lease(shard),
                holder: "a".into(),
                epoch: old_epochs[&shard],
            },
        )
        .await;
    }
    let late = ShardBatch {
        rules: Default::default(),
        database: DATABASES[0].to_owned(),
        shard: 0,
        epoch: old_epochs[&0],
        id: rand_id(),
        points: Vec::new(),
    };
    assert!(matches!(
        a.write(late.clone()).await,
        Err(Error::NotOwner { shard: 0 })
    ));

    let b = engines.ingester("b").await?;
    let (_b_keeper, _b_stop) = engines.keep_all("b", &b, Duration::from_secs(2)).await?;
    assert_eq!(
        stored(&[&b]).await?,
        expected,
        "b serves what a acknowledged"
    );
    for (&shard, &old) in &old_epochs {
        assert!(b.epoch(shard).is_some_and(|e| e > old));
    }
    match b.write(late).await {
        Err(Error::StaleEpoch {
            shard: 0,
            sent,
            current,
        }) => assert!(sent < current),
        other => anyhow::bail!("expected StaleEpoch, got {other:?}"),
    }

    // And b goes on: new points, a checkpoint of its own.
    write(&b, DATABASES[0], points(40..45, 3), &mut expected).await?;
    b.checkpoint_all().await?;
    assert_eq!(stored(&[&b]).await?, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_hand_off_moves_shards_with_their_points() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let a = engines.ingester("a").await?;
    let (_a_keeper, _a_stop) = engines.keep_all("a", &a, Duration::from_secs(3)).await?;
    let mut expected = Expected::new();
    write(&a, DATABASES[0], points(0..20, 1), &mut expected).await?;
    a.checkpoint_all().await?;
    write(&a, DATABASES[0], points(10..25, 2), &mut expected).await?;

    let b = engines.ingester("b").await?;
    let (_b_keeper, _b_stop) = engines.keep("b", &b, Duration::from_secs(3)).await?;
    let nodes = ["a".to_owned(), "b".to_owned()];
    let owner = |s: u32| owner_of(s, &nodes).map(str::to_owned);
    until("the shards to split as rendezvous hashing says", || {
        (0..SHARDS).all(|s| {
            let on_a = a.epoch(s).is_some();
            let on_b = b.epoch(s).is_some();
            on_a != on_b && (owner(s).as_deref() == Some("b")) == on_b
        })
    })
    .await?;
    let moved = b.shards();
    assert!(!moved.is_empty(), "b took no shard");
    assert_eq!(stored(&[&a, &b]).await?, expected);

    // A moved shard's log was flushed up to the hand-off: it holds only
    // the new owner's fence, everything else is in the object store.
    let wal = JetStreamWal::connect(&engines.nats.url(), &WalConfig::default()).await?;
    for &shard in &moved {
        let frames = wal.replay_frames(shard, 0).await?;
        assert_eq!(frames.len(), 1, "shard {shard}");
        assert!(frames[0].1.points.is_empty() && Some(frames[0].1.epoch) == b.epoch(shard));
    }
    // A frame for a moved shard, sent to its former owner, is refused.
    let to_a = ShardBatch {
        rules: Default::default(),
        database: DATABASES[0].to_owned(),
        shard: moved[0],
        epoch: 1,
        id: rand_id(),
        points: Vec::new(),
    };
    assert!(matches!(a.write(to_a).await, Err(Error::NotOwner { .. })));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_are_checkpointed_as_points_arrive() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let a = engines
        .ingester_with("a", |c| {
            c.checkpoint_points = 20;
            c.checkpoint_every = Duration::from_secs(3600);
        })
        .await?;
    let (_a_keeper, _a_stop) = engines.keep_all("a", &a, Duration::from_secs(3)).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let checkpoints = tokio::spawn({
        let a = a.clone();
        async move {
            a.run_checkpoints(async move {
                let _ = stopped.await;
            })
            .await;
        }
    });
    let mut expected = Expected::new();
    write(&a, DATABASES[0], points(0..10, 1), &mut expected).await?;

    // Every shard got more than 20 points: each is checkpointed and its
    // log emptied without anyone asking.
    let meta = Meta::connect(&engines.pg.url()).await?;
    let wal = JetStreamWal::connect(&engines.nats.url(), &WalConfig::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    for shard in 0..SHARDS {
        loop {
            let recorded = meta.shard_positions(shard).await?;
            if recorded.len() == 1 && wal.replay(shard, 0).await?.is_empty() {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "shard {shard} not checkpointed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let blocks = meta
        .blocks_overlapping(DATABASES[0], None, i64::MIN, i64::MAX)
        .await?;
    assert_eq!(
        blocks.iter().map(|b| b.shard).collect::<HashSet<_>>().len(),
        SHARDS as usize
    );
    assert_eq!(stored(&[&a]).await?, expected);
    let _ = stop.send(());
    checkpoints.await?;

    // A database name that cannot be a directory is refused before the
    // log sees it.
    let hostile = ShardBatch {
        rules: Default::default(),
        database: "../escape".to_owned(),
        shard: 0,
        epoch: a.epoch(0).unwrap_or_default(),
        id: rand_id(),
        points: points(0..1, 1),
    };
    assert!(matches!(a.write(hostile).await, Err(Error::BadDatabase(_))));
    assert!(wal.replay(0, 0).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_missed_losing_its_lease_cannot_log_after_the_next_one_fenced()
-> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let a = engines.ingester("a").await?;
    let (a_keeper, _a_stop) = engines.keep_all("a", &a, Duration::from_secs(2)).await?;
    let mut expected = Expected::new();
    write(&a, DATABASES[0], points(0..10, 1), &mut expected).await?;

    // A paused process: its keeper stops, but its ingester still believes
    // it owns every shard (nobody told it otherwise).
    a_keeper.abort();
    let b = engines.ingester("b").await?;
    let (_b_keeper, _b_stop) = engines.keep_all("b", &b, Duration::from_secs(2)).await?;
    assert_eq!(
        a.shards().len(),
        SHARDS as usize,
        "a never learnt it lost them"
    );

    // Nor does a answer reads of them any more: PostgreSQL has not
    // confirmed its leases lately, and the logs no longer end where a left
    // them. b answers for every shard, with the hosts written.
    assert_eq!(a.unconfirmed().len(), SHARDS as usize);
    let all: Vec<u32> = (0..SHARDS).collect();
    let hosts = Listing {
        names: Names::TagValues { metric: None },
        prefix: String::new(),
        range: None,
        max: 100,
    };
    let allowance = (Duration::from_secs(10), usize::MAX);
    let stale = a
        .list(DATABASES[0], &all, Arc::new(hosts.clone()), allowance)
        .await?;
    assert!(stale.shards.is_empty(), "{:?}", stale.shards);
    let fresh = b
        .list(DATABASES[0], &all, Arc::new(hosts), allowance)
        .await?;
    assert_eq!(fresh.shards, all);
    let written: Vec<String> = (0..24).map(|h| format!("h{h:02}")).collect();
    assert_eq!(fresh.listed.names.into_iter().collect::<Vec<_>>(), written);

    // a wakes up and writes under its old epochs: refused by the log
    // itself, whatever a's clock says.
    let late = points(50..51, 9);
    for (shard, part) in split_by_shard(late, SHARDS) {
        let batch = ShardBatch {
            rules: Default::default(),
            database: DATABASES[0].to_owned(),
            shard,
            epoch: a.epoch(shard).unwrap_or_default(),
            id: rand_id(),
            points: part.points,
        };
        match a.write(batch).await {
            Err(Error::NotOwner { shard: s }) => assert_eq!(s, shard),
            other => anyhow::bail!("shard {shard}: a stale write got {other:?}"),
        }
    }
    // Nothing of it reached the logs or b.
    let wal = JetStreamWal::connect(&engines.nats.url(), &WalConfig::default()).await?;
    for shard in 0..SHARDS {
        let epoch = b.epoch(shard).unwrap_or_default();
        let frames = wal.replay_frames(shard, 0).await?;
        let fence = frames
            .iter()
            .position(|(_, f)| f.epoch == epoch)
            .ok_or_else(|| anyhow::anyhow!("shard {shard}: no fence of b"))?;
        assert!(
            frames[fence..].iter().all(|(_, f)| f.epoch == epoch),
            "shard {shard}: a frame of another epoch after b's fence"
        );
    }
    assert_eq!(stored(&[&b]).await?, expected);
    // a stops taking writes for good; b goes on.
    assert!(matches!(
        a.write(ShardBatch {
            rules: Default::default(),
            database: DATABASES[0].to_owned(),
            shard: 0,
            epoch: a.epoch(0).unwrap_or_default(),
            id: rand_id(),
            points: Vec::new(),
        })
        .await,
        Err(Error::Moving { .. } | Error::NotOwner { .. })
    ));
    write(&b, DATABASES[0], points(10..12, 2), &mut expected).await?;
    assert_eq!(stored(&[&b]).await?, expected);
    Ok(())
}

/// A field's kind is the cluster's, not each shard's: once one shard took
/// numbers for a field, another refuses text for it as a single node
/// would, and types a number written as text by the field's kind; a
/// String field keeps such text as text in every shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fields_kind_holds_across_shards() -> anyhow::Result<()> {
    use sundial_model::{FieldValue, Kind, NumberText, PointError, ValueInput, WritePoint};
    let engines = Engines::start().await?;
    let a = engines.ingester("a").await?;
    let (_keeper, _stop) = engines.keep_all("a", &a, Duration::from_secs(2)).await?;
    // Two hosts whose series live in different shards.
    let shard = |h: usize| sundial_cluster::shard_of(&series(h), SHARDS);
    let other = (1..24)
        .find(|&h| shard(h) != shard(0))
        .ok_or_else(|| anyhow::anyhow!("every host in one shard"))?;
    let text = |t: &str, number: NumberText| ValueInput::Text {
        text: t.to_owned(),
        number,
    };
    let send = |host: usize, values: Vec<(&'static str, ValueInput)>| {
        let a = a.clone();
        async move {
            let points: Vec<WritePoint> = values
                .into_iter()
                .enumerate()
                .map(|(i, (field, value))| WritePoint {
                    series: series(host),
                    field: field.into(),
                    timestamp: 1_700_000_000_000 + i as i64 * 1000,
                    value,
                })
                .collect();
            let batch = ShardBatch {
                rules: Default::default(),
                database: DATABASES[0].to_owned(),
                shard: shard(host),
                epoch: a.epoch(shard(host)).unwrap_or_default(),
                id: rand_id(),
                points,
            };
            anyhow::Ok(a.write(batch).await?.results)
        }
    };
    // Host 0's shard fixes "value" numeric and "note" text.
    let first = send(
        0,
        vec![
            ("value", ValueInput::Typed(FieldValue::Long(1))),
            ("note", text("hello", NumberText::NotNumeric)),
        ],
    )
    .await?;
    assert!(first.iter().all(Result::is_ok), "{first:?}");
    // The other shard: text refused for the number, a number as text
    // read as one, a String value refused; "42" stays text in "note".
    let second = send(
        other,
        vec![
            ("value", text("abc", NumberText::NotNumeric)),
            (
                "value",
                text("42", NumberText::Number(FieldValue::Long(42))),
            ),
            ("value", ValueInput::Typed(FieldValue::String("x".into()))),
            ("note", text("42", NumberText::Number(FieldValue::Long(42)))),
        ],
    )
    .await?;
    assert_eq!(
        second,
        [
            Err(PointError::NotANumber),
            Ok(()),
            Err(PointError::KindMismatch {
                stored: Kind::Numeric,
                written: Kind::String
            }),
            Ok(()),
        ]
    );
    let db = a
        .db(shard(other), DATABASES[0])
        .await
        .ok_or_else(|| anyhow::anyhow!("no database in the other shard"))?;
    let stored = db.read(|snap| -> anyhow::Result<_> {
        let id = *snap
            .series_of("cpu")
            .first()
            .ok_or_else(|| anyhow::anyhow!("no series"))?;
        let kinds = (snap.kind("cpu", "value"), snap.kind("cpu", "note"));
        let values = (
            snap.points(id, "value", i64::MIN, i64::MAX)?,
            snap.points(id, "note", i64::MIN, i64::MAX)?,
        );
        Ok((kinds, values))
    })?;
    let ((value_kind, note_kind), (values, notes)) = stored;
    assert_eq!(
        (value_kind, note_kind),
        (Some(Kind::Numeric), Some(Kind::String))
    );
    assert_eq!(
        values.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        [FieldValue::Long(42)]
    );
    assert_eq!(
        notes.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        [FieldValue::String("42".into())]
    );
    Ok(())
}
