//! The router against two ingesters served on loopback (PostgreSQL,
//! nats-server and an S3 server, as `tests/ingest.rs`), written through
//! the write seam the API adapters use: each point lands at its shard's
//! owner and its answer comes back at its request index, the adapter's
//! groups and vetoes hold per shard, a moved shard is found again, and a
//! shard nobody owns is a busy answer rather than a lost write.

mod common;

use common::*;
use std::time::Duration;
use sundial_api::sink::{PointWrite, Sink};
use sundial_cluster::{FrameClient, Router, owner_of, shard_of};
use sundial_model::{FieldValue, Kind, PointError, ValueInput, WritePoint};
use sundial_storage::{Db, ErrorClass};

const SECRET: &str = "router test secret";
const BASE: i64 = 1_700_000_000_000;

fn point(host: usize, minute: i64, value: FieldValue) -> WritePoint {
    WritePoint {
        series: series(host),
        field: "value".into(),
        timestamp: BASE + minute * 60_000,
        value: ValueInput::Typed(value),
    }
}

/// A write as an adapter hands it to the sink, and what each of its
/// points must get: computed from the rules below, not from a run.
struct Case {
    points: Vec<WritePoint>,
    groups: Vec<usize>,
    vetoed: Vec<bool>,
    results: Vec<Result<(), PointError>>,
}

const MISMATCH: PointError = PointError::KindMismatch {
    stored: Kind::Numeric,
    written: Kind::String,
};

/// 10 minutes of 24 hosts, then two groups of two points (OpenTSDB's
/// multi-field put): one text value where numbers are stored, one vetoed
/// point, and a group whose second point fails.
fn mixed() -> Case {
    let (mut points, mut results) = (Vec::new(), Vec::new());
    for minute in 0..10 {
        for host in 0..24 {
            let bad = (minute, host) == (3, 10);
            let value = if bad {
                FieldValue::String("high".into())
            } else {
                FieldValue::Double((minute * 100) as f64 + host as f64)
            };
            points.push(point(host, minute, value));
            results.push(if bad { Err(MISMATCH) } else { Ok(()) });
        }
    }
    let vetoed_at = 5 * 24 + 7;
    let mut vetoed = vec![false; points.len()];
    vetoed[vetoed_at] = true;
    results[vetoed_at] = Err(PointError::Rejected);
    let mut groups = vec![1; points.len()];
    points.push(point(5, 20, FieldValue::Double(1.5)));
    points.push(point(5, 21, FieldValue::String("x".into())));
    results.extend([Err(PointError::Rejected), Err(MISMATCH)]);
    points.push(point(6, 20, FieldValue::Double(2.5)));
    points.push(point(6, 21, FieldValue::Double(3.5)));
    results.extend([Ok(()), Ok(())]);
    groups.extend([2, 2]);
    Case {
        points,
        groups,
        vetoed,
        results,
    }
}

/// What the owners must hold after `case`: its accepted doubles.
fn accepted(case: &Case, into: &mut Expected) {
    for (p, r) in case.points.iter().zip(&case.results) {
        if let (Ok(()), ValueInput::Typed(FieldValue::Double(v))) = (r, &p.value) {
            into.insert(
                (DATABASES[0].to_owned(), p.series.to_string(), p.timestamp),
                *v,
            );
        }
    }
}

async fn send(sink: &Sink, db: &Db, case: &Case) -> sundial_storage::Result<Vec<String>> {
    let write = PointWrite {
        groups: case.groups.clone(),
        vetoed: case.vetoed.clone(),
        ..PointWrite::new(db.clone(), case.points.clone())
    };
    let written = sink.write(write).await?;
    written.commit.wait().await?;
    Ok(written
        .outcome
        .results
        .iter()
        .map(|r| format!("{r:?}"))
        .collect())
}

fn expect(case: &Case) -> Vec<String> {
    case.results.iter().map(|r| format!("{r:?}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_their_owners_and_answers_come_back_in_request_order() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let ttl = Duration::from_secs(3);
    let ServedNode {
        ingester: a,
        address: address_a,
        keeper: keeper_a,
        stop: stop_a,
    } = engines.served("a", SECRET, ttl).await?;
    let ServedNode {
        ingester: b,
        keeper: keeper_b,
        stop: stop_b,
        ..
    } = engines.served("b", SECRET, ttl).await?;
    let nodes = ["a".to_owned(), "b".to_owned()];
    let of_a = (0..SHARDS)
        .filter(|s| owner_of(*s, &nodes) == Some("a"))
        .count();
    anyhow::ensure!(
        0 < of_a && of_a < SHARDS as usize,
        "a test needs both owners"
    );
    until("the shards to settle over a and b", || {
        a.shards().len() == of_a && b.shards().len() == SHARDS as usize - of_a
    })
    .await?;

    let router = Router::new(
        &engines.pg.url(),
        SHARDS,
        FrameClient::new(SECRET, Duration::from_secs(10)),
    )
    .await?;
    let sink = Sink::new(router.clone());
    let db = Db::open(sundial_storage::Config {
        data_dir: engines.dir.path().join("router").join(DATABASES[0]),
        ..Default::default()
    })?;
    let mut expected = Expected::new();

    let case = mixed();
    assert_eq!(send(&sink, &db, &case).await?, expect(&case));
    accepted(&case, &mut expected);
    assert_eq!(stored(&[&a, &b]).await?, expected);

    // Baidu's all-or-nothing request over several shards: the shard with
    // the bad point refuses all of its points, the others store theirs
    // (no commit spans shards; docs/cluster.md, "The router").
    let mut points: Vec<WritePoint> = (0..24)
        .map(|h| point(h, 30, FieldValue::Double(h as f64)))
        .collect();
    points.push(point(10, 31, FieldValue::String("down".into())));
    let bad_shard = shard_of(&series(10), SHARDS);
    let results = points
        .iter()
        .enumerate()
        .map(|(i, p)| match i {
            24 => Err(MISMATCH),
            _ if shard_of(&p.series, SHARDS) == bad_shard => Err(PointError::Rejected),
            _ => Ok(()),
        })
        .collect();
    let whole = Case {
        groups: vec![points.len()],
        points,
        vetoed: Vec::new(),
        results,
    };
    assert_eq!(send(&sink, &db, &whole).await?, expect(&whole));
    accepted(&whole, &mut expected);
    assert_eq!(stored(&[&a, &b]).await?, expected);

    // a leaves: its shards move to b, and the router, still sending to a,
    // is told a no longer owns them, reads the owners again and resends.
    let _ = stop_a.send(());
    keeper_a.await?;
    until("b to own every shard", || {
        b.shards().len() == SHARDS as usize
    })
    .await?;
    let moved = Case {
        points: (0..24)
            .map(|h| point(h, 40, FieldValue::Double(40.0 + h as f64)))
            .collect(),
        groups: Vec::new(),
        vetoed: Vec::new(),
        results: vec![Ok(()); 24],
    };
    assert_eq!(send(&sink, &db, &moved).await?, expect(&moved));
    accepted(&moved, &mut expected);
    assert_eq!(stored(&[&b]).await?, expected);

    // Nobody owns the shards: busy (the API's retry hint), nothing lost.
    let _ = stop_b.send(());
    keeper_b.await?;
    let orphaned = Case {
        points: (0..24)
            .map(|h| point(h, 50, FieldValue::Double(50.0 + h as f64)))
            .collect(),
        ..moved
    };
    match send(&sink, &db, &orphaned).await {
        Err(e) => {
            assert_eq!(e.class(), ErrorClass::Busy, "{e}");
            assert!(e.to_string().contains("has no owner"), "{e}");
        }
        Ok(answer) => anyhow::bail!("a write without owners was answered: {answer:?}"),
    }

    // a comes back: the router finds it and the retry is stored.
    let (_keeper, _stop) = engines.keep_at("a", &address_a, &a, ttl).await?;
    until("a to own every shard", || {
        a.shards().len() == SHARDS as usize
    })
    .await?;
    assert_eq!(send(&sink, &db, &orphaned).await?, expect(&orphaned));
    accepted(&orphaned, &mut expected);
    assert_eq!(stored(&[&a]).await?, expected);
    Ok(())
}
