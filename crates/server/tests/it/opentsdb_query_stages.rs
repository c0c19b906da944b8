//! `/api/query`'s stages: every aggregator with its interpolation,
//! downsampling with fill policies and rate, calendar buckets in a time
//! zone; expectations computed from the points each test writes.

use crate::harness::{TestServer, json, point};
use anyhow::Result;
use serde_json::{Value, json};

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
