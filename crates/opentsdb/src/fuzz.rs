//! Fuzz entry points of the OpenTSDB adapter (run by `fuzz/`, replayed by
//! `cargo test` through the test below): what a request's bytes go through
//! before the engine is called. None may panic.

use super::put::keys::{KeyCache, RequestKeys};
use super::put::{self, Checked, Limits, PutParams};
use super::query::{Clock, from_json, from_query_string};
use super::telnet;
use jiff::tz::TimeZone;
use sundial_model::{FieldValue, ValueInput};

/// The default limits (spec 3.2).
const LIMITS: Limits = Limits {
    max_tags: 16,
    max_metric_bytes: 255,
    max_tagk_bytes: 255,
    max_tagv_bytes: 255,
};

/// `POST /api/put`: the first line is the query string, the rest the
/// body. Each element is checked alone, then twice as the handler does:
/// with a cold key cache (elements repeating the tags text before them
/// skip the tag checks) and with the keys the cold pass taught it. All
/// three must come to the same point or error. The reply is rendered,
/// failed points echoed.
pub fn put(data: &[u8]) {
    let (query, body) = sundial_api::fuzz::split_line(data);
    let Ok(params) = PutParams::parse(Some(&query)) else {
        return;
    };
    // Cutting the member objects out first changes nothing.
    assert_eq!(
        super::dto::parse_points(body, 100_000),
        super::dto::parse_whole_for_fuzzing(body, 100_000),
        "a put body parsed with its objects cut out differs"
    );
    let Ok(elements) = put::parse_body(body, 100_000) else {
        return;
    };
    let fresh: Vec<String> = elements
        .iter()
        .map(|e| summary(&put::check_point(e, LIMITS)))
        .collect();
    let cache = KeyCache::default();
    for pass in ["cold", "warm"] {
        let mut keys = RequestKeys::new(&cache, LIMITS);
        let cached = keys.lookup_all(&elements);
        for ((e, cached), fresh) in elements.iter().zip(cached).zip(&fresh) {
            let known = keys.known(e, cached);
            let checked =
                put::check_point_by(e, known, |metric, tags| keys.resolve(e, metric, tags));
            assert_eq!(
                &summary(&checked),
                fresh,
                "the {pass} key cache changed a point"
            );
        }
        keys.finish();
    }
    let failures = elements.iter().map(|e| match put::check_point(e, LIMITS) {
        Checked::Point { later_error, .. } => later_error,
        Checked::Failed(message) => Some(message),
    });
    let _ = put::reply(&params, failures, body, false);
}

fn summary(c: &Checked) -> String {
    match c {
        Checked::Point { point, later_error } => format!(
            "{:?} {} {} {:?} {later_error:?}",
            point.series, point.field, point.timestamp, point.value
        ),
        Checked::Failed(message) => message.clone(),
    }
}

/// Telnet lines as the listener splits them. A `put` that parses,
/// printed back as a line, parses to the same series and time (and the
/// same value when it is a Long).
pub fn telnet(data: &[u8]) {
    for raw in data.split(|b| *b == b'\n') {
        let line = String::from_utf8_lossy(raw.strip_suffix(b"\r").unwrap_or(raw));
        let _ = telnet::classify_line(&line, LIMITS);
        let words: Vec<&str> = line.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
        let Some((&"put", args)) = words.split_first() else {
            continue;
        };
        let Ok(point) = telnet::parse_put(args, LIMITS) else {
            continue;
        };
        let ts = point.timestamp;
        let time = if ts >= 10_000_000_000 {
            ts.to_string()
        } else {
            format!("{}.{:03}", ts / 1000, ts % 1000)
        };
        let value = match &point.value {
            ValueInput::Typed(FieldValue::Long(v)) => v.to_string(),
            _ => "1".into(),
        };
        let mut again = vec![point.series.metric.to_string(), time, value];
        again.extend(point.series.tags.iter().map(|(k, v)| format!("{k}={v}")));
        let again: Vec<&str> = again.iter().map(String::as_str).collect();
        match telnet::parse_put(&again, LIMITS) {
            Ok(p) => {
                assert_eq!((&p.series, p.timestamp), (&point.series, point.timestamp));
                if matches!(point.value, ValueInput::Typed(FieldValue::Long(_))) {
                    assert_eq!(p.value, point.value);
                }
            }
            Err(e) => panic!("{again:?} (printed from {line:?}) does not parse: {e}"),
        }
    }
}

/// What queries read times against: a fixed clock, UTC by default.
fn clock() -> Clock {
    Clock::new(1_500_000_000_000, TimeZone::UTC)
}

/// `GET /api/query?...`: the raw query string.
pub fn query_get(data: &[u8]) {
    let _ = from_query_string(&String::from_utf8_lossy(data), &clock());
}

/// `POST /api/query`: the JSON body.
pub fn query_post(data: &[u8]) {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = from_json(&json, &clock());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn corpus_and_regressions_replay() {
        sundial_codec::fuzz::replay("opentsdb_put", super::put);
        sundial_codec::fuzz::replay("opentsdb_telnet", super::telnet);
        sundial_codec::fuzz::replay("opentsdb_query_get", super::query_get);
        sundial_codec::fuzz::replay("opentsdb_query_post", super::query_post);
    }
}
