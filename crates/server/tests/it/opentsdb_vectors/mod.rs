//! The spec's test vectors of groups Q and M (spec 22.3, 22.4): fixtures
//! F1–F5 written to one fresh server, the read-only vectors TV-Q01..TV-Q28,
//! then TV-M01..TV-M05 in order on the same server. Expected values are
//! computed from the fixtures where that is simple (a small model of the
//! grouping and LERP aggregation of spec 9.10); the spec's literals are used
//! for the rest.

use crate::harness::{TestServer, json, point};
use anyhow::{Result, bail};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

mod meta;
mod mutations;
mod queries;

use meta::{
    q22_query_last, q23_suggest, q24_lookup, q25_to_q28_aggregators_filters_dump_meta_routing,
};
use mutations::{
    m01_uid_assign, m02_delete_data, m03_mput_mquery, m04_delete_meta, m05_delete_query_disabled,
};
use queries::{
    q13_to_q18_downsample_rate_resolution, q19_q20_explicit_tags_and_show_query, q21_query_errors,
};

const T0: i64 = 1_500_000_000;
/// The default query window of 22.3: `[T0, END]`.
const END: i64 = T0 + 120;

/// A fixture value: Long or Double (the JSON kind matters in results).
#[derive(Clone, Copy, Debug)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn int(self) -> Option<i64> {
        match self {
            Num::I(i) => Some(i),
            Num::F(_) => None,
        }
    }

    fn float(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }

    fn json(self) -> Value {
        match self {
            Num::I(i) => json!(i),
            Num::F(f) => json!(f),
        }
    }
}

type Tags = &'static [(&'static str, &'static str)];
type Points = &'static [(i64, Num)];

/// One fixture series.
struct Series {
    metric: &'static str,
    tags: Tags,
    points: Points,
}

// F1: series A, B, C.
const A: Series = Series {
    metric: "sys.cpu.user",
    tags: &[("host", "web01"), ("dc", "lga")],
    points: &[
        (T0, Num::I(10)),
        (T0 + 60, Num::I(20)),
        (T0 + 120, Num::I(30)),
    ],
};
const B: Series = Series {
    metric: "sys.cpu.user",
    tags: &[("host", "web02"), ("dc", "lga")],
    points: &[(T0 + 30, Num::I(5)), (T0 + 90, Num::I(15))],
};
const C: Series = Series {
    metric: "sys.cpu.user",
    tags: &[("host", "web03"), ("dc", "sjc")],
    points: &[(T0, Num::F(1.5))],
};
// F2.
const NET: Series = Series {
    metric: "net.bytes",
    tags: &[("host", "web01")],
    points: &[
        (T0, Num::I(100)),
        (T0 + 10, Num::I(200)),
        (T0 + 20, Num::I(50)),
    ],
};
// F3 (millisecond timestamps).
const LATENCY: Series = Series {
    metric: "app.latency",
    tags: &[("host", "a")],
    points: &[(T0 * 1000 + 123, Num::I(7)), (T0 * 1000 + 456, Num::I(9))],
};
// F4.
const PCT: Series = Series {
    metric: "pct.test",
    tags: &[("host", "a")],
    points: &[
        (T0, Num::I(10)),
        (T0 + 10, Num::I(20)),
        (T0 + 20, Num::I(30)),
        (T0 + 30, Num::I(40)),
    ],
};
// F5.
const LERP_A: Series = Series {
    metric: "doc.lerp",
    tags: &[("host", "a")],
    points: &[
        (T0 + 10, Num::I(5)),
        (T0 + 30, Num::I(15)),
        (T0 + 50, Num::I(5)),
    ],
};
const LERP_B: Series = Series {
    metric: "doc.lerp",
    tags: &[("host", "b")],
    points: &[
        (T0, Num::I(10)),
        (T0 + 20, Num::I(20)),
        (T0 + 40, Num::I(10)),
        (T0 + 60, Num::I(20)),
    ],
};

/// F1–F5, one `POST /api/put` each, in this order.
const FIXTURES: &[&[Series]] = &[&[A, B, C], &[NET], &[LATENCY], &[PCT], &[LERP_A, LERP_B]];

/// The spec's TSUIDs (22.3) of the series that vectors show them for.
const TSUID_A: &str = "000001000001000001000002000002";
const TSUID_B: &str = "000001000001000001000002000003";
const TSUID_C: &str = "000001000001000004000002000005";
const TSUID_NET: &str = "000002000002000002";

fn all_series() -> impl Iterator<Item = &'static Series> {
    FIXTURES.iter().flat_map(|f| f.iter())
}

fn tag_map(tags: Tags) -> Value {
    let sorted: BTreeMap<&str, &str> = tags.iter().copied().collect();
    json!(sorted)
}

fn write_fixtures(s: &TestServer) -> Result<()> {
    for fixture in FIXTURES {
        let body: Vec<Value> = fixture
            .iter()
            .flat_map(|series| {
                series
                    .points
                    .iter()
                    .map(|(t, v)| point(series.metric, *t, v.json(), series.tags))
            })
            .collect();
        let (status, text) = s.post("/api/put", &Value::Array(body).to_string())?;
        assert_eq!(status, 204, "{text}");
        assert_eq!(text, "");
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Agg {
    Sum,
    Avg,
}

/// The value one series contributes at `t` (spec 9.10, LERP): `None` when
/// it does not take part; else the Long value if the point and any
/// interpolation neighbours are Longs, and the Double value.
fn contribution(points: &[(i64, Num)], t: i64) -> Option<(Option<i64>, f64)> {
    if let Some((_, v)) = points.iter().find(|p| p.0 == t) {
        return Some((v.int(), v.float()));
    }
    let &(t0, y0) = points.iter().rev().find(|p| p.0 < t)?;
    let &(t1, y1) = points.iter().find(|p| p.0 > t)?;
    let int = match (y0, y1) {
        (Num::I(a), Num::I(b)) => Some(a + ((t - t0) * (b - a)) / (t1 - t0)),
        _ => None,
    };
    let float = y0.float() + (t - t0) as f64 * (y1.float() - y0.float()) / (t1 - t0) as f64;
    Some((int, float))
}

/// Aggregates a group of series across the union of their timestamps.
fn aggregate(group: &[&[(i64, Num)]], agg: Agg) -> Map<String, Value> {
    let times: BTreeSet<i64> = group.iter().flat_map(|s| s.iter().map(|p| p.0)).collect();
    let mut dps = Map::new();
    for t in times {
        let parts: Vec<(Option<i64>, f64)> =
            group.iter().filter_map(|s| contribution(s, t)).collect();
        if parts.is_empty() {
            continue;
        }
        let n = parts.len();
        let ints: Option<Vec<i64>> = parts.iter().map(|p| p.0).collect();
        let value = match (ints, agg) {
            (Some(v), Agg::Sum) => json!(v.iter().sum::<i64>()),
            (Some(v), Agg::Avg) => json!(v.iter().sum::<i64>() / n as i64),
            (None, Agg::Sum) => json!(parts.iter().map(|p| p.1).sum::<f64>()),
            (None, Agg::Avg) => json!(parts.iter().map(|p| p.1).sum::<f64>() / n as f64),
        };
        dps.insert(t.to_string(), value);
    }
    dps
}

/// One result object: tags that agree across the group, the others as
/// `aggregateTags` (spec 9.13).
fn result(group: &[&Series], dps: Map<String, Value>) -> Value {
    let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut metric = "";
    for s in group {
        metric = s.metric;
        for (k, v) in s.tags {
            values.entry(*k).or_default().insert(*v);
        }
    }
    let mut tags = Map::new();
    let mut aggregated = Vec::new();
    for (k, vs) in values {
        match (vs.len(), vs.first()) {
            (1, Some(v)) => {
                tags.insert(k.to_owned(), json!(v));
            }
            _ => aggregated.push(k),
        }
    }
    json!({"metric": metric, "tags": tags, "aggregateTags": aggregated, "dps": dps})
}

/// The result of aggregating `group` with `agg` over its raw points.
fn grouped(group: &[&Series], agg: Agg) -> Value {
    let points: Vec<&[(i64, Num)]> = group.iter().map(|s| s.points).collect();
    result(group, aggregate(&points, agg))
}

/// Per-series `1m-avg` downsampling: one Double per minute bucket.
fn downsample_avg_1m(points: &[(i64, Num)]) -> Vec<(i64, Num)> {
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (t, v) in points {
        buckets
            .entry(t - t.rem_euclid(60))
            .or_default()
            .push(v.float());
    }
    buckets
        .into_iter()
        .map(|(b, vs)| (b, Num::F(vs.iter().sum::<f64>() / vs.len() as f64)))
        .collect()
}

/// A POST `/api/query` body: the default window and one sub-query.
fn window(sub: Value) -> Value {
    json!({"start": T0, "end": END, "queries": [sub]})
}

fn post_json(s: &TestServer, path: &str, body: &Value) -> Result<(u16, Value)> {
    let (status, text) = s.post(path, &body.to_string())?;
    Ok((status, json(&text)?))
}

/// POST `/api/query` that must answer 200.
fn query(s: &TestServer, body: &Value) -> Result<Value> {
    let (status, got) = post_json(s, "/api/query", body)?;
    if status != 200 {
        bail!("POST /api/query {body} answered {status}: {got}");
    }
    Ok(got)
}

/// Checks a `{"error":{"code":..,"message":..}}` answer.
fn assert_error(status: u16, got: &Value, code: u16, message: &str) {
    assert_eq!(status, code, "{got}");
    assert_eq!(got["error"]["code"], json!(code), "{got}");
    assert_eq!(got["error"]["message"], json!(message), "{got}");
}

/// `dps` of a single result of `body`, which must be the only result.
fn only_dps(s: &TestServer, body: &Value) -> Result<Value> {
    let got = query(s, body)?;
    assert_eq!(got.as_array().map(Vec::len), Some(1), "{body} -> {got}");
    Ok(got[0]["dps"].clone())
}

#[test]
fn q01_to_q28_then_m01_to_m05() -> Result<()> {
    let s = TestServer::spawn()?;
    write_fixtures(&s)?;
    q01_to_q12_grouping_and_filters(&s)?;
    q13_to_q18_downsample_rate_resolution(&s)?;
    q19_q20_explicit_tags_and_show_query(&s)?;
    q21_query_errors(&s)?;
    q22_query_last(&s)?;
    q23_suggest(&s)?;
    q24_lookup(&s)?;
    q25_to_q28_aggregators_filters_dump_meta_routing(&s)?;
    m01_uid_assign(&s)?;
    m02_delete_data(&s)?;
    m03_mput_mquery(&s)?;
    m04_delete_meta(&s)?;
    m05_delete_query_disabled(&s)?;
    Ok(())
}

fn q01_to_q12_grouping_and_filters(s: &TestServer) -> Result<()> {
    let sum_all = grouped(&[&A, &B, &C], Agg::Sum);
    // TV-Q01, also against the spec's literal.
    let got = query(
        s,
        &window(json!({"aggregator": "sum", "metric": "sys.cpu.user"})),
    )?;
    assert_eq!(got, json!([sum_all]));
    assert_eq!(
        got,
        json!([{"metric": "sys.cpu.user", "tags": {}, "aggregateTags": ["dc", "host"],
            "dps": {"1500000000": 11.5, "1500000030": 20, "1500000060": 30,
                "1500000090": 40, "1500000120": 30}}])
    );

    // TV-Q02: OpenTSDB's interpolation example; the spec pins 30 at +30.
    let mut body = window(json!({"aggregator": "sum", "metric": "doc.lerp"}));
    body["end"] = json!(T0 + 60);
    let got = query(s, &body)?;
    assert_eq!(got, json!([grouped(&[&LERP_A, &LERP_B], Agg::Sum)]));
    assert_eq!(
        got[0]["dps"],
        json!({"1500000000": 10, "1500000010": 20, "1500000020": 30, "1500000030": 30,
            "1500000040": 20, "1500000050": 20, "1500000060": 20})
    );

    // TV-Q03 and its GET form TV-Q04.
    let lga = json!([grouped(&[&A, &B], Agg::Sum)]);
    let got = query(
        s,
        &window(json!({"aggregator": "sum", "metric": "sys.cpu.user", "tags": {"dc": "lga"}})),
    )?;
    assert_eq!(got, lga);
    let got = s.get_json(&format!(
        "/api/query?start={T0}&end={END}&m=sum:sys.cpu.user%7Bdc%3Dlga%7D"
    ))?;
    assert_eq!(got, lga);

    // TV-Q05, TV-Q06, TV-Q07: one result per host.
    let per_host = json!([
        grouped(&[&A], Agg::Sum),
        grouped(&[&B], Agg::Sum),
        grouped(&[&C], Agg::Sum)
    ]);
    for sub in [
        json!({"aggregator": "sum", "metric": "sys.cpu.user", "filters": [
            {"type": "wildcard", "tagk": "host", "filter": "*", "groupBy": true}]}),
        json!({"aggregator": "none", "metric": "sys.cpu.user"}),
        json!({"aggregator": "sum", "metric": "sys.cpu.user", "tags": {"host": "WEB0*"}}),
    ] {
        assert_eq!(query(s, &window(sub.clone()))?, per_host, "{sub}");
    }

    // TV-Q08..TV-Q11: filters without group-by.
    let filtered = |filter: Value| {
        window(json!({"aggregator": "sum", "metric": "sys.cpu.user", "filters": [filter]}))
    };
    let cases: [(Value, &[&Series]); 4] = [
        (
            json!({"type": "literal_or", "tagk": "host", "filter": "web01|web03", "groupBy": false}),
            &[&A, &C],
        ),
        (
            json!({"type": "not_literal_or", "tagk": "host", "filter": "web01"}),
            &[&B, &C],
        ),
        (
            json!({"type": "regexp", "tagk": "host", "filter": "web0[12]"}),
            &[&A, &B],
        ),
        (
            json!({"type": "iliteral_or", "tagk": "host", "filter": "WEB01"}),
            &[&A],
        ),
    ];
    for (filter, group) in cases {
        let got = query(s, &filtered(filter.clone()))?;
        assert_eq!(got, json!([grouped(group, Agg::Sum)]), "{filter}");
    }

    // TV-Q12: avg, integer path truncating where all values are Longs.
    let got = query(
        s,
        &window(json!({"aggregator": "avg", "metric": "sys.cpu.user"})),
    )?;
    assert_eq!(got, json!([grouped(&[&A, &B, &C], Agg::Avg)]));
    assert_eq!(
        got[0]["dps"],
        json!({"1500000000": 5.75, "1500000030": 10, "1500000060": 15,
            "1500000090": 20, "1500000120": 30})
    );
    Ok(())
}
