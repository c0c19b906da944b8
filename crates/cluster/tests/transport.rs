//! The internal write protocol between real processes' parts: frames
//! posted over HTTP/2 to an ingester's routes (against PostgreSQL,
//! nats-server and an S3 server, as `tests/ingest.rs`), refused points
//! reported at their index, and every refusal of a whole frame coming
//! back as the error the router acts on.

mod common;

use common::*;
use std::time::Duration;
use sundial_cluster::{Error, FrameClient, ShardBatch, ingest_routes, split_by_shard};
use sundial_model::{FieldValue, Kind, PointError, ValueInput};

const SECRET: &str = "a cluster secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_travel_over_http2_and_refusals_come_back_typed() -> anyhow::Result<()> {
    let engines = Engines::start().await?;
    let a = engines.ingester("a").await?;
    let (_keeper, _stop) = engines.keep_all("a", &a, Duration::from_secs(3)).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let routes = ingest_routes(a.clone(), SECRET);
    tokio::spawn(async move { axum::serve(listener, routes).await });
    let client = FrameClient::new(SECRET, Duration::from_secs(10));

    // Every fifth point after the first minute carries text where the
    // field holds numbers.
    let mut sent = points(0..10, 1);
    for p in sent.iter_mut().skip(24).step_by(5) {
        p.value = ValueInput::Typed(FieldValue::String("not a number".into()));
    }
    let mut expected = Expected::new();
    for (shard, part) in split_by_shard(sent, SHARDS) {
        let batch = ShardBatch {
            rules: Default::default(),
            database: DATABASES[0].to_owned(),
            shard,
            epoch: a.epoch(shard).unwrap_or_default(),
            id: rand_id(),
            points: part.points.clone(),
        };
        let outcome = client.send(&address, &batch).await?;
        assert_eq!(outcome.results.len(), part.points.len());
        // The first point of the field in the shard fixed its kind.
        let mut kinds = std::collections::HashMap::new();
        for (p, result) in part.points.iter().zip(&outcome.results) {
            let kind = match &p.value {
                ValueInput::Typed(v) => v.kind(),
                other => anyhow::bail!("test points are typed: {other:?}"),
            };
            let stored = *kinds.entry(p.series.metric.clone()).or_insert(kind);
            if stored == kind {
                assert_eq!(result, &Ok(()));
                if let ValueInput::Typed(FieldValue::Double(v)) = p.value {
                    expected.insert(
                        (DATABASES[0].to_owned(), p.series.to_string(), p.timestamp),
                        v,
                    );
                }
            } else {
                assert_eq!(
                    result,
                    &Err(PointError::KindMismatch {
                        stored: Kind::Numeric,
                        written: kind
                    })
                );
            }
        }
    }
    assert_eq!(stored(&[&a]).await?, expected);

    // Refusals of a whole frame, as the router gets them.
    let frame = |shard: u32, epoch: i64, database: &str| ShardBatch {
        rules: Default::default(),
        database: database.to_owned(),
        shard,
        epoch,
        id: rand_id(),
        points: points(0..1, 9),
    };
    let epoch = a.epoch(0).unwrap_or_default();
    match client
        .send(&address, &frame(0, epoch - 1, DATABASES[0]))
        .await
    {
        Err(Error::StaleEpoch {
            shard: 0,
            sent,
            current,
        }) => {
            assert_eq!((sent, current), (epoch - 1, epoch));
        }
        other => anyhow::bail!("expected StaleEpoch, got {other:?}"),
    }
    assert!(matches!(
        client.send(&address, &frame(SHARDS + 3, 1, DATABASES[0])).await,
        Err(Error::NotOwner { shard }) if shard == SHARDS + 3
    ));
    assert!(matches!(
        client.send(&address, &frame(0, epoch, "no/such")).await,
        Err(Error::BadDatabase(_))
    ));
    let intruder = FrameClient::new("a guess", Duration::from_secs(10));
    match intruder
        .send(&address, &frame(0, epoch, DATABASES[0]))
        .await
    {
        Err(Error::Peer { message, .. }) => assert!(message.contains("401"), "{message}"),
        other => anyhow::bail!("expected a refusal, got {other:?}"),
    }
    // Nothing of the refused frames was stored.
    assert_eq!(stored(&[&a]).await?, expected);

    // A node nobody listens on is an error naming it, not a hang.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gone = closed.local_addr()?.to_string();
    drop(closed);
    match client.send(&gone, &frame(0, epoch, DATABASES[0])).await {
        Err(Error::Peer { address, .. }) => assert_eq!(address, gone),
        other => anyhow::bail!("expected an unreachable peer, got {other:?}"),
    }
    Ok(())
}
