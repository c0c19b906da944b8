//! Sub-query modifiers of `/api/query`: downsampling specifications
//! (spec 9.7.1), rate options (9.4, 9.9) and Alibaba's per-result cuts
//! (9.14).

use super::super::error::OpenTsdbError;
use super::super::{time, zone};
use super::lenient_bool;
use jiff::tz::TimeZone;
use serde_json::Value;
use sundial_model::series_query::CmpOp;
use sundial_model::{
    Aggregator, Buckets, Downsample, FieldValue, FillPolicy, RateOptions, Timestamp,
};

/// The time frame downsampling buckets are cut in.
#[derive(Debug)]
pub(super) struct Window<'a> {
    pub(super) start: Timestamp,
    pub(super) end: Timestamp,
    pub(super) tz: &'a TimeZone,
    /// `useCalendar`: every interval is a calendar one.
    pub(super) calendar: bool,
    /// The calendar edges the request has cut so far.
    pub(super) edges: &'a zone::EdgeMemo,
}

/// `<interval>-<function>[-<fill>]` (spec 9.7.1).
pub(super) fn downsample(spec: &str, window: &Window<'_>) -> Result<Downsample, OpenTsdbError> {
    let parts: Vec<&str> = spec.split('-').collect();
    if parts.len() < 2 {
        return Err(OpenTsdbError::bad_request(format!(
            "Invalid downsampling specifier '{spec}': must provide at least interval and function"
        )));
    }
    if parts.len() > 3 {
        return Err(OpenTsdbError::bad_request(format!(
            "Invalid downsampling specifier '{spec}': must consist of interval, function, and optional fill policy"
        )));
    }
    let (interval, function) = (parts[0], parts[1]);
    let buckets = if interval.contains("all") {
        Buckets::All
    } else {
        let (duration, calendar) = match interval.strip_suffix('c') {
            Some(d) => (d, true),
            None => (interval, window.calendar),
        };
        let width = time::parse_duration(duration).map_err(OpenTsdbError::bad_request)?;
        match zone::Unit::split(duration).filter(|_| calendar) {
            Some((count, unit)) => Buckets::Edges(window.edges.edges(
                count,
                unit,
                window.tz,
                window.start,
                window.end,
            )?),
            None => Buckets::Fixed(width),
        }
    };
    let function = match sundial_query::aggregator_by_name(function) {
        Some(Aggregator::None) => {
            return Err(OpenTsdbError::bad_request(
                "cannot use the NONE aggregator for downsampling",
            ));
        }
        Some(f) => f,
        None => {
            return Err(OpenTsdbError::bad_request(format!(
                "No such downsampling function: {function}"
            )));
        }
    };
    let fill = match parts.get(2).copied().unwrap_or("none") {
        "none" => FillPolicy::None,
        "nan" => FillPolicy::NaN,
        "null" => FillPolicy::Null,
        "zero" => FillPolicy::Zero,
        other => {
            return Err(OpenTsdbError::bad_request(format!(
                "No such fill policy: '{other}': must be one of: none zero nan null"
            )));
        }
    };
    Ok(Downsample {
        buckets,
        function,
        fill,
    })
}

/// `rate{counter[,max[,reset]]}` of the GET form (spec 9.4).
pub(super) fn rate_modifier(m: &str) -> Result<RateOptions, OpenTsdbError> {
    let mut opts = RateOptions::default();
    let Some(inner) = m.strip_prefix("rate{").and_then(|r| r.strip_suffix('}')) else {
        if m == "rate" {
            return Ok(opts);
        }
        return Err(OpenTsdbError::bad_request(format!(
            "Invalid rate options specification: {m}"
        )));
    };
    let parts: Vec<&str> = inner.split(',').collect();
    let word = parts.first().copied().unwrap_or_default();
    if !word.ends_with("counter") {
        return Err(OpenTsdbError::bad_request(format!(
            "Invalid rate options specification: {m}"
        )));
    }
    opts.counter = true;
    opts.drop_resets = word == "dropcounter";
    if let Some(max) = parts.get(1).filter(|s| !s.is_empty()) {
        opts.counter_max = number(max).ok_or_else(|| {
            OpenTsdbError::bad_request(format!(
                "Max value of counter was not a number, received '{max}'"
            ))
        })?;
    }
    if let Some(reset) = parts.get(2).filter(|s| !s.is_empty()) {
        opts.reset_value = number(reset).ok_or_else(|| {
            OpenTsdbError::bad_request(format!(
                "Reset value of counter was not a number, received '{reset}'"
            ))
        })?;
    }
    Ok(opts)
}

/// A number or numeric text truncated to an integer (Grafana sends floats).
fn number(text: &str) -> Option<i64> {
    let t = text.trim();
    t.parse::<i64>().ok().or_else(|| {
        t.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| f as i64)
    })
}

/// `rateOptions` of the POST form.
pub(super) fn rate_options(v: Option<&Value>) -> Result<RateOptions, OpenTsdbError> {
    let mut opts = RateOptions::default();
    let Some(Value::Object(o)) = v else {
        return Ok(opts);
    };
    let num = |key: &str| -> Result<Option<i64>, OpenTsdbError> {
        match o.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))),
            Some(Value::String(s)) => number(s).map(Some).ok_or_else(|| {
                OpenTsdbError::bad_request(format!("Invalid rate option {key}: {s}"))
            }),
            Some(other) => Err(OpenTsdbError::bad_request(format!(
                "Invalid rate option {key}: {other}"
            ))),
        }
    };
    opts.counter = o.get("counter").is_some_and(lenient_bool);
    opts.drop_resets = o.get("dropResets").is_some_and(lenient_bool);
    if let Some(m) = num("counterMax")? {
        opts.counter_max = m;
    }
    if let Some(r) = num("resetValue")? {
        opts.reset_value = r;
    }
    Ok(opts)
}

/// What is cut from each result of a sub-query (spec 9.14).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Trim {
    pub(crate) dp_value: Option<(CmpOp, f64)>,
    pub(crate) offset: usize,
    /// 0: no limit.
    pub(crate) limit: usize,
}

impl Trim {
    pub(crate) fn apply(&self, points: &mut Vec<(i64, FieldValue)>) {
        if let Some((op, threshold)) = self.dp_value {
            points.retain(|(_, v)| v.as_f64().is_some_and(|x| op.holds(x, threshold)));
        }
        points.drain(..self.offset.min(points.len()));
        if self.limit > 0 {
            points.truncate(self.limit);
        }
    }
}

/// `<op><number>` of `dpValue` / `preDpValue` (spec 9.14).
pub(super) fn value_condition(
    v: Option<&Value>,
    name: &str,
) -> Result<Option<(CmpOp, f64)>, OpenTsdbError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let text = v.as_str().unwrap_or_default().trim();
    let bad = || {
        OpenTsdbError::bad_request(format!(
            "Invalid {name}: {}",
            v.as_str().unwrap_or_default()
        ))
    };
    let (op, rest) = [
        (">=", CmpOp::Ge),
        ("<=", CmpOp::Le),
        ("!=", CmpOp::Ne),
        (">", CmpOp::Gt),
        ("<", CmpOp::Lt),
        ("=", CmpOp::Eq),
    ]
    .into_iter()
    .find_map(|(sym, op)| text.strip_prefix(sym).map(|r| (op, r.trim())))
    .ok_or_else(bad)?;
    let n: f64 = rest.parse().map_err(|_| bad())?;
    if !n.is_finite() {
        return Err(bad());
    }
    Ok(Some((op, n)))
}

/// A non-negative count (`limit`, `offset`).
pub(crate) fn count(v: Option<&Value>, name: &str) -> Result<usize, OpenTsdbError> {
    match v.filter(|v| !v.is_null()) {
        None => Ok(0),
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 0)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| OpenTsdbError::bad_request(format!("Invalid {name}: {v}"))),
    }
}
