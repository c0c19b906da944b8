//! Ingesters against a real PostgreSQL, nats-server with JetStream and an
//! S3 server (all started by `sundial_testkit`; the tests fail, never
//! skip, when one is missing): every acknowledged point survives its
//! owner's death (checkpointed points from the object store, later ones
//! from the log), a clean hand-off moves shards with their data, and
//! frames routed to a former owner or under an old epoch are refused.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_cluster::{
    Error, Ingester, IngesterConfig, JetStreamWal, Keeper, Meta, ShardBatch, ShardHandler,
    WalConfig, owner_of, shard_lease, split_by_shard,
};
use sundial_model::{FieldValue, SeriesKey, ValueInput, WritePoint};
use sundial_storage::RemoteStore;
use sundial_testkit::nats::Nats;
use sundial_testkit::postgres::Postgres;
use sundial_testkit::s3::S3Server;

const SHARDS: u32 = 4;
const BUCKET: &str = "cluster";
const DATABASES: [&str; 2] = ["metrics", "other"];

/// The engines one test's nodes share.
struct Engines {
    pg: Postgres,
    nats: Nats,
    s3: S3Server,
    dir: tempfile::TempDir,
}

impl Engines {
    /// Starts them off the test's runtime (the S3 server runs its own).
    async fn start() -> anyhow::Result<Self> {
        tokio::task::spawn_blocking(Self::start_blocking).await?
    }

    fn start_blocking() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let s3 = S3Server::start(&dir.path().join("s3"), &[BUCKET])?;
        Ok(Self {
            pg: Postgres::start()?,
            nats: Nats::start()?,
            s3,
            dir,
        })
    }

    fn store(&self) -> anyhow::Result<RemoteStore> {
        let options = self
            .s3
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        Ok(RemoteStore::open(
            &format!("s3://{BUCKET}/cluster"),
            &options,
            1 << 20,
        )?)
    }

    async fn ingester(&self, id: &str) -> anyhow::Result<Ingester> {
        self.ingester_with(id, |_| {}).await
    }

    async fn ingester_with(
        &self,
        id: &str,
        adjust: impl FnOnce(&mut IngesterConfig),
    ) -> anyhow::Result<Ingester> {
        let wal = JetStreamWal::connect(&self.nats.url(), &WalConfig::default()).await?;
        let mut config = IngesterConfig::new(self.dir.path().join(id));
        adjust(&mut config);
        Ok(Ingester::new(&self.pg.url(), wal, self.store()?, config).await?)
    }

    /// `ingester`'s keeper ticking in the background, as a node runs it.
    async fn keep(
        &self,
        id: &str,
        ingester: &Ingester,
        ttl: Duration,
    ) -> anyhow::Result<(
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )> {
        let meta = Arc::new(Meta::connect(&self.pg.url()).await?);
        let keeper = Keeper::new(meta, id, &format!("{id}.local:4242"), SHARDS, ttl);
        let mut handler = ingester.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stop = async move {
                let _ = stopped.await;
            };
            if let Err(e) = keeper.run(&mut handler, stop).await {
                eprintln!("keeper stopped: {e}");
            }
        });
        Ok((task, stop))
    }
}

/// What was acknowledged: (database, series, time) -> the last value.
type Expected = BTreeMap<(String, String, i64), f64>;

fn series(host: usize) -> Arc<SeriesKey> {
    Arc::new(SeriesKey::new(
        "cpu",
        vec![("host".to_owned(), format!("h{host:02}"))],
    ))
}

/// Points of 24 hosts at `times`, with values that differ per round.
fn points(times: std::ops::Range<i64>, round: u32) -> Vec<WritePoint> {
    let base = 1_700_000_000_000i64;
    let mut out = Vec::new();
    for t in times {
        for host in 0..24 {
            out.push(WritePoint {
                series: series(host),
                field: "value".to_owned(),
                timestamp: base + t * 60_000,
                value: ValueInput::Typed(FieldValue::Double(
                    f64::from(round) * 1000.0 + host as f64 + t as f64 / 100.0,
                )),
            });
        }
    }
    out
}

/// Sends `points` of `database` to `ingester`, one frame per shard under
/// the shard's epoch there, and records what was acknowledged.
async fn write(
    ingester: &Ingester,
    database: &str,
    points: Vec<WritePoint>,
    expected: &mut Expected,
) -> anyhow::Result<()> {
    for (shard, part) in split_by_shard(points, SHARDS) {
        let epoch = ingester
            .epoch(shard)
            .ok_or_else(|| anyhow::anyhow!("shard {shard} not served"))?;
        let batch = ShardBatch {
            database: database.to_owned(),
            shard,
            epoch,
            id: rand_id(),
            points: part.points.clone(),
        };
        let outcome = ingester.write(batch).await?;
        anyhow::ensure!(outcome.accepted() == part.points.len(), "{outcome:?}");
        for p in part.points {
            let ValueInput::Typed(FieldValue::Double(v)) = p.value else {
                anyhow::bail!("test points are doubles");
            };
            expected.insert((database.to_owned(), p.series.to_string(), p.timestamp), v);
        }
    }
    Ok(())
}

fn rand_id() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos << 32) | u128::from(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Every point the ingesters serve, in the shape of [`Expected`].
async fn stored(ingesters: &[&Ingester]) -> anyhow::Result<Expected> {
    let mut out = Expected::new();
    for ingester in ingesters {
        for shard in ingester.shards() {
            for database in DATABASES {
                let Some(db) = ingester.db(shard, database).await else {
                    continue;
                };
                db.read(|snap| -> anyhow::Result<()> {
                    for &id in snap.series_of("cpu") {
                        let key = snap
                            .key(id)
                            .ok_or_else(|| anyhow::anyhow!("series {id:?} has no key"))?;
                        for (t, v) in snap.points(id, "value", i64::MIN, i64::MAX)? {
                            let FieldValue::Double(v) = v else {
                                anyhow::bail!("{key}: {v:?} is not a double");
                            };
                            out.insert((database.to_owned(), key.to_string(), t), v);
                        }
                    }
                    Ok(())
                })?;
            }
        }
    }
    Ok(out)
}

/// Waits (polling, bounded) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owners_acknowledged_points_are_all_served_by_the_next() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let mut a = engines.ingester("a").await?;
    let (a_keeper, _a_stop) = engines.keep("a", &a, Duration::from_secs(2)).await?;
    until("a to own every shard", || {
        a.shards().len() == SHARDS as usize
    })
    .await?;

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
    let (_b_keeper, _b_stop) = engines.keep("b", &b, Duration::from_secs(2)).await?;
    until("b to own every shard", || {
        b.shards().len() == SHARDS as usize
    })
    .await?;
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
    let (_a_keeper, _a_stop) = engines.keep("a", &a, Duration::from_secs(3)).await?;
    until("a to own every shard", || {
        a.shards().len() == SHARDS as usize
    })
    .await?;
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

    // A moved shard's log was flushed up to the hand-off: nothing to
    // replay, everything in the object store.
    let wal = JetStreamWal::connect(&engines.nats.url(), &WalConfig::default()).await?;
    for &shard in &moved {
        assert!(wal.replay(shard, 0).await?.is_empty(), "shard {shard}");
    }
    // A frame for a moved shard, sent to its former owner, is refused.
    let to_a = ShardBatch {
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
    let (_a_keeper, _a_stop) = engines.keep("a", &a, Duration::from_secs(3)).await?;
    until("a to own every shard", || {
        a.shards().len() == SHARDS as usize
    })
    .await?;
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
