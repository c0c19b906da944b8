//! Listing names in PostgreSQL (docs/cluster.md, "Listing names"): the
//! shards' owners record the names their series carry, so a querier
//! answers listings without a time range from PostgreSQL alone, as a
//! single node with the same writes answers them, even while no shard has
//! an owner. A new owner's first checkpoint pass settles the names it
//! restored (rows lost or left over are put right), and a delete of
//! series takes away the names only they carried.

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use sundial_cluster::{FrameClient, Meta, Querier};
use sundial_model::{
    Deleted, Deletion, FieldValue, Listed, Listing, Names, SeriesKey, TagMatch, ValueInput,
    WritePoint,
};
use sundial_query::Budget;
use sundial_storage::Db;

const SECRET: &str = "names test secret";
const BASE: i64 = 1_700_000_000_000;

/// `cpu` on 12 hosts in 3 data centres and one lone host in its own;
/// `mem` on 4 hosts by region; `disk` with two fields.
fn data() -> Vec<WritePoint> {
    let mut out = Vec::new();
    let mut add = |metric: &str, field: &str, tags: Vec<(&str, String)>, v: f64| {
        let tags = tags.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let key = Arc::new(SeriesKey::new(metric, tags));
        for minute in 0..3 {
            out.push(WritePoint {
                series: key.clone(),
                field: field.into(),
                timestamp: BASE + minute * 60_000,
                value: ValueInput::Typed(FieldValue::Double(v + minute as f64)),
            });
        }
    };
    for host in 0..12 {
        let tags = vec![
            ("dc", format!("d{}", host % 3)),
            ("host", format!("h{host:02}")),
        ];
        add("cpu", "value", tags, host as f64);
    }
    add(
        "cpu",
        "value",
        vec![("dc", "solo".into()), ("host", "h99".into())],
        99.0,
    );
    for host in 0..4 {
        let tags = vec![
            ("host", format!("h{host:02}")),
            ("region", format!("r{}", host % 2)),
        ];
        add("mem", "value", tags, host as f64);
    }
    for field in ["free", "used"] {
        add("disk", field, vec![("host", "h00".into())], 1.0);
    }
    out
}

fn listing(names: Names, prefix: &str, max: usize) -> Listing {
    Listing {
        names,
        prefix: prefix.to_owned(),
        range: None,
        max,
    }
}

/// Listings of every kind PostgreSQL answers, with prefixes and limits.
fn listings() -> Vec<Listing> {
    let cpu = || Some("cpu".to_owned());
    vec![
        listing(Names::Metrics, "", 100),
        listing(Names::Metrics, "c", 100),
        listing(Names::Metrics, "", 1),
        listing(Names::Fields { metric: None }, "", 100),
        listing(
            Names::Fields {
                metric: Some("disk".into()),
            },
            "u",
            100,
        ),
        listing(
            Names::Fields {
                metric: Some("nothing".into()),
            },
            "",
            100,
        ),
        listing(Names::TagKeys { metric: None }, "", 100),
        listing(Names::TagKeys { metric: cpu() }, "", 100),
        listing(Names::TagValues { metric: None }, "h", 100),
        listing(Names::TagValues { metric: cpu() }, "", 100),
        listing(Names::TagValues { metric: None }, "", 5),
        listing(
            Names::Tags {
                metric: "cpu".into(),
            },
            "",
            100,
        ),
        listing(
            Names::Tags {
                metric: "mem".into(),
            },
            "",
            3,
        ),
        listing(
            Names::Tags {
                metric: "nothing".into(),
            },
            "",
            100,
        ),
    ]
}

fn budget() -> Budget {
    Budget::new(Duration::from_secs(30), usize::MAX)
}

/// Each listing's answer from the single node, the querier, and
/// PostgreSQL's names alone: all three equal. The single node's answers.
async fn alike(single: &Db, querier: &Querier, meta: &Meta) -> anyhow::Result<Vec<Listed>> {
    let database = DATABASES[0];
    let mut answers = Vec::new();
    for l in listings() {
        let local = tokio::task::spawn_blocking({
            let (single, l) = (single.clone(), l.clone());
            move || sundial_query::list(&single, &l, &budget())
        })
        .await??;
        let cluster = querier.listing(database, &l, &budget()).await?;
        assert_eq!(cluster, local, "the querier's {l:?}");
        let names = meta.list_names(database, &l).await?;
        assert_eq!(names.as_ref(), Some(&local), "PostgreSQL's {l:?}");
        answers.push(local);
    }
    Ok(answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_come_from_postgres_as_one_node_answers_them() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let ttl = Duration::from_secs(3);
    let a = engines.served_alone("a", SECRET, ttl).await?;
    let database = DATABASES[0];
    write(&a.ingester, database, data(), &mut Expected::new()).await?;
    let single = Db::open(sundial_storage::Config {
        data_dir: engines.dir.path().join("single").join(database),
        ..Default::default()
    })?;
    single.write(data(), false)?.commit.wait().await?;
    let querier = Querier::new(
        &engines.pg.url(),
        SHARDS,
        FrameClient::new(SECRET, Duration::from_secs(10)),
    )
    .await?;
    let mut meta = Meta::connect(&engines.pg.url()).await?;
    let answers = alike(&single, &querier, &meta).await?;
    // They listed something: every metric, and the lone host's names.
    assert_eq!(answers[0].names.len(), 3, "{:?}", answers[0]);
    assert!(answers[9].names.contains("solo"), "{:?}", answers[9]);

    // With no owner at all, the listings still answer (a ranged one,
    // which only the owners answer, is busy).
    a.die("a").await;
    alike(&single, &querier, &meta).await?;
    let mut ranged = listing(Names::Metrics, "", 100);
    ranged.range = Some((BASE, BASE + 60_000));
    let busy = querier.listing(database, &ranged, &budget()).await;
    assert!(busy.is_err(), "{busy:?}");

    // Rows lost and a stray row: the next owner settles each shard it
    // restores.
    for shard in 0..SHARDS {
        meta.settle_names(database, shard, &[]).await?;
    }
    let ghost = ("ghost".to_owned(), String::new(), String::new());
    meta.add_names(database, 0, std::slice::from_ref(&ghost))
        .await?;
    // And rows of a database the shard does not hold (its data lost).
    meta.add_names("vanished", 0, &[ghost]).await?;
    let wrong = meta.list_names(database, &listings()[0]).await?;
    assert_eq!(
        wrong.map(|l| l.names.into_iter().collect::<Vec<_>>()),
        Some(vec!["ghost".into()])
    );
    let b = engines.served_alone("b", SECRET, ttl).await?;
    let passes = tokio::spawn({
        let b = b.ingester.clone();
        async move { b.run_checkpoints(std::future::pending()).await }
    });
    // Every shard settled: each listing PostgreSQL answers is right.
    let settled = tokio::time::Instant::now() + Duration::from_secs(30);
    for (l, answer) in listings().iter().zip(&answers) {
        while meta.list_names(database, l).await?.as_ref() != Some(answer) {
            anyhow::ensure!(tokio::time::Instant::now() < settled, "names never settled");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    alike(&single, &querier, &meta).await?;
    let metrics = listings()[0].clone();
    let until_swept = tokio::time::Instant::now() + Duration::from_secs(30);
    while meta.list_names("vanished", &metrics).await? != Some(Listed::default()) {
        anyhow::ensure!(
            tokio::time::Instant::now() < until_swept,
            "vanished rows stayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A delete of series takes the names only they carried.
    let deletion = Deletion {
        metric: "cpu".into(),
        tags: vec![TagMatch::Eq {
            key: "dc".into(),
            value: "solo".into(),
        }],
        what: Deleted::Series,
    };
    assert!(querier.delete(database, &deletion).await? > 0);
    tokio::task::spawn_blocking({
        let (single, deletion) = (single.clone(), deletion.clone());
        move || sundial_query::delete(&single, &deletion)
    })
    .await??;
    let answers = alike(&single, &querier, &meta).await?;
    assert!(!answers[9].names.contains("solo"), "{:?}", answers[9]);
    assert!(!answers[9].names.contains("h99"), "{:?}", answers[9]);
    assert!(answers[9].names.contains("h00"), "{:?}", answers[9]);
    passes.abort();
    b.die("b").await;
    Ok(())
}
