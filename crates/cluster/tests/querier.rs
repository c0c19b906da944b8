//! The querier against two ingesters served on loopback (PostgreSQL,
//! nats-server and an S3 server, as `tests/ingest.rs`): the same points
//! written through the router and into a single node, and OpenTSDB
//! queries of every stage kind (raw, aggregators across shards, grouping,
//! downsampling, rate, pre-filter, an unknown metric, text) answered
//! alike by both. Then a shard that moves is found at its new owner.
//! Deletes and a database's drop run at the owners and stay done for the
//! next owner.

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use sundial_api::sink::{PointWrite, Sink};
use sundial_cluster::{FrameClient, Querier, Router};
use sundial_model::series_query::CmpOp;
use sundial_model::{
    Aggregator, Buckets, Deleted, Deletion, Downsample, FieldValue, FillPolicy, Query, RateOptions,
    SeriesKey, TagMatch, ValueInput, WritePoint,
};
use sundial_query::Budget;
use sundial_storage::{Db, ErrorClass};

const SECRET: &str = "querier test secret";
const BASE: i64 = 1_700_000_000_000;

/// 12 hosts in 3 data centres, a point a minute for two hours, values
/// that differ per host and minute; and one text metric.
fn data() -> Vec<WritePoint> {
    let mut out = Vec::new();
    for host in 0..12 {
        let key = Arc::new(SeriesKey::new(
            "cpu",
            vec![
                ("dc".to_owned(), format!("d{}", host % 3)),
                ("host".to_owned(), format!("h{host:02}")),
            ],
        ));
        for minute in 0..120 {
            let v = ((host * 7 + minute * 13) % 101) as f64 + host as f64 / 10.0;
            out.push(WritePoint {
                series: key.clone(),
                field: "value".into(),
                timestamp: BASE + minute as i64 * 60_000,
                value: ValueInput::Typed(FieldValue::Double(v)),
            });
        }
    }
    let note = Arc::new(SeriesKey::new(
        "note",
        vec![("host".to_owned(), "h00".to_owned())],
    ));
    out.push(WritePoint {
        series: note,
        field: "value".into(),
        timestamp: BASE,
        value: ValueInput::Typed(FieldValue::String("deploy".into())),
    });
    out
}

fn queries() -> Vec<Query> {
    let every_5m = |function| Downsample {
        buckets: Buckets::Fixed(300_000),
        function,
        fill: FillPolicy::None,
    };
    vec![
        // Raw points of two hosts.
        Query {
            tags: vec![TagMatch::In {
                key: "host".into(),
                values: vec!["h01".into(), "h07".into()],
            }],
            ..two_hours_of("cpu", Aggregator::None)
        },
        // Sum over every series (in every shard), interpolating.
        two_hours_of("cpu", Aggregator::Sum),
        // Per data centre: 5-minute averages, then the max.
        Query {
            group_by: vec!["dc".into()],
            downsample: Some(every_5m(Aggregator::Avg)),
            ..two_hours_of("cpu", Aggregator::Max)
        },
        // 10-minute counts over everything, summed.
        Query {
            downsample: Some(Downsample {
                buckets: Buckets::Fixed(600_000),
                ..every_5m(Aggregator::Count)
            }),
            ..two_hours_of("cpu", Aggregator::Sum)
        },
        // Rate per series, averaged per data centre, on a filtered set.
        Query {
            tags: vec![TagMatch::Wildcard {
                key: "host".into(),
                pattern: "h0*".into(),
                case_insensitive: false,
            }],
            group_by: vec!["dc".into()],
            rate: Some(RateOptions::default()),
            ..two_hours_of("cpu", Aggregator::Avg)
        },
        // Alibaba's pre-filter, then a percentile.
        Query {
            pre_filter: Some((CmpOp::Gt, 50.0)),
            downsample: Some(every_5m(Aggregator::Max)),
            ..two_hours_of(
                "cpu",
                Aggregator::Percentile {
                    per_mille: 900,
                    estimator: sundial_model::Estimator::Legacy,
                },
            )
        },
        // The whole range in one bucket per series.
        Query {
            downsample: Some(Downsample {
                buckets: Buckets::All,
                ..every_5m(Aggregator::Min)
            }),
            ..two_hours_of("cpu", Aggregator::None)
        },
        // Text, raw; text under an aggregator (an error); no such metric.
        two_hours_of("note", Aggregator::None),
        two_hours_of("note", Aggregator::Sum),
        two_hours_of("disk", Aggregator::Sum),
    ]
}

fn budget() -> Budget {
    Budget::new(Duration::from_secs(30), 10_000_000)
}

/// An answer in comparable form: results, or the error's class and text.
fn shown(answer: sundial_query::Result<Vec<sundial_model::SeriesResult>>) -> String {
    match answer {
        Ok(results) => format!("{results:?}"),
        Err(e) => format!("error {:?}: {e}", e.class()),
    }
}

/// A last-point answer in comparable form: each series' key and newest
/// point, or the error's class and text.
fn newest(answer: sundial_query::Result<Vec<sundial_query::Latest>>) -> String {
    match answer {
        Ok(found) => format!("{found:?}"),
        Err(e) => format!("error {:?}: {e}", e.class()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_over_the_shards_answer_as_one_node_does() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let ttl = Duration::from_secs(3);
    let ServedNode {
        ingester: a,
        keeper: keeper_a,
        stop: stop_a,
        ..
    } = engines.served("a", SECRET, ttl).await?;
    let node_b = engines.served("b", SECRET, ttl).await?;
    let b = node_b.ingester.clone();
    until("every shard owned, by both nodes", || {
        a.shards().len() + b.shards().len() == SHARDS as usize
            && !a.shards().is_empty()
            && !b.shards().is_empty()
    })
    .await?;

    let client = FrameClient::new(SECRET, Duration::from_secs(10));
    let router = Router::new(&engines.pg.url(), SHARDS, client.clone()).await?;
    let querier = Querier::new(&engines.pg.url(), SHARDS, client).await?;
    let single = Db::open(sundial_storage::Config {
        data_dir: engines.dir.path().join("single").join(DATABASES[0]),
        ..Default::default()
    })?;
    let written = single.write(data(), false)?;
    written.commit.wait().await?;
    anyhow::ensure!(written.outcome.accepted() == data().len());
    let routed = Sink::new(router)
        .write(PointWrite::new(single.clone(), data()))
        .await?;
    anyhow::ensure!(routed.outcome.accepted() == data().len());

    let compare = |label: &'static str| {
        let (querier, single) = (querier.clone(), single.clone());
        async move {
            let (mut answers, mut lasts) = (Vec::new(), 0);
            for (i, q) in queries().into_iter().enumerate() {
                let local = tokio::task::spawn_blocking({
                    let (single, q) = (single.clone(), q.clone());
                    move || shown(sundial_query::execute(&single, &q, &budget()))
                })
                .await?;
                let cluster = shown(querier.opentsdb(DATABASES[0], &q, &budget()).await);
                anyhow::ensure!(
                    !local.starts_with("error Internal"),
                    "{label} query {i}: {local}"
                );
                assert_eq!(cluster, local, "{label}: query {i} differs: {q:?}");
                answers.push(local);
                // The newest point of each series the query selects.
                let local_last = tokio::task::spawn_blocking({
                    let (single, q) = (single.clone(), q.clone());
                    move || newest(sundial_query::last(&single, &q, &budget()))
                })
                .await?;
                let cluster_last = newest(querier.last(DATABASES[0], &q, &budget()).await);
                assert_eq!(cluster_last, local_last, "{label}: last {i} differs: {q:?}");
                lasts +=
                    usize::from(!local_last.starts_with("[]") && !local_last.starts_with("error"));
            }
            anyhow::ensure!(
                lasts >= 8,
                "{label}: only {lasts} last answers found points"
            );
            // The comparisons compared something: results where there is
            // data, the single node's errors where it refuses.
            for (i, answer) in answers.iter().enumerate() {
                let refused = answer.starts_with("error InvalidInput");
                anyhow::ensure!(refused == (i >= 8), "query {i}: {answer}");
                anyhow::ensure!(
                    refused || answer.contains("points: [("),
                    "query {i}: {answer}"
                );
            }
            anyhow::Ok(())
        }
    };
    compare("two owners").await?;

    // a leaves: its shards move to b; the querier, still asking a for
    // them, is told a does not hold them and asks b.
    let _ = stop_a.send(());
    keeper_a.await?;
    until("b to own every shard", || {
        b.shards().len() == SHARDS as usize
    })
    .await?;
    compare("after a move").await?;

    // A query that would be partial (a shard nobody owns) is busy.
    let lonely = Querier::new(
        &engines.pg.url(),
        SHARDS + 1,
        FrameClient::new(SECRET, Duration::from_secs(10)),
    )
    .await?;
    match lonely
        .opentsdb(
            DATABASES[0],
            &two_hours_of("cpu", Aggregator::Sum),
            &budget(),
        )
        .await
    {
        Err(e) => assert_eq!(e.class(), ErrorClass::Busy, "{e}"),
        Ok(r) => anyhow::bail!("a query missing a shard was answered: {r:?}"),
    }
    Ok(())
}

/// A delete through the querier runs at the owner, and a new owner that
/// restores the shard after the old one died (no hand-off checkpoint)
/// does not bring the deleted points back from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_and_drops_at_the_owners_outlive_the_owner() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let ttl = Duration::from_secs(3);
    let a = engines.served_alone("a", SECRET, ttl).await?;
    let database = DATABASES[0];
    let mut expected = Expected::new();
    write(&a.ingester, database, points(0..30, 1), &mut expected).await?;
    a.ingester.checkpoint_all().await?;
    // Minutes 30..60 are only in the log and the heads.
    write(&a.ingester, database, points(30..60, 1), &mut expected).await?;
    let other = DATABASES[1];
    write(&a.ingester, other, points(0..5, 2), &mut expected).await?;

    let querier = Querier::new(
        &engines.pg.url(),
        SHARDS,
        FrameClient::new(SECRET, Duration::from_secs(10)),
    )
    .await?;
    let host = |h: usize| {
        vec![TagMatch::Eq {
            key: "host".into(),
            value: format!("h{h:02}"),
        }]
    };
    let base = 1_700_000_000_000i64;
    let minutes = |from: i64, to: i64| Deleted::Points {
        fields: None,
        start: base + from * 60_000,
        end: base + to * 60_000,
    };
    // h03's minutes 20..=40 (in a block and in the log), then h05 whole.
    let deletions = [
        (host(3), minutes(20, 40)),
        (host(5), Deleted::Series),
        (Vec::new(), minutes(59, 59)),
    ];
    let mut gone = 0;
    for (tags, what) in deletions {
        let deletion = Deletion {
            metric: "cpu".into(),
            tags,
            what,
        };
        gone += querier.delete(database, &deletion).await?;
    }
    let before = expected.len();
    expected.retain(|(db, key, t), _| {
        let minute = (t - base) / 60_000;
        let h03 = key.contains("h03") && (20..=40).contains(&minute);
        db != database || !(h03 || key.contains("h05") || minute == 59)
    });
    assert_eq!(gone as usize, before - expected.len());
    // 21 minutes of h03, 60 of h05, minute 59 of the 23 other hosts.
    assert_eq!(before - expected.len(), 21 + 60 + 23);
    assert_eq!(stored(&[&a.ingester]).await?, expected);

    // a dies: b restores each shard from its last checkpoint, the
    // delete's, and replays the log after it.
    a.die("a").await;
    let b = engines.served_alone("b", SECRET, ttl).await?;
    assert_eq!(stored(&[&b.ingester]).await?, expected);

    // Baidu's drop: every shard's owner retires the database's blocks
    // and state; the other database stays, also for the next owner.
    let retired = querier.drop_database(database).await?;
    assert!(retired >= u64::from(SHARDS), "{retired} objects retired");
    expected.retain(|(db, _, _), _| db != database);
    assert!(!expected.is_empty());
    assert_eq!(stored(&[&b.ingester]).await?, expected);
    let meta = sundial_cluster::Meta::connect(&engines.pg.url()).await?;
    let left = meta
        .blocks_overlapping(database, None, i64::MIN, i64::MAX)
        .await?;
    assert!(left.is_empty(), "{left:?}");
    b.die("b").await;
    let c = engines.served_alone("c", SECRET, ttl).await?;
    assert_eq!(stored(&[&c.ingester]).await?, expected);
    Ok(())
}
