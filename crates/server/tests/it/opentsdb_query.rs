//! The raw read-back of `/api/query`: `none`, `sum` with interpolation,
//! exact and v1 tag selection, GET and POST forms.

use crate::harness::{TestServer, json, point};
use anyhow::Result;
use serde_json::{Value, json};

/// OpenTSDB's interpolation example, with the sum computed here.
#[test]
fn sum_interpolates_between_neighbours() -> Result<()> {
    let s = TestServer::spawn()?;
    let t0 = 1_500_000_000i64;
    let a = [(10, 5i64), (30, 15), (50, 5)];
    let b = [(0, 10i64), (20, 20), (40, 10), (60, 20)];
    let mut body = Vec::new();
    for (off, v) in a {
        body.push(point(
            "lerp",
            t0 + off,
            json!(v),
            &[("host", "a"), ("dc", "x")],
        ));
    }
    for (off, v) in b {
        body.push(point(
            "lerp",
            t0 + off,
            json!(v),
            &[("host", "b"), ("dc", "x")],
        ));
    }
    assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    let value_at = |pts: &[(i64, i64)], t: i64| -> Option<i64> {
        if let Some((_, v)) = pts.iter().find(|(o, _)| *o == t) {
            return Some(*v);
        }
        let before = pts.iter().rev().find(|(o, _)| *o < t)?;
        let after = pts.iter().find(|(o, _)| *o > t)?;
        Some(before.1 + (t - before.0) * (after.1 - before.1) / (after.0 - before.0))
    };
    let mut expected = serde_json::Map::new();
    for t in (0..=60).step_by(10) {
        let sum: i64 = [value_at(&a, t), value_at(&b, t)]
            .into_iter()
            .flatten()
            .sum();
        expected.insert((t0 + t).to_string(), json!(sum));
    }
    let got = s.get_json(&format!("/api/query?start={t0}&end={}&m=sum:lerp", t0 + 60))?;
    assert_eq!(
        got,
        json!([{"metric": "lerp", "tags": {"dc": "x"}, "aggregateTags": ["host"], "dps": expected}])
    );
    assert_eq!(got[0]["dps"][(t0 + 30).to_string()], json!(30));
    Ok(())
}

#[test]
fn tag_selection_and_grouping() -> Result<()> {
    let s = TestServer::spawn()?;
    let t = 1_500_000_000i64;
    let mut body = Vec::new();
    let hosts = ["web01", "web02", "web03"];
    for (i, h) in hosts.iter().enumerate() {
        for k in 0..3i64 {
            body.push(point(
                "cpu",
                t + k,
                json!((i as i64 + 1) * 10 + k),
                &[("host", h), ("dc", "lga")],
            ));
        }
    }
    assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    let value = |i: i64, k: i64| (i + 1) * 10 + k;

    // Exact match: one series.
    let got = s.get_json(&format!(
        "/api/query?start={t}&end={}&m=none:cpu{{host=web02}}",
        t + 2
    ))?;
    let dps: serde_json::Map<String, Value> = (0..3)
        .map(|k| ((t + k).to_string(), json!(value(1, k))))
        .collect();
    assert_eq!(
        got,
        json!([{"metric": "cpu", "tags": {"dc": "lga", "host": "web02"}, "aggregateTags": [], "dps": dps}])
    );

    // host=* groups by host; sum of one series is the series.
    let got = s.get_json(&format!(
        "/api/query?start={t}&end={}&m=sum:cpu{{host=*}}",
        t + 2
    ))?;
    assert_eq!(got.as_array().map(Vec::len), Some(3));
    for (i, r) in got.as_array().into_iter().flatten().enumerate() {
        assert_eq!(r["tags"]["host"], hosts[i]);
        assert_eq!(r["dps"][(t + 2).to_string()], json!(value(i as i64, 2)));
    }

    // web01|web03 summed into one group per host; POST form, ms output.
    let req = json!({"start": t, "end": t + 2, "msResolution": true,
        "queries": [{"aggregator": "sum", "metric": "cpu", "filters": [
            {"type": "literal_or", "tagk": "host", "filter": "web01|web03", "groupBy": false}]}]});
    let (status, text) = s.post("/api/query", &req.to_string())?;
    assert_eq!(status, 200, "{text}");
    let got = json(&text)?;
    let dps: serde_json::Map<String, Value> = (0..3)
        .map(|k| {
            (
                ((t + k) * 1000).to_string(),
                json!(value(0, k) + value(2, k)),
            )
        })
        .collect();
    assert_eq!(
        got,
        json!([{"metric": "cpu", "tags": {"dc": "lga"}, "aggregateTags": ["host"], "dps": dps}])
    );
    Ok(())
}

#[test]
fn query_errors_in_opentsdb_shape() -> Result<()> {
    let s = TestServer::spawn()?;
    assert_eq!(
        s.post(
            "/api/put",
            &point("known", 1500000000, json!(1), &[("h", "x")]).to_string()
        )?
        .0,
        204
    );
    for (path, status, msg) in [
        ("/api/query?m=sum:known", 400, "Missing start time"),
        (
            "/api/query?start=1500000000&m=sum:unknown.metric",
            400,
            "No such name for 'metrics': 'unknown.metric'",
        ),
        (
            "/api/query?start=1500000000&m=bogus:known",
            400,
            "No such aggregation function: bogus",
        ),
        ("/api/query?start=1500000000", 400, "Missing queries"),
        (
            "/api/query?start=1000&m=sum:known",
            400,
            "Invalid timestamp: 1000",
        ),
    ] {
        let (st, text) = s.get(path)?;
        assert_eq!(st, status, "{path}: {text}");
        assert_eq!(json(&text)?["error"]["message"], msg, "{path}");
    }
    let (st, text) = s.post("/api/query", "{nope")?;
    assert_eq!(
        (st, json(&text)?["error"]["message"].clone()),
        (400, json!("Unable to parse the given JSON"))
    );
    Ok(())
}

#[test]
fn version_answers_once_writes_are_accepted() -> Result<()> {
    let s = TestServer::spawn()?;
    let v = s.get_json("/api/version")?;
    assert!(v["version"].is_string());
    assert_eq!(
        s.post(
            "/api/put",
            &point("v", 1500000000, json!(1), &[("h", "x")]).to_string()
        )?
        .0,
        204
    );
    Ok(())
}

#[test]
fn filters_evaluate_on_the_index() -> Result<()> {
    let s = TestServer::spawn()?;
    let t = 1_500_000_000i64;
    let hosts = ["web01", "web02", "db01", "WEB03"];
    let body: Vec<Value> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| point("idx", t, json!(i), &[("host", h)]))
        .collect();
    assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    let run = |ty: &str, filter: &str| -> Result<Vec<String>> {
        let req = json!({"start": t, "end": t, "queries": [{"aggregator": "none", "metric": "idx",
            "filters": [{"type": ty, "tagk": "host", "filter": filter, "groupBy": false}]}]});
        let (status, text) = s.post("/api/query", &req.to_string())?;
        anyhow::ensure!(status == 200, "{ty} {filter}: {status} {text}");
        Ok(json(&text)?
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["tags"]["host"].as_str().map(str::to_owned))
            .collect())
    };
    // Expected sets computed from the host list with the filter's rule.
    let want = |f: &dyn Fn(&str) -> bool| -> Vec<String> {
        let mut v: Vec<String> = hosts
            .iter()
            .filter(|h| f(h))
            .map(|h| h.to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(run("wildcard", "web*")?, want(&|h| h.starts_with("web")));
    assert_eq!(
        run("iwildcard", "web*")?,
        want(&|h| h.to_lowercase().starts_with("web"))
    );
    assert_eq!(
        run("regexp", "0[12]$")?,
        want(&|h| h.ends_with("01") || h.ends_with("02"))
    );
    assert_eq!(
        run("not_literal_or", "web01|db01")?,
        want(&|h| h != "web01" && h != "db01")
    );
    let req = json!({"start": t, "queries": [{"aggregator": "none", "metric": "idx",
        "filters": [{"type": "regexp", "tagk": "host", "filter": "(", "groupBy": false}]}]});
    assert_eq!(s.post("/api/query", &req.to_string())?.0, 400);
    Ok(())
}

/// Every aggregator of spec 9.11 across two series, one of which has no
/// point at the middle timestamp; expected values computed here from the
/// interpolation rule of each aggregator (integer path: all Longs).
#[test]
fn every_aggregator_with_its_interpolation() -> Result<()> {
    let s = TestServer::spawn()?;
    let t0 = 1_500_000_000i64;
    let a = [(0, 3i64), (10, 8), (20, 4)];
    let b = [(0, 10i64), (20, 30)];
    let mut body = Vec::new();
    for (off, v) in a {
        body.push(point("aggs", t0 + off, json!(v), &[("host", "a")]));
    }
    for (off, v) in b {
        body.push(point("aggs", t0 + off, json!(v), &[("host", "b")]));
    }
    assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    // B's contribution at t0+10 by interpolation kind.
    let lerp = 10 + (10 * (30 - 10)) / 20;
    let sorted = |mut v: Vec<i64>| {
        v.sort_unstable();
        v
    };
    // (aggregator, values at t0, t0+10, t0+20)
    let pct = |xs: Vec<i64>, p: f64, r7: bool| -> i64 {
        let x = sorted(xs);
        let n = x.len() as f64;
        let pos = if r7 {
            1.0 + (n - 1.0) * p
        } else {
            p * (n + 1.0)
        };
        let at = |i: usize| x[i] as f64;
        let v = if pos < 1.0 {
            at(0)
        } else if pos >= n {
            at(x.len() - 1)
        } else {
            let k = pos.floor() as usize;
            at(k - 1) + (pos - pos.floor()) * (at(k) - at(k - 1))
        };
        v as i64
    };
    let per_t = |f: &dyn Fn(Vec<i64>) -> i64, mid_b: Option<i64>| -> Vec<i64> {
        let mid: Vec<i64> = std::iter::once(8).chain(mid_b).collect();
        vec![f(vec![3, 10]), f(mid), f(vec![4, 30])]
    };
    let dev = |xs: Vec<i64>| -> i64 {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<i64>() as f64 / n;
        (xs.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt() as i64
    };
    let cases: Vec<(&str, Vec<i64>)> = vec![
        ("sum", per_t(&|x| x.iter().sum(), Some(lerp))),
        ("zimsum", per_t(&|x| x.iter().sum(), Some(0))),
        (
            "avg",
            per_t(&|x| x.iter().sum::<i64>() / x.len() as i64, Some(lerp)),
        ),
        ("min", per_t(&|x| sorted(x)[0], Some(lerp))),
        (
            "max",
            per_t(&|x| *sorted(x).last().unwrap_or(&0), Some(lerp)),
        ),
        ("mimmin", per_t(&|x| sorted(x)[0], Some(i64::MAX))),
        (
            "mimmax",
            per_t(&|x| *sorted(x).last().unwrap_or(&0), Some(i64::MIN)),
        ),
        ("count", per_t(&|x| x.len() as i64, Some(0))),
        ("dev", per_t(&dev, Some(lerp))),
        ("first", per_t(&|x| x[0], Some(0))),
        ("last", per_t(&|x| x[x.len() - 1], Some(0))),
        ("p50", per_t(&|x| pct(x, 0.5, false), Some(lerp))),
        ("ep90r7", per_t(&|x| pct(x, 0.9, true), Some(lerp))),
        ("mult", per_t(&|x| x.iter().product(), Some(lerp))),
        ("diff", per_t(&|x| x[x.len() - 1] - x[0], Some(lerp))),
        (
            "squareSum",
            per_t(&|x| x.iter().map(|v| v * v).sum(), Some(0)),
        ),
        ("pfsum", per_t(&|x| x.iter().sum(), Some(10))),
    ];
    for (agg, want) in cases {
        let got = s.get_json(&format!(
            "/api/query?start={t0}&end={}&m={agg}:aggs",
            t0 + 20
        ))?;
        let want_dps: serde_json::Map<String, Value> = want
            .iter()
            .enumerate()
            .map(|(i, v)| ((t0 + 10 * i as i64).to_string(), json!(v)))
            .collect();
        assert_eq!(got[0]["dps"], Value::Object(want_dps), "{agg}");
    }
    let (status, body) = s.get(&format!("/api/query?start={t0}&m=nosuch:aggs"))?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&body)?["error"]["message"],
        json!("No such aggregation function: nosuch")
    );
    Ok(())
}

/// Downsampling (spec 9.7), fill policies (9.8) and rate (9.9), each
/// expected value computed here from the points written.
#[test]
fn downsample_fill_and_rate() -> Result<()> {
    let s = TestServer::spawn()?;
    let t0 = 1_500_000_000i64; // a multiple of 60 s
    let pts: [(i64, i64); 5] = [(0, 10), (10, 20), (20, 60), (70, 100), (80, 90)];
    let body: Vec<Value> = pts
        .iter()
        .map(|(o, v)| point("ds", t0 + o, json!(v), &[("host", "a")]))
        .collect();
    assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    let dps = |path: &str| -> Result<Value> { Ok(s.get_json(path)?[0]["dps"].clone()) };
    let range = format!("start={t0}&end={}", t0 + 179);
    let bucket = |b: i64| -> Vec<f64> {
        pts.iter()
            .filter(|(o, _)| *o >= b && *o < b + 60)
            .map(|(_, v)| *v as f64)
            .collect()
    };
    let avg = |xs: Vec<f64>| xs.iter().sum::<f64>() / xs.len() as f64;
    // 1m-avg: one Double per non-empty minute.
    assert_eq!(
        dps(&format!("/api/query?{range}&m=sum:1m-avg:ds"))?,
        json!({ t0.to_string(): avg(bucket(0)), (t0 + 60).to_string(): avg(bucket(60)) })
    );
    // Empty third minute: zero, NaN ("NaN") or null by fill policy.
    let sums = |fill: Value| {
        json!({
            t0.to_string(): bucket(0).iter().sum::<f64>(),
            (t0 + 60).to_string(): bucket(60).iter().sum::<f64>(),
            (t0 + 120).to_string(): fill,
        })
    };
    assert_eq!(
        dps(&format!("/api/query?{range}&m=sum:1m-sum-zero:ds"))?,
        sums(json!(0.0))
    );
    assert_eq!(
        dps(&format!("/api/query?{range}&m=sum:1m-sum-nan:ds"))?,
        sums(json!("NaN"))
    );
    assert_eq!(
        dps(&format!("/api/query?{range}&m=sum:1m-sum-null:ds"))?,
        sums(Value::Null)
    );
    // 0all-count: one bucket at the start, a Double.
    assert_eq!(
        dps(&format!("/api/query?{range}&m=sum:0all-count:ds"))?,
        json!({ t0.to_string(): pts.len() as f64 })
    );
    // Rate per second between consecutive points.
    let rates: serde_json::Map<String, Value> = pts
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0], w[1]);
            (
                (t0 + b.0).to_string(),
                json!((b.1 - a.1) as f64 / (b.0 - a.0) as f64),
            )
        })
        .collect();
    assert_eq!(
        dps(&format!("/api/query?{range}&m=sum:rate:ds"))?,
        Value::Object(rates.clone())
    );
    // POST form with rateOptions: a counter drops the 100 -> 90 reset.
    let (status, body) = s.post(
        "/api/query",
        &json!({"start": t0, "end": t0 + 179, "queries": [{"aggregator": "sum", "metric": "ds",
            "rate": true, "rateOptions": {"counter": true, "dropResets": true}}]})
        .to_string(),
    )?;
    assert_eq!(status, 200, "{body}");
    let mut counter = rates.clone();
    counter.remove(&(t0 + 80).to_string());
    assert_eq!(json(&body)?[0]["dps"], Value::Object(counter));
    // Without dropResets the wrap uses counterMax: (max - 100 + 90) / 10 s.
    let (_, body) = s.post(
        "/api/query",
        &json!({"start": t0, "end": t0 + 179, "queries": [{"aggregator": "sum", "metric": "ds",
            "rate": true, "rateOptions": {"counter": true, "counterMax": 1000}}]})
        .to_string(),
    )?;
    assert_eq!(
        json(&body)?[0]["dps"][(t0 + 80).to_string()],
        json!((1000.0 - 100.0 + 90.0) / 10.0)
    );
    // Downsample errors in OpenTSDB's words.
    for (spec, message) in [
        (
            "1m",
            "Invalid downsampling specifier '1m': must provide at least interval and function",
        ),
        (
            "1m-avg-zero-x",
            "Invalid downsampling specifier '1m-avg-zero-x': must consist of interval, function, and optional fill policy",
        ),
        ("1m-none", "cannot use the NONE aggregator for downsampling"),
        ("1m-foo", "No such downsampling function: foo"),
        (
            "1m-avg-bad",
            "No such fill policy: 'bad': must be one of: none zero nan null",
        ),
        ("0m-avg", "Zero or negative duration: 0m"),
    ] {
        let (status, body) = s.get(&format!("/api/query?{range}&m=sum:{spec}:ds"))?;
        assert_eq!(status, 400, "{spec}: {body}");
        assert_eq!(json(&body)?["error"]["message"], json!(message), "{spec}");
    }
    Ok(())
}

/// Calendar downsampling (`1dc`, `useCalendar`) cuts days at midnight of
/// the query's time zone; date strings are read in that zone too.
#[test]
fn calendar_downsampling_in_a_time_zone() -> Result<()> {
    let s = TestServer::spawn()?;
    // 2017-07-14 00:00 in Shanghai (UTC+8 all year) is 2017-07-13T16:00Z.
    let day0 = 1_499_961_600i64;
    let pts: Vec<(i64, i64)> = (0..18)
        .map(|i| (day0 + 2 * 3600 + i * 4 * 3600, i))
        .collect();
    let body: Vec<Value> = pts
        .iter()
        .map(|(t, v)| point("cal", *t, json!(v), &[("host", "a")]))
        .collect();
    assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    let sums = |first: i64, width: i64| -> Value {
        let mut out = serde_json::Map::new();
        for (t, v) in &pts {
            let b = first + (t - first).div_euclid(width) * width;
            if b >= first {
                let slot = out.entry(b.to_string()).or_insert(json!(0.0));
                *slot = json!(slot.as_f64().unwrap_or(0.0) + *v as f64);
            }
        }
        Value::Object(out)
    };
    let query = |extra: Value| -> Result<(u16, Value)> {
        let mut q = json!({"start": "2017/07/14 00:00:00", "end": "2017/07/16 23:59:59",
            "queries": [{"aggregator": "sum", "metric": "cal", "downsample": "1dc-sum"}]});
        if let (Value::Object(q), Value::Object(extra)) = (&mut q, extra) {
            q.extend(extra);
        }
        let (status, body) = s.post("/api/query", &q.to_string())?;
        Ok((status, json(&body)?))
    };
    let (status, got) = query(json!({"timezone": "Asia/Shanghai"}))?;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got[0]["dps"], sums(day0, 86_400));
    // useCalendar turns `1d` into the same calendar days.
    let (_, got) = query(json!({"timezone": "Asia/Shanghai", "useCalendar": true,
        "queries": [{"aggregator": "sum", "metric": "cal", "downsample": "1d-sum"}]}))?;
    assert_eq!(got[0]["dps"], sums(day0, 86_400));
    // In UTC the same words mean other instants and other days: the dates
    // start eight hours later, and so does each bucket.
    let (_, got) = query(json!({}))?;
    assert_eq!(got[0]["dps"], sums(day0 + 8 * 3600, 86_400));
    // GET form.
    let got = s.get_json(&format!(
        "/api/query?start={day0}&end={}&timezone=Asia/Shanghai&m=sum:1dc-count:cal",
        day0 + 86_399
    ))?;
    assert_eq!(got[0]["dps"], json!({ day0.to_string(): 6.0 }));
    let (status, got) = query(json!({"timezone": "Mars/Olympus"}))?;
    assert_eq!(status, 400);
    assert_eq!(
        got["error"]["message"],
        json!("The timezone specification could not be found")
    );
    Ok(())
}

/// The body Grafana's OpenTSDB data source posts for a panel in 2.3 mode
/// (showQuery, globalAnnotations, a group-by wildcard filter, a downsample),
/// answered with `query.index` so Grafana can map results to targets; and
/// the `arrays` flag.
#[test]
fn grafana_panel_request() -> Result<()> {
    let s = TestServer::spawn()?;
    let t0 = 1_600_000_010i64; // 10 s into a minute
    let hosts = ["web01", "web02"];
    let mut body = Vec::new();
    for (h, host) in hosts.iter().enumerate() {
        for i in 0..12i64 {
            body.push(point(
                "grafana.cpu",
                t0 + i * 10,
                json!(h as i64 * 100 + i),
                &[("host", host), ("dc", "lga")],
            ));
        }
    }
    assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    let request = json!({
        "start": t0 * 1000, "end": (t0 + 120) * 1000,
        "queries": [{"metric": "grafana.cpu", "aggregator": "sum", "downsample": "1m-avg",
            "filters": [{"type": "wildcard", "tagk": "host", "filter": "*", "groupBy": true}]}],
        "msResolution": false, "globalAnnotations": true, "showQuery": true});
    let (status, text) = s.post("/api/query", &request.to_string())?;
    assert_eq!(status, 200, "{text}");
    let got = json(&text)?;
    let results = got.as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), hosts.len());
    for (h, r) in results.iter().enumerate() {
        assert_eq!(r["tags"], json!({"dc": "lga", "host": hosts[h]}));
        assert_eq!(r["query"]["index"], json!(0));
        assert_eq!(r["query"]["downsample"], json!("1m-avg"));
        assert_eq!(r["query"]["filters"][0]["group_by"], json!(true));
        // Epoch-aligned minute buckets; one starting before t0 is dropped.
        let mut sums: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
        for i in 0..12i64 {
            let ts = t0 + i * 10;
            let b = ts - ts.rem_euclid(60);
            if b >= t0 && ts <= t0 + 120 {
                sums.entry(b).or_default().push((h as i64 * 100 + i) as f64);
            }
        }
        let want: serde_json::Map<String, Value> = sums
            .iter()
            .map(|(b, v)| (b.to_string(), json!(v.iter().sum::<f64>() / v.len() as f64)))
            .collect();
        assert_eq!(r["dps"], Value::Object(want), "{}", hosts[h]);
    }
    // `arrays`: dps as [timestamp, value] pairs, in time order.
    let got = s.get_json(&format!(
        "/api/query?start={t0}&end={}&m=none:grafana.cpu{{host=web01}}&arrays",
        t0 + 20
    ))?;
    assert_eq!(got[0]["dps"], json!([[t0, 0], [t0 + 10, 1], [t0 + 20, 2]]));
    Ok(())
}

/// Spec 9.5.3 `explicitTags` and 9.15 delete (disabled: 400 with the
/// spec's details).
#[test]
fn explicit_tags_and_disabled_delete() -> Result<()> {
    let s = TestServer::spawn()?;
    let t0 = 1_500_000_000i64;
    let series: [&[(&str, &str)]; 3] = [
        &[("host", "a")],
        &[("host", "b"), ("dc", "x")],
        &[("host", "c")],
    ];
    let body: Vec<Value> = series
        .iter()
        .enumerate()
        .map(|(i, tags)| point("explicit", t0, json!(i as i64 + 1), tags))
        .collect();
    assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    // Only series whose keys are exactly {host}: values 1 and 3.
    let want: i64 = series
        .iter()
        .enumerate()
        .filter(|(_, t)| t.len() == 1)
        .map(|(i, _)| i as i64 + 1)
        .sum();
    let got = s.get_json(&format!(
        "/api/query?start={t0}&end={t0}&m=sum:explicit_tags:explicit{{host=*}}"
    ))?;
    let total: i64 = got
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["dps"][t0.to_string()].as_i64())
                .sum()
        })
        .unwrap_or_default();
    assert_eq!(total, want);
    let (status, body) = s.post(
        "/api/query",
        &json!({"start": t0, "queries": [{"aggregator": "sum", "metric": "explicit",
            "explicitTags": true, "filters": [{"type": "wildcard", "tagk": "host", "filter": "*", "groupBy": false}]}]})
        .to_string(),
    )?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)?[0]["dps"][t0.to_string()], json!(want));
    let (status, body) = s.post(
        "/api/query",
        &json!({"start": t0, "delete": true, "queries": [{"aggregator": "sum", "metric": "explicit"}]}).to_string(),
    )?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&body)?["error"]["details"],
        json!("Deleting data is not enabled (allow_delete=false)")
    );
    assert_eq!(
        s.request(
            "DELETE",
            &format!("/api/query?start={t0}&m=sum:explicit"),
            None
        )?
        .0,
        400
    );
    Ok(())
}

/// Alibaba's query extensions (spec 9.14): preDpValue before any
/// computation, delta, then dpValue, offset and limit per result.
#[test]
fn alibaba_query_extensions() -> Result<()> {
    let s = TestServer::spawn()?;
    let t0 = 1_500_000_000i64;
    let vals: [i64; 6] = [10, 25, 40, 15, 60, 90];
    let body: Vec<Value> = vals
        .iter()
        .enumerate()
        .map(|(i, v)| point("ext", t0 + i as i64, json!(v), &[("host", "a")]))
        .collect();
    assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    let query = |sub: Value| -> Result<(u16, Value)> {
        let mut sub = sub;
        sub["aggregator"] = json!("none");
        sub["metric"] = json!("ext");
        let (status, text) = s.post(
            "/api/query",
            &json!({"start": t0, "end": t0 + 10, "queries": [sub]}).to_string(),
        )?;
        Ok((status, json(&text)?))
    };
    let dps = |pts: Vec<(i64, Value)>| -> Value {
        Value::Object(pts.into_iter().map(|(t, v)| (t.to_string(), v)).collect())
    };
    let raw: Vec<(i64, i64)> = vals
        .iter()
        .enumerate()
        .map(|(i, v)| (t0 + i as i64, *v))
        .collect();
    // preDpValue drops raw points before delta: deltas of the kept ones.
    let kept: Vec<(i64, i64)> = raw.iter().copied().filter(|(_, v)| *v >= 20).collect();
    let deltas: Vec<(i64, Value)> = kept
        .windows(2)
        .map(|w| (w[1].0, json!(w[1].1 - w[0].1)))
        .collect();
    let (status, got) = query(json!({"preDpValue": ">= 20", "delta": true}))?;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got[0]["dps"], dps(deltas));
    // dpValue, then offset and limit on what is emitted.
    let emitted: Vec<(i64, Value)> = raw
        .iter()
        .filter(|(_, v)| *v < 50)
        .skip(1)
        .take(2)
        .map(|(t, v)| (*t, json!(v)))
        .collect();
    let (_, got) = query(json!({"dpValue": "<50", "offset": 1, "limit": 2}))?;
    assert_eq!(got[0]["dps"], dps(emitted));
    for (sub, message) in [
        (json!({"dpValue": "~5"}), "Invalid dpValue: ~5"),
        (json!({"preDpValue": ">x"}), "Invalid preDpValue: >x"),
        (json!({"limit": -1}), "Invalid limit: -1"),
    ] {
        let (status, got) = query(sub)?;
        assert_eq!(status, 400);
        assert_eq!(got["error"]["message"], json!(message));
    }
    Ok(())
}
