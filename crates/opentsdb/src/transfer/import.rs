//! `POST /api/import`: series lines in, through the same write path as
//! `/api/put` (write slot, write hooks, WAL commit before the answer).

use super::SeriesLine;
use crate::error::{OpenTsdbError, json_response};
use crate::scope::WriteScope;
use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;
use std::sync::Arc;
use sundial_api::sink::PointWrite;
use sundial_api::write_hook::HookedRequest;
use sundial_model::{SeriesKey, Timestamp, ValueInput, WritePoint};

/// Failures listed in one answer; the counts cover them all.
const MAX_LISTED_ERRORS: usize = 100;

/// The latest timestamp accepted: the last millisecond of year 9999.
const MAX_TIMESTAMP: Timestamp = 253_402_300_799_999;

pub(crate) async fn import(
    WriteScope(api): WriteScope,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let _slot = api.limits.write_slot().await?;
    let bytes = sundial_api::body::read(&headers, body, api.config.max_body_bytes).await?;
    let hooked = api.begin_hooks(query.as_deref(), &headers)?;
    let max_points = api.limits.config.max_write_points;
    let limits = api.name_limits();
    // Parsing a body of a million points is CPU work: off the workers.
    let (mut checked, hooked) =
        tokio::task::spawn_blocking(move || parse(&bytes, max_points, limits, hooked))
            .await
            .map_err(|e| OpenTsdbError::internal(&e))??;
    let points = std::mem::take(&mut checked.points);
    let written = api
        .sink
        .write(PointWrite::new(api.db.clone(), points))
        .await?;
    written.commit.wait().await?;
    let results = written.outcome.results;
    hooked
        .stored(&results)
        .await
        .map_err(|e| OpenTsdbError::internal(&e))?;
    let mut failures = checked.failures;
    for (i, result) in results.iter().enumerate() {
        if let Err(e) = result {
            let line = checked.line_of.get(i).copied().unwrap_or_default();
            let metric = checked
                .keys
                .get(line.wrapping_sub(1))
                .map_or("", |k| k.metric.as_str());
            failures.push(line, crate::put::point_error_text(e, metric));
        }
    }
    let success = results.iter().filter(|r| r.is_ok()).count();
    let status = if failures.count == 0 {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(json_response(
        status,
        &json!({"success": success, "failed": failures.count, "errors": failures.listed}),
    ))
}

/// Points refused before the engine saw them, by line (from 1).
#[derive(Debug, Default)]
struct Failures {
    count: usize,
    listed: Vec<serde_json::Value>,
}

impl Failures {
    fn push(&mut self, line: usize, error: String) {
        self.add(line, 1, error);
    }

    fn add(&mut self, line: usize, points: usize, error: String) {
        self.count += points;
        if self.listed.len() < MAX_LISTED_ERRORS {
            self.listed
                .push(json!({"line": line, "points": points, "error": error}));
        }
    }
}

/// A body's points, checked, with the line each came from.
struct Checked {
    points: Vec<WritePoint>,
    /// Per point: its line (from 1).
    line_of: Vec<usize>,
    /// Per line: its series (the metric names a refusal).
    keys: Vec<Arc<SeriesKey>>,
    failures: Failures,
}

/// Reads every line first: a body that is not JSON lines is refused whole,
/// with nothing written, so the client can resend it once fixed.
fn parse(
    bytes: &[u8],
    max_points: usize,
    limits: crate::put::Limits,
    mut hooked: HookedRequest,
) -> Result<(Checked, HookedRequest), OpenTsdbError> {
    let mut checked = Checked {
        points: Vec::new(),
        line_of: Vec::new(),
        keys: Vec::new(),
        failures: Failures::default(),
    };
    let mut total = 0usize;
    let stream = serde_json::Deserializer::from_slice(bytes).into_iter::<SeriesLine>();
    for (n, line) in stream.enumerate() {
        let line_no = n + 1;
        let line = line.map_err(|e| {
            OpenTsdbError::bad_request(format!("Unable to parse line {line_no}"))
                .with_details(e.to_string())
        })?;
        if line.timestamps.len() != line.values.len() {
            return Err(OpenTsdbError::bad_request(format!(
                "Line {line_no} has {} timestamps and {} values",
                line.timestamps.len(),
                line.values.len()
            )));
        }
        total += line.timestamps.len();
        if total > max_points {
            return Err(OpenTsdbError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: "Too many data points".into(),
                details: Some(format!(
                    "a request may carry at most {max_points} data points (limits.max_write_points)"
                )),
            });
        }
        add_line(line, line_no, limits, &mut checked, &mut hooked);
    }
    if total == 0 {
        return Err(OpenTsdbError::bad_request("No datapoints found in content"));
    }
    Ok((checked, hooked))
}

fn add_line(
    line: SeriesLine,
    line_no: usize,
    limits: crate::put::Limits,
    checked: &mut Checked,
    hooked: &mut HookedRequest,
) {
    let error = name_error(&line, limits);
    let key = Arc::new(SeriesKey::new(line.metric, line.tags.into_iter().collect()));
    checked.keys.push(key.clone());
    if let Some(error) = error {
        checked.failures.add(line_no, line.timestamps.len(), error);
        return;
    }
    for (timestamp, value) in line.timestamps.into_iter().zip(line.values) {
        if !(0..=MAX_TIMESTAMP).contains(&timestamp) {
            checked
                .failures
                .push(line_no, format!("Invalid timestamp {timestamp}"));
            continue;
        }
        let mut point = WritePoint {
            series: key.clone(),
            field: line.field.as_str().into(),
            timestamp,
            value: ValueInput::Typed(value.0),
        };
        if let Err(e) = hooked.admit(checked.points.len(), &mut point) {
            checked.failures.push(line_no, e.to_string());
            continue;
        }
        checked.points.push(point);
        checked.line_of.push(line_no);
    }
}

/// Names any API could have written pass: non-empty, within the length
/// and tag-count limits. OpenTSDB's character rules are not applied, so
/// data written through `/v1` comes back in too.
fn name_error(line: &SeriesLine, limits: crate::put::Limits) -> Option<String> {
    if line.metric.is_empty() {
        return Some("Metric name was empty".into());
    }
    if line.metric.len() > limits.max_metric_bytes {
        return Some(format!(
            "Metric name too long: {} bytes (limit {})",
            line.metric.len(),
            limits.max_metric_bytes
        ));
    }
    if line.field.is_empty() {
        return Some("Field name was empty".into());
    }
    if line.tags.len() > limits.max_tags {
        return Some(format!(
            "Too many tags: {} maximum allowed: {}",
            line.tags.len(),
            limits.max_tags
        ));
    }
    line.tags.iter().find_map(|(k, v)| {
        if k.is_empty() || v.is_empty() {
            Some(format!("Empty tag name or value in {k}={v}"))
        } else if k.len() > limits.max_tagk_bytes || v.len() > limits.max_tagv_bytes {
            Some(format!("Tag {k} too long"))
        } else {
            None
        }
    })
}
