//! TV-Q22..TV-Q28: last, suggest, lookup, aggregators, filters, dump_meta
//! and routing, over the fixtures of the parent module.

use super::*;

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

pub(super) fn q22_query_last(s: &TestServer) -> Result<()> {
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

pub(super) fn q23_suggest(s: &TestServer) -> Result<()> {
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
pub(super) fn lookup(s: &TestServer, query: &str) -> Result<Value> {
    let mut got = s.get_json(&format!("/api/search/lookup?{query}"))?;
    let time = got.as_object_mut().and_then(|o| o.remove("time"));
    assert!(
        time.as_ref().is_some_and(Value::is_u64),
        "lookup time: {time:?}"
    );
    Ok(got)
}

pub(super) fn q24_lookup(s: &TestServer) -> Result<()> {
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

pub(super) fn q25_to_q28_aggregators_filters_dump_meta_routing(s: &TestServer) -> Result<()> {
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
