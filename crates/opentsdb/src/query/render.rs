//! Writes `/api/query` result objects (spec 9.13) straight into the body:
//! the bytes serde_json prints for the same objects (keys in insertion
//! order), without a map entry and a key string per point.

use super::value_json;
use serde_json::Value;
use sundial_model::{FieldValue, SeriesResult, Timestamp};

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Style {
    pub(super) ms: bool,
    pub(super) arrays: bool,
    pub(super) nan_as_null: bool,
}

/// What a result object carries besides its series.
pub(super) struct Extras<'a> {
    /// `showQuery`: the sub-query as the client sent it.
    pub(super) query: Option<&'a Value>,
    /// `showTSUIDs`.
    pub(super) tsuids: Option<Vec<String>>,
}

/// Appends `value` as JSON; a `Value` prints into a `Vec` without error.
fn put(buf: &mut Vec<u8>, value: &impl serde::Serialize) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *buf, value)
}

/// Appends one result object.
pub(super) fn result_into(
    buf: &mut Vec<u8>,
    r: &SeriesResult,
    style: Style,
    extras: Extras<'_>,
) -> serde_json::Result<()> {
    buf.extend_from_slice(b"{\"metric\":");
    put(buf, &r.metric)?;
    buf.extend_from_slice(b",\"tags\":{");
    for (i, (k, v)) in r.tags.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        put(buf, k)?;
        buf.push(b':');
        put(buf, v)?;
    }
    buf.extend_from_slice(b"},\"aggregateTags\":");
    put(buf, &r.aggregated_tags)?;
    buf.extend_from_slice(b",\"dps\":");
    if style.arrays {
        dps_pairs(buf, &r.points, style)?;
    } else {
        dps_object(buf, &r.points, style)?;
    }
    if let Some(q) = extras.query {
        buf.extend_from_slice(b",\"query\":");
        put(buf, q)?;
    }
    if let Some(t) = extras.tsuids {
        buf.extend_from_slice(b",\"tsuids\":");
        put(buf, &t)?;
    }
    buf.push(b'}');
    Ok(())
}

fn point_value(v: &FieldValue, style: Style) -> Value {
    match v {
        FieldValue::Double(f) if f.is_nan() && style.nan_as_null => Value::Null,
        v => value_json(v),
    }
}

fn stamp(ts: Timestamp, style: Style) -> Timestamp {
    if style.ms { ts } else { ts.div_euclid(1000) }
}

/// `[[t, v], ...]`, every point.
fn dps_pairs(
    buf: &mut Vec<u8>,
    points: &[(Timestamp, FieldValue)],
    style: Style,
) -> serde_json::Result<()> {
    buf.push(b'[');
    for (i, (ts, v)) in points.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.push(b'[');
        put(buf, &stamp(*ts, style))?;
        buf.push(b',');
        put(buf, &point_value(v, style))?;
        buf.push(b']');
    }
    buf.push(b']');
    Ok(())
}

/// `{"t": v, ...}`; within one second the later point wins (spec 4.4),
/// in the place of the first, as a JSON object keeps it.
fn dps_object(
    buf: &mut Vec<u8>,
    points: &[(Timestamp, FieldValue)],
    style: Style,
) -> serde_json::Result<()> {
    buf.push(b'{');
    let mut first = true;
    let mut points = points.iter().peekable();
    while let Some((ts, v)) = points.next() {
        let t = stamp(*ts, style);
        let mut value = v;
        // Points are ascending, so one second's points are adjacent.
        while let Some((_, later)) = points.next_if(|(u, _)| stamp(*u, style) == t) {
            value = later;
        }
        if !first {
            buf.push(b',');
        }
        first = false;
        buf.push(b'"');
        put(buf, &t)?;
        buf.extend_from_slice(b"\":");
        put(buf, &point_value(value, style))?;
    }
    buf.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    /// The object as a `serde_json::Value` prints it: the reference the
    /// direct writer must match byte for byte.
    fn reference(r: &SeriesResult, style: Style, extras: &Extras<'_>) -> String {
        let mut dps = Map::new();
        let mut pairs = Vec::new();
        for (ts, v) in &r.points {
            let t = stamp(*ts, style);
            if style.arrays {
                pairs.push(json!([t, point_value(v, style)]));
            } else {
                dps.insert(t.to_string(), point_value(v, style));
            }
        }
        let tags: Map<String, Value> = r.tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let mut obj = Map::new();
        obj.insert("metric".into(), json!(r.metric));
        obj.insert("tags".into(), Value::Object(tags));
        obj.insert("aggregateTags".into(), json!(r.aggregated_tags));
        let dps = if style.arrays {
            Value::Array(pairs)
        } else {
            Value::Object(dps)
        };
        obj.insert("dps".into(), dps);
        if let Some(q) = extras.query {
            obj.insert("query".into(), q.clone());
        }
        if let Some(t) = &extras.tsuids {
            obj.insert("tsuids".into(), json!(t));
        }
        Value::Object(obj).to_string()
    }

    #[test]
    fn prints_what_serde_json_prints() -> serde_json::Result<()> {
        let points = vec![
            (-1_500, FieldValue::Long(-3)),
            (999, FieldValue::Double(0.1)),
            (1_000, FieldValue::Double(f64::NAN)),
            (1_200, FieldValue::Double(1e21)),
            (1_700, FieldValue::Double(f64::NEG_INFINITY)),
            (5_000, FieldValue::String("a \"b\"\n".into())),
            (6_000, FieldValue::Bool(true)),
            (7_001, FieldValue::Long(i64::MAX)),
        ];
        let r = SeriesResult {
            metric: "sys.cpu \u{e9}".into(),
            tags: vec![
                ("host".into(), "web\"01".into()),
                ("dc".into(), "\u{1F600}".into()),
            ],
            aggregated_tags: vec!["rack".into()],
            points,
            series: Vec::new(),
            raw_points: 8,
        };
        let query = json!({"aggregator": "sum", "index": 0});
        for ms in [false, true] {
            for arrays in [false, true] {
                for nan_as_null in [false, true] {
                    for with_extras in [false, true] {
                        let style = Style {
                            ms,
                            arrays,
                            nan_as_null,
                        };
                        let extras = || Extras {
                            query: with_extras.then_some(&query),
                            tsuids: with_extras.then(|| vec!["000001000001000001".to_owned()]),
                        };
                        let mut buf = Vec::new();
                        result_into(&mut buf, &r, style, extras())?;
                        assert_eq!(
                            String::from_utf8_lossy(&buf),
                            reference(&r, style, &extras()),
                            "{style:?} extras={with_extras}"
                        );
                    }
                }
            }
        }
        Ok(())
    }
}
