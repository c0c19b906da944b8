//! The cluster metadata against a real PostgreSQL (Debian's postgresql-15,
//! started by `sundial_testkit::postgres`; the tests fail, never skip,
//! when it is missing): migrations, leases and their fencing epochs, the
//! block manifest.

use std::time::Duration;
use sundial_cluster::{BlockRow, Error, Flush, Meta, compactor_lease, shard_lease};
use sundial_testkit::postgres::Postgres;

const MINUTE: Duration = Duration::from_secs(60);
/// A lease that is expired as soon as it is granted: takeovers without
/// waiting.
const EXPIRED: Duration = Duration::ZERO;

fn block(key: &str, shard: u32, min_ts: i64, max_ts: i64) -> BlockRow {
    BlockRow {
        object_key: key.to_owned(),
        database: "default".to_owned(),
        shard,
        min_ts,
        max_ts,
        bytes: (max_ts - min_ts) as u64 + 100,
    }
}

/// How many migrations the repository holds: the schema version a fresh
/// store ends at.
fn migrations_in_repo() -> anyhow::Result<i32> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let sql = std::fs::read_dir(dir)?
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count();
    Ok(i32::try_from(sql)?)
}

#[tokio::test]
async fn migrations_run_once_and_a_newer_schema_is_refused() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let known = migrations_in_repo()?;
    let first = Meta::connect(&pg.url()).await?;
    assert_eq!(first.schema_version().await?, known);
    // A second node connecting finds the schema in place.
    let second = Meta::connect(&pg.url()).await?;
    assert_eq!(second.schema_version().await?, known);
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    // A version past the repository's, as a newer binary would leave.
    let newer = known + 1;
    client
        .execute(
            "INSERT INTO sundial_migrations (version) VALUES ($1)",
            &[&newer],
        )
        .await?;
    match Meta::connect(&pg.url()).await {
        Err(Error::SchemaTooNew { found, known: k }) if k == known && found == newer => Ok(()),
        other => anyhow::bail!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn a_lease_is_exclusive_and_every_takeover_raises_its_epoch() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let a = Meta::connect(&pg.url()).await?;
    let b = Meta::connect(&pg.url()).await?;
    let name = shard_lease(3);
    let held = a.acquire(&name, "node-a", MINUTE).await?;
    assert_eq!(held.epoch, 1);
    match b.acquire(&name, "node-b", MINUTE).await {
        Err(Error::Held { holder, .. }) => assert_eq!(holder, "node-a"),
        other => anyhow::bail!("node-b took a live lease: {other:?}"),
    }
    a.renew(&held, MINUTE).await?;
    a.release(&held).await?;
    let taken = b.acquire(&name, "node-b", MINUTE).await?;
    assert_eq!(taken.epoch, held.epoch + 1);
    // node-a's epoch is over: it can neither renew nor take the lease
    // back while node-b's is live.
    match a.renew(&held, MINUTE).await {
        Err(Error::Fenced { epoch, current, .. }) => {
            assert_eq!((epoch, current), (held.epoch, Some(taken.epoch)));
        }
        other => anyhow::bail!("a fenced holder renewed: {other:?}"),
    }
    assert!(matches!(
        a.acquire(&name, "node-a", MINUTE).await,
        Err(Error::Held { .. })
    ));
    // A restarted node-b takes its own lease again under a new epoch.
    let again = b.acquire(&name, "node-b", MINUTE).await?;
    assert_eq!(again.epoch, taken.epoch + 1);
    assert_eq!(
        a.lease_holder(&name).await?,
        Some(("node-b".to_owned(), again.epoch))
    );
    Ok(())
}

#[tokio::test]
async fn racing_takeovers_of_an_expired_lease_have_one_winner() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let name = shard_lease(9);
    let first = Meta::connect(&pg.url()).await?;
    let old = first.acquire(&name, "node-0", EXPIRED).await?;
    let mut racers = Vec::new();
    for i in 1..=8 {
        let url = pg.url();
        let name = name.clone();
        racers.push(tokio::spawn(async move {
            let meta = Meta::connect(&url).await?;
            Ok::<_, Error>(meta.acquire(&name, &format!("node-{i}"), MINUTE).await)
        }));
    }
    let mut winners = Vec::new();
    for r in racers {
        match r.await?? {
            Ok(lease) => winners.push(lease),
            Err(Error::Held { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners[0].epoch, old.epoch + 1);
    Ok(())
}

#[tokio::test]
async fn a_fenced_owner_cannot_record_a_flush() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let mut stale = Meta::connect(&pg.url()).await?;
    let mut owner = Meta::connect(&pg.url()).await?;
    let name = shard_lease(5);
    // The first owner's lease runs out (a long pause) and another node
    // takes the shard over.
    let old = stale.acquire(&name, "node-a", EXPIRED).await?;
    let new = owner.acquire(&name, "node-b", MINUTE).await?;
    let late = [block("a-1.sdb", 5, 0, 999)];
    let flush = Flush {
        database: "default",
        shard: 5,
        blocks: &late,
        wal_flushed: 40,
        checkpoint: &[],
        retired: &[],
    };
    match stale.commit_flush(&old, &flush).await {
        Err(Error::Fenced { current, .. }) => assert_eq!(current, Some(new.epoch)),
        other => anyhow::bail!("a fenced owner recorded a flush: {other:?}"),
    }
    assert_eq!(
        owner
            .blocks_overlapping("default", None, i64::MIN, i64::MAX)
            .await?,
        []
    );
    let elsewhere = [block("b-0.sdb", 6, 0, 999)];
    let misplaced = Flush {
        blocks: &elsewhere,
        ..flush.clone()
    };
    assert!(matches!(
        owner.commit_flush(&new, &misplaced).await,
        Err(Error::Misplaced(_))
    ));
    assert_eq!(owner.wal_flushed("default", 5).await?, None);

    let fresh = [block("b-1.sdb", 5, 0, 999), block("b-2.sdb", 5, 1000, 1999)];
    for (blocks, wal) in [(&fresh[..1], 30), (&fresh[1..], 50), (&[][..], 45)] {
        let flush = Flush {
            database: "default",
            shard: 5,
            blocks,
            wal_flushed: wal,
            checkpoint: &[],
            retired: &[],
        };
        owner.commit_flush(&new, &flush).await?;
    }
    assert_eq!(
        owner
            .blocks_overlapping("default", Some(5), 0, 5000)
            .await?,
        fresh
    );
    // The WAL position never moves back (a late, smaller one is kept out).
    assert_eq!(owner.wal_flushed("default", 5).await?, Some(50));
    Ok(())
}

#[tokio::test]
async fn a_checkpoint_retires_replaced_blocks_and_only_the_compactor_forgets_them()
-> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let mut meta = Meta::connect(&pg.url()).await?;
    let shard = meta.acquire(&shard_lease(1), "ingester", MINUTE).await?;
    let flushed: Vec<BlockRow> = (0..3)
        .map(|i| block(&format!("f-{i}.sdb"), 1, i * 1000, i * 1000 + 999))
        .collect();
    let flush = Flush {
        database: "default",
        shard: 1,
        blocks: &flushed,
        wal_flushed: 10,
        checkpoint: &[],
        retired: &[],
    };
    meta.commit_flush(&shard, &flush).await?;
    // The owner merged f-0 and f-1: its next checkpoint records the merged
    // block and retires both, in one transaction.
    let merged = block("m-0.sdb", 1, 0, 1999);
    let retired = ["f-0.sdb".to_string(), "f-1.sdb".to_string()];
    let compacted = Flush {
        blocks: std::slice::from_ref(&merged),
        retired: &retired,
        ..flush
    };
    meta.commit_flush(&shard, &compacted).await?;
    let expected = vec![merged.clone(), flushed[2].clone()];
    assert_eq!(
        meta.blocks_overlapping("default", Some(1), 0, 10_000)
            .await?,
        expected
    );
    assert_eq!(meta.retired_before(Duration::ZERO, 100).await?, retired);
    // Not yet past a grace period of a minute.
    assert!(meta.retired_before(MINUTE, 100).await?.is_empty());

    // A compactor that lost its lease forgets nothing; the holder does.
    let mut compactor = Meta::connect(&pg.url()).await?;
    let old = compactor
        .acquire(&compactor_lease(), "compactor-1", MINUTE)
        .await?;
    compactor.release(&old).await?;
    let current = meta
        .acquire(&compactor_lease(), "compactor-2", MINUTE)
        .await?;
    let stale = compactor.forget_retired(&old, &retired).await;
    assert!(matches!(stale, Err(Error::Fenced { .. })), "{stale:?}");
    assert_eq!(meta.retired_before(Duration::ZERO, 100).await?, retired);
    meta.forget_retired(&current, &retired[..1]).await?;
    assert_eq!(
        meta.retired_before(Duration::ZERO, 100).await?,
        retired[1..]
    );
    Ok(())
}

#[tokio::test]
async fn queriers_prune_blocks_by_database_shard_and_time() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let mut meta = Meta::connect(&pg.url()).await?;
    let mut written = Vec::new();
    for shard in 0..4u32 {
        let lease = meta
            .acquire(&shard_lease(shard), "ingester", MINUTE)
            .await?;
        let blocks: Vec<BlockRow> = (0..5i64)
            .map(|i| {
                let start = i * 7200 + i64::from(shard) * 10;
                block(&format!("s{shard}-{i}.sdb"), shard, start, start + 7199)
            })
            .collect();
        let mut other_db = block(&format!("o{shard}.sdb"), shard, 0, 1 << 40);
        other_db.database = "other".to_owned();
        // One lease covers the shard in every database.
        for (database, blocks) in [("default", &blocks), ("other", &vec![other_db])] {
            let flush = Flush {
                database,
                shard,
                blocks,
                wal_flushed: 1,
                checkpoint: &[],
                retired: &[],
            };
            meta.commit_flush(&lease, &flush).await?;
        }
        written.extend(blocks);
    }
    for (shard, start, end) in [
        (None, 0, 100),
        (Some(2), 7000, 15_000),
        (None, 28_000, 40_000),
    ] {
        let mut expected: Vec<BlockRow> = written
            .iter()
            .filter(|b| shard.is_none_or(|s| b.shard == s))
            .filter(|b| b.min_ts <= end && b.max_ts >= start)
            .cloned()
            .collect();
        expected.sort_by_key(|b| (b.shard, b.min_ts));
        assert!(!expected.is_empty());
        let got = meta
            .blocks_overlapping("default", shard, start, end)
            .await?;
        assert_eq!(got, expected, "{shard:?} {start}..{end}");
    }
    Ok(())
}

#[tokio::test]
async fn a_shared_document_is_replaced_only_over_the_version_read() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let a = Meta::connect(&pg.url()).await?;
    let b = Meta::connect(&pg.url()).await?;
    assert_eq!(a.document("bk").await?, None);
    assert_eq!(a.document_version("bk").await?, 0);
    assert!(a.store_document("bk", 0, b"one").await?);
    // b read version 0 too: its store is refused, nothing changes.
    assert!(!b.store_document("bk", 0, b"two").await?);
    assert_eq!(b.document("bk").await?, Some((1, b"one".to_vec())));
    assert!(b.store_document("bk", 1, b"two").await?);
    assert!(!a.store_document("bk", 1, b"three").await?);
    assert_eq!(a.document("bk").await?, Some((2, b"two".to_vec())));
    assert_eq!(a.document_version("other").await?, 0);
    Ok(())
}
