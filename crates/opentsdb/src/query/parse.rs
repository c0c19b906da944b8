//! Reading `/api/query` requests (spec 9.2–9.4): the POST JSON body and
//! the GET form with its `m=` and `tsuid=` expressions.

use super::super::error::OpenTsdbError;
use super::super::{filters, time, zone};
use super::modifiers::{
    Trim, Window, count, downsample, rate_modifier, rate_options, value_condition,
};
use super::{Clock, Request, delete_disabled};
use serde_json::{Value, json};
use sundial_model::{Aggregator, DEFAULT_FIELD, Query, RateOptions, TagMatch};

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
    let mut tsuid_exprs = Vec::new();
    let (mut show_tsuids, mut show_summary) = (false, false);
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
            "tsuid" | "tsuids" => tsuid_exprs.push(value),
            "show_tsuids" => show_tsuids = true,
            "show_summary" | "show_stats" => show_summary = true,
            "timezone" => clock.tz = zone::by_name(&value)?,
            "use_calendar" => calendar = true,
            _ => {}
        }
    }
    let (start, end) = range(start.as_deref(), end.as_deref(), &clock)?;
    if exprs.is_empty() && tsuid_exprs.is_empty() {
        return Err(OpenTsdbError::bad_request("Missing queries"));
    }
    let window = Window {
        start,
        end,
        tz: &clock.tz,
        calendar,
        edges: &clock.edges,
    };
    let mut queries: Vec<Query> = exprs
        .iter()
        .map(|m| parse_m(m, &window))
        .collect::<Result<_, _>>()?;
    let mut tsuids = vec![None; queries.len()];
    // `tsuid=<aggregator>:<tsuid>[,<tsuid>...]`
    for t in &tsuid_exprs {
        let (agg, list) = t
            .split_once(':')
            .ok_or_else(|| OpenTsdbError::bad_request(format!("Invalid parameter tsuid={t}")))?;
        queries.push(query("", Vec::new(), aggregator(agg)?, start, end));
        tsuids.push(Some(checked_tsuids(
            list.split(',').map(str::to_owned).collect(),
        )?));
    }
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
        tsuids,
        show_tsuids,
        show_summary,
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
        only_series: None,
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
        edges: &clock.edges,
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
    let mut tsuids = Vec::with_capacity(subs.len());
    for (index, sub) in subs.iter().enumerate() {
        let parsed = sub_query(index, sub, &window)?;
        queries.push(parsed.query);
        described.push(parsed.described);
        trims.push(parsed.trim);
        tsuids.push(parsed.tsuids);
    }
    Ok(Request {
        queries,
        ms_resolution: ms,
        show_query: obj.get("showQuery").is_some_and(lenient_bool),
        arrays: false,
        described,
        trims,
        tsuids,
        show_tsuids: ["showTSUIDs", "show_tsuids"]
            .iter()
            .any(|k| obj.get(*k).is_some_and(lenient_bool)),
        show_summary: ["showSummary", "showStats", "show_summary"]
            .iter()
            .any(|k| obj.get(*k).is_some_and(lenient_bool)),
    })
}

/// One sub-query of a request, parsed.
struct SubQuery {
    query: Query,
    /// Its echo for `showQuery`.
    described: Value,
    trim: Trim,
    tsuids: Option<Vec<String>>,
}

/// Parses sub-query `index`; errors come in the order OpenTSDB checks.
fn sub_query(index: usize, sub: &Value, window: &Window<'_>) -> Result<SubQuery, OpenTsdbError> {
    let agg = match sub.get("aggregator") {
        Some(Value::String(s)) => s,
        _ => {
            return Err(OpenTsdbError::bad_request(
                "Missing the aggregation function",
            ));
        }
    };
    let aggregator = aggregator(agg)?;
    let (metric, tsuids) = metric_or_tsuids(sub)?;
    let ds = match sub.get("downsample") {
        Some(Value::String(d)) if !d.is_empty() => Some(downsample(d, window)?),
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
    let trim = Trim {
        dp_value: value_condition(sub.get("dpValue"), "dpValue")?,
        offset: count(sub.get("offset"), "offset")?,
        limit: count(sub.get("limit"), "limit")?,
    };
    let pre_filter = value_condition(sub.get("preDpValue"), "preDpValue")?;
    let mut shown = Vec::new();
    let tags = tag_map(sub, &mut shown)?;
    let mut q = query(metric, tags, aggregator, window.start, window.end);
    q.downsample = ds;
    q.rate = rate;
    q.explicit_tags = sub.get("explicitTags").is_some_and(lenient_bool);
    q.pre_filter = pre_filter;
    add_filters(sub, &mut q, &mut shown)?;
    let ds_text = sub
        .get("downsample")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty());
    let mut described = describe(index, &q, ds_text, shown);
    if let (Value::Object(d), Some(list)) = (&mut described, &tsuids) {
        d.insert("tsuids".into(), json!(list));
    }
    Ok(SubQuery {
        query: q,
        described,
        trim,
        tsuids,
    })
}

/// The metric of a sub-query, or its checked TSUIDs, which name the
/// metric themselves (spec 9.3).
fn metric_or_tsuids(sub: &Value) -> Result<(&str, Option<Vec<String>>), OpenTsdbError> {
    let by_tsuid: Option<Vec<String>> = match sub.get("tsuids") {
        Some(Value::Array(list)) if !list.is_empty() => Some(
            list.iter()
                .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_owned))
                .collect(),
        ),
        _ => None,
    };
    let metric = match sub.get("metric") {
        _ if by_tsuid.is_some() => "",
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => {
            return Err(OpenTsdbError::bad_request(
                "Missing the metric or tsuids, provide at least one",
            ));
        }
    };
    Ok((metric, by_tsuid.map(checked_tsuids).transpose()?))
}

/// The `tags` map of a sub-query as tag matches, each echoed into `shown`.
fn tag_map(sub: &Value, shown: &mut Vec<Value>) -> Result<Vec<TagMatch>, OpenTsdbError> {
    let mut tags = Vec::new();
    if let Some(Value::Object(t)) = sub.get("tags") {
        for (k, v) in t {
            if let Some(v) = v.as_str() {
                tags.extend(filters::from_tag_expr(k, v)?);
                shown.push(filters::describe_tag_expr(k, v));
            }
        }
    }
    Ok(tags)
}

/// The `filters` list of a sub-query into `q` (matches and group-by
/// keys), each echoed into `shown`.
fn add_filters(sub: &Value, q: &mut Query, shown: &mut Vec<Value>) -> Result<(), OpenTsdbError> {
    let Some(Value::Array(filters)) = sub.get("filters") else {
        return Ok(());
    };
    for f in filters {
        let (matches, key, group) = filters::from_object(f)?;
        shown.push(json!({
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
    Ok(())
}

/// TSUIDs are checked where their sub-query is read, so errors come in
/// sub-query order (spec 9.3).
fn checked_tsuids(list: Vec<String>) -> Result<Vec<String>, OpenTsdbError> {
    match list
        .iter()
        .find(|t| super::super::uids::split_tsuid(t).is_none())
    {
        Some(bad) => Err(OpenTsdbError::bad_request(format!("Invalid TSUID: {bad}"))),
        None => Ok(list),
    }
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
    use jiff::tz::TimeZone;
    use serde_json::json;

    fn utc(now: i64) -> Clock {
        Clock::new(now, TimeZone::UTC)
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
