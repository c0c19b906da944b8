//! Shared pieces of the Baidu `/v1` tests (spec baidu-tsdb.md, section 16):
//! a client, the spec's data sets, a collector that reports every failing
//! vector of a test at once, and reference computations (buckets,
//! aggregators, fill) done here, independently of the server.
//!
//! The vectors themselves live in `baidu_write`, `baidu_query`,
//! `baidu_agg`, `baidu_fill`, `baidu_errors` and `baidu_mgmt`.

use crate::harness::{Reply, TestServer};
use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Debug;

/// `T` of the spec: 2017-07-14T02:40:00Z, a multiple of 300 000.
pub(crate) const T: i64 = 1_500_000_000_000;

/// Data set D1, verbatim.
pub(crate) const D1: &str = r#"{"datapoints":[
 {"metric":"cpu_idle","tags":{"host":"a","rack":"r1"},
  "values":[[1500000000000,1],[1500000060000,2],[1500000120000,3],[1500000300000,10],[1500000360000,20]]},
 {"metric":"cpu_idle","tags":{"host":"b","rack":"r1"},
  "values":[[1500000000000,100],[1500000300000,200]]},
 {"metric":"cpu_idle","tags":{"host":"c","rack":"r2"},"timestamp":1500000060000,"value":7}]}"#;

/// Data set DF (fill): `host=server1`, Double values.
pub(crate) const DF: [(i64, f64); 3] = [
    (1_499_071_200_000, 30.6),
    (1_499_073_000_000, 15.3),
    (1_499_074_800_000, 61.2),
];

/// Data set DM (months): `id=1`, Long values.
pub(crate) const DM: [(i64, i64); 7] = [
    (1_496_246_400_000, 100),
    (1_497_888_000_000, 1),
    (1_499_616_000_000, 2),
    (1_500_480_000_000, 3),
    (1_501_862_400_000, 4),
    (1_504_972_800_000, 5),
    (1_505_620_800_000, 100),
];

/// The spec's default calendar zone, `+08:00`, in ms.
pub(crate) const BEIJING: i64 = 8 * 3_600_000;

/// One series of D1 as written: its tags and Long points.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) points: Vec<(i64, i64)>,
}

impl Series {
    /// Tags sorted by key, `k=v,k=v`: the spec's series order.
    pub(crate) fn key(&self) -> String {
        let parts: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.join(",")
    }

    pub(crate) fn tag(&self, key: &str) -> &str {
        self.tags.get(key).map_or("", String::as_str)
    }
}

/// D1 read back from its own JSON text (both `values` and
/// `timestamp`/`value` forms), so expectations follow what was written.
pub(crate) fn d1_series() -> Vec<Series> {
    let body: Value = serde_json::from_str(D1).expect("D1 is JSON");
    let mut out = Vec::new();
    for dp in body["datapoints"].as_array().expect("datapoints") {
        let tags = dp["tags"]
            .as_object()
            .expect("tags")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("tag").to_owned()))
            .collect();
        let points = match dp["values"].as_array() {
            Some(vs) => vs
                .iter()
                .map(|p| (p[0].as_i64().expect("ts"), p[1].as_i64().expect("v")))
                .collect(),
            None => vec![(
                dp["timestamp"].as_i64().expect("ts"),
                dp["value"].as_i64().expect("v"),
            )],
        };
        out.push(Series { tags, points });
    }
    out
}

/// The points of every series that `keep` accepts, in the spec's row
/// order: ascending `(timestamp, series key)`.
pub(crate) fn select(
    series: &[Series],
    keep: impl Fn(&Series, i64, i64) -> bool,
) -> Vec<(i64, i64, &Series)> {
    let mut rows: Vec<(i64, i64, &Series)> = series
        .iter()
        .flat_map(|s| s.points.iter().map(move |&(t, v)| (t, v, s)))
        .filter(|&(t, v, s)| keep(s, t, v))
        .collect();
    rows.sort_by_key(|a| (a.0, a.2.key()));
    rows
}

/// `[timestamp, value]` rows as JSON.
pub(crate) fn long_rows(rows: &[(i64, i64)]) -> Value {
    Value::Array(rows.iter().map(|(t, v)| json!([t, v])).collect())
}

/// `[timestamp, value]` rows of Doubles as JSON.
pub(crate) fn double_rows(rows: &[(i64, f64)]) -> Value {
    Value::Array(rows.iter().map(|(t, v)| json!([t, v])).collect())
}

/// `POST /v1/datapoint` with a JSON body.
pub(crate) fn write(s: &TestServer, body: &str) -> Result<Reply> {
    s.send(
        "POST",
        "/v1/datapoint",
        &[("Content-Type", "application/json; charset=utf-8")],
        Some(body.as_bytes()),
    )
}

/// A write that must answer 204.
pub(crate) fn write_ok(s: &TestServer, body: &Value) -> Result<()> {
    let r = write(s, &body.to_string())?;
    if r.status != 204 {
        bail!("write {body} answered {r:?}");
    }
    Ok(())
}

/// `{"datapoints":[...]}` around datapoint objects.
pub(crate) fn datapoints(points: &[Value]) -> Value {
    json!({ "datapoints": points })
}

/// `PUT /v1/datapoint?query` with a JSON body.
pub(crate) fn put_query(s: &TestServer, body: &Value) -> Result<Reply> {
    s.send(
        "PUT",
        "/v1/datapoint?query",
        &[("Content-Type", "application/json; charset=utf-8")],
        Some(body.to_string().as_bytes()),
    )
}

/// `Q(query)` of the spec.
pub(crate) fn q(query: Value) -> Value {
    json!({ "queries": [query] })
}

/// A GET of a metadata path.
pub(crate) fn get(s: &TestServer, path: &str) -> Result<Reply> {
    s.send("GET", path, &[], None)
}

/// Percent-encodes everything but `A-Za-z0-9-._~`.
pub(crate) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`, lowercase hex.
pub(crate) fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

/// Collects every mismatch of a test so that one run reports all failing
/// vectors; [`Check::done`] fails the test if there was any.
#[derive(Debug, Default)]
pub(crate) struct Check {
    failures: Vec<String>,
    request_id_checked: bool,
}

impl Check {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn fail(&mut self, what: &str, detail: String) {
        self.failures.push(format!("{what}: {detail}"));
    }

    pub(crate) fn that(&mut self, what: &str, ok: bool, detail: impl Debug) {
        if !ok {
            self.fail(what, format!("{detail:?}"));
        }
    }

    pub(crate) fn eq<A: PartialEq<B> + Serialize, B: Serialize>(
        &mut self,
        what: &str,
        got: A,
        want: B,
    ) {
        if got != want {
            let want = serde_json::to_string(&want).unwrap_or_default();
            let got = serde_json::to_string(&got).unwrap_or_default();
            self.fail(what, format!("expected {want}\n      got {got}"));
        }
    }

    /// The reply must have `status`; returns its JSON body (`Null` after
    /// recording a failure).
    pub(crate) fn json(&mut self, what: &str, r: &Reply, status: u16) -> Value {
        if r.status != status {
            self.fail(
                what,
                format!("expected status {status}, got {} {}", r.status, r.body),
            );
            return Value::Null;
        }
        match serde_json::from_str(&r.body) {
            Ok(v) => v,
            Err(e) => {
                self.fail(what, format!("body is not JSON ({e}): {:?}", r.body));
                Value::Null
            }
        }
    }

    /// A 200 whose JSON body equals `want`.
    pub(crate) fn body(&mut self, what: &str, r: &Reply, want: &Value) {
        let got = self.json(what, r, 200);
        if !got.is_null() {
            self.eq(what, &got, want);
        }
    }

    /// An error reply: status and `code`, and `requestId` equal to the
    /// `x-bce-request-id` header.
    pub(crate) fn error(&mut self, what: &str, r: &Reply, status: u16, code: &str) {
        let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        let got_code = body["code"].as_str().unwrap_or("<none>");
        if r.status != status || got_code != code {
            self.fail(
                what,
                format!("expected {status} {code}, got {} {}", r.status, r.body),
            );
            return;
        }
        let id = body["requestId"].as_str();
        if id.is_none() || id != r.request_id.as_deref() || body["message"].as_str().is_none() {
            self.fail(
                what,
                format!(
                    "error body {} must carry message and requestId = header {:?}",
                    r.body, r.request_id
                ),
            );
        }
        self.request_id_checked = true;
    }

    /// First result's first group's `values`.
    pub(crate) fn values(&mut self, what: &str, r: &Reply) -> Value {
        let body = self.json(what, r, 200);
        body["results"][0]["groups"][0]["values"].clone()
    }

    /// `values` equal to `want` as JSON (so Long vs Double is checked too).
    pub(crate) fn values_eq(&mut self, what: &str, r: &Reply, want: &Value) {
        let got = self.values(what, r);
        self.eq(what, &got, want);
    }

    /// `[timestamp, double]` rows within 1e-9, each value a JSON double.
    pub(crate) fn approx_rows(&mut self, what: &str, got: &Value, want: &[(i64, f64)]) {
        let ok = got.as_array().is_some_and(|rows| {
            rows.len() == want.len()
                && rows.iter().zip(want).all(|(row, (t, v))| {
                    row.as_array().is_some_and(|cells| cells.len() == 2)
                        && row[0].as_i64() == Some(*t)
                        && row[1].is_f64()
                        && row[1].as_f64().is_some_and(|x| (x - v).abs() <= 1e-9)
                })
        });
        if !ok {
            self.fail(what, format!("expected ≈ {want:?}\n      got {got}"));
        }
    }

    pub(crate) fn done(self) -> Result<()> {
        if self.failures.is_empty() {
            Ok(())
        } else {
            bail!(
                "{} failing check(s):\n{}",
                self.failures.len(),
                self.failures.join("\n")
            )
        }
    }

    /// Like [`Check::done`], also requiring that some error reply had its
    /// request id checked.
    pub(crate) fn done_with_errors(mut self) -> Result<()> {
        if !self.request_id_checked {
            self.fail("requestId", "no error reply was checked".into());
        }
        self.done()
    }
}

// ---- reference computations -------------------------------------------

/// Groups points by bucket start (`bucket_of(t)`), keeping stream order;
/// the row timestamp is the bucket start clipped to `start`. Points outside
/// `[start, end]` are dropped; empty buckets make no row.
pub(crate) fn buckets<V: Copy>(
    points: &[(i64, V)],
    start: i64,
    end: i64,
    bucket_of: impl Fn(i64) -> i64,
) -> Vec<(i64, Vec<(i64, V)>)> {
    let mut out: Vec<(i64, Vec<(i64, V)>)> = Vec::new();
    let mut sorted: Vec<(i64, V)> = points
        .iter()
        .copied()
        .filter(|(t, _)| (start..=end).contains(t))
        .collect();
    sorted.sort_by_key(|(t, _)| *t);
    for (t, v) in sorted {
        let b = bucket_of(t).max(start);
        match out.last_mut() {
            Some((bt, pts)) if *bt == b => pts.push((t, v)),
            _ => out.push((b, vec![(t, v)])),
        }
    }
    out
}

/// Fixed-width buckets anchored at the query start.
pub(crate) fn fixed(start: i64, width: i64) -> impl Fn(i64) -> i64 {
    move |t| start + (t - start).div_euclid(width) * width
}

/// Start of the local calendar day of `t` at UTC offset `offset`.
pub(crate) fn local_day(offset: i64) -> impl Fn(i64) -> i64 {
    move |t| (t + offset).div_euclid(86_400_000) * 86_400_000 - offset
}

/// Start of the local calendar month of `t` at UTC offset `offset`.
pub(crate) fn local_month(offset: i64) -> impl Fn(i64) -> i64 {
    move |t| {
        let days = (t + offset).div_euclid(86_400_000);
        let (y, m, _) = civil_from_days(days);
        days_from_civil(y, m, 1) * 86_400_000 - offset
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub(crate) fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation; 0 for one value.
pub(crate) fn sample_dev(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (xs.len() - 1) as f64).sqrt()
}

/// The spec's percentile: `pos = p (n + 1)` with linear interpolation.
pub(crate) fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut x = xs.to_vec();
    x.sort_by(f64::total_cmp);
    let n = x.len();
    let pos = p * (n as f64 + 1.0);
    if pos < 1.0 {
        return x[0];
    }
    if pos >= n as f64 {
        return x[n - 1];
    }
    let f = pos.floor();
    let i = f as usize;
    x[i - 1] + (pos - f) * (x[i] - x[i - 1])
}

/// Ordinary least squares over one bucket; the fitted values at its first
/// and last timestamps.
pub(crate) fn least_squares(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    if points.len() < 3 {
        return points.to_vec();
    }
    let t0 = points[0].0;
    let ts: Vec<f64> = points.iter().map(|(t, _)| (t - t0) as f64).collect();
    let vs: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
    let (mt, mv) = (mean(&ts), mean(&vs));
    let sxy: f64 = ts.iter().zip(&vs).map(|(t, v)| (t - mt) * (v - mv)).sum();
    let sxx: f64 = ts.iter().map(|t| (t - mt) * (t - mt)).sum();
    let b = sxy / sxx;
    let a = mv - b * mt;
    let last = points[points.len() - 1].0;
    vec![(t0, a), (last, a + b * (last - t0) as f64)]
}

/// Consecutive differences; the first point yields nothing.
pub(crate) fn diff(points: &[(i64, i64)]) -> Vec<(i64, i64)> {
    points
        .windows(2)
        .map(|w| (w[1].0, w[1].1 - w[0].1))
        .collect()
}

/// `(v1 - v0) / (t1 - t0) * unit` for consecutive points.
pub(crate) fn rate(points: &[(i64, i64)], unit_ms: i64) -> Vec<(i64, f64)> {
    points
        .windows(2)
        .filter(|w| w[1].0 != w[0].0)
        .map(|w| {
            let dv = (w[1].1 - w[0].1) as f64;
            (w[1].0, dv / (w[1].0 - w[0].0) as f64 * unit_ms as f64)
        })
        .collect()
}

/// Drops a value equal to the one just before it.
pub(crate) fn adjacent_unique<V: PartialEq + Clone>(points: &[(i64, V)]) -> Vec<(i64, V)> {
    let mut out: Vec<(i64, V)> = Vec::new();
    let mut prev: Option<&V> = None;
    for (t, v) in points {
        if prev != Some(v) {
            out.push((*t, v.clone()));
        }
        prev = Some(v);
    }
    out
}

/// How a fill makes a missing value.
#[derive(Debug, Clone)]
pub(crate) enum Fill {
    Linear,
    Previous,
    Fixed(Value),
}

/// Reference fill of one Double series (spec 9.5): `stored` is everything
/// in storage, `[start, end]` the query range (`end` already `<= now`).
/// Returns the raw points in range and the filled grid points, as rows.
pub(crate) fn fill_rows(
    stored: &[(i64, f64)],
    start: i64,
    end: i64,
    interval: i64,
    max_write: i64,
    kind: &Fill,
) -> Vec<(i64, Value)> {
    let raw: Vec<(i64, f64)> = stored
        .iter()
        .copied()
        .filter(|(t, _)| (start..=end).contains(t))
        .collect();
    if raw.is_empty() {
        return Vec::new();
    }
    let before = stored
        .iter()
        .copied()
        .rfind(|(t, _)| max_write > 0 && *t >= start - max_write && *t < start);
    let after = stored
        .iter()
        .copied()
        .find(|(t, _)| max_write > 0 && *t > end && *t <= end + max_write);
    let mut known: Vec<(i64, f64)> = before.into_iter().collect();
    known.extend(&raw);
    known.extend(after);
    let mut rows: Vec<(i64, Value)> = raw.iter().map(|(t, v)| (*t, json!(v))).collect();
    let mut g = start.div_euclid(interval) * interval;
    if g < start {
        g += interval;
    }
    while g <= end {
        if !raw.iter().any(|(t, _)| *t >= g && *t < g + interval) {
            let a = known.iter().copied().rfind(|(t, _)| *t < g);
            let b = known.iter().copied().find(|(t, _)| *t > g);
            let first = raw[0].1;
            let last = raw[raw.len() - 1].1;
            let v = match (kind, a, b) {
                (Fill::Fixed(v), _, _) => v.clone(),
                (Fill::Previous, Some((_, va)), _) => json!(va),
                (Fill::Previous, None, _) => json!(first),
                (Fill::Linear, Some((ta, va)), Some((tb, vb))) => {
                    json!((va * (tb - g) as f64 + vb * (g - ta) as f64) / (tb - ta) as f64)
                }
                (Fill::Linear, None, _) => json!(first),
                (Fill::Linear, Some(_), None) => json!(last),
            };
            rows.push((g, v));
        }
        g += interval;
    }
    rows.sort_by_key(|(t, _)| *t);
    rows
}

/// Rows of [`fill_rows`] as JSON.
pub(crate) fn value_rows(rows: &[(i64, Value)]) -> Value {
    Value::Array(rows.iter().map(|(t, v)| json!([t, v])).collect())
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[test]
fn reference_helpers_match_the_spec_literals() {
    // Independent checks of the helpers against numbers the spec publishes.
    let a = [1.0, 2.0, 3.0, 10.0, 20.0];
    assert!((sample_dev(&a) - 7.981_227_975_693_966).abs() < 1e-9);
    assert_eq!(percentile(&a, 0.25), 1.5);
    assert_eq!(days_from_civil(2017, 7, 1), 17348);
    assert_eq!(civil_from_days(17348), (2017, 7, 1));
    assert_eq!(local_month(BEIJING)(1_500_000_000_000), 1_498_838_400_000);
}
