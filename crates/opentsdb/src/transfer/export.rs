//! `GET /api/export`: the series of a database (or of the metrics named
//! by `metric=`, repeatable) with their points in `[start, end]`, streamed
//! as series lines. A reader thread fills a small queue a batch of series
//! at a time, so a slow client holds no lock and costs no memory beyond
//! that queue; a client that goes away stops the reader. The stream holds
//! a query slot throughout (it has no deadline: it may take hours).
//!
//! `GET /api/export/metrics`: the metric names with data in the range, as
//! a JSON list, so a client can export (and resume) metric by metric.

use super::OutValue;
use crate::error::{OpenTsdbError, json_response};
use crate::scope::ReadScope;
use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use sundial_model::{FieldValue, SeriesKey, Timestamp};
use sundial_storage::{Db, Snapshot};

/// Series read under one hold of the read lock (writers wait no longer
/// than this batch).
const SERIES_PER_BATCH: usize = 64;
/// Points per line: a long series goes out in slices.
const POINTS_PER_LINE: usize = 10_000;
/// Batches queued for the client.
const QUEUED_BATCHES: usize = 4;

/// What an export reads.
#[derive(Debug)]
struct Selection {
    metrics: Vec<String>,
    start: Timestamp,
    end: Timestamp,
}

fn selection(query: Option<&str>) -> Result<Selection, OpenTsdbError> {
    let mut selection = Selection {
        metrics: Vec::new(),
        start: 0,
        end: Timestamp::MAX,
    };
    let now = sundial_model::now_ms();
    let utc = jiff::tz::TimeZone::UTC;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "metric" if !v.is_empty() => selection.metrics.push(v.into_owned()),
            "start" => {
                selection.start = crate::time::parse_query_time(&v, now, &utc)
                    .map_err(|e| OpenTsdbError::bad_request(format!("start: {e}")))?;
            }
            "end" => {
                selection.end = crate::time::parse_query_time(&v, now, &utc)
                    .map_err(|e| OpenTsdbError::bad_request(format!("end: {e}")))?;
            }
            _ => {}
        }
    }
    if selection.start > selection.end {
        return Err(OpenTsdbError::bad_request("start is after end"));
    }
    Ok(selection)
}

pub(crate) async fn export_metrics(
    ReadScope(api): ReadScope,
    RawQuery(query): RawQuery,
) -> Result<Response, OpenTsdbError> {
    let selection = selection(query.as_deref())?;
    let names = api
        .read_blocking(move |api| {
            Ok(api.db.read(|snap| {
                snap.metrics_in(selection.start, selection.end)
                    .into_iter()
                    .map(String::from)
                    .collect::<Vec<_>>()
            }))
        })
        .await?;
    Ok(json_response(StatusCode::OK, &serde_json::json!(names)))
}

pub(crate) async fn export(
    ReadScope(api): ReadScope,
    RawQuery(query): RawQuery,
) -> Result<Response, OpenTsdbError> {
    let mut selection = selection(query.as_deref())?;
    let db = api.db.clone();
    if selection.metrics.is_empty() {
        selection.metrics = db.read(|snap| snap.metrics().into_iter().map(String::from).collect());
    }
    // One of the query slots for the whole stream: exports count against
    // `limits.max_concurrent_queries` like any other reader.
    let slot = api.limits.query_slot().await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUED_BATCHES);
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        if let Err(e) = stream_series(&db, &selection, &tx) {
            tracing::warn!(error = %e, "export stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// Reads batch after batch and queues each; returns when done or when the
/// client has gone.
fn stream_series(
    db: &Db,
    selection: &Selection,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> sundial_storage::Result<()> {
    for metric in &selection.metrics {
        let mut next = 0usize;
        loop {
            let (batch, done) =
                db.read(|mut snap| read_batch(&mut snap, metric, next, selection))?;
            next += SERIES_PER_BATCH;
            if !batch.is_empty() && tx.blocking_send(Ok(Bytes::from(batch))).is_err() {
                return Ok(());
            }
            if done {
                break;
            }
        }
    }
    Ok(())
}

/// The lines of series `first..first + SERIES_PER_BATCH` of `metric`, and
/// whether they were its last.
fn read_batch(
    snap: &mut Snapshot<'_>,
    metric: &str,
    first: usize,
    selection: &Selection,
) -> sundial_storage::Result<(Vec<u8>, bool)> {
    let ids: Vec<_> = snap
        .series_of(metric)
        .iter()
        .skip(first)
        .take(SERIES_PER_BATCH + 1)
        .copied()
        .collect();
    let done = ids.len() <= SERIES_PER_BATCH;
    let fields: Vec<String> = snap
        .fields(metric)
        .into_iter()
        .map(|(f, _)| f.to_owned())
        .collect();
    let mut out = Vec::new();
    for id in ids.into_iter().take(SERIES_PER_BATCH) {
        let Some(key) = snap.key(id) else { continue };
        for field in &fields {
            let points = snap.points(id, field, selection.start, selection.end)?;
            for slice in points.chunks(POINTS_PER_LINE) {
                write_line(&mut out, &key, field, slice);
            }
        }
        snap.yield_to_writers();
    }
    Ok((out, done))
}

#[derive(Serialize)]
struct OutLine<'a> {
    metric: &'a str,
    tags: serde_json::Map<String, serde_json::Value>,
    field: &'a str,
    timestamps: Vec<Timestamp>,
    values: Vec<OutValue<'a>>,
}

fn write_line(out: &mut Vec<u8>, key: &SeriesKey, field: &str, points: &[(Timestamp, FieldValue)]) {
    let line = OutLine {
        metric: &key.metric,
        tags: key
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
        field,
        timestamps: points.iter().map(|(t, _)| *t).collect(),
        values: points.iter().map(|(_, v)| OutValue(v)).collect(),
    };
    // Serialising plain data into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, &line).is_ok() {
        out.push(b'\n');
    }
}
