//! `/api/query` result objects (spec 9.13) serialized straight from the
//! results: what serde_json prints for the same objects built as `Value`s
//! (keys in insertion order), without a map entry and a key string per
//! point.

use super::value_json;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
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

/// One result object as serde sees it.
pub(super) struct ResultObject<'a> {
    pub(super) result: SeriesResult,
    pub(super) style: Style,
    pub(super) extras: Extras<'a>,
}

impl Serialize for ResultObject<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = &self.result;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("metric", &r.metric)?;
        m.serialize_entry("tags", &TagsObject(&r.tags))?;
        m.serialize_entry("aggregateTags", &r.aggregated_tags)?;
        let dps = Dps {
            points: &r.points,
            style: self.style,
        };
        if self.style.arrays {
            m.serialize_entry("dps", &DpsPairs(dps))?;
        } else {
            m.serialize_entry("dps", &dps)?;
        }
        if let Some(q) = self.extras.query {
            m.serialize_entry("query", q)?;
        }
        if let Some(t) = &self.extras.tsuids {
            m.serialize_entry("tsuids", t)?;
        }
        m.end()
    }
}

/// The response body: the result objects, then `statsSummary` when asked
/// for.
pub(super) struct Body<'a> {
    pub(super) objects: Vec<ResultObject<'a>>,
    pub(super) summary: Option<Value>,
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for o in &self.objects {
            seq.serialize_element(o)?;
        }
        if let Some(summary) = &self.summary {
            seq.serialize_element(summary)?;
        }
        seq.end()
    }
}

/// `{"k": "v", ...}`.
struct TagsObject<'a>(&'a [(sundial_model::Name, sundial_model::Name)]);

impl Serialize for TagsObject<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
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

/// `{"t": v, ...}`; within one second the later point wins (spec 4.4), in
/// the place of the first, as a JSON object keeps it.
#[derive(Clone, Copy)]
struct Dps<'a> {
    points: &'a [(Timestamp, FieldValue)],
    style: Style,
}

impl Serialize for Dps<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let style = self.style;
        let mut m = s.serialize_map(None)?;
        let mut points = self.points.iter().peekable();
        while let Some((ts, v)) = points.next() {
            let t = stamp(*ts, style);
            let mut value = v;
            // Points are ascending, so one second's points are adjacent.
            while let Some((_, later)) = points.next_if(|(u, _)| stamp(*u, style) == t) {
                value = later;
            }
            // serde_json prints an integer key as a string.
            m.serialize_entry(&t, &point_value(value, style))?;
        }
        m.end()
    }
}

/// `[[t, v], ...]`, every point (the `arrays` form).
struct DpsPairs<'a>(Dps<'a>);

impl Serialize for DpsPairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let style = self.0.style;
        s.collect_seq(
            self.0
                .points
                .iter()
                .map(|(ts, v)| (stamp(*ts, style), point_value(v, style))),
        )
    }
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
        let tags: Map<String, Value> = r
            .tags
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
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
                        let object = ResultObject {
                            result: r.clone(),
                            style,
                            extras: extras(),
                        };
                        assert_eq!(
                            serde_json::to_string(&object)?,
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
