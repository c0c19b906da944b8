//! `/api/query` (spec section 9): GET `m=` expressions and POST JSON,
//! every aggregator of 9.11 with its interpolation, v1 `tags` and filters,
//! downsampling (fixed and calendar, in the query's time zone), rate and
//! Alibaba's value conditions.

mod modifiers;

use super::error::{OpenTsdbError, json_response};
use super::{Api, filters, time, zone};
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use jiff::tz::TimeZone;
use modifiers::{Trim, Window, count, downsample, rate_modifier, rate_options, value_condition};
use serde_json::{Map, Value};
use sundial_model::{
    Aggregator, DEFAULT_FIELD, FieldValue, FillPolicy, Query, RateOptions, SeriesResult, TagMatch,
};

/// What a request's times are read against: the server clock and the
/// default zone (spec 4.5), which a request may replace.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    pub(crate) now: i64,
    pub(crate) tz: TimeZone,
}

impl Clock {
    fn of(api: &Api) -> Result<Self, OpenTsdbError> {
        Ok(Self {
            now: now_ms(),
            tz: zone::by_name(&api.config.timezone)?,
        })
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
}

pub(crate) async fn get(
    State(api): State<Api>,
    RawQuery(raw): RawQuery,
) -> Result<Response, OpenTsdbError> {
    let request = from_query_string(raw.as_deref().unwrap_or_default(), &Clock::of(&api)?)?;
    run(&api, request).await
}

pub(crate) async fn post(
    State(api): State<Api>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let bytes = crate::body::read(&headers, body, api.config.max_body_bytes).await?;
    if bytes.is_empty() {
        return Err(OpenTsdbError::bad_request("Missing message content")
            .with_details("Supply valid JSON formatted data in the body of your request"));
    }
    let json: Value = serde_json::from_slice(&bytes)
        .map_err(|e| OpenTsdbError::unparseable_json(e.to_string()))?;
    let mut request = from_json(&json, &Clock::of(&api)?)?;
    request.arrays = raw
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .any(|p| p == "arrays" || p.starts_with("arrays="));
    run(&api, request).await
}

async fn run(api: &Api, request: Request) -> Result<Response, OpenTsdbError> {
    let db = api.db.clone();
    let (request, results) = tokio::task::spawn_blocking(move || {
        let results = request
            .queries
            .iter()
            .map(|q| sundial_query::execute(&db, q))
            .collect::<Result<Vec<_>, _>>();
        (request, results)
    })
    .await
    .map_err(|e| OpenTsdbError::internal(&e))?;
    let results = results.map_err(query_error)?;
    let style = Style {
        ms: request.ms_resolution,
        arrays: request.arrays,
        nan_as_null: false,
    };
    let mut out: Vec<Value> = Vec::new();
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
        for mut r in rs {
            trim.apply(&mut r.points);
            let mut obj = render(&r, style);
            if request.show_query
                && let Value::Object(o) = &mut obj
            {
                o.insert("query".into(), shown.clone());
            }
            out.push(obj);
        }
    }
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
}

/// Spec 9.15: deleting through a query needs `allow_delete`, which this
/// server does not offer.
pub(crate) fn delete_disabled() -> OpenTsdbError {
    OpenTsdbError::bad_request("Bad request")
        .with_details("Deleting data is not enabled (allow_delete=false)")
}

/// How results are printed.
#[derive(Debug, Clone, Copy)]
struct Style {
    ms: bool,
    arrays: bool,
    nan_as_null: bool,
}

fn query_error(e: sundial_query::Error) -> OpenTsdbError {
    match e {
        sundial_query::Error::Storage(reason) => OpenTsdbError::internal(&reason),
        sundial_query::Error::InvalidPredicate(reason) => OpenTsdbError::bad_request(reason),
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
        e @ (sundial_query::Error::NumberRequired { .. }
        | sundial_query::Error::TooManyPoints { .. }
        | sundial_query::Error::TooManyGroups { .. }) => OpenTsdbError::bad_request(e.to_string()),
        e @ sundial_query::Error::Timeout { .. } => OpenTsdbError::internal(&e),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A result object (spec 9.13).
fn render(r: &SeriesResult, style: Style) -> Value {
    let mut dps = Map::new();
    let mut pairs = Vec::new();
    for (ts, v) in &r.points {
        let t = if style.ms { *ts } else { ts.div_euclid(1000) };
        let value = match v {
            FieldValue::Double(f) if f.is_nan() && style.nan_as_null => Value::Null,
            v => value_json(v),
        };
        if style.arrays {
            pairs.push(Value::Array(vec![t.into(), value]));
        } else {
            // Within one second the later point wins (spec 4.4).
            dps.insert(t.to_string(), value);
        }
    }
    let tags: Map<String, Value> = r
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut obj = Map::new();
    obj.insert("metric".into(), r.metric.clone().into());
    obj.insert("tags".into(), Value::Object(tags));
    obj.insert("aggregateTags".into(), r.aggregated_tags.clone().into());
    let dps = if style.arrays {
        Value::Array(pairs)
    } else {
        Value::Object(dps)
    };
    obj.insert("dps".into(), dps);
    Value::Object(obj)
}

fn value_json(v: &FieldValue) -> Value {
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

fn aggregator(name: &str) -> Result<Aggregator, OpenTsdbError> {
    sundial_query::aggregator_by_name(name)
        .ok_or_else(|| OpenTsdbError::bad_request(format!("No such aggregation function: {name}")))
}

/// Time range from raw `start`/`end` texts.
fn range(
    start: Option<&str>,
    end: Option<&str>,
    clock: &Clock,
) -> Result<(i64, i64), OpenTsdbError> {
    let parse = |text| {
        time::parse_query_time(text, clock.now, &clock.tz).map_err(OpenTsdbError::bad_request)
    };
    let start = start.ok_or_else(|| OpenTsdbError::bad_request("Missing start time"))?;
    let start = parse(start)?;
    let end = match end {
        None | Some("") => clock.now,
        Some(e) => parse(e)?,
    };
    if end < start {
        return Err(OpenTsdbError::bad_request(format!(
            "End time [{end}] must be greater than or equal to the start time [{start}]"
        )));
    }
    Ok((start, end))
}

/// GET form (spec 9.4).
pub(crate) fn from_query_string(raw: &str, clock: &Clock) -> Result<Request, OpenTsdbError> {
    let mut clock = clock.clone();
    let mut calendar = false;
    let mut start = None;
    let mut end = None;
    let mut ms = false;
    let mut show_query = false;
    let mut arrays = false;
    let mut exprs = Vec::new();
    for pair in raw.split('&').filter(|s| !s.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match name {
            "start" => start = Some(value),
            "end" => end = Some(value),
            "ms" | "msResolution" => ms = true,
            "show_query" => show_query = true,
            "arrays" => arrays = true,
            "m" => exprs.push(value),
            "timezone" => clock.tz = zone::by_name(&value)?,
            "use_calendar" => calendar = true,
            _ => {}
        }
    }
    let (start, end) = range(start.as_deref(), end.as_deref(), &clock)?;
    if exprs.is_empty() {
        return Err(OpenTsdbError::bad_request("Missing queries"));
    }
    let window = Window {
        start,
        end,
        tz: &clock.tz,
        calendar,
    };
    let queries: Vec<Query> = exprs
        .iter()
        .map(|m| parse_m(m, &window))
        .collect::<Result<_, _>>()?;
    let described = queries
        .iter()
        .enumerate()
        .map(|(i, q)| describe(i, q, None, Vec::new()))
        .collect();
    let trims = vec![Trim::default(); queries.len()];
    Ok(Request {
        queries,
        ms_resolution: ms,
        show_query,
        arrays,
        described,
        trims,
    })
}

/// The `query` object of `showQuery` (spec 9.13).
fn describe(index: usize, q: &Query, downsample: Option<&str>, filters: Vec<Value>) -> Value {
    let rate_options = q.rate.map(|r| {
        serde_json::json!({"counter": r.counter, "counterMax": r.counter_max,
            "resetValue": r.reset_value, "dropResets": r.drop_resets})
    });
    serde_json::json!({
        "index": index,
        "aggregator": sundial_query::aggregator_name(q.aggregator),
        "metric": q.metric,
        "tsuids": null,
        "downsample": downsample,
        "rate": q.rate.is_some(),
        "rateOptions": rate_options,
        "explicitTags": q.explicit_tags,
        "tags": {},
        "filters": filters,
    })
}

/// `aggregator:[modifiers:]metric[{tags}]`.
fn parse_m(m: &str, window: &Window<'_>) -> Result<Query, OpenTsdbError> {
    if m.is_empty() {
        return Err(OpenTsdbError::bad_request("The query string was empty"));
    }
    let (agg, rest) = m.split_once(':').ok_or_else(|| {
        OpenTsdbError::bad_request(format!(
            "Invalid parameter m={m} (not enough :-separated parts)"
        ))
    })?;
    let aggregator = aggregator(agg)?;
    // Modifiers up to the metric (which may itself contain ':').
    let mut rest = rest;
    let mut ds = None;
    let mut rate = None;
    let mut explicit = false;
    while let Some((seg, tail)) = rest.split_once(':') {
        if seg.contains('{') && !seg.starts_with("rate{") {
            break;
        }
        if seg.starts_with("rate") {
            rate = Some(rate_modifier(seg)?);
        } else if seg.chars().next().is_some_and(|c| c.is_ascii_digit()) || seg.starts_with("all-")
        {
            ds = Some(downsample(seg, window)?);
        } else if seg.starts_with("percentiles[") {
            return Err(OpenTsdbError::bad_request(
                "Histogram percentiles are not supported",
            ));
        } else if seg == "explicit_tags" {
            explicit = true;
        } else if !(seg == "pre-agg" || seg.starts_with("rollup_")) {
            break;
        }
        rest = tail;
    }
    let (metric, tag_text) = match rest.find('{') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    // `{group-by list}{other filters}` (spec 9.4).
    let mut tags = Vec::new();
    let mut others = Vec::new();
    let mut text = tag_text.unwrap_or_default();
    let mut list = 0;
    while !text.is_empty() {
        let close = text
            .strip_prefix('{')
            .and_then(|t| t.find('}').map(|i| i + 1))
            .ok_or_else(|| {
                OpenTsdbError::bad_request(format!("Missing '}}' at the end of: {text}"))
            })?;
        let inner = text.get(1..close).unwrap_or_default();
        text = text.get(close + 1..).unwrap_or_default();
        if list >= 2 {
            return Err(OpenTsdbError::bad_request(format!(
                "Invalid parameter m={m}"
            )));
        }
        for entry in inner.split(',').filter(|e| !e.is_empty()) {
            let (k, v) = entry
                .split_once('=')
                .ok_or_else(|| OpenTsdbError::bad_request(format!("invalid tag: {entry}")))?;
            let target = if list == 0 { &mut tags } else { &mut others };
            target.extend(filters::from_tag_expr(k, v)?);
        }
        list += 1;
    }
    let mut q = query(metric, tags, aggregator, window.start, window.end);
    q.tags.extend(others);
    q.downsample = ds;
    q.rate = rate;
    q.explicit_tags = explicit;
    Ok(q)
}

fn query(metric: &str, tags: Vec<TagMatch>, aggregator: Aggregator, start: i64, end: i64) -> Query {
    // v1 tags always group (OpenTSDB converts them to group-by filters).
    let mut group_by: Vec<String> = Vec::new();
    for m in &tags {
        if !group_by.iter().any(|k| k == m.key()) {
            group_by.push(m.key().to_owned());
        }
    }
    Query {
        metric: metric.into(),
        field: DEFAULT_FIELD.into(),
        tags,
        group_by,
        start,
        end,
        aggregator,
        downsample: None,
        rate: None,
        explicit_tags: false,
        pre_filter: None,
    }
}

/// POST form (spec 9.2, 9.3).
pub(crate) fn from_json(json: &Value, clock: &Clock) -> Result<Request, OpenTsdbError> {
    let obj = json
        .as_object()
        .ok_or_else(|| OpenTsdbError::unparseable_json("the query must be a JSON object"))?;
    let mut clock = clock.clone();
    if let Some(Value::String(name)) = obj.get("timezone")
        && !name.is_empty()
    {
        clock.tz = zone::by_name(name)?;
    }
    let start = obj.get("start").and_then(time_text);
    let end = obj.get("end").and_then(time_text);
    let (start, end) = range(start.as_deref(), end.as_deref(), &clock)?;
    let window = Window {
        start,
        end,
        tz: &clock.tz,
        calendar: obj.get("useCalendar").is_some_and(lenient_bool),
    };
    let ms = [obj.get("msResolution"), obj.get("ms")]
        .into_iter()
        .flatten()
        .any(lenient_bool);
    if obj.get("delete").is_some_and(lenient_bool) {
        return Err(delete_disabled());
    }
    let subs = match obj.get("queries") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => return Err(OpenTsdbError::bad_request("Missing queries")),
    };
    let mut queries = Vec::with_capacity(subs.len());
    let mut described = Vec::with_capacity(subs.len());
    let mut trims = Vec::with_capacity(subs.len());
    for (index, sub) in subs.iter().enumerate() {
        let agg = match sub.get("aggregator") {
            Some(Value::String(s)) => s,
            _ => {
                return Err(OpenTsdbError::bad_request(
                    "Missing the aggregation function",
                ));
            }
        };
        let aggregator = aggregator(agg)?;
        let metric = match sub.get("metric") {
            Some(Value::String(s)) if !s.is_empty() => s,
            _ => {
                return Err(OpenTsdbError::bad_request(
                    "Missing the metric or tsuids, provide at least one",
                ));
            }
        };
        if sub.get("tsuids").is_some_and(|v| !v.is_null()) {
            return Err(OpenTsdbError::not_implemented(
                "tsuids are not supported yet",
            ));
        }
        let ds = match sub.get("downsample") {
            Some(Value::String(d)) if !d.is_empty() => Some(downsample(d, &window)?),
            _ => None,
        };
        let rate = if sub.get("rate").is_some_and(lenient_bool) {
            Some(rate_options(sub.get("rateOptions"))?)
        } else if sub.get("delta").is_some_and(lenient_bool) {
            Some(RateOptions {
                delta: true,
                ..rate_options(sub.get("deltaOptions"))?
            })
        } else {
            None
        };
        trims.push(Trim {
            dp_value: value_condition(sub.get("dpValue"), "dpValue")?,
            offset: count(sub.get("offset"), "offset")?,
            limit: count(sub.get("limit"), "limit")?,
        });
        let pre_filter = value_condition(sub.get("preDpValue"), "preDpValue")?;
        let mut tags = Vec::new();
        let mut shown = Vec::new();
        if let Some(Value::Object(t)) = sub.get("tags") {
            for (k, v) in t {
                if let Some(v) = v.as_str() {
                    tags.extend(filters::from_tag_expr(k, v)?);
                    shown.push(filters::describe_tag_expr(k, v));
                }
            }
        }
        let mut q = query(metric, tags, aggregator, start, end);
        q.downsample = ds;
        q.rate = rate;
        q.explicit_tags = sub.get("explicitTags").is_some_and(lenient_bool);
        q.pre_filter = pre_filter;
        if let Some(Value::Array(filters)) = sub.get("filters") {
            for f in filters {
                let (matches, key, group) = filters::from_object(f)?;
                shown.push(serde_json::json!({
                    "tagk": key,
                    "filter": f.get("filter").and_then(Value::as_str).unwrap_or_default(),
                    "group_by": group,
                    "type": f.get("type").and_then(Value::as_str).unwrap_or_default(),
                }));
                if group && !q.group_by.contains(&key) {
                    q.group_by.push(key);
                }
                q.tags.extend(matches);
            }
        }
        let ds_text = sub
            .get("downsample")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty());
        described.push(describe(index, &q, ds_text, shown));
        queries.push(q);
    }
    Ok(Request {
        queries,
        ms_resolution: ms,
        show_query: obj.get("showQuery").is_some_and(lenient_bool),
        arrays: false,
        described,
        trims,
    })
}

fn time_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Jackson-style boolean leniency (spec 5.4).
pub(crate) fn lenient_bool(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        Value::Number(n) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// Decodes `%XX` escapes and `+`; invalid escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(now: i64) -> Clock {
        Clock {
            now,
            tz: TimeZone::UTC,
        }
    }

    #[test]
    fn m_expressions() -> Result<(), OpenTsdbError> {
        let r = from_query_string(
            "start=1500000000&m=sum:sys.cpu%7Bhost=a%7Cb%7D&ms",
            &utc(1_600_000_000_000),
        )?;
        assert!(r.ms_resolution);
        let q = &r.queries[0];
        assert_eq!(q.metric, "sys.cpu");
        assert_eq!(q.aggregator, Aggregator::Sum);
        assert_eq!(
            q.tags,
            vec![TagMatch::In {
                key: "host".into(),
                values: vec!["a".into(), "b".into()]
            }]
        );
        assert_eq!(q.group_by, vec!["host".to_owned()]);
        assert_eq!(q.start, 1_500_000_000_000);
        Ok(())
    }

    #[test]
    fn request_errors() {
        let msg = |r: Result<Request, OpenTsdbError>| r.err().map(|e| e.message);
        assert_eq!(
            msg(from_query_string("m=sum:x", &utc(0))).as_deref(),
            Some("Missing start time")
        );
        assert_eq!(
            msg(from_query_string("start=1h-ago", &utc(1 << 40))).as_deref(),
            Some("Missing queries")
        );
        assert_eq!(
            msg(from_query_string("start=1500000000&m=foo:x", &utc(1 << 42))).as_deref(),
            Some("No such aggregation function: foo")
        );
        assert_eq!(
            msg(from_json(&json!({"start": 1500000001, "end": 1500000000, "queries": [{"aggregator": "sum", "metric": "x"}]}), &utc(0))).as_deref(),
            Some("End time [1500000000000] must be greater than or equal to the start time [1500000001000]")
        );
    }
}
