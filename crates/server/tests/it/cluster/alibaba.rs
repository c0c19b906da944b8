//! OpenTSDB's newest points and Alibaba's multi-field calls through the
//! cluster: `/api/mput` through the router, then `/api/query/last`,
//! `/api/query/mlast` and `/api/mquery` answered by the querier as the
//! single node answers them, but for the TSUIDs a cluster does not keep.

use super::{T0, json_request, until_not_busy};
use crate::harness::{TestServer, json};
use anyhow::Result;
use serde_json::{Value, json};

/// A turbine's speed a minute over half an hour; its temperature only on
/// even minutes at odd sites, so their newest points differ.
fn turbines() -> String {
    let mut points = Vec::new();
    for site in 0..4 {
        for minute in 0..30 {
            let mut fields = json!({"rpm": (site * 13 + minute * 3) % 40});
            if site % 2 == 0 || minute % 2 == 0 {
                fields["temp"] = json!((site * 10 + minute) as f64 / 4.0);
            }
            points.push(json!({
                "metric": "turbine", "timestamp": T0 + minute * 60,
                "fields": fields, "tags": {"site": format!("s{site}")},
            }));
        }
    }
    Value::Array(points).to_string()
}

/// Takes out `tsuid` of every element of a single node's array answer.
fn without_tsuids(mut v: Value) -> Value {
    for element in v.as_array_mut().into_iter().flatten() {
        if let Some(o) = element.as_object_mut() {
            o.remove("tsuid");
        }
    }
    v
}

/// `/api/mput` through the router and into the single node, then the
/// newest-point and multi-field reads alike; the cpu.load series hold the
/// first `minutes` minutes of `super::puts`.
pub(super) fn alibaba_alike(
    single: &TestServer,
    router: &TestServer,
    querier: &TestServer,
    minutes: i64,
) -> Result<()> {
    let body = turbines();
    let (status, text) = json_request(single, "POST", "/api/mput", Some(&body))?;
    assert_eq!(status, 204, "single node: {text}");
    let (status, text) = until_not_busy(router, "POST", "/api/mput", Some(&body))?;
    assert_eq!(status, 204, "router: {text}");

    let end = T0 + 29 * 60;
    let reads = [
        (
            "GET",
            "/api/query/last?timeseries=cpu.load{host=h3}".to_string(),
            None,
        ),
        (
            "GET",
            "/api/query/last?timeseries=cpu.load{dc=*}&back_scan=0".into(),
            None,
        ),
        (
            "POST",
            "/api/query/last".into(),
            Some(
                json!({"queries": [{"metric": "cpu.load", "tags": {"dc": "east"}}],
                        "timestamp": T0 + 600}),
            ),
        ),
        (
            "POST",
            "/api/query/last".into(),
            Some(json!({"queries": [{"metric": "no.such.metric"}]})),
        ),
        (
            "POST",
            "/api/query/mlast".into(),
            Some(json!({"queries": [{"metric": "turbine", "fields": ["*"],
                                     "tags": {"site": "*"}}]})),
        ),
        (
            "POST",
            "/api/query/mlast".into(),
            Some(json!({"queries": [{"metric": "turbine", "fields": ["rpm"],
                                     "tags": {"site": "s1"}}], "timestamp": T0 + 300})),
        ),
        (
            "POST",
            "/api/mquery".into(),
            Some(json!({"start": T0, "end": end, "queries": [{
                "metric": "turbine", "aggregator": "none", "fields": [{"field": "*"}],
                "tags": {"site": "s1"}}]})),
        ),
        (
            "POST",
            "/api/mquery".into(),
            Some(json!({"start": T0, "end": end, "queries": [{
                "metric": "turbine", "aggregator": "sum", "downsample": "5m-avg",
                "fields": [{"field": "rpm"}, {"field": "temp", "alias": "t"}]}]})),
        ),
    ];
    for (method, path, body) in &reads {
        let body = body.as_ref().map(Value::to_string);
        let (status, local) = json_request(single, method, path, body.as_deref())?;
        assert_eq!(status, 200, "{path} {body:?}: {local}");
        let (cluster_status, cluster) = until_not_busy(querier, method, path, body.as_deref())?;
        assert_eq!(cluster_status, status, "{path} {body:?}: {cluster}");
        let (cluster, local) = (json(&cluster)?, json(&local)?);
        assert!(!cluster.to_string().contains("tsuid"), "{cluster}");
        assert_eq!(cluster, without_tsuids(local), "{path} {body:?}");
    }

    // The answers hold what was written: h3's newest load, and at an odd
    // site a row for the newest speed without a temperature.
    let (_, text) = until_not_busy(querier, "GET", &reads[0].1, None)?;
    let minute = minutes - 1;
    let load = (3 * 11 + minute * 7) % 50;
    assert_eq!(
        json(&text)?[0]["value"],
        json!(format!("{load}.25")),
        "{text}"
    );
    assert_eq!(
        json(&text)?[0]["timestamp"],
        json!((T0 + minute * 60) * 1000),
        "{text}"
    );
    let body = reads[4].2.as_ref().map(Value::to_string);
    let (_, text) = until_not_busy(querier, "POST", "/api/query/mlast", body.as_deref())?;
    let s1 = &json(&text)?[1];
    assert_eq!(s1["tags"]["site"], json!("s1"), "{text}");
    assert_eq!(s1["columns"], json!(["timestamp", "rpm", "temp"]), "{text}");
    let rpm = (13 + 29 * 3) % 40;
    assert_eq!(
        s1["values"],
        json!([
            [(T0 + 28 * 60) * 1000, null, 9.5],
            [(T0 + 29 * 60) * 1000, rpm, null]
        ]),
        "{text}"
    );

    // A cluster keeps no UIDs: what names series by TSUID or asks for
    // them is refused, clearly, not answered without them.
    let tsuids = json!(["000001000001000001"]);
    let refused = [
        ("/api/query/last", json!({"queries": [{"tsuids": tsuids}]})),
        (
            "/api/query",
            json!({"start": T0, "queries": [{"aggregator": "sum", "tsuids": tsuids}]}),
        ),
        (
            "/api/query",
            json!({"start": T0, "showTSUIDs": true,
                   "queries": [{"aggregator": "sum", "metric": "cpu.load"}]}),
        ),
    ];
    for (path, body) in refused {
        let body = body.to_string();
        let (status, text) = json_request(single, "POST", path, Some(&body))?;
        assert_eq!(status, 200, "single node: {body}: {text}");
        let (status, text) = json_request(querier, "POST", path, Some(&body))?;
        assert_eq!(status, 501, "{body}: {text}");
        assert!(text.contains("TSUIDs"), "{text}");
    }
    Ok(())
}
