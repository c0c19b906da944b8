//! `GET /v1/datapoint?query=` and `PUT /v1/datapoint?query` (spec 9): the
//! JSON query translated into `SeriesQuery` values, and their results
//! rendered in the seed's shape.

mod filters;
mod render;

pub(crate) use render::render_into;

use super::error::BaiduError;
use super::presampling::{disabled_by_param, rule_for};
use super::time::{self, Span};
use super::write::present;
use serde_json::{Map, Value};
use sundial_api::access::Action;
use sundial_model::series_query::{
    Aggregation, Fill, FillKind, Order, RangeFn, RowKey, Sampling, SeriesQuery,
};
use sundial_model::{FieldValue, Timestamp};

/// Queries per request (spec 13).
const MAX_QUERIES: usize = 8;
const MAX_LIMIT: u64 = 1_000_000;

/// One parsed query plus what only the renderer needs.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) query: SeriesQuery,
    /// `fields` was used (multi-field result shape).
    pub(crate) multi_field: bool,
    /// The `tags` member, when given.
    pub(crate) tag_columns: Option<Vec<String>>,
    /// Tag keys of each GroupBy object, in request order.
    pub(crate) group_infos: Vec<Vec<String>>,
    /// What presampling rules are matched against.
    pub(crate) shape: super::presampling::Shape,
}

/// Settings the query grammar depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    pub(crate) now: Timestamp,
    pub(crate) utc_offset_ms: i64,
}

/// A parsed request: its queries, and whether its body disables
/// presampling.
pub(crate) type Request = (Vec<Parsed>, bool);

/// Parses the request JSON (`{"queries": [...], "disablePresampling"}`).
pub(crate) fn parse(text: &[u8], ctx: Context) -> Result<Request, BaiduError> {
    let root: Value = serde_json::from_slice(text)
        .map_err(|e| BaiduError::malformed(format!("query is not valid JSON: {e}")))?;
    let Some(root) = root.as_object() else {
        return Err(BaiduError::malformed("the query must be a JSON object"));
    };
    let queries = match present(root, "queries") {
        None => return Err(BaiduError::missing("queries")),
        Some(Value::Array(q)) => q,
        Some(_) => return Err(BaiduError::malformed("queries must be an array")),
    };
    if queries.is_empty() {
        return Err(BaiduError::invalid("queries must not be empty"));
    }
    if queries.len() > MAX_QUERIES {
        return Err(BaiduError::invalid(format!(
            "at most {MAX_QUERIES} queries per request"
        )));
    }
    let disabled = match present(root, "disablePresampling") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(BaiduError::invalid("disablePresampling must be a boolean")),
    };
    let parsed = queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let Some(q) = q.as_object() else {
                return Err(BaiduError::malformed(format!(
                    "queries[{i}] must be an object"
                )));
            };
            one(q, ctx).map_err(|e| BaiduError {
                message: format!("queries[{i}]: {}", e.message),
                ..e
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((parsed, disabled))
}

fn one(q: &Map<String, Value>, ctx: Context) -> Result<Parsed, BaiduError> {
    let metric = match present(q, "metric") {
        None => return Err(BaiduError::missing("metric")),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(BaiduError::invalid("metric must be a non-empty string")),
    };
    let (fields, multi_field) = fields_of(q)?;
    let tag_columns = present(q, "tags").map(|t| strings(t, "tags")).transpose()?;
    let Some(f) = present(q, "filters") else {
        return Err(BaiduError::missing("filters"));
    };
    let branches = filters::parse(f, &fields, ctx.now)?;
    let group_infos = group_by_of(q)?;
    let group_by: Vec<String> = group_infos.iter().flatten().cloned().collect();
    let aggregators = match present(q, "aggregators") {
        None => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| aggregator(a, ctx))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(BaiduError::invalid("aggregators must be an array")),
    };
    let fills = fills(q, &fields)?;
    let (order, limit, offset) = paging_of(q)?;
    let raw = group_infos.is_empty() && aggregators.is_empty();
    let marker = match present(q, "marker") {
        // Ignored (not even checked) where there is no paging (spec 9.10).
        _ if !raw => None,
        None => None,
        Some(Value::String(m)) if m.is_empty() => None,
        Some(Value::String(m)) => Some(render::decode_marker(m)?),
        Some(_) => return Err(BaiduError::invalid("marker must be a string")),
    };
    let grouped = !group_infos.is_empty();
    let query = SeriesQuery {
        metric,
        fields,
        branches,
        group_by,
        grouped,
        aggregators,
        fills,
        tag_columns: tag_columns.clone().unwrap_or_default(),
        order,
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        offset: usize::try_from(offset).unwrap_or(usize::MAX),
        marker: marker.filter(|_: &RowKey| !grouped),
        now: ctx.now,
    };
    Ok(Parsed {
        query,
        multi_field,
        tag_columns,
        group_infos,
        shape: super::presampling::shape(q),
    })
}

/// `field` or `fields` (spec 9.2): the fields read and whether the
/// result has the multi-field shape.
fn fields_of(q: &Map<String, Value>) -> Result<(Vec<String>, bool), BaiduError> {
    match (present(q, "field"), present(q, "fields")) {
        (Some(_), Some(_)) => Err(BaiduError::invalid("use either field or fields, not both")),
        (Some(f), None) => Ok((vec![string(f, "field")?], false)),
        (None, Some(fs)) => {
            let fs = strings(fs, "fields")?;
            if fs.is_empty() {
                return Err(BaiduError::invalid("fields must not be empty"));
            }
            if fs.iter().enumerate().any(|(i, f)| fs[..i].contains(f)) {
                return Err(BaiduError::invalid("fields must not repeat a field"));
            }
            Ok((fs, true))
        }
        (None, None) => Ok((vec![sundial_model::DEFAULT_FIELD.to_owned()], false)),
    }
}

/// The tag keys of each `groupBy` object, in request order.
fn group_by_of(q: &Map<String, Value>) -> Result<Vec<Vec<String>>, BaiduError> {
    let Some(g) = present(q, "groupBy") else {
        return Ok(Vec::new());
    };
    let Value::Array(list) = g else {
        return Err(BaiduError::invalid("groupBy must be an array"));
    };
    let mut group_infos = Vec::with_capacity(list.len());
    for item in list {
        let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
        if !name.eq_ignore_ascii_case("tag") {
            return Err(BaiduError::invalid(format!(
                "groupBy name {name:?} is not supported: only Tag"
            )));
        }
        let keys = match item.get("tags").filter(|t| !t.is_null()) {
            Some(t) => strings(t, "groupBy tags")?,
            None => Vec::new(),
        };
        if keys.is_empty() {
            return Err(BaiduError::invalid(
                "groupBy Tag needs a non-empty tags list",
            ));
        }
        group_infos.push(keys);
    }
    Ok(group_infos)
}

/// `order`, `limit` and `offset`.
fn paging_of(q: &Map<String, Value>) -> Result<(Order, u64, u64), BaiduError> {
    let order = match present(q, "order") {
        None => Order::Asc,
        Some(Value::String(o)) if o.eq_ignore_ascii_case("asc") => Order::Asc,
        Some(Value::String(o)) if o.eq_ignore_ascii_case("desc") => Order::Desc,
        Some(o) => return Err(BaiduError::invalid(format!("order {o} is not Asc or Desc"))),
    };
    let limit = match present(q, "limit") {
        None => MAX_LIMIT,
        Some(v) => v
            .as_u64()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| BaiduError::invalid(format!("limit must be 1 to {MAX_LIMIT}")))?,
    };
    let offset = match present(q, "offset") {
        None => 0,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| BaiduError::invalid("offset must be a non-negative integer"))?,
    };
    Ok((order, limit, offset))
}

pub(crate) fn string(v: &Value, what: &str) -> Result<String, BaiduError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| BaiduError::invalid(format!("{what} must be a string")))
}

pub(crate) fn strings(v: &Value, what: &str) -> Result<Vec<String>, BaiduError> {
    let Value::Array(items) = v else {
        return Err(BaiduError::invalid(format!(
            "{what} must be an array of strings"
        )));
    };
    items.iter().map(|i| string(i, what)).collect()
}

fn number(a: &Map<String, Value>, key: &str, name: &str) -> Result<f64, BaiduError> {
    present(a, key)
        .and_then(Value::as_f64)
        .ok_or_else(|| BaiduError::invalid(format!("aggregator {name} needs a numeric {key}")))
}

pub(crate) fn aggregator(a: &Value, ctx: Context) -> Result<Aggregation, BaiduError> {
    let Some(a) = a.as_object() else {
        return Err(BaiduError::invalid("each aggregator must be an object"));
    };
    let name = match present(a, "name") {
        Some(Value::String(n)) => n.as_str(),
        _ => return Err(BaiduError::invalid("aggregator name is required")),
    };
    let func = match name.to_ascii_lowercase().as_str() {
        "avg" => RangeFn::Avg,
        "dev" => RangeFn::Dev,
        "count" => RangeFn::Count,
        "first" => RangeFn::First,
        "last" => RangeFn::Last,
        "leastsquares" => RangeFn::LeastSquares,
        "max" => RangeFn::Max,
        "min" => RangeFn::Min,
        "sum" => RangeFn::Sum,
        "percentile" => {
            let p = number(a, "percentile", name)?;
            if !(p > 0.0 && p <= 1.0) {
                return Err(BaiduError::invalid("percentile must be in (0, 1]"));
            }
            RangeFn::Percentile(p)
        }
        "diff" => return Ok(Aggregation::Diff),
        "adjacentunique" => return Ok(Aggregation::AdjacentUnique),
        "div" => {
            let d = number(a, "divisor", name)?;
            if d == 0.0 {
                return Err(BaiduError::invalid("divisor must not be 0"));
            }
            return Ok(Aggregation::Div(d));
        }
        "scale" => return Ok(Aggregation::Scale(number(a, "factor", name)?)),
        "rate" => {
            let unit = match present(a, "timeUnit") {
                Some(Value::String(u)) => time::unit(u.trim()),
                _ => None,
            };
            return match unit {
                Some(time::Unit::Fixed(ms)) => Ok(Aggregation::Rate { unit_ms: ms }),
                _ => Err(BaiduError::invalid(
                    "aggregator Rate needs a non-calendar timeUnit such as \"second\"",
                )),
            };
        }
        _ => return Err(BaiduError::invalid(format!("unknown aggregator {name:?}"))),
    };
    let sampling = match present(a, "sampling") {
        None => None,
        Some(Value::String(s)) => Some(match time::span(s, "sampling", true, 1)? {
            Span::Fixed(ms) => Sampling::Fixed(ms),
            Span::Calendar { count, unit } => Sampling::Calendar {
                count,
                unit,
                utc_offset_ms: ctx.utc_offset_ms,
            },
        }),
        Some(_) => return Err(BaiduError::invalid("sampling must be a string")),
    };
    Ok(Aggregation::Range { func, sampling })
}

/// `fill` / `fills` resolved per field: the first entry that applies wins.
fn fills(q: &Map<String, Value>, fields: &[String]) -> Result<Vec<Option<Fill>>, BaiduError> {
    let specs: Vec<(Option<String>, Fill)> = match (present(q, "fill"), present(q, "fills")) {
        (Some(_), Some(_)) => {
            return Err(BaiduError::invalid("use either fill or fills, not both"));
        }
        (Some(f), None) => vec![fill(f)?],
        (None, Some(Value::Array(list))) => list.iter().map(fill).collect::<Result<_, _>>()?,
        (None, Some(_)) => return Err(BaiduError::invalid("fills must be an array")),
        (None, None) => Vec::new(),
    };
    Ok(fields
        .iter()
        .map(|f| {
            specs
                .iter()
                .find(|(target, _)| target.as_ref().is_none_or(|t| t == f))
                .map(|(_, spec)| spec.clone())
        })
        .collect())
}

fn fill(f: &Value) -> Result<(Option<String>, Fill), BaiduError> {
    let Some(f) = f.as_object() else {
        return Err(BaiduError::invalid("fill must be an object"));
    };
    let kind = match present(f, "type") {
        None => return Err(BaiduError::missing("fill type")),
        Some(Value::String(t)) => t.to_ascii_lowercase(),
        Some(_) => return Err(BaiduError::invalid("fill type must be a string")),
    };
    let interval = match present(f, "interval") {
        None => return Err(BaiduError::missing("fill interval")),
        Some(v) => time::fixed_span(&string(v, "fill interval")?, "fill interval", 1)?,
    };
    let max_write = match present(f, "maxWriteInterval") {
        None => 0,
        Some(v) => time::fixed_span(&string(v, "maxWriteInterval")?, "maxWriteInterval", 0)?,
    };
    let kind = match kind.as_str() {
        "linear" => FillKind::Linear,
        "previous" => FillKind::Previous,
        "fixed" => FillKind::Fixed(match present(f, "value") {
            None => return Err(BaiduError::missing("fill value")),
            Some(Value::Number(n)) if n.is_i64() => {
                FieldValue::Long(n.as_i64().unwrap_or_default())
            }
            Some(Value::Number(n)) => FieldValue::Double(n.as_f64().unwrap_or(f64::NAN)),
            Some(Value::String(s)) => FieldValue::String(s.clone()),
            Some(_) => {
                return Err(BaiduError::invalid(
                    "fill value must be a number or a string",
                ));
            }
        }),
        other => {
            return Err(BaiduError::invalid(format!(
                "fill type {other:?} is not Linear, Previous or Fixed"
            )));
        }
    };
    let field = present(f, "field")
        .map(|v| string(v, "fill field"))
        .transpose()?;
    Ok((
        field,
        Fill {
            kind,
            interval_ms: interval,
            max_write_interval_ms: max_write,
        },
    ))
}

/// `GET /v1/datapoint?query=<json>` (presigned URLs).
pub(super) async fn get(
    axum::extract::State(api): axum::extract::State<super::Api>,
    req: axum::extract::Request,
) -> Result<axum::response::Response, BaiduError> {
    let parts = req.into_parts().0;
    let db = api.database(&parts, Action::Read).await?;
    match super::param(&parts, "query") {
        Some(q) => {
            let disabled = disabled_by_param(super::param(&parts, "disablePresampling").as_deref());
            run(api, db, q.into_bytes(), disabled).await
        }
        // The Go client's SQL route (spec 14, D3).
        None => match super::param(&parts, "sql").filter(|s| !s.trim().is_empty()) {
            Some(sql) => super::sql::run(&api, &db, &sql).await,
            None => Err(BaiduError::missing("query")),
        },
    }
}

/// `PUT /v1/datapoint?query` with the query in the body.
pub(super) async fn put(
    axum::extract::State(api): axum::extract::State<super::Api>,
    req: axum::extract::Request,
) -> Result<axum::response::Response, BaiduError> {
    let (parts, body) = req.into_parts();
    let db = api.database(&parts, Action::Read).await?;
    if super::param(&parts, "query").is_none() {
        return Err(BaiduError::missing("query parameter"));
    }
    let disabled = disabled_by_param(super::param(&parts, "disablePresampling").as_deref());
    let body = super::json_body(&api, &parts, body).await?;
    run(api, db, body.to_vec(), disabled).await
}

/// Runs the queries; `disabled`: the query string disables presampling.
async fn run(
    api: super::Api,
    db: sundial_storage::Db,
    text: Vec<u8>,
    disabled: bool,
) -> Result<axum::response::Response, BaiduError> {
    let ctx = Context {
        now: api.now_ms(),
        utc_offset_ms: api
            .config
            .utc_offset_ms()
            .map_err(|e| BaiduError::internal(&e))?,
    };
    let (parsed, disabled_in_body) = parse(&text, ctx)?;
    let raw_only = disabled || disabled_in_body;
    let rules = if raw_only {
        Vec::new()
    } else {
        db.presampling_rules()
    };
    let _slot = api.limits.query_slot().await?;
    let limits = sundial_query::series_query::Limits {
        max_points: api.max_query_points(),
        max_groups: api.config.max_query_groups,
        timeout: api.query_timeout(),
        presampled: false,
        rollups: !raw_only,
    };
    let reads = api.reads.clone();
    let (body, scanned) = super::run_blocking(move || -> Result<(Vec<u8>, u64), BaiduError> {
        // `{"results": [...]}` around Result objects serialized one query
        // at a time, so only one query's output is held at once.
        let mut buf = b"{\"results\":[".to_vec();
        let mut scanned = 0;
        for (i, p) in parsed.iter().enumerate() {
            let rule = rule_for(&rules, p);
            let limits = sundial_query::series_query::Limits {
                presampled: rule.is_some(),
                ..limits
            };
            let out = reads.series(&db, &p.query, limits)?;
            scanned += out.consumed_count;
            if i > 0 {
                buf.push(b',');
            }
            render_into(p, &out, rule.map(|r| r.id.as_str()), &mut buf);
        }
        buf.extend_from_slice(b"]}");
        Ok((buf, scanned))
    })
    .await?;
    let mut response = super::json_bytes(body);
    response
        .extensions_mut()
        .insert(sundial_api::Scanned(scanned));
    Ok(response)
}
