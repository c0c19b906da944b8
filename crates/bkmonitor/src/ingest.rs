//! Data into groups (spec 9): the `/v2/push/` custom report. Points that
//! other APIs write are bound to groups by `binder.rs`.

use super::Api;
use super::model::Group;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use subtle::ConstantTimeEq;
use sundial_model::now_ms;
use sundial_model::{FieldValue, SeriesKey, ValueInput, WritePoint};

/// The peer address, as the listener records it.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Metric names and dimension keys of group data.
pub(super) fn name_ok(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(super) fn name_error(name: &str) -> String {
    format!("name '{name}' required match regex [^[a-zA-Z_][a-zA-Z0-9_]*$]")
}

/// Go's name of a JSON value's type (bk-collector's messages).
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(_) => "float64",
        Value::Bool(_) => "bool",
        Value::Null => "<nil>",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// A JSON number as Go's `%v` prints a float64: `1` for 1.0, `1.5`.
fn number_text(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
        _ => n.to_string(),
    }
}

/// A `/v2/push/` answer: bk-collector's shape, strings included.
pub(crate) fn reply(status: StatusCode, message: &str) -> Response {
    let body = json!({"code": status.as_u16().to_string(),
        "result": status.is_success().to_string(), "message": message});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Discoveries per group in creation order (spec 6.5): field name and
/// the tag keys seen with it, keys ascending within a write unit.
pub(super) type Seen = BTreeMap<i64, Vec<(String, Vec<String>)>>;

pub(super) fn note(seen: &mut Seen, group: i64, field: &str, key: &SeriesKey) {
    let fields = seen.entry(group).or_default();
    let at = match fields.iter().position(|(f, _)| f == field) {
        Some(i) => i,
        None => {
            fields.push((field.to_owned(), Vec::new()));
            fields.len() - 1
        }
    };
    if let Some((_, tags)) = fields.get_mut(at) {
        // Keys of a series come sorted; new ones follow those already seen.
        for (k, _) in &key.tags {
            if !tags.iter().any(|t| t == k) {
                tags.push(k.to_string());
            }
        }
    }
}

/// Makes a whole request one write unit: new metrics in ascending order.
pub(super) fn one_unit(seen: &mut Seen) {
    for fields in seen.values_mut() {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, tags) in fields.iter_mut() {
            tags.sort_unstable();
        }
    }
}

/// `POST /v2/push/` (spec 9.2).
pub(crate) async fn push(
    axum::extract::State(api): axum::extract::State<Api>,
    req: Request,
) -> Response {
    let peer = req
        .extensions()
        .get::<PeerAddr>()
        .map_or_else(|| "unknown".into(), |p| p.0.ip().to_string());
    let (parts, body) = req.into_parts();
    let bytes = match sundial_api::body::read(&parts.headers, body, api.max_body_bytes).await {
        Ok(b) => b,
        Err(sundial_api::body::BodyError::TooLarge { .. }) => {
            return reply(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        Err(e) => return reply(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if bytes.is_empty() {
        return reply(
            StatusCode::BAD_REQUEST,
            &format!("empty request body not allowed, ip={peer}"),
        );
    }
    // The token first: a stranger's body never takes a write slot.
    if let Err((status, message)) = authenticate_push(&api, &bytes) {
        return reply(status, &message);
    }
    let Ok(_slot) = api.limits.write_slot().await else {
        let mut busy = reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many writes; retry shortly",
        );
        busy.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return busy;
    };
    let checked = {
        let api = api.clone();
        tokio::task::spawn_blocking(move || check_push(&api, &bytes)).await
    };
    let (points, group, seen) = match checked {
        Ok(Ok(x)) => x,
        Ok(Err((status, message))) => return reply(status, &message),
        Err(e) => return reply(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    match store(&api, points, &seen).await {
        Ok(()) => reply(StatusCode::OK, ""),
        Err(message) => {
            tracing::warn!(group, error = %message, "custom report not stored");
            reply(StatusCode::BAD_REQUEST, &message)
        }
    }
}

pub(super) type Refusal = (StatusCode, String);

/// The fields `/v2/push/` authenticates by; the rest of the body is
/// skipped unparsed.
#[derive(serde::Deserialize)]
struct PushHead {
    data_id: Option<Value>,
    access_token: Option<Value>,
}

/// The token check of [`check_push`] without building the body's tree:
/// an unauthenticated body costs a scan, never memory or a write slot.
fn authenticate_push(api: &Api, bytes: &[u8]) -> Result<(), Refusal> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    match serde_json::from_slice::<PushHead>(bytes) {
        Ok(head) => group_for(api, head.data_id.as_ref(), head.access_token.as_ref()).map(drop),
        Err(e) => {
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
                .map_err(|_| bad(e.to_string()))?;
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            let got = match first {
                // An object the typed head refused: `data_id` or
                // `access_token` given twice.
                Some(b'{') => return Err(bad(e.to_string())),
                Some(b'[') => "[]interface {}",
                Some(b'"') => "string",
                Some(b't' | b'f') => "bool",
                Some(b'n') => "<nil>",
                _ => "float64",
            };
            Err(bad(format!(
                "request body expected map[string]interface {{}}, got {got}"
            )))
        }
    }
}

/// The group a report's `data_id` names, if `token` is its token.
fn group_for(api: &Api, data_id: Option<&Value>, token: Option<&Value>) -> Result<Group, Refusal> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let data_id = match data_id {
        None => 0,
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| bad(format!("data_id expected integer, got {n}")))?,
        Some(other) => {
            return Err(bad(format!(
                "data_id expected integer, got {}",
                go_type(other)
            )));
        }
    };
    let token = match token {
        None => "",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(bad(format!(
                "access_token expected string, got {}",
                go_type(other)
            )));
        }
    };
    let group: Group = api
        .registry
        .read_fresh(|s| {
            s.group_of_data_id(data_id)
                .filter(|g| !g.is_delete)
                .cloned()
        })
        .ok_or_else(|| {
            (
                StatusCode::UNAUTHORIZED,
                format!("no active time series group for data_id {data_id}"),
            )
        })?;
    if !bool::from(group.token.as_bytes().ct_eq(token.as_bytes())) {
        return Err((
            StatusCode::UNAUTHORIZED,
            format!("invalid access_token for data_id {data_id}"),
        ));
    }
    Ok(group)
}

/// Steps 2–20 of spec 9.2 over the whole body: the points to store.
pub(super) fn check_push(api: &Api, bytes: &[u8]) -> Result<(Vec<WritePoint>, i64, Seen), Refusal> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let root: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let Value::Object(root) = root else {
        return Err(bad(format!(
            "request body expected map[string]interface {{}}, got {}",
            go_type(&root)
        )));
    };
    let group = group_for(api, root.get("data_id"), root.get("access_token"))?;
    if !group.is_enable {
        return Err((
            StatusCode::FORBIDDEN,
            format!("time series group {} is disabled", group.id),
        ));
    }
    let items = match root.get("data") {
        Some(Value::Array(a)) => a,
        other => {
            let t = other.map_or("<nil>", go_type);
            return Err(bad(format!(
                "timeseries data expected []interface{{}}, got {t}"
            )));
        }
    };
    let max = api.limits.config.max_write_points;
    if items.len() > max {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {max} data items per report (limits.max_write_points)"),
        ));
    }
    if items.is_empty() {
        return Err(bad("timeseries data cannot be empty".into()));
    }
    let now = now_ms();
    let mut points = Vec::new();
    let mut seen = Seen::new();
    for item in items {
        let Value::Object(item) = item else {
            return Err(bad(format!(
                "timeseries each item expected map[string]interface{{}} type, got {}",
                go_type(item)
            )));
        };
        let names = item_metrics(item).map_err(bad)?;
        let (series_tags, ts) = item_frame(api, item, now).map_err(bad)?;
        for (name, v) in names {
            let key = SeriesKey::new(format!("{}.{name}", group.db_prefix()), series_tags.clone());
            note(&mut seen, group.id, name, &key);
            points.push(WritePoint {
                series: key.into(),
                field: sundial_model::DEFAULT_FIELD.into(),
                timestamp: ts,
                value: ValueInput::Typed(FieldValue::Double(v)),
            });
        }
    }
    Ok((points, group.id, seen))
}

/// The metrics of one item (steps 9–13), in ascending name order: new
/// metrics of one item are created in that order.
fn item_metrics(item: &Map<String, Value>) -> Result<Vec<(&String, f64)>, String> {
    let metrics = match item.get("metrics") {
        None => return Err("metrics missing".into()),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(format!(
                "metrics expected map[string]interface{{}} type, got {}",
                go_type(other)
            ));
        }
    };
    if metrics.is_empty() {
        return Err("metrics cannot be empty".into());
    }
    let mut names: Vec<(&String, f64)> = Vec::with_capacity(metrics.len());
    for (name, value) in metrics {
        if !name_ok(name) {
            return Err(name_error(name));
        }
        let Some(v) = value.as_f64() else {
            return Err(format!(
                "value expected float64 type, got {}",
                go_type(value)
            ));
        };
        names.push((name, v));
    }
    names.sort_by(|a, b| a.0.cmp(b.0));
    Ok(names)
}

/// The `dimension` object of one item as tags (nulls dropped).
fn item_dimensions(item: &Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    let mut tags: Vec<(String, String)> = Vec::new();
    match item.get("dimension") {
        None | Some(Value::Null) => {}
        Some(Value::Object(d)) => {
            for (k, v) in d {
                if !name_ok(k) {
                    return Err(name_error(k));
                }
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => number_text(n),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => continue,
                    other => {
                        return Err(format!(
                            "dimension '{k}' value expected string type, got {}",
                            go_type(other)
                        ));
                    }
                };
                tags.push((k.clone(), text));
            }
        }
        Some(other) => {
            return Err(format!(
                "dimension expected map[string]interface{{}} type, got {}",
                go_type(other)
            ));
        }
    }
    Ok(tags)
}

/// An item's time in milliseconds: seconds up to 10 digits, now when
/// absent or 0.
fn item_timestamp(item: &Map<String, Value>, now: i64) -> Result<i64, String> {
    match item.get("timestamp") {
        None | Some(Value::Null) => Ok(now),
        Some(Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(0.0);
            if f < 0.0 {
                return Err("timestamp expected float64 type, got negative".into());
            }
            Ok(match f as i64 {
                0 => now,
                t if t <= 9_999_999_999 => t.saturating_mul(1000),
                t => t,
            })
        }
        Some(other) => Err(format!(
            "timestamp expected float64 type, got {}",
            go_type(other)
        )),
    }
}

/// Tags and timestamp of one item (steps 14–20), checked after its
/// `metrics` (steps 9–13).
fn item_frame(
    api: &Api,
    item: &Map<String, Value>,
    now: i64,
) -> Result<(Vec<(String, String)>, i64), String> {
    let mut tags = item_dimensions(item)?;
    match item.get("target") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) => {
            tags.retain(|(k, _)| k != "target");
            if !t.is_empty() {
                tags.push(("target".into(), t.clone()));
            }
        }
        Some(other) => {
            return Err(format!(
                "target expected string type, got {}",
                go_type(other)
            ));
        }
    }
    let ts = item_timestamp(item, now)?;
    let offset =
        i64::try_from(api.config.max_future_time_offset_seconds).unwrap_or(i64::MAX / 1000);
    if ts.saturating_sub(now) > offset.saturating_mul(1000) {
        return Err(format!(
            "reject future timestamp, dataTs={}, serverTs={}, offset={offset}(s)",
            ts / 1000,
            now / 1000
        ));
    }
    if tags.len() > api.max_tags {
        return Err(format!(
            "too many dimensions: {} exceeds the limit {}",
            tags.len(),
            api.max_tags
        ));
    }
    Ok((tags, ts))
}

/// Stores the points whole and records what they revealed.
async fn store(api: &Api, points: Vec<WritePoint>, seen: &Seen) -> Result<(), String> {
    let write = sundial_api::sink::PointWrite::new(api.db.clone(), points).all_or_nothing();
    let written = api.sink.write(write).await.map_err(|e| e.to_string())?;
    if let Some(e) = written
        .outcome
        .results
        .iter()
        .find_map(|r| r.as_ref().err())
    {
        return Err(e.to_string());
    }
    written.commit.wait().await.map_err(|e| e.to_string())?;
    api.binder()
        .discovered(seen.clone())
        .await
        .map_err(|e| e.to_string())
}
