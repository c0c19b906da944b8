//! `/api/query` (spec section 9): GET `m=` expressions and POST JSON,
//! every aggregator of 9.11 with its interpolation, v1 `tags` and filters,
//! downsampling (fixed and calendar, in the query's time zone), rate and
//! Alibaba's value conditions.

mod by_tsuid;
mod modifiers;
mod parse;
mod render;

use super::error::{OpenTsdbError, json_bytes_response};
use super::scope::ReadScope;
use super::{Api, zone};
use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
pub(crate) use by_tsuid::execute as execute_one;
use jiff::tz::TimeZone;
pub(crate) use modifiers::{Trim, count};
pub(crate) use parse::{from_json, from_query_string, lenient_bool};
use render::{Extras, ResultObject, Style};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use sundial_model::now_ms;
use sundial_model::{FieldValue, FillPolicy, Query};

/// What a request's times are read against: the server clock and the
/// default zone (spec 4.5), which a request may replace, and the calendar
/// edges its sub-queries have cut (shared by clones).
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    pub(crate) now: i64,
    pub(crate) tz: TimeZone,
    pub(crate) edges: Arc<zone::EdgeMemo>,
}

impl Clock {
    pub(crate) fn new(now: i64, tz: TimeZone) -> Self {
        Self {
            now,
            tz,
            edges: Arc::default(),
        }
    }

    pub(crate) fn of(api: &Api) -> Result<Self, OpenTsdbError> {
        Ok(Self::new(now_ms(), zone::by_name(&api.config.timezone)?))
    }
}

/// One parsed request: its sub-queries and output options.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) queries: Vec<Query>,
    pub(crate) ms_resolution: bool,
    /// `showQuery`: each result carries its sub-query as interpreted
    /// (Grafana in 2.3 mode maps results to panels by its `index`).
    pub(crate) show_query: bool,
    /// The `arrays` flag: `dps` as `[[ts, v], ...]`.
    pub(crate) arrays: bool,
    /// Per sub-query, the `query` object of `showQuery`.
    pub(crate) described: Vec<Value>,
    /// Per sub-query, Alibaba's per-result `dpValue`, `offset`, `limit`.
    pub(crate) trims: Vec<Trim>,
    /// Per sub-query, the TSUIDs it names instead of a metric.
    pub(crate) tsuids: Vec<Option<Vec<String>>>,
    /// `showTSUIDs`: each result lists its series' TSUIDs.
    pub(crate) show_tsuids: bool,
    /// `showSummary`/`showStats`: a last `statsSummary` element.
    pub(crate) show_summary: bool,
}

pub(crate) async fn get(
    ReadScope(api): ReadScope,
    RawQuery(raw): RawQuery,
) -> Result<Response, OpenTsdbError> {
    let clock = Clock::of(&api)?;
    run(api, move || {
        from_query_string(raw.as_deref().unwrap_or_default(), &clock)
    })
    .await
}

pub(crate) async fn post(
    ReadScope(api): ReadScope,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let bytes = sundial_api::body::read(&headers, body, api.config.max_body_bytes).await?;
    if bytes.is_empty() {
        return Err(OpenTsdbError::bad_request("Missing message content")
            .with_details("Supply valid JSON formatted data in the body of your request"));
    }
    let arrays = raw
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .any(|p| p == "arrays" || p.starts_with("arrays="));
    let clock = Clock::of(&api)?;
    run(api, move || {
        let json: Value = serde_json::from_slice(&bytes)
            .map_err(|e| OpenTsdbError::unparseable_json(e.to_string()))?;
        let mut request = from_json(&json, &clock)?;
        request.arrays = arrays;
        Ok(request)
    })
    .await
}

/// Parses, executes and prints one request under a query slot, all of it
/// off the async workers: parsing alone may cut many calendar buckets.
async fn run(
    api: Api,
    parse: impl FnOnce() -> Result<Request, OpenTsdbError> + Send + 'static,
) -> Result<Response, OpenTsdbError> {
    let started = Instant::now();
    let _slot = api.limits.query_slot().await?;
    let budget = api.query_budget();
    let body = tokio::task::spawn_blocking(move || {
        let mut request = parse()?;
        by_tsuid::resolve(&api, &mut request)?;
        let results = request
            .queries
            .iter()
            .map(|q| by_tsuid::execute((&api.db, &api.reads), &api.uids, q, &budget))
            .collect::<Result<Vec<_>, _>>()?;
        let timing = Timing {
            started,
            executed: started.elapsed(),
        };
        let tsuids = if request.show_tsuids {
            by_tsuid::of_results(&api, &results)?
        } else {
            Vec::new()
        };
        let scanned = budget.max_points().saturating_sub(budget.left());
        Ok::<_, OpenTsdbError>((print(&request, results, tsuids, timing)?, scanned))
    })
    .await
    .map_err(|e| OpenTsdbError::internal(&e))??;
    let (body, scanned) = body;
    let mut response = json_bytes_response(StatusCode::OK, body);
    response
        .extensions_mut()
        .insert(sundial_api::Scanned(scanned as u64));
    Ok(response)
}

/// When a request started and how long reading and aggregating took.
#[derive(Debug, Clone, Copy)]
struct Timing {
    started: Instant,
    executed: std::time::Duration,
}

/// The response body: each sub-query's results (trimmed), then the
/// summary when asked for.
fn print(
    request: &Request,
    results: Vec<Vec<sundial_model::SeriesResult>>,
    tsuids: Vec<Vec<String>>,
    timing: Timing,
) -> Result<Vec<u8>, OpenTsdbError> {
    let Timing { started, executed } = timing;
    let style = Style {
        ms: request.ms_resolution,
        arrays: request.arrays,
        nan_as_null: false,
    };
    let mut tsuids = tsuids.into_iter();
    let mut objects = Vec::new();
    let (mut emitted, mut raw) = (0, 0);
    for (((rs, q), shown), trim) in results
        .into_iter()
        .zip(&request.queries)
        .zip(&request.described)
        .zip(&request.trims)
    {
        let style = Style {
            // Fill policy `null` prints NaN as null.
            nan_as_null: q
                .downsample
                .as_ref()
                .is_some_and(|d| d.fill == FillPolicy::Null),
            ..style
        };
        raw += rs.first().map_or(0, |r| r.raw_points);
        for mut r in rs {
            trim.apply(&mut r.points);
            emitted += r.points.len();
            let extras = Extras {
                query: request.show_query.then_some(shown),
                tsuids: request
                    .show_tsuids
                    .then(|| tsuids.next().unwrap_or_default()),
            };
            objects.push(ResultObject {
                result: r,
                style,
                extras,
            });
        }
    }
    let summary = request.show_summary.then(|| {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let total = started.elapsed();
        // Reading and aggregating are one pass here, reported as storage
        // time; serialization is everything after it.
        json!({"statsSummary": {"datapoints": emitted, "rawDatapoints": raw,
            "aggregationTime": 0, "storageTime": ms(executed),
            "serializationTime": ms(total.saturating_sub(executed)), "timeTotal": ms(total)}})
    });
    sundial_api::json::to_vec(&render::Body { objects, summary })
        .map_err(|e| OpenTsdbError::internal(&e))
}

/// Spec 9.15: deleting through a query needs `allow_delete`, which this
/// server does not offer.
pub(crate) fn delete_disabled() -> OpenTsdbError {
    OpenTsdbError::bad_request("Bad request")
        .with_details("Deleting data is not enabled (allow_delete=false)")
}

/// A query failure in OpenTSDB's words where it has its own, else by class.
pub(crate) fn query_error(e: sundial_query::Error) -> OpenTsdbError {
    match e {
        sundial_query::Error::UnknownMetric { metric } => {
            OpenTsdbError::bad_request(format!("No such name for 'metrics': '{metric}'"))
        }
        sundial_query::Error::NotNumeric {
            aggregator,
            kind,
            metric,
        } => OpenTsdbError::bad_request(format!(
            "Aggregator {aggregator} cannot be applied to {} values of metric {metric}",
            format!("{kind:?}").to_lowercase()
        )),
        e @ sundial_query::Error::TooManyPoints { .. } => {
            OpenTsdbError::bad_request("Query reads too many data points")
                .with_details(format!("{e} (limits.max_query_points)"))
        }
        e => OpenTsdbError::classified(e.class(), &e),
    }
}

pub(crate) fn value_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::Long(i) => (*i).into(),
        FieldValue::Double(f) if f.is_nan() => "NaN".into(),
        FieldValue::Double(f) if f.is_infinite() => {
            if *f > 0.0 { "Infinity" } else { "-Infinity" }.into()
        }
        FieldValue::Double(f) => (*f).into(),
        FieldValue::Bool(b) => (*b).into(),
        FieldValue::String(s) => s.clone().into(),
        FieldValue::Bytes(b) => String::from_utf8_lossy(b).into_owned().into(),
    }
}
