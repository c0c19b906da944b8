//! Name and series discovery: `/api/suggest` (spec 11) and
//! `/api/search/lookup` (spec 14), what Grafana's template variables and
//! tag suggestions call.

use super::Api;
use super::error::{OpenTsdbError, json_response};
use super::scope::ReadScope;
use super::uids::UidKind;
use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use sundial_model::{Listing, Names, SeriesKey, TagMatch, Timestamp};
use sundial_storage::Snapshot;

mod remote;

const DEFAULT_MAX: usize = 25;

/// `name=value` pairs of a raw query string, percent-decoded.
pub(crate) fn params(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A request's JSON body; empty is `Missing message content`.
pub(crate) async fn json_body(
    api: &Api,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, OpenTsdbError> {
    let bytes = sundial_api::body::read(headers, body, api.config.max_body_bytes).await?;
    if bytes.is_empty() {
        return Err(OpenTsdbError::bad_request("Missing message content"));
    }
    serde_json::from_slice(&bytes).map_err(|e| OpenTsdbError::unparseable_json(e.to_string()))
}

/// What `/api/suggest` asks for.
#[derive(Debug)]
struct Suggest {
    kind: String,
    prefix: String,
    max: usize,
    metric: Option<String>,
}

pub(crate) async fn suggest_get(
    ReadScope(api): ReadScope,
    RawQuery(raw): RawQuery,
) -> Result<Response, OpenTsdbError> {
    let p = params(raw.as_deref());
    let kind = param(&p, "type")
        .ok_or_else(|| OpenTsdbError::bad_request("Missing parameter <code>type</code>"))?;
    let max = match param(&p, "max") {
        None => DEFAULT_MAX as i64,
        Some(m) => m
            .trim()
            .parse::<i64>()
            .map_err(|_| OpenTsdbError::bad_request("Unable to parse 'max' as a number"))?,
    };
    let s = Suggest {
        kind: kind.to_owned(),
        prefix: param(&p, "q").unwrap_or_default().to_owned(),
        max: if max <= 0 { DEFAULT_MAX } else { max as usize },
        metric: param(&p, "metric").map(str::to_owned),
    };
    api.read_blocking(move |api| suggest(api, s)).await
}

pub(crate) async fn suggest_post(
    ReadScope(api): ReadScope,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let v = json_body(&api, &headers, body).await?;
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| OpenTsdbError::bad_request("Missing 'type' parameter"))?;
    let max = match v.get("max") {
        None | Some(Value::Null) => DEFAULT_MAX as i64,
        Some(Value::Number(n)) => n.as_i64().unwrap_or(-1),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| OpenTsdbError::bad_request("Unable to parse 'max' as a number"))?,
        Some(_) => {
            return Err(OpenTsdbError::bad_request(
                "Unable to parse 'max' as a number",
            ));
        }
    };
    let s = Suggest {
        kind: kind.to_owned(),
        prefix: v
            .get("q")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        max: if max <= 0 { DEFAULT_MAX } else { max as usize },
        metric: v.get("metric").and_then(Value::as_str).map(str::to_owned),
    };
    api.read_blocking(move |api| suggest(api, s)).await
}

fn suggest(api: &Api, s: Suggest) -> Result<Response, OpenTsdbError> {
    let max = s.max.min(api.limits.config.max_result_rows);
    // Without a metric, a single node's names come from the UID tables as
    // in OpenTSDB: they include names assigned through `/api/uid/assign`
    // and names whose series were deleted. A cluster node has no UID
    // tables of its own (docs/cluster.md) and lists the shards' series.
    let uid_kind = match s.kind.as_str() {
        "metrics" => Some(UidKind::Metric),
        "tagk" => Some(UidKind::TagK),
        "tagv" => Some(UidKind::TagV),
        _ => None,
    };
    if let Some(kind) = uid_kind.filter(|_| s.metric.is_none() && !api.reads.is_remote()) {
        let names = api.db.read(|mut view| {
            api.uids.catch_up(&mut view);
            api.uids.with(&view, |uids| {
                let mut set: BTreeSet<&str> = BTreeSet::new();
                for name in uids.names(kind).filter(|n| n.starts_with(&s.prefix)) {
                    set.insert(name);
                    if set.len() > max {
                        set.pop_last();
                    }
                }
                set.into_iter().map(str::to_owned).collect::<Vec<_>>()
            })
        });
        return Ok(json_response(StatusCode::OK, &json!(names)));
    }
    let metric = s.metric.clone();
    let (names, range) = match s.kind.as_str() {
        "metrics" => (Names::Metrics, None),
        "tagk" => (
            Names::TagKeys { metric },
            Some((Timestamp::MIN, Timestamp::MAX)),
        ),
        "tagv" => (
            Names::TagValues { metric },
            Some((Timestamp::MIN, Timestamp::MAX)),
        ),
        "field" => (Names::Fields { metric }, None),
        other => {
            return Err(OpenTsdbError::bad_request(format!(
                "Invalid 'type' parameter:{other}"
            )));
        }
    };
    let listing = Listing {
        names,
        prefix: s.prefix,
        range,
        max,
    };
    let listed = api
        .reads
        .listing(&api.db, &listing, &api.query_budget())
        .map_err(super::query::query_error)?;
    let names: Vec<String> = if s.kind == "field" {
        listed.fields.into_keys().take(max).collect()
    } else {
        listed.names.into_iter().take(max).collect()
    };
    Ok(json_response(StatusCode::OK, &json!(names)))
}

/// A lookup: optional metric and `key=value` pairs, either side `*`.
#[derive(Debug)]
pub(crate) struct Lookup {
    pub(crate) metric: Option<String>,
    pub(crate) pairs: Vec<(String, String)>,
    pub(crate) limit: usize,
}

pub(crate) async fn lookup_get(
    ReadScope(api): ReadScope,
    RawQuery(raw): RawQuery,
) -> Result<Response, OpenTsdbError> {
    let p = params(raw.as_deref());
    let (metric, pairs) = split_series(param(&p, "m").unwrap_or_default())?;
    let limit = limit(
        param(&p, "limit")
            .map(|l| Value::String(l.to_owned()))
            .as_ref(),
    )?;
    let l = Lookup {
        metric: (!metric.is_empty()).then(|| metric.to_owned()),
        pairs,
        limit,
    };
    api.read_blocking(move |api| lookup(api, l)).await
}

pub(crate) async fn lookup_post(
    ReadScope(api): ReadScope,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let v = json_body(&api, &headers, body).await?;
    let metric = v.get("metric").and_then(Value::as_str).map(str::to_owned);
    let mut pairs = Vec::new();
    if let Some(Value::Array(tags)) = v.get("tags") {
        for t in tags {
            let key = t.get("key").and_then(Value::as_str).unwrap_or("*");
            let value = t.get("value").and_then(Value::as_str).unwrap_or("*");
            pairs.push((key.to_owned(), value.to_owned()));
        }
    }
    let limit = limit(v.get("limit"))?;
    let l = Lookup {
        metric: metric.filter(|m| !m.is_empty()),
        pairs,
        limit,
    };
    api.read_blocking(move |api| lookup(api, l)).await
}

/// `key=value` pairs as written.
pub(crate) type Pairs = Vec<(String, String)>;

/// `metric{k=v,...}` (either part optional) into the metric and its pairs.
pub(crate) fn split_series(text: &str) -> Result<(&str, Pairs), OpenTsdbError> {
    let (metric, tags) = match text.find('{') {
        Some(i) => (text.get(..i).unwrap_or_default(), text.get(i..)),
        None => (text, None),
    };
    let mut pairs = Vec::new();
    if let Some(t) = tags {
        let inner = t
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .ok_or_else(|| {
                OpenTsdbError::bad_request(format!("Missing '}}' at the end of: {t}"))
            })?;
        for entry in inner.split(',').filter(|e| !e.is_empty()) {
            let (k, v) = entry
                .split_once('=')
                .ok_or_else(|| OpenTsdbError::bad_request(format!("invalid tag: {entry}")))?;
            pairs.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    Ok((metric, pairs))
}

fn limit(v: Option<&Value>) -> Result<usize, OpenTsdbError> {
    let bad = || OpenTsdbError::bad_request("Unable to convert 'limit' to a valid number");
    match v {
        None | Some(Value::Null) => Ok(DEFAULT_MAX),
        Some(Value::Number(n)) => n.as_u64().map(|n| n as usize).ok_or_else(bad),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

fn lookup(api: &Api, l: Lookup) -> Result<Response, OpenTsdbError> {
    let started = std::time::Instant::now();
    let any_metric = l.metric.as_deref().is_none_or(|m| m == "*");
    if any_metric && l.pairs.is_empty() {
        return Err(OpenTsdbError::bad_request(
            "Missing metric and tags. Please supply at least one value.",
        ));
    }
    let (results, total) = if api.reads.is_remote() {
        remote::lookup(api, &l, any_metric)?
    } else {
        local_lookup(api, &l, any_metric)?
    };
    let tags: Vec<Value> = l
        .pairs
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "type": "LOOKUP",
            "metric": l.metric.as_deref().unwrap_or("*"),
            "tags": tags,
            "limit": l.limit,
            "time": started.elapsed().as_millis() as u64,
            "results": results,
            "startIndex": 0,
            "totalResults": total,
        }),
    ))
}

/// One series a lookup found.
pub(crate) fn found_json(key: SeriesKey, tsuid: Option<String>) -> Value {
    let tags: Map<String, Value> = key
        .tags
        .into_iter()
        .map(|(k, v)| (k.into(), Value::String(v.into())))
        .collect();
    json!({"tags": tags, "metric": key.metric, "tsuid": tsuid})
}

/// A lookup on this node: names checked against its UID tables, the
/// series from its database, their TSUIDs from its tables.
fn local_lookup(
    api: &Api,
    l: &Lookup,
    any_metric: bool,
) -> Result<(Vec<Value>, usize), OpenTsdbError> {
    let searched = api.db.read(|mut view| -> Result<bool, OpenTsdbError> {
        api.uids.catch_up(&mut view);
        if !any_metric && !metric_searched(api, &view, l)? {
            return Ok(false);
        }
        check_names(api, &view, &l.pairs)?;
        Ok(true)
    })?;
    if !searched {
        return Ok((Vec::new(), 0));
    }
    let found = matching_series(api, l, any_metric)?;
    let total = found.len();
    let shown: Vec<SeriesKey> = found.into_iter().take(l.limit).collect();
    let results = api.db.read(|view| {
        api.uids.with(&view, |uids| {
            shown
                .into_iter()
                .map(|k| {
                    let tsuid = uids.tsuid(&k.metric, &k.tags);
                    found_json(k, tsuid)
                })
                .collect()
        })
    });
    Ok((results, total))
}

/// The series whose tags match the lookup's pairs, by metric then tags
/// (this node's, or every owner's on a cluster); refused past
/// `limits.max_result_rows`.
pub(crate) fn matching_series(
    api: &Api,
    l: &Lookup,
    any_metric: bool,
) -> Result<Vec<SeriesKey>, OpenTsdbError> {
    let (tags, any_values) = pair_predicates(&l.pairs);
    let max = api.limits.config.max_result_rows;
    let listing = Listing {
        names: Names::Series {
            metric: if any_metric { None } else { l.metric.clone() },
            tags,
            any_values: any_values.into_iter().map(str::to_owned).collect(),
        },
        prefix: String::new(),
        range: None,
        max,
    };
    let found = api
        .reads
        .listing(&api.db, &listing, &api.query_budget())
        .map_err(super::query::query_error)?
        .series;
    if found.len() > max {
        return Err(OpenTsdbError::bad_request(format!(
            "more than {max} series match (limits.max_result_rows)"
        )));
    }
    Ok(found)
}

/// Whether the metric named is searched: yes if it has series; no (and
/// nothing matches) if it has a UID but no series (all removed, or
/// assigned by hand); a name never seen is an error.
fn metric_searched(api: &Api, view: &Snapshot<'_>, l: &Lookup) -> Result<bool, OpenTsdbError> {
    let m = l.metric.clone().unwrap_or_default();
    if view.has_metric(&m) {
        return Ok(true);
    }
    let known = api
        .uids
        .with(view, |t| t.uid(UidKind::Metric, &m).is_some());
    if known { Ok(false) } else { Err(unresolved()) }
}

/// Literal keys of the pairs become predicates (values of one key ORed,
/// `k=*` any value); the values of `*=v` pairs are returned to be checked
/// on each series' tags.
pub(crate) fn pair_predicates(pairs: &[(String, String)]) -> (Vec<TagMatch>, Vec<&str>) {
    let mut by_key: Vec<(String, Option<Vec<String>>)> = Vec::new();
    for (k, v) in pairs.iter().filter(|(k, _)| k != "*") {
        match by_key.iter_mut().find(|(key, _)| key == k) {
            Some((_, values)) => match (values.as_mut(), v == "*") {
                (_, true) => *values = None,
                (Some(vs), false) => vs.push(v.clone()),
                (None, false) => {}
            },
            None => by_key.push((k.clone(), (v != "*").then(|| vec![v.clone()]))),
        }
    }
    let predicates = by_key
        .into_iter()
        .map(|(key, values)| match values {
            None => TagMatch::Exists { key },
            Some(values) => TagMatch::In { key, values },
        })
        .collect();
    let any_key_values = pairs
        .iter()
        .filter(|(k, v)| k == "*" && v != "*")
        .map(|(_, v)| v.as_str())
        .collect();
    (predicates, any_key_values)
}

pub(crate) fn unresolved() -> OpenTsdbError {
    OpenTsdbError {
        status: StatusCode::NOT_FOUND,
        message: "Unable to resolve one or more UIDs".into(),
        details: None,
    }
}

/// Literal tag keys and values must be known names (OpenTSDB resolves them
/// to UIDs first).
fn check_names(
    api: &Api,
    view: &Snapshot<'_>,
    pairs: &[(String, String)],
) -> Result<(), OpenTsdbError> {
    if pairs.is_empty() {
        return Ok(());
    }
    let known = api.uids.with(view, |uids| {
        pairs.iter().all(|(k, v)| {
            (k == "*" || uids.uid(UidKind::TagK, k).is_some())
                && (v == "*" || uids.uid(UidKind::TagV, v).is_some())
        })
    });
    if known { Ok(()) } else { Err(unresolved()) }
}
