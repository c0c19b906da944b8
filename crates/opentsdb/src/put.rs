//! `POST /api/put` (seed 001, spec section 7).

use super::dto::{self, PointDto, Scalar, TagPairs, TagsDto};
use super::error::{OpenTsdbError, json_response};
use super::scope::WriteScope;
use super::{Api, names, time};
use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use compact_str::ToCompactString;
use serde_json::{Value, json};
use smallvec::SmallVec;
use std::sync::Arc;
use std::time::Duration;
use sundial_api::sink::PointWrite;
use sundial_api::write_hook::HookedRequest;
use sundial_model::{
    DEFAULT_FIELD, FieldValue, Kind, Name, NumberText, PointError, SeriesKey, Tags, ValueInput,
    WritePoint,
};
use sundial_storage::Commit;
use tokio::sync::OwnedSemaphorePermit;

/// Query-string options of a put (spec 7.1).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct PutParams {
    pub(crate) summary: bool,
    pub(crate) details: bool,
    pub(crate) ignore_errors: bool,
    pub(crate) sync: bool,
    /// 0 waits forever.
    pub(crate) sync_timeout_ms: u64,
}

impl PutParams {
    /// Presence flags are true whatever their value (seed).
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, OpenTsdbError> {
        let mut p = Self::default();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|s| !s.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "summary" => p.summary = true,
                "details" => p.details = true,
                "ignoreErrors" => p.ignore_errors = true,
                "sync" => p.sync = true,
                "sync_timeout" => {
                    p.sync_timeout_ms = value.parse().map_err(|_| {
                        OpenTsdbError::bad_request("Unable to parse 'sync_timeout' as a number")
                    })?;
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

/// A point that passed the request-order checks, or why it failed.
pub(crate) enum Checked {
    /// Send to the engine; `later_error` is a failure of a rule OpenTSDB
    /// checks after the value kind (spec 7.4 rules 6–14).
    Point {
        point: WritePoint,
        later_error: Option<String>,
    },
    Failed(String),
}

/// Limits the per-point checks need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_tags: usize,
    pub(crate) max_metric_bytes: usize,
    pub(crate) max_tagk_bytes: usize,
    pub(crate) max_tagv_bytes: usize,
}

/// Runs spec 7.4 rules 1–4 and 6–14 on one element; rule 5 (the value
/// kind) is the engine's.
pub(crate) fn check_point(p: &PointDto<'_>, limits: Limits) -> Checked {
    check_point_by(p, None, |metric, tags| keys::resolve(metric, tags, limits))
}

/// [`check_point`] with rules 4 and 6–14 answered by `known` (an earlier
/// element with the same metric and tags text passed rule 4), or by
/// `names` on the parsed tags.
pub(crate) fn check_point_by(
    p: &PointDto<'_>,
    known: Option<keys::Resolved>,
    names: impl FnOnce(&str, &TagPairs<'_>) -> keys::Resolved,
) -> Checked {
    let metric = match &p.metric {
        Some(Scalar::Str(m)) if !m.is_empty() => m,
        _ => return Checked::Failed("Metric name was empty".into()),
    };
    let Some(timestamp) = p.timestamp.as_ref().and_then(time::from_scalar) else {
        return Checked::Failed("Invalid timestamp".into());
    };
    let value = match &p.value {
        None | Some(Scalar::Null) => return Checked::Failed("Empty value".into()),
        Some(Scalar::Str(s)) if s.is_empty() => return Checked::Failed("Empty value".into()),
        Some(v) => v,
    };
    let parsed;
    let tags = match known {
        Some(_) => None,
        None => {
            parsed = p.tags.as_ref().map(|t| t.parsed());
            match parsed.as_deref() {
                Some(TagsDto::Map(t)) if !t.is_empty() => Some(t),
                _ => return Checked::Failed("Missing tags".into()),
            }
        }
    };
    let Some(value) = value_input(value) else {
        return Checked::Failed("Unable to parse value to a number".into());
    };
    let keys::Resolved { key, error } = match (known, tags) {
        (Some(resolved), _) => resolved,
        (None, Some(tags)) => names(metric, tags),
        (None, None) => return Checked::Failed("Missing tags".into()),
    };
    Checked::Point {
        point: WritePoint {
            series: key,
            field: DEFAULT_FIELD.into(),
            timestamp,
            value,
        },
        later_error: error.map(|e| e.to_string()),
    }
}

/// The metric of an element that passed the checks.
fn metric_text<'a>(p: &'a PointDto<'_>) -> &'a str {
    match &p.metric {
        Some(Scalar::Str(m)) => m,
        _ => "",
    }
}

/// What rules 6-14 make of one tags object, whatever the metric: the
/// converted pairs, sorted, and the first failing pair's error.
#[derive(Debug, Clone)]
pub(crate) struct CheckedTags {
    tags: Tags,
    error: Option<Arc<str>>,
}

impl CheckedTags {
    /// Converts and sorts the pairs and finds the first failure of rules
    /// 9-14. Names are borrowed until the pairs are built: short ones then
    /// need no heap.
    pub(crate) fn new(tags: &TagPairs<'_>, limits: Limits) -> Self {
        let mut converted: SmallVec<[(&str, Option<Name>); 16]> = tags
            .iter()
            .map(|(k, v)| (k.as_ref(), tag_text(v)))
            .collect();
        converted.sort_by(|a, b| a.0.cmp(b.0));
        let error = converted
            .iter()
            .find_map(|(k, v)| tag_error(k, v.as_deref(), limits))
            .map(Arc::from);
        let tags = converted
            .into_iter()
            .map(|(k, v)| (Name::from(k), v.unwrap_or_default()))
            .collect();
        Self { tags, error }
    }

    /// The key of `metric` with these tags, and the first failure of rules
    /// 6-14 in OpenTSDB's order: the tag count and the metric come before
    /// the pairs.
    pub(crate) fn key_for(&self, metric: &str, limits: Limits) -> keys::Resolved {
        let error = match metric_error(metric, self.tags.len(), limits) {
            Some(e) => Some(Arc::from(e)),
            None => self.error.clone(),
        };
        keys::Resolved {
            key: Arc::new(SeriesKey::from_names(metric, self.tags.clone())),
            error,
        }
    }
}

/// Rules 6-8: the tag count and the metric name.
fn metric_error(metric: &str, tag_count: usize, limits: Limits) -> Option<String> {
    if tag_count > limits.max_tags {
        return Some(format!(
            "Too many tags: {tag_count} maximum allowed: {}",
            limits.max_tags
        ));
    }
    if let Some(c) = names::first_illegal(metric) {
        return Some(format!(
            "Invalid metric name (\"{metric}\"): illegal character: {c}"
        ));
    }
    if metric.len() > limits.max_metric_bytes {
        return Some(format!(
            "Metric name too long: {} bytes (limit {})",
            metric.len(),
            limits.max_metric_bytes
        ));
    }
    None
}

/// Rules 9–14 for one pair, in order.
pub(crate) fn tag_error(k: &str, v: Option<&str>, limits: Limits) -> Option<String> {
    let shown = v.unwrap_or("null");
    if k.is_empty() {
        return Some(format!(
            "Invalid tag name with value [{shown}]: empty string"
        ));
    }
    if let Some(c) = names::first_illegal(k) {
        return Some(format!(
            "Invalid tag name with value [{shown}] (\"{k}\"): illegal character: {c}"
        ));
    }
    if k.len() > limits.max_tagk_bytes {
        return Some(format!(
            "Tag key too long: {} bytes (limit {})",
            k.len(),
            limits.max_tagk_bytes
        ));
    }
    let Some(v) = v else {
        return Some(format!("Invalid tag value with key [{k}]: not a string"));
    };
    if v.is_empty() {
        return Some(format!("Invalid tag value with key [{k}]: empty string"));
    }
    if let Some(c) = names::first_illegal(v) {
        return Some(format!(
            "Invalid tag value with key [{k}] (\"{v}\"): illegal character: {c}"
        ));
    }
    if v.len() > limits.max_tagv_bytes {
        return Some(format!(
            "Tag value too long: {} bytes (limit {})",
            v.len(),
            limits.max_tagv_bytes
        ));
    }
    None
}

/// Tag values arriving as numbers or booleans become text (spec 3.4).
fn tag_text(v: &Scalar<'_>) -> Option<Name> {
    match v {
        Scalar::Str(s) => Some(Name::from(s.as_ref())),
        Scalar::Bool(b) => Some(b.to_compact_string()),
        Scalar::I64(i) => Some(i.to_compact_string()),
        Scalar::U64(u) => Some(u.to_compact_string()),
        // Display's notation (`1`, `100000000000000000000`), not ryu's
        // (`1.0`, `1e20`), which `to_compact_string` would give.
        Scalar::F64(f) => Some(compact_str::format_compact!("{f}")),
        Scalar::Null | Scalar::Composite => None,
    }
}

/// The JSON value as the engine's not-yet-typed input (spec 7.5); `None`
/// for arrays and objects.
pub(crate) fn value_input(v: &Scalar<'_>) -> Option<ValueInput> {
    Some(match v {
        Scalar::Bool(b) => ValueInput::Typed(FieldValue::Bool(*b)),
        Scalar::I64(i) => ValueInput::Typed(FieldValue::Long(*i)),
        Scalar::U64(u) => ValueInput::Typed(FieldValue::Double(*u as f64)),
        Scalar::F64(f) => ValueInput::Typed(FieldValue::Double(*f)),
        Scalar::Str(s) => ValueInput::Text {
            text: s.as_ref().to_owned(),
            number: number_text(s),
        },
        Scalar::Null | Scalar::Composite => return None,
    })
}

/// Reads text as an OpenTSDB number (spec 7.5 step 3).
pub(crate) fn number_text(s: &str) -> NumberText {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<i64>() {
            Ok(i) => NumberText::Number(FieldValue::Long(i)),
            Err(_) => NumberText::Invalid,
        };
    }
    if is_decimal(unsigned) {
        return match s.parse::<f64>() {
            Ok(f) if f.is_finite() => NumberText::Number(FieldValue::Double(f)),
            _ => NumberText::Invalid,
        };
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "nan" | "inf" | "+inf" | "-inf" | "infinity" | "+infinity" | "-infinity"
    ) {
        return NumberText::Invalid;
    }
    NumberText::NotNumeric
}

/// `([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?`
fn is_decimal(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && (!int.is_empty() || !frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// The OpenTSDB text of an engine refusal.
pub(crate) fn point_error_text(e: &PointError, metric: &str) -> String {
    let kind = |k: &Kind| match k {
        Kind::Numeric => "numeric",
        Kind::String => "string",
        Kind::Bytes => "bytes",
    };
    match e {
        PointError::KindMismatch { stored, written } => format!(
            "Cannot write a {} value to metric {metric}: it stores {} values",
            kind(written),
            kind(stored)
        ),
        PointError::NotANumber => "Unable to parse value to a number".into(),
        PointError::StringTooLong { len, max } => {
            format!("String value too long: {len} bytes (limit {max})")
        }
        PointError::Rejected => "Rejected".into(),
    }
}

/// The elements of a put, checked in order.
struct CheckedPut {
    /// Per element: Err(message) or the index of its point in `points`.
    slots: Vec<Result<usize, String>>,
    points: Vec<WritePoint>,
    /// Per point: the error of a rule OpenTSDB checks after the value kind.
    later_errors: Vec<Option<String>>,
    /// Points a write hook stored under another metric, by point index
    /// (ascending), for error texts that name what was stored.
    renamed: Vec<(usize, String)>,
}

impl CheckedPut {
    /// The metric point `i` (of `element`) was stored under.
    fn stored_metric<'a>(
        renamed: &'a [(usize, String)],
        i: usize,
        element: &'a PointDto<'_>,
    ) -> &'a str {
        match renamed.binary_search_by_key(&i, |(at, _)| *at) {
            Ok(k) => renamed.get(k).map_or("", |(_, m)| m.as_str()),
            Err(_) => metric_text(element),
        }
    }
}

/// Checks every element (the key cache spares known series their name
/// checks) and lets the write hooks admit the clean ones.
fn check_all(api: &Api, parsed: &[PointDto<'_>], hooked: &mut HookedRequest) -> CheckedPut {
    let limits = api.name_limits();
    let mut slots: Vec<Result<usize, String>> = Vec::with_capacity(parsed.len());
    let mut points = Vec::with_capacity(parsed.len());
    let mut later_errors = Vec::with_capacity(parsed.len());
    let mut renamed = Vec::new();
    let mut keys = keys::RequestKeys::new(&api.keys, limits);
    let cached = keys.lookup_all(parsed);
    for (element, cached) in parsed.iter().zip(cached) {
        let known = keys.known(element, cached);
        let checked = check_point_by(element, known, |metric, tags| {
            keys.resolve(element, metric, tags)
        });
        match checked {
            Checked::Point {
                mut point,
                later_error,
            } => {
                if later_error.is_none()
                    && let Err(e) = hooked.admit(points.len(), &mut point)
                {
                    slots.push(Err(e.to_string()));
                    continue;
                }
                if point.series.metric != metric_text(element) {
                    renamed.push((points.len(), point.series.metric.to_string()));
                }
                slots.push(Ok(points.len()));
                points.push(point);
                later_errors.push(later_error);
            }
            Checked::Failed(msg) => slots.push(Err(msg)),
        }
    }
    keys.finish();
    CheckedPut {
        slots,
        points,
        later_errors,
        renamed,
    }
}

pub(crate) async fn put(
    WriteScope(api): WriteScope,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let Received {
        params,
        _slot,
        bytes,
    } = receive(&api, query.as_deref(), &headers, body).await?;
    let parsed = parse_body(&bytes, api.limits.config.max_write_points)?;
    let mut hooked = api.begin_hooks(query.as_deref(), &headers)?;
    let CheckedPut {
        slots,
        points,
        later_errors,
        renamed,
    } = check_all(&api, &parsed, &mut hooked);
    // A point with a later error is still checked for its kind (that
    // error comes first in OpenTSDB's order) but never stored.
    let vetoed: Vec<bool> = later_errors.iter().map(Option::is_some).collect();
    let (results, timed_out) = store(&api, points, (Vec::new(), vetoed), &params, hooked).await?;
    // Metrics from the elements (and the renamed ones), not clones of
    // every key: those would make every key look shared to the head.
    let failures = slots
        .into_iter()
        .zip(&parsed)
        .map(|(slot, element)| match slot {
            Err(msg) => Some(msg),
            Ok(i) => match results.get(i) {
                Some(Ok(())) => None,
                Some(Err(PointError::Rejected)) => later_errors.get(i).cloned().flatten(),
                Some(Err(e)) => Some(point_error_text(
                    e,
                    CheckedPut::stored_metric(&renamed, i, element),
                )),
                None => Some("Internal error".into()),
            },
        });
    Ok(reply(&params, failures, &bytes, timed_out))
}

/// A write request as `/api/put` and `/api/mput` take it in: its options,
/// the write slot it holds while it runs, and its body, decompressed.
pub(crate) struct Received {
    pub(crate) params: PutParams,
    pub(crate) _slot: OwnedSemaphorePermit,
    pub(crate) bytes: bytes::Bytes,
}

/// Options first, then a write slot, then the body (an empty body is an
/// error, spec 7.8): a busy server refuses before it reads the body.
pub(crate) async fn receive(
    api: &Api,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Received, OpenTsdbError> {
    let params = PutParams::parse(query)?;
    let _slot = api.limits.write_slot().await?;
    let bytes = sundial_api::body::read(headers, body, api.config.max_body_bytes).await?;
    if bytes.is_empty() {
        return Err(OpenTsdbError::bad_request("Missing request content"));
    }
    Ok(Received {
        params,
        _slot,
        bytes,
    })
}

/// The elements of a put body, at most `max`; none is an error (spec 7.8).
pub(crate) fn parse_body(bytes: &[u8], max: usize) -> Result<Vec<PointDto<'_>>, OpenTsdbError> {
    let parsed = dto::parse_points(bytes, max).map_err(|e| match e {
        dto::ParseError::Json(reason) => OpenTsdbError::unparseable_json(reason),
        dto::ParseError::Shape => {
            OpenTsdbError::bad_request("The JSON must start as an object or an array")
        }
        dto::ParseError::TooMany { max } => OpenTsdbError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: "Too many data points".into(),
            details: Some(format!(
                "a request may carry at most {max} data points (limits.max_write_points)"
            )),
        },
    })?;
    if parsed.is_empty() {
        return Err(OpenTsdbError::bad_request("No datapoints found in content"));
    }
    Ok(parsed)
}

/// Failed elements listed (and echoed) in one reply; the counts still
/// cover them all.
const MAX_LISTED_ERRORS: usize = 10_000;

/// The reply of a put from each element's failure, in body order.
pub(crate) fn reply(
    params: &PutParams,
    failures: impl Iterator<Item = Option<String>>,
    bytes: &[u8],
    timed_out: bool,
) -> Response {
    let mut listed: Vec<(usize, String)> = Vec::new();
    let (mut success, mut failed) = (0usize, 0usize);
    for (element, failure) in failures.enumerate() {
        match failure {
            Some(error) => {
                failed += 1;
                if listed.len() < MAX_LISTED_ERRORS {
                    listed.push((element, error));
                }
            }
            None => success += 1,
        }
    }
    let wants_list = params.details || params.ignore_errors;
    let errors = if wants_list && !listed.is_empty() {
        // Echo the elements as received (spec 7.7), building only those.
        let indexes: Vec<usize> = listed.iter().map(|(i, _)| *i).collect();
        let echoed = dto::echo_elements(bytes, &indexes);
        listed
            .into_iter()
            .enumerate()
            .map(|(n, (_, error))| {
                let datapoint = echoed.get(n).cloned().unwrap_or_default();
                json!({"datapoint": datapoint, "error": error})
            })
            .collect()
    } else {
        Vec::new()
    };
    let timeouts = if timed_out { success } else { 0 };
    render(params, success - timeouts, failed, timeouts, errors)
}

/// Stores a put's points (`rules`: the sizes of all-or-nothing groups and
/// the vetoed points) off the async workers, waits for the commit as the
/// request asks and tells the write hooks what was stored. Gives the
/// engine's result per point and whether the commit wait timed out.
pub(crate) async fn store(
    api: &Api,
    points: Vec<WritePoint>,
    (groups, vetoed): (Vec<usize>, Vec<bool>),
    params: &PutParams,
    hooked: HookedRequest,
) -> Result<(Vec<Result<(), PointError>>, bool), OpenTsdbError> {
    let write = PointWrite {
        groups,
        vetoed,
        sync: params.sync,
        ..PointWrite::new(api.db.clone(), points)
    };
    let written = api.sink.write(write).await?;
    let results = written.outcome.results;
    let timed_out = await_commit(written.commit, params).await?;
    hooked
        .stored(&results)
        .await
        .map_err(|e| OpenTsdbError::internal(&e))?;
    Ok((results, timed_out))
}

/// Waits for the WAL commit as `sync`/`sync_timeout` ask; true when the
/// wait timed out (spec 7.1).
async fn await_commit(commit: Commit, params: &PutParams) -> Result<bool, OpenTsdbError> {
    if params.sync && params.sync_timeout_ms > 0 {
        let wait = Duration::from_millis(params.sync_timeout_ms);
        match tokio::time::timeout(wait, commit.wait()).await {
            Ok(r) => r?,
            Err(_) => return Ok(true),
        }
    } else {
        commit.wait().await?;
    }
    Ok(false)
}

/// Builds the reply of spec 7.9 / 7.8.
fn render(
    params: &PutParams,
    success: usize,
    failed: usize,
    timeouts: usize,
    errors: Vec<Value>,
) -> Response {
    let status = if failed > 0 || timeouts > 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut body = if params.details {
        json!({"errors": errors, "failed": failed, "success": success})
    } else if params.ignore_errors {
        json!({"failed": failed, "success": success, "ignoredErrors": errors})
    } else if params.summary {
        json!({"failed": failed, "success": success})
    } else if timeouts > 0 {
        return OpenTsdbError::bad_request(format!(
            "The put call has timedout with {success} successful writes, {failed} failed writes and {timeouts} timed out writes."
        ))
        .with_details("Please see the TSD logs or append \"details\" to the put request")
        .into_response();
    } else if failed > 0 {
        return OpenTsdbError::bad_request("One or more data points had errors")
            .with_details("Please see the TSD logs or append \"details\" to the put request")
            .into_response();
    } else {
        return StatusCode::NO_CONTENT.into_response();
    };
    if params.sync
        && params.sync_timeout_ms > 0
        && let Some(obj) = body.as_object_mut()
    {
        obj.insert("timeouts".into(), timeouts.into());
    }
    json_response(status, &body)
}

pub(crate) mod keys;
#[cfg(test)]
mod tests;
