//! `GET /api/export`: the series of a database (or of the metrics named
//! by `metric=`, repeatable) with their points in `[start, end]`, streamed
//! as series lines. A reader thread fills a small queue a page of series
//! at a time, so a slow client holds no lock and costs no memory beyond
//! that queue; a client that goes away stops the reader. The stream holds
//! a query slot throughout (it has no deadline: it may take hours). Pages
//! come through the read seam: from this node's database, or shard after
//! shard from the shards' owners on a cluster.
//!
//! `GET /api/export/metrics`: the metric names with data in the range, as
//! a JSON list, so a client can export (and resume) metric by metric.

use super::OutValue;
use crate::Api;
use crate::error::{OpenTsdbError, json_response};
use crate::query::query_error;
use crate::scope::ReadScope;
use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use sundial_model::{ExportPage, FieldValue, Listing, Names, SeriesKey, Timestamp};
use sundial_query::series_query::StagedRows;

/// Series per page: read under one hold of the read lock (writers wait
/// no longer than this batch).
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
        .read_blocking(move |api| metrics(api, Some((selection.start, selection.end))))
        .await?;
    Ok(json_response(StatusCode::OK, &serde_json::json!(names)))
}

/// The metric names (with data in `range`, when given), through the read
/// seam: this node's database or every shard of a cluster.
fn metrics(api: &Api, range: Option<(Timestamp, Timestamp)>) -> Result<Vec<String>, OpenTsdbError> {
    let listing = Listing {
        names: Names::Metrics,
        prefix: String::new(),
        range,
        max: usize::MAX,
    };
    let budget = api.query_budget();
    let listed = api.reads.listing(&api.db, &listing, &budget);
    Ok(listed.map_err(query_error)?.names.into_iter().collect())
}

pub(crate) async fn export(
    ReadScope(api): ReadScope,
    RawQuery(query): RawQuery,
) -> Result<Response, OpenTsdbError> {
    let mut selection = selection(query.as_deref())?;
    if selection.metrics.is_empty() {
        selection.metrics = api.read_blocking(|api| metrics(api, None)).await?;
    }
    // One of the query slots for the whole stream: exports count against
    // `limits.max_concurrent_queries` like any other reader.
    let slot = api.limits.query_slot().await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUED_BATCHES);
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        if let Err(e) = stream_series(&api, &selection, &tx) {
            tracing::warn!(error = %e.message, "export stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.message)));
        }
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// Reads page after page (each part of the database in turn: the one
/// database here, each shard of a cluster) and queues each; returns when
/// done or when the client has gone.
fn stream_series(
    api: &Api,
    selection: &Selection,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), OpenTsdbError> {
    for metric in &selection.metrics {
        let fields = api.stored_fields(metric, &api.query_budget())?;
        if fields.is_empty() {
            continue;
        }
        for part in 0..api.reads.export_parts() {
            let mut page = ExportPage {
                metric: metric.clone(),
                fields: fields.clone(),
                first: 0,
                count: SERIES_PER_BATCH,
                start: selection.start,
                end: selection.end,
            };
            loop {
                let (series, more) = api
                    .reads
                    .export_page(&api.db, part, &page)
                    .map_err(query_error)?;
                let lines = page_lines(&series, &fields);
                if !lines.is_empty() && tx.blocking_send(Ok(Bytes::from(lines))).is_err() {
                    return Ok(());
                }
                if !more {
                    break;
                }
                page.first += SERIES_PER_BATCH;
            }
        }
    }
    Ok(())
}

/// A page's lines: per series, per field with points, a line per
/// [`POINTS_PER_LINE`] points.
fn page_lines(series: &[StagedRows], fields: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, rows) in series {
        for (i, field) in fields.iter().enumerate() {
            let points: Vec<(Timestamp, &FieldValue)> = rows
                .iter()
                .filter_map(|(t, values)| Some((*t, values.get(i)?.as_ref()?)))
                .collect();
            for slice in points.chunks(POINTS_PER_LINE) {
                write_line(&mut out, key, field, slice);
            }
        }
    }
    out
}

#[derive(Serialize)]
struct OutLine<'a> {
    metric: &'a str,
    tags: serde_json::Map<String, serde_json::Value>,
    field: &'a str,
    timestamps: Vec<Timestamp>,
    values: Vec<OutValue<'a>>,
}

fn write_line(
    out: &mut Vec<u8>,
    key: &SeriesKey,
    field: &str,
    points: &[(Timestamp, &FieldValue)],
) {
    let line = OutLine {
        metric: &key.metric,
        tags: key
            .tags
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
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
