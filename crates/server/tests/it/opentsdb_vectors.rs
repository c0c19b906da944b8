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

fn q13_to_q18_downsample_rate_resolution(s: &TestServer) -> Result<()> {
    // TV-Q13: 1m-avg per series, then the sum across series; all Doubles.
    let down: Vec<Vec<(i64, Num)>> = [&A, &B, &C]
        .iter()
        .map(|x| downsample_avg_1m(x.points))
        .collect();
    let down: Vec<&[(i64, Num)]> = down.iter().map(Vec::as_slice).collect();
    let got = query(
        s,
        &window(json!({"aggregator": "sum", "metric": "sys.cpu.user", "downsample": "1m-avg"})),
    )?;
    assert_eq!(
        got,
        json!([result(&[&A, &B, &C], aggregate(&down, Agg::Sum))])
    );
    assert_eq!(
        got[0]["dps"],
        json!({"1500000000": 16.5, "1500000060": 35.0, "1500000120": 30.0})
    );

    // TV-Q14: 1m-sum of B with each fill policy, up to +240.
    let end14 = T0 + 240;
    let mut b_minutes = Map::new();
    for (t, v) in B.points {
        b_minutes.insert((t - t.rem_euclid(60)).to_string(), json!(v.float()));
    }
    for (fill, empty) in [
        ("", None),
        ("-nan", Some(json!("NaN"))),
        ("-null", Some(Value::Null)),
        ("-zero", Some(json!(0.0))),
    ] {
        let mut dps = b_minutes.clone();
        if let Some(empty) = empty {
            for b in (T0..=end14).step_by(60) {
                dps.entry(b.to_string()).or_insert_with(|| empty.clone());
            }
        }
        let mut body = window(json!({"aggregator": "sum", "metric": "sys.cpu.user",
            "downsample": format!("1m-sum{fill}"),
            "filters": [{"type": "literal_or", "tagk": "host", "filter": "web02"}]}));
        body["end"] = json!(end14);
        let got = query(s, &body)?;
        assert_eq!(got, json!([result(&[&B], dps)]), "1m-sum{fill}");
    }

    // TV-Q15: per-second rate of A.
    let rate: Map<String, Value> = A
        .points
        .windows(2)
        .map(|w| {
            let rate = (w[1].1.float() - w[0].1.float()) / (w[1].0 - w[0].0) as f64;
            (w[1].0.to_string(), json!(rate))
        })
        .collect();
    let got = query(
        s,
        &window(
            json!({"aggregator": "sum", "metric": "sys.cpu.user", "rate": true,
            "filters": [{"type": "literal_or", "tagk": "host", "filter": "web01"}]}),
        ),
    )?;
    assert_eq!(got, json!([result(&[&A], rate)]));
    assert_eq!(
        got[0]["dps"],
        json!({"1500000060": 0.16666666666666666, "1500000120": 0.16666666666666666})
    );

    // TV-Q16: counter options on net.bytes (100, 200, 50 every 10 s).
    for (options, dps) in [
        (None, json!({"1500000010": 10.0, "1500000020": -15.0})),
        (
            Some(json!({"counter": true, "counterMax": 255})),
            json!({"1500000010": 10.0, "1500000020": 10.5}),
        ),
        (
            Some(json!({"counter": true, "counterMax": 255, "dropResets": true})),
            json!({"1500000010": 10.0}),
        ),
        (
            Some(json!({"counter": true, "counterMax": 255, "resetValue": 10})),
            json!({"1500000010": 10.0, "1500000020": 0.0}),
        ),
    ] {
        let mut sub = json!({"aggregator": "sum", "metric": "net.bytes", "rate": true});
        if let Some(o) = &options {
            sub["rateOptions"] = o.clone();
        }
        let mut body = window(sub);
        body["end"] = json!(T0 + 20);
        let mut expected = result(&[&NET], Map::new());
        expected["dps"] = dps;
        assert_eq!(query(s, &body)?, json!([expected]), "{options:?}");
    }

    // TV-Q17: millisecond points, with and without msResolution.
    let mut body = window(json!({"aggregator": "none", "metric": "app.latency"}));
    body["end"] = json!(T0 + 1);
    let ms: Map<String, Value> = LATENCY
        .points
        .iter()
        .map(|(t, v)| (t.to_string(), v.json()))
        .collect();
    let mut seconds = Map::new();
    for (t, v) in LATENCY.points {
        // Several points in one second: the latest one shows.
        seconds.insert((t / 1000).to_string(), v.json());
    }
    let mut with_ms = body.clone();
    with_ms["msResolution"] = json!(true);
    assert_eq!(query(s, &with_ms)?, json!([result(&[&LATENCY], ms)]));
    assert_eq!(query(s, &body)?, json!([result(&[&LATENCY], seconds)]));

    // TV-Q18: whole-window and 20 s buckets on pct.test (10, 20, 30, 40).
    let values: Vec<f64> = PCT.points.iter().map(|p| p.1.float()).collect();
    let sum: f64 = values.iter().sum();
    let max_of = |lo: i64, hi: i64| {
        PCT.points
            .iter()
            .filter(|p| (lo..hi).contains(&p.0))
            .map(|p| p.1.float())
            .fold(f64::MIN, f64::max)
    };
    for (spec, dps) in [
        ("0all-sum", json!({"1500000000": sum})),
        ("0all-count", json!({"1500000000": values.len() as f64})),
        ("0all-p50", json!({"1500000000": 25.0})),
        ("0all-ep50r3", json!({"1500000000": 20.0})),
        ("0all-ep50r7", json!({"1500000000": 25.0})),
        ("0all-p90", json!({"1500000000": 40.0})),
        (
            "20s-max",
            json!({"1500000000": max_of(T0, T0 + 20), "1500000020": max_of(T0 + 20, T0 + 40)}),
        ),
    ] {
        let mut body =
            window(json!({"aggregator": "sum", "metric": "pct.test", "downsample": spec}));
        body["end"] = json!(T0 + 30);
        assert_eq!(only_dps(s, &body)?, dps, "{spec}");
    }
    Ok(())
}

fn q19_q20_explicit_tags_and_show_query(s: &TestServer) -> Result<()> {
    // TV-Q19: explicitTags needs every tag key of a series to be filtered.
    let host = json!({"type": "wildcard", "tagk": "host", "filter": "*"});
    let dc = json!({"type": "wildcard", "tagk": "dc", "filter": "*"});
    let sub = |filters: Value| {
        window(json!({"aggregator": "sum", "metric": "sys.cpu.user",
            "explicitTags": true, "filters": filters}))
    };
    assert_eq!(query(s, &sub(json!([host])))?, json!([]));
    assert_eq!(
        query(s, &sub(json!([host, dc])))?,
        json!([grouped(&[&A, &B, &C], Agg::Sum)])
    );

    // TV-Q20: arrays and showQuery.
    let mut body =
        window(json!({"aggregator": "sum", "metric": "sys.cpu.user", "tags": {"dc": "lga"}}));
    body["showQuery"] = json!(true);
    let (status, mut got) = post_json(s, "/api/query?arrays", &body)?;
    assert_eq!(status, 200, "{got}");
    let shown = got[0]
        .as_object_mut()
        .and_then(|r| r.remove("query"))
        .unwrap_or(Value::Null);
    let mut expected = grouped(&[&A, &B], Agg::Sum);
    let pairs: Vec<Value> = expected["dps"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(t, v)| Ok(json!([t.parse::<i64>()?, v])))
        .collect::<Result<_>>()?;
    expected["dps"] = Value::Array(pairs);
    assert_eq!(got, json!([expected]));
    assert_eq!(
        got[0]["dps"],
        json!([
            [1_500_000_000i64, 10],
            [1_500_000_030i64, 20],
            [1_500_000_060i64, 30],
            [1_500_000_090i64, 40],
            [1_500_000_120i64, 30]
        ])
    );
    for (member, value) in [
        ("index", json!(0)),
        ("aggregator", json!("sum")),
        ("metric", json!("sys.cpu.user")),
        ("downsample", Value::Null),
        ("rate", json!(false)),
        (
            "filters",
            json!([{"tagk": "dc", "filter": "lga", "group_by": true, "type": "literal_or"}]),
        ),
    ] {
        assert_eq!(shown.get(member), Some(&value), "query.{member} in {shown}");
    }
    Ok(())
}

fn q21_query_errors(s: &TestServer) -> Result<()> {
    let base = window(json!({"aggregator": "sum", "metric": "sys.cpu.user"}));
    let sub_change = |member: &str, value: Value| {
        let mut b = base.clone();
        b["queries"][0][member] = value;
        b
    };
    let top_change = |changes: &[(&str, Value)]| {
        let mut b = base.clone();
        for (k, v) in changes {
            b[*k] = v.clone();
        }
        b
    };
    let mut no_start = base.clone();
    if let Some(o) = no_start.as_object_mut() {
        o.remove("start");
    }
    let cases = [
        (
            "Q21a",
            sub_change("aggregator", json!("foo")),
            "No such aggregation function: foo",
        ),
        (
            "Q21b",
            sub_change("downsample", json!("1m")),
            "Invalid downsampling specifier '1m': must provide at least interval and function",
        ),
        (
            "Q21c",
            sub_change("downsample", json!("1m-avg-bogus")),
            "No such fill policy: 'bogus': must be one of: none zero nan null",
        ),
        (
            "Q21d",
            sub_change("downsample", json!("1m-none")),
            "cannot use the NONE aggregator for downsampling",
        ),
        (
            "Q21e",
            sub_change("metric", json!("no.such.metric")),
            "No such name for 'metrics': 'no.such.metric'",
        ),
        (
            "Q21f",
            top_change(&[("start", json!(T0 + 100)), ("end", json!(T0))]),
            "End time [1500000000000] must be greater than or equal to the start time [1500000100000]",
        ),
        (
            "Q21g",
            top_change(&[("start", json!(1000))]),
            "Invalid timestamp: 1000",
        ),
        ("Q21h", no_start, "Missing start time"),
        (
            "Q21i",
            top_change(&[("start", json!("1x-ago"))]),
            "Invalid duration (suffix): 1x",
        ),
        (
            "Q21j",
            sub_change(
                "filters",
                json!([{"type": "bogus", "tagk": "host", "filter": "x"}]),
            ),
            "Could not find a tag value filter of the type: bogus",
        ),
        (
            "Q21k",
            sub_change(
                "filters",
                json!([{"type": "wildcard", "tagk": "host", "filter": "web01"}]),
            ),
            "Filter must contain an asterisk",
        ),
        (
            "Q21l",
            top_change(&[("queries", json!([]))]),
            "Missing queries",
        ),
    ];
    for (name, body, message) in cases {
        let (status, got) = post_json(s, "/api/query", &body)?;
        assert_eq!(status, 400, "TV-{name}: {got}");
        assert_eq!(got["error"]["code"], json!(400), "TV-{name}: {got}");
        assert_eq!(got["error"]["message"], json!(message), "TV-{name}: {got}");
    }
    Ok(())
}

/// A `/api/query/last` entry for the latest point of `series` at or before
/// `until` (seconds).
fn last_entry(series: &Series, tsuid: &str, until: i64) -> Value {
    let latest = series
        .points
        .iter()
        .filter(|p| p.0 <= until)
        .max_by_key(|p| p.0);
    match latest {
        Some((t, v)) => json!({"metric": series.metric, "timestamp": t * 1000,
            "value": v.json().to_string(), "tags": tag_map(series.tags), "tsuid": tsuid}),
        None => Value::Null,
    }
}

fn q22_query_last(s: &TestServer) -> Result<()> {
    let lga = json!({"queries": [{"metric": "sys.cpu.user", "tags": {"dc": "lga"}}]});
    let (status, got) = post_json(s, "/api/query/last", &lga)?;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got,
        json!([last_entry(&A, TSUID_A, END), last_entry(&B, TSUID_B, END)])
    );
    assert_eq!(got[0]["value"], json!("30"));

    let mut at = lga.clone();
    at["timestamp"] = json!(T0 + 100);
    let (_, got) = post_json(s, "/api/query/last", &at)?;
    assert_eq!(
        got,
        json!([
            last_entry(&A, TSUID_A, T0 + 100),
            last_entry(&B, TSUID_B, T0 + 100)
        ])
    );
    assert_eq!(got[0]["timestamp"], json!(1_500_000_060_000i64));
    assert_eq!(got[0]["value"], json!("20"));

    let mut back = lga.clone();
    back["backScan"] = json!(24);
    let (status, got) = post_json(s, "/api/query/last", &back)?;
    assert_eq!((status, got), (200, json!([])));

    let (_, got) = post_json(
        s,
        "/api/query/last",
        &json!({"queries": [{"metric": "sys.cpu.user", "tags": {"host": "web03"}}]}),
    )?;
    assert_eq!(got, json!([last_entry(&C, TSUID_C, END)]));
    assert_eq!(got[0]["value"], json!("1.5"));
    Ok(())
}

fn q23_suggest(s: &TestServer) -> Result<()> {
    let metrics: BTreeSet<&str> = all_series().map(|x| x.metric).collect();
    let tagk: BTreeSet<&str> = all_series()
        .flat_map(|x| x.tags.iter().map(|t| t.0))
        .collect();
    let tagv: BTreeSet<&str> = all_series()
        .flat_map(|x| x.tags.iter().map(|t| t.1))
        .collect();
    let starting = |set: &BTreeSet<&str>, prefix: &str, max: usize| -> Value {
        json!(
            set.iter()
                .filter(|n| n.starts_with(prefix))
                .take(max)
                .collect::<Vec<_>>()
        )
    };
    assert_eq!(s.get_json("/api/suggest?type=metrics")?, json!(metrics));
    assert_eq!(
        s.get_json("/api/suggest?type=metrics")?,
        json!([
            "app.latency",
            "doc.lerp",
            "net.bytes",
            "pct.test",
            "sys.cpu.user"
        ])
    );
    assert_eq!(
        s.get_json("/api/suggest?type=metrics&q=sys")?,
        starting(&metrics, "sys", 25)
    );
    assert_eq!(s.get_json("/api/suggest?type=tagk")?, json!(tagk));
    assert_eq!(
        s.get_json("/api/suggest?type=tagv&q=web&max=2")?,
        starting(&tagv, "web", 2)
    );
    let (status, got) = post_json(s, "/api/suggest", &json!({"type": "tagv", "q": "s"}))?;
    assert_eq!((status, got), (200, starting(&tagv, "s", 25)));
    for (path, message) in [
        ("/api/suggest", "Missing parameter <code>type</code>"),
        ("/api/suggest?type=foo", "Invalid 'type' parameter:foo"),
        (
            "/api/suggest?type=metrics&max=ten",
            "Unable to parse 'max' as a number",
        ),
    ] {
        let (status, text) = s.get(path)?;
        assert_error(status, &json(&text)?, 400, message);
    }
    Ok(())
}

fn lookup_result(series: &Series, tsuid: &str) -> Value {
    json!({"tags": tag_map(series.tags), "metric": series.metric, "tsuid": tsuid})
}

/// GET lookup with the `time` member (any value) checked and removed.
fn lookup(s: &TestServer, query: &str) -> Result<Value> {
    let mut got = s.get_json(&format!("/api/search/lookup?{query}"))?;
    let time = got.as_object_mut().and_then(|o| o.remove("time"));
    assert!(
        time.as_ref().is_some_and(Value::is_u64),
        "lookup time: {time:?}"
    );
    Ok(got)
}

fn q24_lookup(s: &TestServer) -> Result<()> {
    let got = lookup(s, "m=sys.cpu.user%7Bhost=*%7D&limit=10")?;
    assert_eq!(
        got,
        json!({"type": "LOOKUP", "metric": "sys.cpu.user", "tags": [{"key": "host", "value": "*"}],
            "limit": 10, "results": [lookup_result(&A, TSUID_A), lookup_result(&B, TSUID_B),
                lookup_result(&C, TSUID_C)],
            "startIndex": 0, "totalResults": 3})
    );

    let got = lookup(s, "m=%7Bhost=web01%7D")?;
    assert_eq!(got["metric"], json!("*"));
    assert_eq!(got["totalResults"], json!(2));
    assert_eq!(
        got["results"],
        json!([lookup_result(&NET, TSUID_NET), lookup_result(&A, TSUID_A)])
    );

    let got = lookup(s, "m=sys.cpu.user%7Bhost=*%7D&limit=1")?;
    assert_eq!(got["results"], json!([lookup_result(&A, TSUID_A)]));
    assert_eq!(got["totalResults"], json!(3));

    let (status, text) = s.get("/api/search/lookup?m=no.such.metric")?;
    assert_error(
        status,
        &json(&text)?,
        404,
        "Unable to resolve one or more UIDs",
    );
    Ok(())
}

fn q25_to_q28_aggregators_filters_dump_meta_routing(s: &TestServer) -> Result<()> {
    // TV-Q25.
    let got = s.get_json("/api/aggregators")?;
    let names: Vec<&str> = got
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(names.len(), got.as_array().map_or(0, Vec::len), "{got}");
    assert!(names.windows(2).all(|w| w[0] < w[1]), "not sorted: {got}");
    for required in [
        "avg", "count", "dev", "ep50r3", "ep50r7", "ep75r3", "ep75r7", "ep90r3", "ep90r7",
        "ep95r3", "ep95r7", "ep999r3", "ep999r7", "ep99r3", "ep99r7", "first", "last", "max",
        "mimmax", "mimmin", "min", "none", "p50", "p75", "p90", "p95", "p99", "p999", "sum",
        "zimsum",
    ] {
        assert!(names.contains(&required), "{required} missing from {got}");
    }

    // TV-Q26.
    let got = s.get_json("/api/config/filters")?;
    let keys: BTreeSet<&str> = got
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    let expected: BTreeSet<&str> = [
        "iliteral_or",
        "iwildcard",
        "literal_or",
        "not_iliteral_or",
        "not_key",
        "not_literal_or",
        "regexp",
        "wildcard",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, expected);
    for (k, v) in got.as_object().into_iter().flatten() {
        assert!(v["examples"].is_string(), "{k}: {v}");
        assert!(v["description"].is_string(), "{k}: {v}");
    }

    // TV-Q27: distinct values of a tag key with a prefix.
    let values_of = |key: &str, prefix: &str, max: usize| -> Value {
        let set: BTreeSet<&str> = all_series()
            .flat_map(|x| x.tags.iter())
            .filter(|(k, v)| *k == key && v.starts_with(prefix))
            .map(|(_, v)| *v)
            .collect();
        json!(
            set.iter()
                .take(max)
                .map(|v| json!({key: v}))
                .collect::<Vec<_>>()
        )
    };
    let (status, got) = post_json(
        s,
        "/api/dump_meta",
        &json!({"tagkey": "host", "tagvalueprefix": "web0", "max": 2}),
    )?;
    assert_eq!((status, &got), (200, &values_of("host", "web0", 2)));
    assert_eq!(got, json!([{"host": "web01"}, {"host": "web02"}]));
    let (status, got) = post_json(
        s,
        "/api/dump_meta",
        &json!({"tagkey": "dc", "tagvalueprefix": ""}),
    )?;
    assert_eq!((status, got), (200, values_of("dc", "", usize::MAX)));
    let (status, got) = post_json(s, "/api/dump_meta", &json!({"tagvalueprefix": "a"}))?;
    assert_error(status, &got, 400, "Missing parameter tagkey");

    // TV-Q28.
    let (status, text) = s.get("/api/nope")?;
    assert_eq!(
        (status, json(&text)?),
        (
            404,
            json!({"error": {"code": 404, "message": "Endpoint not found"}})
        )
    );
    let (status, text) = s.request("DELETE", "/api/suggest", None)?;
    let got = json(&text)?;
    assert_eq!(status, 405, "{got}");
    assert_eq!(
        got["error"]["details"],
        json!("The HTTP method [DELETE] is not permitted for this endpoint")
    );
    assert_eq!(s.get_json("/api/version")?["version"], json!("2.4.0"));
    assert_eq!(
        s.get_json("/api/v1/suggest?type=tagk")?,
        json!(["dc", "host"])
    );
    Ok(())
}

fn m01_uid_assign(s: &TestServer) -> Result<()> {
    let (status, text) = s.get("/api/uid/assign?metric=sys.cpu.user,new.metric&tagk=host")?;
    assert_eq!(
        (status, json(&text)?),
        (
            400,
            json!({"metric": {"new.metric": "000006"},
                "metric_errors": {"sys.cpu.user": "Name already exists with UID: 000001"},
                "tagk": {}, "tagk_errors": {"host": "Name already exists with UID: 000002"}})
        )
    );
    // Known metric, no series.
    let got = query(
        s,
        &window(json!({"aggregator": "sum", "metric": "new.metric"})),
    )?;
    assert_eq!(got, json!([]));
    Ok(())
}

/// Series B after TV-M02 deleted its points in `[T0, T0 + 60]`.
const B_AFTER_M02: Series = Series {
    metric: "sys.cpu.user",
    tags: &[("host", "web02"), ("dc", "lga")],
    points: &[(T0 + 90, Num::I(15))],
};

fn m02_delete_data(s: &TestServer) -> Result<()> {
    let (status, text) = s.post(
        "/api/delete_data",
        &json!({"metric": "sys.cpu.user", "tags": {"host": "web02"}, "start": T0, "end": T0 + 60})
            .to_string(),
    )?;
    assert_eq!((status, text.as_str()), (200, ""));
    let kept: Vec<(i64, Num)> = B
        .points
        .iter()
        .copied()
        .filter(|p| !(T0..=T0 + 60).contains(&p.0))
        .collect();
    let kept: Map<String, Value> = kept
        .iter()
        .map(|(t, v)| (t.to_string(), v.json()))
        .collect();
    let got = s.get_json(&format!(
        "/api/query?start={T0}&end={END}&m=sum:sys.cpu.user%7Bhost=web02%7D"
    ))?;
    assert_eq!(got, json!([result(&[&B], kept)]));
    assert_eq!(got, json!([grouped(&[&B_AFTER_M02], Agg::Sum)]));
    Ok(())
}

/// (timestamp, speed, level, direction) of sensor s1, written by TV-M03.
const WIND: &[(i64, f64, i64, &str)] = &[(T0, 20.5, 4, "East"), (T0 + 60, 21.0, 5, "East")];

fn m03_mput_mquery(s: &TestServer) -> Result<()> {
    let body: Vec<Value> = WIND
        .iter()
        .map(|(t, speed, level, dir)| {
            json!({"metric": "wind", "timestamp": t,
                "fields": {"speed": speed, "level": level, "direction": dir},
                "tags": {"sensor": "s1"}})
        })
        .collect();
    let (status, text) = s.post("/api/mput", &Value::Array(body).to_string())?;
    assert_eq!(status, 204, "{text}");

    let mquery = |fields: Value, end: i64| {
        json!({"start": T0, "end": end, "queries": [{"metric": "wind", "fields": fields,
            "tags": {"sensor": "s1"}}]})
    };
    let (status, got) = post_json(
        s,
        "/api/mquery",
        &mquery(json!([{"field": "speed"}, {"field": "level"}]), T0 + 60),
    )?;
    let rows: Vec<Value> = WIND
        .iter()
        .map(|(t, speed, level, _)| json!([t, level, speed]))
        .collect();
    assert_eq!(
        (status, got),
        (
            200,
            json!([{"metric": "wind", "columns": ["timestamp", "level", "speed"],
                "tags": {"sensor": "s1"}, "aggregatedTags": [], "values": rows}])
        )
    );
    let (status, got) = post_json(s, "/api/mquery", &mquery(json!([{"field": "*"}]), T0 + 60))?;
    assert_eq!(status, 200, "{got}");
    let rows: Vec<Value> = WIND
        .iter()
        .map(|(t, speed, level, dir)| json!([t, dir, level, speed]))
        .collect();
    assert_eq!(
        got[0]["columns"],
        json!(["timestamp", "direction", "level", "speed"])
    );
    assert_eq!(got[0]["values"], json!(rows));
    assert_eq!(
        got[0]["values"],
        json!([
            [1_500_000_000i64, "East", 4, 20.5],
            [1_500_000_060i64, "East", 5, 21.0]
        ])
    );

    // A numeric value for the string field fails the whole element.
    let bad = json!({"metric": "wind", "timestamp": T0 + 120,
        "fields": {"direction": 1, "speed": 22.0}, "tags": {"sensor": "s1"}});
    let (status, got) = post_json(s, "/api/mput?details", &json!([bad]))?;
    assert_eq!(
        (status, got),
        (
            400,
            json!({"errors": [{"datapoint": bad, "error":
                "Cannot write a numeric value to field direction of metric wind: it stores string values"}],
                "failed": 1, "success": 0})
        )
    );
    let (status, got) = post_json(
        s,
        "/api/mquery",
        &mquery(json!([{"field": "speed"}]), T0 + 120),
    )?;
    let speeds: Vec<Value> = WIND
        .iter()
        .map(|(t, speed, _, _)| json!([t, speed]))
        .collect();
    assert_eq!(status, 200, "{got}");
    assert_eq!(got[0]["values"], json!(speeds));
    Ok(())
}

fn m04_delete_meta(s: &TestServer) -> Result<()> {
    let (status, text) = s.post(
        "/api/delete_meta",
        &json!({"metric": "pct.test"}).to_string(),
    )?;
    assert_eq!((status, text.as_str()), (200, ""));
    let got = query(
        s,
        &window(json!({"aggregator": "sum", "metric": "pct.test"})),
    )?;
    assert_eq!(got, json!([]));
    let got = lookup(s, "m=pct.test")?;
    assert_eq!(got["results"], json!([]));
    assert_eq!(got["totalResults"], json!(0));
    // UIDs stay.
    assert_eq!(
        s.get_json("/api/suggest?type=metrics&q=pct")?,
        json!(["pct.test"])
    );
    Ok(())
}

fn m05_delete_query_disabled(s: &TestServer) -> Result<()> {
    let body = window(json!({"aggregator": "sum", "metric": "sys.cpu.user"}));
    let (status, text) = s.request("DELETE", "/api/query", Some(&body.to_string()))?;
    let got = json(&text)?;
    assert_error(status, &got, 400, "Bad request");
    assert_eq!(
        got["error"]["details"],
        json!("Deleting data is not enabled (allow_delete=false)")
    );
    // Data unchanged: the TV-Q01 sum over the data left by TV-M02.
    assert_eq!(
        query(s, &body)?,
        json!([grouped(&[&A, &B_AFTER_M02, &C], Agg::Sum)])
    );
    Ok(())
}
