//! `/api/uid/...` (spec 15): assigning UIDs by hand, and the UID and
//! time-series meta objects OpenTSDB tools read.

use super::Api;
use super::error::{OpenTsdbError, json_response};
use super::last::find_series;
use super::lookup::{params, split_series};
use super::names::first_illegal;
use super::scope::{ReadScope, WriteScope};
use super::uids::{AssignError, Tables, UidKind, exhausted, hex, split_tsuid};
use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use sundial_api::shared::Assigned;

mod shared;
use sundial_model::{SeriesKey, TagMatch};

/// Names to assign, per kind, in request order.
type Requested = Vec<(UidKind, Vec<String>)>;

pub(crate) async fn assign_get(
    WriteScope(api): WriteScope,
    RawQuery(raw): RawQuery,
) -> Result<Response, OpenTsdbError> {
    let mut wanted: Requested = Vec::new();
    for (k, v) in params(raw.as_deref()) {
        if let Some(kind) = UidKind::ALL.into_iter().find(|u| u.name() == k) {
            wanted.push((kind, v.split(',').map(str::to_owned).collect()));
        }
    }
    api.read_blocking(move |api| assign(api, wanted)).await
}

pub(crate) async fn assign_post(
    WriteScope(api): WriteScope,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let v = super::lookup::json_body(&api, &headers, body).await?;
    let mut wanted: Requested = Vec::new();
    for kind in UidKind::ALL {
        match v.get(kind.name()) {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => wanted.push((
                kind,
                list.iter()
                    .map(|n| n.as_str().map_or_else(|| n.to_string(), str::to_owned))
                    .collect(),
            )),
            Some(_) => {
                return Err(OpenTsdbError::bad_request(format!(
                    "'{}' must be an array of names",
                    kind.name()
                )));
            }
        }
    }
    api.read_blocking(move |api| assign(api, wanted)).await
}

fn assign(api: &Api, wanted: Requested) -> Result<Response, OpenTsdbError> {
    if wanted.is_empty() {
        return Err(OpenTsdbError::bad_request("Missing values to assign UIDs"));
    }
    let mut out = Map::new();
    let mut failed = false;
    // On a cluster node the UIDs every node shares.
    let shared = api.shared_tables()?;
    if shared.is_none() {
        // Names of existing series first, so they keep first-seen order;
        // the durable assignments below run without holding the database.
        api.db.read(|mut view| api.uids.catch_up(&mut view));
    }
    {
        for (kind, names) in wanted {
            let mut done = Map::new();
            let mut errors = Map::new();
            for name in names {
                let refused = if name.is_empty() {
                    Some(format!("Invalid {}: empty string", kind.name()))
                } else if let Some(c) = first_illegal(&name) {
                    Some(format!(
                        "Invalid {} (\"{name}\"): illegal character: {c}",
                        kind.name()
                    ))
                } else {
                    let assigned = match &shared {
                        Some(shared) => match shared.assign_new(kind, &name)? {
                            Assigned::New(uid) => Ok(uid),
                            Assigned::Existing(uid) => Err(AssignError::Exists(uid)),
                            Assigned::Exhausted => Err(AssignError::Exhausted(exhausted(kind))),
                        },
                        None => api.uids.assign(kind, &name),
                    };
                    match assigned {
                        Ok(uid) => {
                            done.insert(name.clone(), json!(hex(uid)));
                            None
                        }
                        Err(AssignError::Exists(uid)) => {
                            Some(format!("Name already exists with UID: {}", hex(uid)))
                        }
                        Err(AssignError::Exhausted(msg)) => Some(msg),
                        Err(AssignError::Io) => Some("Could not store the UID".into()),
                    }
                };
                if let Some(msg) = refused {
                    errors.insert(name, json!(msg));
                }
            }
            out.insert(kind.name().into(), Value::Object(done));
            if !errors.is_empty() {
                failed = true;
                out.insert(format!("{}_errors", kind.name()), Value::Object(errors));
            }
        }
    }
    let status = if failed {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &Value::Object(out)))
}

/// `GET /api/uid/uidmeta?uid=&type=`.
pub(crate) async fn uidmeta(
    ReadScope(api): ReadScope,
    RawQuery(raw): RawQuery,
) -> Result<Response, OpenTsdbError> {
    let p = params(raw.as_deref());
    let get = |name: &str| p.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let uid = get("uid")
        .ok_or_else(|| OpenTsdbError::bad_request("Missing parameter <code>uid</code>"))?;
    let kind = get("type")
        .ok_or_else(|| OpenTsdbError::bad_request("Missing parameter <code>type</code>"))?;
    let kind = UidKind::parse(&kind)
        .ok_or_else(|| OpenTsdbError::bad_request(format!("Invalid 'type' parameter:{kind}")))?;
    let not_found = || OpenTsdbError::missing("Could not find the requested UID");
    let value = u32::from_str_radix(&uid, 16).map_err(|_| not_found())?;
    let meta = api
        .read_blocking(move |api| {
            if let Some(shared) = api.shared_tables()? {
                let described = shared.describe(kind, value)?;
                return Ok(described.map(|(name, created)| uid_json(kind, value, &name, created)));
            }
            Ok(api.db.read(|mut view| {
                api.uids.catch_up(&mut view);
                api.uids.with(&view, |t| uid_object(t, kind, value))
            }))
        })
        .await?
        .ok_or_else(not_found)?;
    Ok(json_response(StatusCode::OK, &meta))
}

fn uid_object(t: &Tables, kind: UidKind, uid: u32) -> Option<Value> {
    let (name, created) = t.name(kind, uid)?;
    Some(uid_json(kind, uid, name, created))
}

/// OpenTSDB's UID meta object.
fn uid_json(kind: UidKind, uid: u32, name: &str, created: i64) -> Value {
    json!({"uid": hex(uid), "type": kind.name().to_ascii_uppercase(), "name": name,
    "description": "", "notes": "", "created": created, "custom": null, "displayName": ""})
}

/// `GET /api/uid/tsmeta?tsuid=` (one object) or `?m=metric{k=v}` (array).
pub(crate) async fn tsmeta(
    ReadScope(api): ReadScope,
    RawQuery(raw): RawQuery,
) -> Result<Response, OpenTsdbError> {
    let p = params(raw.as_deref());
    let get = |name: &str| p.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let not_found = || OpenTsdbError::missing("Could not find Timeseries meta data");
    if let Some(tsuid) = get("tsuid") {
        if split_tsuid(&tsuid).is_none() {
            return Err(OpenTsdbError::bad_request(format!(
                "Invalid TSUID: {tsuid}"
            )));
        }
        let meta = api
            .read_blocking(move |api| {
                if let Some(shared) = api.shared_tables()? {
                    return shared::by_tsuid(api, &shared, tsuid);
                }
                api.db.read(|mut view| {
                    api.uids.catch_up(&mut view);
                    api.uids
                        .with(&view, |t| -> Result<Option<Value>, OpenTsdbError> {
                            let Some(key) = t.resolve(&tsuid) else {
                                return Ok(None);
                            };
                            Ok(find_series(&view, &key)?.and_then(|_| ts_object(t, &key)))
                        })
                })
            })
            .await?;
        return Ok(json_response(StatusCode::OK, &meta.ok_or_else(not_found)?));
    }
    let m = get("m").ok_or_else(|| {
        OpenTsdbError::bad_request("Missing parameter <code>tsuid</code> or <code>m</code>")
    })?;
    let (metric, pairs) = split_series(&m)?;
    let metric = metric.to_owned();
    let predicates: Vec<TagMatch> = pairs
        .iter()
        .map(|(k, v)| match v.as_str() {
            "*" => TagMatch::Exists { key: k.clone() },
            _ => TagMatch::Eq {
                key: k.clone(),
                value: v.clone(),
            },
        })
        .collect();
    let list = api
        .read_blocking(move |api| {
            let max = api.limits.config.max_result_rows;
            if let Some(shared) = api.shared_tables()? {
                return shared::by_series(api, &shared, metric, predicates);
            }
            api.db
                .read(|mut view| -> Result<Vec<Value>, OpenTsdbError> {
                    if !view.has_metric(&metric) {
                        return Err(OpenTsdbError::missing(format!(
                            "No such name for 'metrics': '{metric}'"
                        )));
                    }
                    let ids = view
                        .select(&metric, &predicates)
                        .map_err(|e| OpenTsdbError::bad_request(e.to_string()))?;
                    if ids.len() > max {
                        return Err(OpenTsdbError::bad_request(format!(
                            "{} series match; at most {max} are listed (limits.max_result_rows)",
                            ids.len()
                        )));
                    }
                    api.uids.catch_up(&mut view);
                    let mut keys: Vec<SeriesKey> =
                        view.keys_of(ids).into_iter().map(|(_, k)| k).collect();
                    keys.sort_by(|a, b| a.tags.cmp(&b.tags));
                    Ok(api.uids.with(&view, |t| {
                        keys.iter().filter_map(|k| ts_object(t, k)).collect()
                    }))
                })
        })
        .await?;
    Ok(json_response(StatusCode::OK, &Value::Array(list)))
}

fn ts_object(t: &Tables, key: &SeriesKey) -> Option<Value> {
    let tsuid = t.tsuid(&key.metric, &key.tags)?;
    ts_json(key, tsuid, |kind, name| {
        let uid = t.uid(kind, name)?;
        Some((uid, t.name(kind, uid)?.1))
    })
}

/// A series' meta object; `uid_of` gives each name's UID and creation
/// time.
fn ts_json(
    key: &SeriesKey,
    tsuid: String,
    uid_of: impl Fn(UidKind, &str) -> Option<(u32, i64)>,
) -> Option<Value> {
    let named = |kind, name: &str| {
        let (uid, created) = uid_of(kind, name)?;
        Some((uid_json(kind, uid, name, created), created))
    };
    let (metric, created) = named(UidKind::Metric, &key.metric)?;
    let mut tags = Vec::with_capacity(2 * key.tags.len());
    for (k, v) in &key.tags {
        tags.push(named(UidKind::TagK, k)?.0);
        tags.push(named(UidKind::TagV, v)?.0);
    }
    Some(
        json!({"tsuid": tsuid, "metric": metric, "tags": tags, "created": created,
        "lastReceived": 0, "totalDatapoints": 0, "description": "", "notes": "", "custom": null,
        "displayName": "", "dataType": "", "retention": 0, "max": "NaN", "min": "NaN", "units": ""}),
    )
}
