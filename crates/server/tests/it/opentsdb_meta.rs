//! Discovery endpoints Grafana and the OpenTSDB clients call: `/api/suggest`
//! (spec 11), `/api/search/lookup` (14), `/api/query/last` (10) and the
//! small probes of section 16.

use crate::harness::{TestServer, json, point};
use anyhow::Result;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// (metric, host, dc).
type Row = (&'static str, &'static str, &'static str);

/// (metric, host, dc) of every series written, each with points at
/// T0 + 0..N seconds whose value is `10 * series index + i`.
const SERIES: &[Row] = &[
    ("sys.cpu.user", "web01", "lga"),
    ("sys.cpu.user", "web02", "lga"),
    ("sys.cpu.user", "db01", "sjc"),
    ("sys.cpu.nice", "web01", "lga"),
    ("sys.mem.free", "cache01", "sjc"),
];
const T0: i64 = 1_600_000_000;
const N: i64 = 5;

fn load(s: &TestServer) -> Result<()> {
    let mut body = Vec::new();
    for (si, (m, host, dc)) in SERIES.iter().enumerate() {
        for i in 0..N {
            let v = if *m == "sys.mem.free" {
                json!(si as f64 * 10.0 + i as f64 + 0.5)
            } else {
                json!(si as i64 * 10 + i)
            };
            body.push(point(m, T0 + i, v, &[("host", host), ("dc", dc)]));
        }
    }
    assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    Ok(())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn suggest_metrics_tag_keys_and_values() -> Result<()> {
    let s = TestServer::spawn()?;
    load(&s)?;
    let metrics: BTreeSet<&str> = SERIES.iter().map(|(m, _, _)| *m).collect();
    let hosts: BTreeSet<&str> = SERIES.iter().map(|(_, h, _)| *h).collect();
    let dcs: BTreeSet<&str> = SERIES.iter().map(|(_, _, d)| *d).collect();
    // Grafana's data source test.
    let (status, _) = s.get("/api/suggest?type=metrics&q=cpu&max=1000")?;
    assert_eq!(status, 200);
    let got = strings(&s.get_json("/api/suggest?type=metrics&q=sys.cpu")?);
    let want: Vec<&str> = metrics
        .iter()
        .copied()
        .filter(|m| m.starts_with("sys.cpu"))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        strings(&s.get_json("/api/suggest?type=metrics&max=1")?),
        vec![*metrics.first().unwrap_or(&"")]
    );
    assert_eq!(
        strings(&s.get_json("/api/suggest?type=tagk")?),
        vec!["dc", "host"]
    );
    let mut all_values: Vec<&str> = hosts.iter().chain(dcs.iter()).copied().collect();
    all_values.sort_unstable();
    assert_eq!(
        strings(&s.get_json("/api/suggest?type=tagv&max=100")?),
        all_values
    );
    let web: Vec<&str> = hosts
        .iter()
        .copied()
        .filter(|h| h.starts_with("web"))
        .collect();
    assert_eq!(strings(&s.get_json("/api/suggest?type=tagv&q=web")?), web);
    // POST form, and the Alibaba `metric` restriction.
    let (status, body) = s.post(
        "/api/suggest",
        r#"{"type":"tagv","q":"","metric":"sys.mem.free"}"#,
    )?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(strings(&json(&body)?), vec!["cache01", "sjc"]);
    // Errors in OpenTSDB's words.
    for (path, message) in [
        ("/api/suggest?q=x", "Missing parameter <code>type</code>"),
        ("/api/suggest?type=nope", "Invalid 'type' parameter:nope"),
        (
            "/api/suggest?type=metrics&max=abc",
            "Unable to parse 'max' as a number",
        ),
    ] {
        let (status, body) = s.get(path)?;
        assert_eq!(status, 400, "{path}");
        assert_eq!(json(&body)?["error"]["message"], json!(message), "{path}");
    }
    let (status, body) = s.post("/api/suggest", r#"{"q":"x"}"#)?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&body)?["error"]["message"],
        json!("Missing 'type' parameter")
    );
    Ok(())
}

#[test]
fn lookup_series_by_metric_and_pairs() -> Result<()> {
    let s = TestServer::spawn()?;
    load(&s)?;
    let hosts_of = |v: &Value| -> Vec<(String, String)> {
        v["results"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|e| {
                        (
                            e["metric"].as_str().unwrap_or_default().to_owned(),
                            e["tags"]["host"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // Every series of a metric, ordered by series key (tags sorted: dc first).
    let got = s.get_json("/api/search/lookup?m=sys.cpu.user")?;
    let mut want: Vec<(String, String, String)> = SERIES
        .iter()
        .filter(|(m, _, _)| *m == "sys.cpu.user")
        .map(|(m, h, d)| ((*d).to_owned(), (*h).to_owned(), (*m).to_owned()))
        .collect();
    want.sort();
    let want: Vec<(String, String)> = want.into_iter().map(|(_, h, m)| (m, h)).collect();
    assert_eq!(hosts_of(&got), want);
    assert_eq!(got["totalResults"], json!(want.len()));
    assert_eq!(got["type"], json!("LOOKUP"));
    // Any metric with host=web01; `*=sjc` (any key); host=* on one metric.
    let got = s.get_json("/api/search/lookup?m={host=web01}")?;
    let want: Vec<(String, String)> = {
        let mut w: Vec<(String, String)> = SERIES
            .iter()
            .filter(|(_, h, _)| *h == "web01")
            .map(|(m, h, _)| ((*m).to_owned(), (*h).to_owned()))
            .collect();
        w.sort();
        w
    };
    assert_eq!(hosts_of(&got), want);
    assert_eq!(got["metric"], json!("*"));
    let got = s.get_json("/api/search/lookup?m={*=sjc}")?;
    assert_eq!(
        got["totalResults"],
        json!(SERIES.iter().filter(|(_, _, d)| *d == "sjc").count())
    );
    let (status, body) = s.post(
        "/api/search/lookup",
        r#"{"metric":"sys.cpu.user","tags":[{"key":"host","value":"web01"},{"key":"host","value":"db01"}],"limit":1}"#,
    )?;
    assert_eq!(status, 200, "{body}");
    let got = json(&body)?;
    assert_eq!(got["totalResults"], json!(2));
    assert_eq!(got["results"].as_array().map(Vec::len), Some(1));
    // Errors.
    let (status, body) = s.get("/api/search/lookup")?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&body)?["error"]["message"],
        json!("Missing metric and tags. Please supply at least one value.")
    );
    assert_eq!(
        s.get("/api/search/lookup?m=sys.cpu.user{host=nosuch}")?.0,
        404
    );
    assert_eq!(s.get("/api/search/lookup?m=no.such.metric")?.0, 404);
    assert_eq!(s.get("/api/search/lookup?m=sys.cpu.user&limit=x")?.0, 400);
    Ok(())
}

#[test]
fn last_point_of_each_series() -> Result<()> {
    let s = TestServer::spawn()?;
    load(&s)?;
    let (status, body) = s.post(
        "/api/query/last",
        r#"{"queries":[{"metric":"sys.cpu.user","tags":{"host":"*"}},{"metric":"sys.mem.free","tags":{}}],"resolveNames":true}"#,
    )?;
    assert_eq!(status, 200, "{body}");
    let got = json(&body)?;
    let rows = got.as_array().cloned().unwrap_or_default();
    // One entry per series: its last timestamp and value, as a string.
    let mut want: Vec<(String, String, i64, String)> = Vec::new();
    for m in ["sys.cpu.user", "sys.mem.free"] {
        let mut of_metric: Vec<(String, String, i64, String)> = SERIES
            .iter()
            .enumerate()
            .filter(|(_, (sm, _, _))| *sm == m)
            .map(|(si, (sm, h, d))| {
                let i = N - 1;
                let v = if m == "sys.mem.free" {
                    serde_json::to_string(&(si as f64 * 10.0 + i as f64 + 0.5)).unwrap_or_default()
                } else {
                    (si as i64 * 10 + i).to_string()
                };
                (format!("{d},{h}"), (*sm).to_owned(), (T0 + i) * 1000, v)
            })
            .collect();
        of_metric.sort();
        want.extend(of_metric);
    }
    let got_rows: Vec<(String, String, i64, String)> = rows
        .iter()
        .map(|r| {
            (
                format!(
                    "{},{}",
                    r["tags"]["dc"].as_str().unwrap_or_default(),
                    r["tags"]["host"].as_str().unwrap_or_default()
                ),
                r["metric"].as_str().unwrap_or_default().to_owned(),
                r["timestamp"].as_i64().unwrap_or_default(),
                r["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(got_rows, want);
    // `timestamp` bounds the search: the point two seconds before the last.
    let (status, body) = s.post(
        "/api/query/last",
        &format!(
            r#"{{"queries":[{{"metric":"sys.cpu.nice","tags":{{}}}}],"timestamp":{}}}"#,
            T0 + N - 3
        ),
    )?;
    assert_eq!(status, 200, "{body}");
    let si = SERIES
        .iter()
        .position(|(m, _, _)| *m == "sys.cpu.nice")
        .unwrap_or_default() as i64;
    assert_eq!(
        json(&body)?[0]["value"],
        json!((si * 10 + N - 3).to_string())
    );
    // GET form; a one-hour back scan excludes these old points.
    let got = s.get_json("/api/query/last?timeseries=sys.cpu.user%7Bhost%3Dweb02%7D")?;
    assert_eq!(got.as_array().map(Vec::len), Some(1));
    assert_eq!(got[0]["tags"]["host"], json!("web02"));
    let got = s.get_json("/api/query/last?timeseries=sys.cpu.user&back_scan=1")?;
    assert_eq!(got, json!([]));
    assert_eq!(
        s.get("/api/query/last?timeseries=sys.cpu.user&back_scan=x")?
            .0,
        400
    );
    assert_eq!(s.post("/api/query/last", r#"{"queries":[]}"#)?.0, 400);
    Ok(())
}

#[test]
fn small_probes_answer() -> Result<()> {
    let s = TestServer::spawn()?;
    assert_eq!(
        s.get_json("/api/dropcaches")?,
        json!({"message": "Caches dropped", "status": "200"})
    );
    assert_eq!(
        s.get_json("/api/serializers")?[0]["serializer"],
        json!("json")
    );
    // Its contents: metrics::api_stats_list_the_counters_of_metrics.
    assert!(s.get_json("/api/stats")?.is_array());
    let config = s.get_json("/api/config")?;
    assert!(
        config
            .as_object()
            .is_some_and(|o| o.values().all(Value::is_string)),
        "{config}"
    );
    assert_eq!(config["tsd.query.allow_delete"], json!("false"));
    Ok(())
}

/// Filter types of spec 9.5.1 that Grafana lists from `/api/config/filters`,
/// each checked against the hosts selected here by the same rule.
#[test]
fn filter_types_and_their_listing() -> Result<()> {
    let s = TestServer::spawn()?;
    load(&s)?;
    let listed = s.get_json("/api/config/filters")?;
    let mut keys: Vec<String> = listed
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "iliteral_or",
            "iwildcard",
            "literal_or",
            "not_iliteral_or",
            "not_key",
            "not_literal_or",
            "regexp",
            "wildcard"
        ]
    );
    let aggs = strings(&s.get_json("/api/aggregators")?);
    assert!(aggs.contains(&"p99".to_owned()) && aggs.contains(&"zimsum".to_owned()));
    let hosts = |filter: Value| -> Result<Vec<String>> {
        let body = json!({"start": T0, "end": T0 + N, "queries": [{"aggregator": "none",
            "metric": "sys.cpu.user", "filters": [filter]}]});
        let (status, text) = s.post("/api/query", &body.to_string())?;
        anyhow::ensure!(status == 200, "{filter}: {text}");
        let mut out: Vec<String> = json(&text)?
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r["tags"]["host"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        Ok(out)
    };
    let user_hosts = |keep: &dyn Fn(&str) -> bool| -> Vec<String> {
        let mut v: Vec<String> = SERIES
            .iter()
            .filter(|(m, h, _)| *m == "sys.cpu.user" && keep(h))
            .map(|(_, h, _)| (*h).to_owned())
            .collect();
        v.sort();
        v
    };
    let f = |t: &str, e: &str| json!({"type": t, "tagk": "host", "filter": e});
    assert_eq!(
        hosts(f("iliteral_or", "WEB01|Db01"))?,
        user_hosts(&|h| h == "web01" || h == "db01")
    );
    assert_eq!(
        hosts(f("not_iliteral_or", "WEB01"))?,
        user_hosts(&|h| h != "web01")
    );
    assert_eq!(
        hosts(f("iwildcard", "WEB*"))?,
        user_hosts(&|h| h.starts_with("web"))
    );
    assert_eq!(
        hosts(f("regexp", "0[12]$"))?,
        user_hosts(&|h| h.ends_with("01") || h.ends_with("02"))
    );
    assert_eq!(
        hosts(json!({"type": "not_key", "tagk": "rack", "filter": ""}))?,
        user_hosts(&|_| true)
    );
    assert_eq!(
        hosts(json!({"type": "not_key", "tagk": "host", "filter": ""}))?,
        Vec::<String>::new()
    );
    for (filter, message) in [
        (
            f("literal_or", "|"),
            "Filter must contain more than just a pipe",
        ),
        (f("wildcard", "web"), "Filter must contain an asterisk"),
        (f("regexp", "("), "Invalid regular expression: ("),
        (
            f("bogus", "x"),
            "Could not find a tag value filter of the type: bogus",
        ),
        (
            json!({"type": "not_key", "tagk": "host", "filter": "x"}),
            "The filter must be empty for the not_key filter",
        ),
    ] {
        let body = json!({"start": T0, "queries": [{"aggregator": "sum", "metric": "sys.cpu.user", "filters": [filter]}]});
        let (status, text) = s.post("/api/query", &body.to_string())?;
        assert_eq!(status, 400, "{text}");
        assert_eq!(json(&text)?["error"]["message"], json!(message));
    }
    Ok(())
}

/// The requests Grafana's OpenTSDB data source sends for template
/// variables (`metrics(p)`, `tag_names(m)`, `tag_values(m, k, filters)`)
/// and for tag suggestions in the query editor (`suggest_tagk/tagv`), with
/// its default lookup limit of 1000; answers computed from the data.
#[test]
fn grafana_template_variables_and_tag_suggestions() -> Result<()> {
    let s = TestServer::spawn()?;
    load(&s)?;
    let suggest = |kind: &str, q: &str| -> Result<Vec<String>> {
        Ok(strings(&s.get_json(&format!(
            "/api/suggest?type={kind}&q={q}&max=1000"
        ))?))
    };
    let want = |f: &dyn Fn(&Row) -> Option<String>| -> Vec<String> {
        let set: BTreeSet<String> = SERIES.iter().filter_map(f).collect();
        set.into_iter().collect()
    };
    // metrics(sys.cpu)
    assert_eq!(
        suggest("metrics", "sys.cpu")?,
        want(&|(m, _, _)| m.starts_with("sys.cpu").then(|| m.to_string()))
    );
    // suggest_tagk / suggest_tagv while typing.
    assert_eq!(suggest("tagk", "h")?, vec!["host"]);
    assert_eq!(
        suggest("tagv", "web")?,
        want(&|(_, h, _)| h.starts_with("web").then(|| h.to_string()))
    );
    let lookup = |m: &str| -> Result<Value> {
        s.get_json(&format!(
            "/api/search/lookup?m={}&limit=1000",
            m.replace('{', "%7B").replace('}', "%7D")
        ))
    };
    // tag_names(sys.cpu.user): the keys of the lookup results.
    let names: BTreeSet<String> = lookup("sys.cpu.user")?["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["tags"].as_object())
        .flat_map(|t| t.keys().cloned())
        .collect();
    assert_eq!(names, BTreeSet::from(["dc".to_owned(), "host".to_owned()]));
    // tag_values(sys.cpu.user, host) and tag_values(sys.cpu.user, host, dc=lga).
    let values = |m: &str| -> Result<BTreeSet<String>> {
        Ok(lookup(m)?["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["tags"]["host"].as_str().map(str::to_owned))
            .collect())
    };
    let hosts = |dc: Option<&str>| -> BTreeSet<String> {
        SERIES
            .iter()
            .filter(|(m, _, d)| *m == "sys.cpu.user" && dc.is_none_or(|want| want == *d))
            .map(|(_, h, _)| h.to_string())
            .collect()
    };
    assert_eq!(values("sys.cpu.user{host=*}")?, hosts(None));
    assert_eq!(values("sys.cpu.user{dc=lga,host=*}")?, hosts(Some("lga")));
    Ok(())
}

/// Issue 14: lookups, suggestions and dump_meta answer within
/// `limits.max_result_rows`: a lookup matching more series is refused
/// clearly, `max` of suggest and dump_meta is clamped to it.
#[test]
fn discovery_stays_within_the_result_limit() -> Result<()> {
    let s = TestServer::spawn_with_config("[limits]\nmax_result_rows = 2\n")?;
    load(&s)?;
    let cpu_series = SERIES
        .iter()
        .filter(|(m, _, _)| *m == "sys.cpu.user")
        .count();
    assert!(cpu_series > 2);
    let (status, text) = s.get("/api/search/lookup?m=sys.cpu.user&limit=100")?;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("limits.max_result_rows"), "{text}");
    // Within the limit it answers as before.
    let got = s.get_json("/api/search/lookup?m=sys.mem.free")?;
    assert_eq!(got["totalResults"], json!(1));
    // Suggest: the first two hosts in order, though `max` asks for more.
    let hosts: BTreeSet<&str> = SERIES.iter().map(|(_, h, _)| *h).collect();
    let want: Vec<String> = hosts.iter().take(2).map(|h| h.to_string()).collect();
    let got = s.get_json("/api/suggest?type=tagv&max=100")?;
    let values: BTreeSet<&str> = SERIES.iter().flat_map(|(_, h, d)| [*h, *d]).collect();
    let want_values: Vec<String> = values.iter().take(2).map(|v| v.to_string()).collect();
    assert_eq!(strings(&got), want_values);
    let got = s.get_json("/api/suggest?type=tagv&metric=sys.cpu.user&max=100")?;
    let cpu_values: BTreeSet<&str> = SERIES
        .iter()
        .filter(|(m, _, _)| *m == "sys.cpu.user")
        .flat_map(|(_, h, d)| [*h, *d])
        .collect();
    let want_cpu: Vec<String> = cpu_values.iter().take(2).map(|v| v.to_string()).collect();
    assert_eq!(strings(&got), want_cpu);
    let (status, text) = s.post(
        "/api/dump_meta",
        &json!({"tagkey": "host", "tagvalueprefix": "", "max": 100}).to_string(),
    )?;
    assert_eq!(status, 200, "{text}");
    let listed: Vec<String> = json(&text)?
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["host"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(listed, want);
    Ok(())
}
