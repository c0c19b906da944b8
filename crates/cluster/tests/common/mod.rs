//! What the cluster's integration tests share: PostgreSQL, nats-server and
//! an S3 server started per test, ingesters and their keepers, and the
//! points the tests write and read back.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_cluster::{
    Ingester, IngesterConfig, JetStreamWal, Keeper, Meta, ShardBatch, WalConfig, split_by_shard,
};
use sundial_model::{Aggregator, FieldValue, Query, SeriesKey, ValueInput, WritePoint};
use sundial_storage::RemoteStore;
use sundial_testkit::nats::Nats;
use sundial_testkit::postgres::Postgres;
use sundial_testkit::s3::S3Server;

pub(crate) const SHARDS: u32 = 4;
pub(crate) const BUCKET: &str = "cluster";
pub(crate) const DATABASES: [&str; 2] = ["metrics", "other"];

/// The engines one test's nodes share.
pub(crate) struct Engines {
    pub(crate) pg: Postgres,
    pub(crate) nats: Nats,
    pub(crate) s3: S3Server,
    pub(crate) dir: tempfile::TempDir,
}

impl Engines {
    /// Starts them off the test's runtime (the S3 server runs its own).
    pub(crate) async fn start() -> anyhow::Result<Self> {
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

    pub(crate) fn store(&self) -> anyhow::Result<RemoteStore> {
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

    pub(crate) async fn ingester(&self, id: &str) -> anyhow::Result<Ingester> {
        self.ingester_with(id, |_| {}).await
    }

    pub(crate) async fn ingester_with(
        &self,
        id: &str,
        adjust: impl FnOnce(&mut IngesterConfig),
    ) -> anyhow::Result<Ingester> {
        let wal = JetStreamWal::connect(&self.nats.url(), &WalConfig::default()).await?;
        let mut config = IngesterConfig::new(self.dir.path().join(id));
        adjust(&mut config);
        Ok(Ingester::new(&self.pg.url(), wal, self.store()?, config).await?)
    }

    /// [`Engines::keep`], once `ingester` (the only live one) owns every
    /// shard.
    pub(crate) async fn keep_all(
        &self,
        id: &str,
        ingester: &Ingester,
        ttl: Duration,
    ) -> anyhow::Result<(
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )> {
        let keeping = self.keep(id, ingester, ttl).await?;
        until(&format!("{id} to own every shard"), || {
            ingester.shards().len() == SHARDS as usize
        })
        .await?;
        Ok(keeping)
    }

    /// `ingester`'s keeper ticking in the background, as a node runs it.
    pub(crate) async fn keep(
        &self,
        id: &str,
        ingester: &Ingester,
        ttl: Duration,
    ) -> anyhow::Result<(
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )> {
        self.keep_at(id, &format!("{id}.local:4242"), ingester, ttl)
            .await
    }

    /// An ingester `id` served on a loopback port under `secret`, its
    /// keeper running and telling peers that address.
    pub(crate) async fn served(
        &self,
        id: &str,
        secret: &str,
        ttl: Duration,
    ) -> anyhow::Result<ServedNode> {
        self.served_with(id, secret, ttl, |_| {}).await
    }

    /// [`Engines::served`], once the node (the only live one) owns every
    /// shard.
    pub(crate) async fn served_alone(
        &self,
        id: &str,
        secret: &str,
        ttl: Duration,
    ) -> anyhow::Result<ServedNode> {
        let node = self.served(id, secret, ttl).await?;
        until(&format!("{id} to own every shard"), || {
            node.ingester.shards().len() == SHARDS as usize
        })
        .await?;
        Ok(node)
    }

    /// An ingester `id` logging frames on its own disk (`wal = "local"`,
    /// the same directory for every node started as `id`), served on a
    /// loopback port, once it owns every shard under leases PostgreSQL
    /// confirmed.
    pub(crate) async fn served_local(
        &self,
        id: &str,
        secret: &str,
        ttl: Duration,
    ) -> anyhow::Result<ServedNode> {
        let wal = sundial_cluster::LocalWal::open(self.dir.path().join(format!("{id}-wal")));
        let config = IngesterConfig::new(self.dir.path().join(id));
        let ingester = Ingester::new(&self.pg.url(), wal, self.store()?, config).await?;
        let (address, _server) = serve(&ingester, secret).await?;
        let (keeper, stop) = self.keep_at(id, &address, &ingester, ttl).await?;
        until(&format!("{id} to own every shard, confirmed"), || {
            ingester.shards().len() == SHARDS as usize && ingester.unconfirmed().is_empty()
        })
        .await?;
        Ok(ServedNode {
            ingester,
            address,
            keeper,
            stop,
        })
    }

    /// [`Engines::served`], its configuration adjusted first.
    pub(crate) async fn served_with(
        &self,
        id: &str,
        secret: &str,
        ttl: Duration,
        adjust: impl FnOnce(&mut IngesterConfig),
    ) -> anyhow::Result<ServedNode> {
        let ingester = self.ingester_with(id, adjust).await?;
        let (address, _server) = serve(&ingester, secret).await?;
        let (keeper, stop) = self.keep_at(id, &address, &ingester, ttl).await?;
        Ok(ServedNode {
            ingester,
            address,
            keeper,
            stop,
        })
    }

    /// [`Engines::keep`], the node telling peers to reach it at `address`.
    pub(crate) async fn keep_at(
        &self,
        id: &str,
        address: &str,
        ingester: &Ingester,
        ttl: Duration,
    ) -> anyhow::Result<(
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )> {
        let meta = Arc::new(Meta::connect(&self.pg.url()).await?);
        let keeper = Keeper::new(meta, id, address, SHARDS, ttl);
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

/// A served ingester and its keeper (sending `stop` hands its shards off).
pub(crate) struct ServedNode {
    pub(crate) ingester: Ingester,
    pub(crate) address: String,
    pub(crate) keeper: tokio::task::JoinHandle<()>,
    pub(crate) stop: tokio::sync::oneshot::Sender<()>,
}

impl ServedNode {
    /// Dies as a killed node would: its keeper stops renewing, and it
    /// drops every shard without a flush or a hand-off (what it did not
    /// checkpoint is only in the logs).
    pub(crate) async fn die(self, id: &str) {
        let epochs: Vec<(u32, i64)> = self
            .ingester
            .shards()
            .into_iter()
            .filter_map(|s| Some((s, self.ingester.epoch(s)?)))
            .collect();
        self.keeper.abort();
        let mut handler = self.ingester.clone();
        for (shard, epoch) in epochs {
            let lease = sundial_cluster::Lease {
                name: sundial_cluster::shard_lease(shard),
                holder: id.into(),
                epoch,
            };
            sundial_cluster::ShardHandler::lost(&mut handler, shard, &lease).await;
        }
    }
}

/// What was acknowledged: (database, series, time) -> the last value.
pub(crate) type Expected = BTreeMap<(String, String, i64), f64>;

pub(crate) fn series(host: usize) -> Arc<SeriesKey> {
    Arc::new(SeriesKey::new(
        "cpu",
        vec![("host".to_owned(), format!("h{host:02}"))],
    ))
}

/// Points of 24 hosts at `times`, with values that differ per round.
pub(crate) fn points(times: std::ops::Range<i64>, round: u32) -> Vec<WritePoint> {
    let base = 1_700_000_000_000i64;
    let mut out = Vec::new();
    for t in times {
        for host in 0..24 {
            out.push(WritePoint {
                series: series(host),
                field: "value".into(),
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
pub(crate) async fn write(
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
            rules: Default::default(),
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

/// Serves `ingester`'s internal routes on a loopback port: its address,
/// and the server task (aborting it takes the node off the network).
pub(crate) async fn serve(
    ingester: &Ingester,
    secret: &str,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let (ingester, secret) = (ingester.clone(), secret.to_owned());
    let task = tokio::spawn(async move {
        let forever = std::future::pending::<()>();
        if let Err(e) = sundial_cluster::serve_ingest(listener, ingester, &secret, forever).await {
            eprintln!("ingester server stopped: {e}");
        }
    });
    Ok((address, task))
}

pub(crate) fn rand_id() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos << 32) | u128::from(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Every point the ingesters serve, in the shape of [`Expected`].
pub(crate) async fn stored(ingesters: &[&Ingester]) -> anyhow::Result<Expected> {
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
pub(crate) async fn until(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// An OpenTSDB query of `metric`'s "value" over the two hours from
/// 1_700_000_000_000, under `aggregator` and nothing else.
pub(crate) fn two_hours_of(metric: &str, aggregator: Aggregator) -> Query {
    let base = 1_700_000_000_000;
    Query {
        metric: metric.to_owned(),
        field: "value".to_owned(),
        tags: Vec::new(),
        group_by: Vec::new(),
        start: base,
        end: base + 120 * 60_000,
        aggregator,
        downsample: None,
        rate: None,
        explicit_tags: false,
        pre_filter: None,
        only_series: None,
    }
}
