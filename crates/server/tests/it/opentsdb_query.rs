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
