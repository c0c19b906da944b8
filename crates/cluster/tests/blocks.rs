//! A querier that reads the shards' blocks itself (docs/cluster.md, "The
//! querier"), against an ingester served on loopback (PostgreSQL,
//! nats-server and an S3 server, as `tests/ingest.rs`) and a single node
//! given the same writes: before any checkpoint (empty copies, every
//! point from the owner), after one with newer points and overwrites in
//! the owner's head, after a delete, and after a deleted series is
//! written again (which the copies cannot show: its owner answers), the
//! OpenTSDB, newest-point and SQL-statistics answers are the single
//! node's, and the copies answered every shard they could.

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use sundial_cluster::{FrameClient, Querier, Replicas};
use sundial_model::series_query::{
    Aggregation, Branch, Fill, FillKind, Order, RangeFn, Sampling, SeriesQuery,
};
use sundial_model::{
    Aggregator, Buckets, Deleted, Deletion, Downsample, FillPolicy, Query, RateOptions, StatsQuery,
    TagMatch, WritePoint,
};
use sundial_query::Budget;
use sundial_query::series_query::{Limits, execute_series};
use sundial_storage::Db;

const SECRET: &str = "blocks test secret";
const BASE: i64 = 1_700_000_000_000;

fn queries() -> Vec<Query> {
    vec![
        Query {
            tags: vec![TagMatch::In {
                key: "host".into(),
                values: vec!["h01".into(), "h05".into(), "h07".into()],
            }],
            ..two_hours_of("cpu", Aggregator::None)
        },
        two_hours_of("cpu", Aggregator::Sum),
        Query {
            downsample: Some(Downsample {
                buckets: Buckets::Fixed(300_000),
                function: Aggregator::Avg,
                fill: FillPolicy::None,
            }),
            ..two_hours_of("cpu", Aggregator::Max)
        },
        Query {
            rate: Some(RateOptions::default()),
            ..two_hours_of("cpu", Aggregator::Avg)
        },
    ]
}

fn stats() -> StatsQuery {
    StatsQuery {
        metric: "cpu".into(),
        tags: Vec::new(),
        fields: vec!["value".into()],
        count_only: vec![false],
        start: BASE,
        end: BASE + 120 * 60_000,
        width_ms: Some(600_000),
        group_tags: vec!["host".into()],
    }
}

/// Baidu queries: one host's rows from just after minute 15 with a
/// linear fill that looks ten minutes back (the owner's newer points
/// around the range count), and 10-minute averages per host (folded).
fn baidu_queries() -> Vec<SeriesQuery> {
    let raw = SeriesQuery {
        metric: "cpu".into(),
        fields: vec!["value".into()],
        branches: vec![Branch {
            start: BASE + 15 * 60_000 + 30_000,
            end: BASE + 40 * 60_000,
            tags: vec![TagMatch::Eq {
                key: "host".into(),
                value: "h01".into(),
            }],
            values: Vec::new(),
        }],
        group_by: Vec::new(),
        grouped: false,
        aggregators: Vec::new(),
        fills: vec![Some(Fill {
            kind: FillKind::Linear,
            interval_ms: 20_000,
            max_write_interval_ms: 600_000,
        })],
        tag_columns: Vec::new(),
        order: Order::Asc,
        limit: 1_000_000,
        offset: 0,
        marker: None,
        now: i64::MAX,
    };
    let hourly = SeriesQuery {
        branches: vec![Branch {
            start: BASE,
            end: BASE + 120 * 60_000,
            tags: Vec::new(),
            values: Vec::new(),
        }],
        group_by: vec!["host".into()],
        grouped: true,
        aggregators: vec![Aggregation::Range {
            func: RangeFn::Avg,
            sampling: Some(Sampling::Fixed(600_000)),
        }],
        fills: vec![None],
        ..raw.clone()
    };
    vec![raw, hourly]
}

/// A querier reading the blocks, and its copies.
async fn reading_blocks(engines: &Engines) -> anyhow::Result<(Arc<Replicas>, Querier)> {
    let replicas = Arc::new(Replicas::new(
        engines.dir.path().join("copies"),
        engines.store()?,
        sundial_storage::Config::default(),
    )?);
    let client = FrameClient::new(SECRET, Duration::from_secs(10));
    let querier = Querier::new(&engines.pg.url(), SHARDS, client)
        .await?
        .reading_blocks(replicas.clone());
    Ok((replicas, querier))
}

/// The single node's answer to an OpenTSDB query, comparable.
async fn single_answer(single: &Db, query: &Query) -> anyhow::Result<String> {
    let (single, q) = (single.clone(), query.clone());
    let answer =
        tokio::task::spawn_blocking(move || sundial_query::execute(&single, &q, &budget()));
    Ok(format!("{:?}", answer.await?))
}

fn budget() -> Budget {
    Budget::new(Duration::from_secs(30), 10_000_000)
}

/// Every answer of the cluster equals the single node's; the number of
/// answers that carried points.
async fn compare(label: &str, querier: &Querier, single: &Db) -> anyhow::Result<usize> {
    let mut with_points = 0;
    for (i, q) in queries().into_iter().enumerate() {
        let here = {
            let (single, q) = (single.clone(), q.clone());
            tokio::task::spawn_blocking(move || {
                let answer = sundial_query::execute(&single, &q, &budget());
                let last = sundial_query::last(&single, &q, &budget());
                (format!("{answer:?}"), format!("{last:?}"))
            })
            .await?
        };
        let cluster = format!("{:?}", querier.opentsdb(DATABASES[0], &q, &budget()).await);
        assert_eq!(cluster, here.0, "{label}: query {i} differs");
        let last = format!("{:?}", querier.last(DATABASES[0], &q, &budget()).await);
        assert_eq!(last, here.1, "{label}: last {i} differs");
        with_points += usize::from(here.0.contains("points: [("));
    }
    for (i, q) in baidu_queries().into_iter().enumerate() {
        let here = {
            let (single, q) = (single.clone(), q.clone());
            tokio::task::spawn_blocking(move || {
                let limits = Limits::default();
                format!("{:?}", execute_series(&single, &q, limits))
            })
            .await?
        };
        let cluster = querier.series(DATABASES[0], &q, Limits::default()).await;
        assert_eq!(
            format!("{cluster:?}"),
            here,
            "{label}: Baidu query {i} differs"
        );
        anyhow::ensure!(
            here.contains("timestamp"),
            "{label}: Baidu query {i}: {here}"
        );
    }
    let single_stats = {
        let single = single.clone();
        tokio::task::spawn_blocking(move || {
            format!(
                "{:?}",
                sundial_query::stats::grouped_by(&single, &stats(), &budget())
            )
        })
        .await?
    };
    let cluster_stats = querier
        .sql_stats(DATABASES[0], &stats(), &budget())
        .await
        .map(|(groups, _)| groups);
    assert_eq!(
        format!("{cluster_stats:?}"),
        single_stats,
        "{label}: statistics differ"
    );
    Ok(with_points)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_querier_reading_blocks_answers_as_one_node_does() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let node = engines
        .served_alone("a", SECRET, Duration::from_secs(3))
        .await?;
    let ingester = node.ingester.clone();
    let (replicas, querier) = reading_blocks(&engines).await?;
    let single = Db::open(sundial_storage::Config {
        data_dir: engines.dir.path().join("single").join(DATABASES[0]),
        ..Default::default()
    })?;
    let mut expected = Expected::new();
    let both = |points: Vec<WritePoint>, expected: &mut Expected| {
        let (ingester, single) = (ingester.clone(), single.clone());
        let mut acked = std::mem::take(expected);
        async move {
            let written = single.write(points.clone(), false)?;
            written.commit.wait().await?;
            write(&ingester, DATABASES[0], points, &mut acked).await?;
            anyhow::Ok(acked)
        }
    };

    // Nothing checkpointed: empty copies, every point from the owner.
    expected = both(points(0..30, 1), &mut expected).await?;
    anyhow::ensure!(compare("no checkpoint", &querier, &single).await? == 4);
    let (_, here, owners) = replicas.counts();
    anyhow::ensure!(
        here == u64::from(SHARDS) * 11 && owners == 0,
        "{here} {owners}"
    );

    // The checkpoint's blocks from the copies; newer points and
    // overwrites of checkpointed ones from the owner's head.
    ingester.checkpoint_all().await?;
    expected = both(points(30..60, 1), &mut expected).await?;
    expected = both(points(10..20, 2), &mut expected).await?;
    compare("after a checkpoint", &querier, &single).await?;
    let (opened, here, owners) = replicas.counts();
    anyhow::ensure!(opened >= 2 * u64::from(SHARDS), "copies loaded: {opened}");
    anyhow::ensure!(
        here == u64::from(SHARDS) * 22 && owners == 0,
        "{here} {owners}"
    );

    // A delete checkpoints the shards: new copies, and the series gone.
    let deletion = Deletion {
        metric: "cpu".into(),
        tags: vec![TagMatch::Eq {
            key: "host".into(),
            value: "h05".into(),
        }],
        what: Deleted::Series,
    };
    let deleted = querier.delete(DATABASES[0], &deletion).await?;
    let on_single = {
        let single = single.clone();
        tokio::task::spawn_blocking(move || sundial_query::delete(&single, &deletion)).await??
    };
    // (Counts of stored copies: the cluster's shard holds minutes 10..20
    // in a block and, overwritten, in its head; the single node once.)
    anyhow::ensure!(deleted > 0 && on_single > 0, "{deleted} {on_single}");
    compare("after a delete", &querier, &single).await?;

    // h05 written again shows a hidden series at its owner, which the
    // copy of its checkpoint cannot: that shard is answered by its owner.
    let before = replicas.counts();
    expected = both(points(60..61, 3), &mut expected).await?;
    compare("a deleted series written again", &querier, &single).await?;
    let after = replicas.counts();
    anyhow::ensure!(after.2 > before.2, "no shard left to its owner: {after:?}");
    anyhow::ensure!(after.1 > before.1, "no shard read here: {after:?}");

    // Its next checkpoint makes the copy current again.
    ingester.checkpoint_all().await?;
    let before = replicas.counts();
    compare("after the next checkpoint", &querier, &single).await?;
    let after = replicas.counts();
    anyhow::ensure!(
        after.1 - before.1 == u64::from(SHARDS) * 11 && after.2 == before.2,
        "{before:?} {after:?}"
    );

    // More unflushed points than an owner sends raw (4 096 per answer):
    // past that its shards' halves are run by the owner.
    expected = both(points(120..320, 4), &mut expected).await?;
    let wide = Query {
        end: BASE + 320 * 60_000,
        ..two_hours_of("cpu", Aggregator::Sum)
    };
    let before = replicas.counts();
    let here = single_answer(&single, &wide).await?;
    let cluster = querier.opentsdb(DATABASES[0], &wide, &budget()).await;
    assert_eq!(format!("{cluster:?}"), here, "many unflushed points");
    let after = replicas.counts();
    anyhow::ensure!(after.2 > before.2, "no shard left to its owner: {after:?}");
    anyhow::ensure!(!expected.is_empty());
    Ok(())
}

/// A database dropped and made again, never checkpointed either time:
/// the copy that registered the first one's series is not read for the
/// second (whose ids name other series).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_made_again_is_not_read_through_the_old_copy() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let node = engines
        .served_alone("a", SECRET, Duration::from_secs(3))
        .await?;
    let (replicas, querier) = reading_blocks(&engines).await?;
    let mut expected = Expected::new();
    let raw = two_hours_of("cpu", Aggregator::None);
    write(
        &node.ingester,
        DATABASES[1],
        points(0..10, 1),
        &mut expected,
    )
    .await?;
    let first = format!(
        "{:?}",
        querier.opentsdb(DATABASES[1], &raw, &budget()).await
    );
    querier.drop_database(DATABASES[1]).await?;
    // The same keys, first written in the opposite order: other ids.
    let mut again = points(20..30, 2);
    again.reverse();
    write(&node.ingester, DATABASES[1], again.clone(), &mut expected).await?;
    let single = Db::open(sundial_storage::Config {
        data_dir: engines.dir.path().join("single").join(DATABASES[1]),
        ..Default::default()
    })?;
    let written = single.write(again, false)?;
    written.commit.wait().await?;
    let here = single_answer(&single, &raw).await?;
    let cluster = format!(
        "{:?}",
        querier.opentsdb(DATABASES[1], &raw, &budget()).await
    );
    assert_eq!(cluster, here, "the database made again");
    anyhow::ensure!(cluster != first && here.contains("points: [("));
    let (loaded, _, by_owners) = replicas.counts();
    anyhow::ensure!(
        by_owners == 0 && loaded >= 2 * u64::from(SHARDS),
        "{loaded} {by_owners}"
    );
    Ok(())
}
