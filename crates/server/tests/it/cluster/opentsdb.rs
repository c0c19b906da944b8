//! OpenTSDB's newest points, lookups, TSUIDs and Alibaba's multi-field
//! calls through the cluster: telnet puts, `/api/import` and `/api/mput`
//! through the router, then `/api/query/last`, `/api/search/lookup`,
//! `/api/query/mlast` and `/api/mquery` answered by the querier as the
//! single node answers them. TSUIDs are the cluster's own (numbered as
//! first printed, not in a single node's first-seen order): the same on
//! every node, and each names its series back.

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

/// An answer without what differs by node: TSUIDs (of every element of
/// an array answer, or of a lookup's results) and a lookup's time.
fn comparable(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("time");
    }
    let elements = match v.get_mut("results") {
        Some(results) => results.as_array_mut(),
        None => v.as_array_mut(),
    };
    for element in elements.into_iter().flatten() {
        if let Some(o) = element.as_object_mut() {
            o.remove("tsuid");
        }
    }
    v
}

/// `/api/mput` through the router and into the single node, then the
/// newest-point, lookup and multi-field reads alike; the cpu.load series hold the
/// first `minutes` minutes of `super::puts`.
pub(super) fn opentsdb_alike(
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

    // A field's kind is the cluster's: numbers first on one host, then
    // text on eight others (most in other shards) is refused point by
    // point as the single node refuses it.
    let first = json!([{"metric": "kinds.m", "timestamp": T0, "value": 1, "tags": {"host": "k0"}}]);
    let text: Vec<Value> = (1..9)
        .map(|h| {
            json!({"metric": "kinds.m", "timestamp": T0, "value": "abc",
                        "tags": {"host": format!("k{h}")}})
        })
        .collect();
    let put_alike = |body: &Value| -> Result<u16> {
        let body = body.to_string();
        let (status, local) = json_request(single, "POST", "/api/put?details", Some(&body))?;
        let (cluster_status, cluster) =
            until_not_busy(router, "POST", "/api/put?details", Some(&body))?;
        assert_eq!(
            (cluster_status, json(&cluster)?),
            (status, json(&local)?),
            "{body}"
        );
        Ok(status)
    };
    put_alike(&first)?;
    let text = Value::Array(text);
    assert_eq!(put_alike(&text)?, 400);
    // Its last series removed, the metric forgets its kind: text is
    // taken now, on both.
    let gone = json!({"metric": "kinds.m"}).to_string();
    for node in [single, router] {
        let (status, answer) = until_not_busy(node, "POST", "/api/delete_meta", Some(&gone))?;
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(put_alike(&text)?, 200);

    // The web console is there on a cluster node too.
    let (status, page) = querier.get("/console")?;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<html") || page.contains("<!doctype"),
        "{page}"
    );

    // Telnet puts through the router too; `version` answers once the
    // puts before it are written.
    let lines: String = (0..20)
        .map(|i| format!("put telnet.m {} {} src=t{}\n", T0 + i * 60, i * 2, i % 3))
        .collect();
    for node in [single, router] {
        let mut telnet = node.telnet()?;
        telnet.send(&format!("{lines}version\n"))?;
        let answer = telnet.read_available()?;
        assert!(answer.starts_with("sundial "), "{answer}");
    }

    // Series lines through `/api/import` (the router writes them as a put).
    let lines: String = (0..3)
        .map(|s| {
            let times: Vec<i64> = (0..10).map(|i| (T0 + i * 60) * 1000).collect();
            let values: Vec<i64> = (0..10).map(|i| i * 10 + s).collect();
            format!(
                "{}\n",
                json!({"metric": "imported.m", "tags": {"line": format!("l{s}")},
                       "timestamps": times, "values": values})
            )
        })
        .collect();
    for node in [single, router] {
        let (status, text) = until_not_busy(node, "POST", "/api/import", Some(&lines))?;
        assert_eq!(status, 200, "{text}");
    }

    let end = T0 + 29 * 60;
    let reads = [
        (
            "POST",
            "/api/query".to_string(),
            Some(json!({"start": T0, "end": end,
                        "queries": [{"metric": "imported.m", "aggregator": "sum"}]})),
        ),
        ("GET", "/api/config/filters".to_string(), None),
        ("GET", "/api/aggregators".to_string(), None),
        ("GET", "/api/health".to_string(), None),
        (
            "POST",
            "/api/query".to_string(),
            Some(json!({"start": T0, "end": end,
                        "queries": [{"metric": "telnet.m", "aggregator": "sum"}]})),
        ),
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
            "GET",
            "/api/search/lookup?m=cpu.load{dc=east}&limit=3".into(),
            None,
        ),
        ("GET", "/api/search/lookup?m=*{*=s2}".into(), None),
        (
            "POST",
            "/api/search/lookup".into(),
            Some(json!({"metric": "turbine", "tags": [{"key": "site", "value": "*"}]})),
        ),
        (
            "GET",
            "/api/search/lookup?m=cpu.load{host=nobody}".into(),
            None,
        ),
        ("GET", "/api/search/lookup?m=no.such.metric".into(), None),
        (
            "POST",
            "/api/dump_meta".into(),
            Some(json!({"tagkey": "host", "tagvalueprefix": "h", "max": 5})),
        ),
        (
            "POST",
            "/api/dump_meta".into(),
            Some(json!({"tagkey": "site", "tagvalueprefix": "", "metric": "turbine"})),
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
        ("GET", "/api/cardinality".into(), None),
        ("GET", "/api/cardinality?metric=turbine&top=2".into(), None),
    ];
    for (method, path, body) in &reads {
        let body = body.as_ref().map(Value::to_string);
        let (status, local) = json_request(single, method, path, body.as_deref())?;
        let unknown = path.contains("nobody") || path.contains("no.such");
        assert_eq!(
            status,
            if unknown { 404 } else { 200 },
            "{path} {body:?}: {local}"
        );
        let (cluster_status, cluster) = until_not_busy(querier, method, path, body.as_deref())?;
        assert_eq!(cluster_status, status, "{path} {body:?}: {cluster}");
        // `/api/health` answers with an empty body.
        let parse = |t: &str| {
            if t.is_empty() {
                Ok(Value::Null)
            } else {
                json(t)
            }
        };
        let (cluster, local) = (parse(&cluster)?, parse(&local)?);
        assert_eq!(comparable(cluster), comparable(local), "{path} {body:?}");
    }

    // The answers hold what was written: h3's newest load, and at an odd
    // site a row for the newest speed without a temperature.
    let h3 = reads.iter().find(|r| r.1.contains("{host=h3}"));
    let (_, text) = until_not_busy(querier, "GET", h3.map_or("", |r| r.1.as_str()), None)?;
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
    let star = reads.iter().find(|r| r.1 == "/api/query/mlast");
    let body = star.and_then(|r| r.2.as_ref()).map(Value::to_string);
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

    // Four turbine sites, a series each, counted across the shards.
    let (_, text) = until_not_busy(querier, "GET", "/api/cardinality?metric=turbine", None)?;
    let turbine = json(&text)?;
    assert_eq!(turbine["series"], json!(4), "{text}");
    assert_eq!(turbine["tags"][0]["value_count"], json!(4), "{text}");

    tsuids_alike(single, router, querier)?;
    deletes_alike(single, router, querier)
}

/// Alibaba's deletes through the router and on the single node: site s1's
/// speeds of minutes 10..=20, and site s3 whole. Every owner deletes in
/// its shards and checkpoints before answering, so the turbines read the
/// same afterwards, also once an owner has died ([`turbines_alike`]).
fn deletes_alike(single: &TestServer, router: &TestServer, querier: &TestServer) -> Result<()> {
    let deletes = [
        (
            "/api/delete_data",
            json!({"metric": "turbine", "tags": {"site": "s1"}, "fields": ["rpm"],
                   "start": T0 + 10 * 60, "end": T0 + 20 * 60}),
        ),
        (
            "/api/delete_meta",
            json!({"metric": "turbine", "tags": {"site": "s3"}}),
        ),
    ];
    for (path, body) in deletes {
        let body = body.to_string();
        let (status, text) = json_request(single, "POST", path, Some(&body))?;
        assert_eq!(status, 200, "single node {path}: {text}");
        let (status, text) = until_not_busy(router, "POST", path, Some(&body))?;
        assert_eq!(status, 200, "router {path}: {text}");
    }
    turbines_alike(single, querier)?;
    // What is left, from what was written: three sites, and s1's speed
    // on 30 minutes less the 11 deleted.
    let (_, text) = until_not_busy(querier, "GET", "/api/cardinality?metric=turbine", None)?;
    assert_eq!(json(&text)?["series"], json!(3), "{text}");
    let speeds = json!({"start": T0, "end": T0 + 3600, "queries": [{
        "metric": "turbine", "aggregator": "none", "fields": [{"field": "rpm"}],
        "tags": {"site": "s1"}}]})
    .to_string();
    let (_, text) = until_not_busy(querier, "POST", "/api/mquery", Some(&speeds))?;
    let rows = json(&text)?[0]["values"].as_array().map_or(0, Vec::len);
    assert_eq!(rows, 30 - 11, "{text}");
    Ok(())
}

/// Every turbine's fields and the turbines' cardinality, alike on the
/// single node and the cluster.
pub(super) fn turbines_alike(single: &TestServer, querier: &TestServer) -> Result<()> {
    let every = json!({"start": T0, "end": T0 + 3600, "queries": [{
        "metric": "turbine", "aggregator": "none", "fields": [{"field": "*"}],
        "tags": {"site": "*"}}]})
    .to_string();
    let reads = [
        ("POST", "/api/mquery", Some(every.as_str())),
        ("GET", "/api/cardinality?metric=turbine", None),
    ];
    for (method, path, body) in reads {
        let (status, local) = json_request(single, method, path, body)?;
        assert_eq!(status, 200, "{path}: {local}");
        let (_, cluster) = until_not_busy(querier, method, path, body)?;
        assert_eq!(json(&cluster)?, json(&local)?, "{path} {body:?}");
    }
    // Exports: the same lines (a cluster's come shard after shard), and
    // the same metrics.
    let (status, local) = single.get("/api/export?metric=turbine")?;
    assert_eq!(status, 200, "{local}");
    let (status, cluster) = until_not_busy(querier, "GET", "/api/export?metric=turbine", None)?;
    assert_eq!(status, 200, "{cluster}");
    let lines = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(lines(&cluster), lines(&local));
    // A line per site and field: rpm at every site, temp at every site.
    let sites = json(&single.get("/api/cardinality?metric=turbine")?.1)?["series"].clone();
    assert_eq!(json!(lines(&local).len() / 2), sites, "{local}");
    // (Later in the test the cluster also holds BlueKing's metrics.)
    let range = format!("/api/export/metrics?start={T0}&end={}", T0 + 3600);
    let (_, cluster) = until_not_busy(querier, "GET", &range, None)?;
    let mut cluster = json(&cluster)?;
    if let Some(names) = cluster.as_array_mut() {
        names.retain(|n| !n.as_str().is_some_and(|n| n.contains("bkmonitor")));
    }
    assert_eq!(cluster, json(&single.get(&range)?.1)?);
    Ok(())
}

/// The TSUIDs of the 8 cpu.load series as `node` prints them, by host.
fn tsuids_of(node: &TestServer) -> Result<(Value, Vec<String>)> {
    let path = "/api/query/last?timeseries=cpu.load{dc=*}";
    let (status, text) = until_not_busy(node, "GET", path, None)?;
    assert_eq!(status, 200, "{text}");
    let answer = json(&text)?;
    let mut by_host: Vec<(String, String)> = answer
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let host = e["tags"]["host"].as_str().unwrap_or_default().to_owned();
            (host, e["tsuid"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    by_host.sort();
    Ok((answer, by_host.into_iter().map(|(_, t)| t).collect()))
}

/// The cluster's TSUIDs: well formed, distinct, printed alike by the
/// querier and the router, and each naming its series back in `last` and
/// `/api/query` (with TSUIDs and `showTSUIDs`) as the single node's own
/// TSUIDs do there.
fn tsuids_alike(single: &TestServer, router: &TestServer, querier: &TestServer) -> Result<()> {
    let (from_querier, cluster) = tsuids_of(querier)?;
    let (from_router, _) = tsuids_of(router)?;
    assert_eq!(from_router, from_querier, "two nodes print other TSUIDs");
    let (_, local) = tsuids_of(single)?;
    assert_eq!(cluster.len(), 8, "{from_querier}");
    let distinct: std::collections::BTreeSet<&String> = cluster.iter().collect();
    assert_eq!(distinct.len(), 8, "{cluster:?}");
    // A metric and two tags: five UIDs of six hex digits.
    for t in &cluster {
        assert!(
            t.len() == 30 && t.bytes().all(|b| b.is_ascii_hexdigit()),
            "{t}"
        );
    }
    let body = json!({"queries": [{"tsuids": cluster}]}).to_string();
    let (status, text) = until_not_busy(querier, "POST", "/api/query/last", Some(&body))?;
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)?, from_querier, "last by TSUID");

    let end = T0 + 3600;
    for (single_tsuid, cluster_tsuid) in local.iter().zip(&cluster).take(3) {
        let by_tsuid = |t: &str| {
            json!({"start": T0, "end": end, "queries": [{"aggregator": "sum", "tsuids": [t]}]})
                .to_string()
        };
        let (status, text) =
            json_request(single, "POST", "/api/query", Some(&by_tsuid(single_tsuid)))?;
        assert_eq!(status, 200, "{text}");
        let want = json(&text)?;
        assert!(
            want[0]["dps"].as_object().is_some_and(|d| !d.is_empty()),
            "{want}"
        );
        let body = by_tsuid(cluster_tsuid);
        let (_, text) = until_not_busy(querier, "POST", "/api/query", Some(&body))?;
        assert_eq!(json(&text)?, want, "{body}");
    }
    let shown = json!({"start": T0, "end": end, "showTSUIDs": true,
        "queries": [{"aggregator": "sum", "metric": "cpu.load", "tags": {"host": "h3"}}]})
    .to_string();
    let (_, text) = json_request(single, "POST", "/api/query", Some(&shown))?;
    let mut want = json(&text)?;
    assert_eq!(want[0]["tsuids"], json!([local[3]]), "{want}");
    want[0]["tsuids"] = json!([cluster[3]]);
    let (_, text) = until_not_busy(querier, "POST", "/api/query", Some(&shown))?;
    assert_eq!(json(&text)?, want, "showTSUIDs");
    tsmeta_alike(single, querier, &local[3], &cluster[3])?;
    uids_by_hand(single, router, querier)
}

/// A series meta object's names: the TSUID's metric and tags, in order.
fn meta_names(meta: &Value) -> Vec<String> {
    let tags = meta["tags"].as_array().into_iter().flatten();
    std::iter::once(&meta["metric"])
        .chain(tags)
        .map(|m| {
            format!(
                "{}:{}",
                m["type"].as_str().unwrap_or("?"),
                m["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// `/api/uid/tsmeta` by TSUID (each side its own) and by series: the same
/// series and names as the single node's, the cluster's own TSUIDs.
fn tsmeta_alike(
    single: &TestServer,
    querier: &TestServer,
    single_tsuid: &str,
    cluster_tsuid: &str,
) -> Result<()> {
    let by_tsuid = |node: &TestServer, t: &str| -> Result<Value> {
        let (status, text) =
            json_request(node, "GET", &format!("/api/uid/tsmeta?tsuid={t}"), None)?;
        assert_eq!(status, 200, "{text}");
        json(&text)
    };
    let (local, cluster) = (
        by_tsuid(single, single_tsuid)?,
        by_tsuid(querier, cluster_tsuid)?,
    );
    assert_eq!(
        meta_names(&cluster),
        meta_names(&local),
        "{cluster} / {local}"
    );
    assert_eq!(cluster["tsuid"], json!(cluster_tsuid));
    assert!(
        meta_names(&cluster).contains(&"TAGV:h3".to_string()),
        "{cluster}"
    );
    let path = "/api/uid/tsmeta?m=cpu.load{dc=east}";
    let (status, local) = json_request(single, "GET", path, None)?;
    let (cluster_status, cluster) = json_request(querier, "GET", path, None)?;
    assert_eq!((status, cluster_status), (200, 200), "{local} / {cluster}");
    let names = |text: &str| -> Result<Vec<Vec<String>>> {
        Ok(json(text)?
            .as_array()
            .into_iter()
            .flatten()
            .map(meta_names)
            .collect())
    };
    assert_eq!(names(&cluster)?, names(&local)?);
    assert_eq!(names(&cluster)?.len(), 4, "{cluster}");
    let path = "/api/uid/tsmeta?m=no.such.metric";
    let (status, local) = json_request(single, "GET", path, None)?;
    let (cluster_status, cluster) = json_request(querier, "GET", path, None)?;
    assert_eq!(
        (cluster_status, comparable(json(&cluster)?)),
        (status, comparable(json(&local)?))
    );
    Ok(())
}

/// `/api/uid/assign` through the router: a new metric name gets a number
/// (read back through the querier's `uidmeta`), a printed tag key has
/// one already; answered as the single node answers, but for the numbers.
fn uids_by_hand(single: &TestServer, router: &TestServer, querier: &TestServer) -> Result<()> {
    let body = json!({"metric": ["assigned.by.hand"], "tagk": ["host"]}).to_string();
    let (status, local) = json_request(single, "POST", "/api/uid/assign", Some(&body))?;
    let (cluster_status, cluster) = json_request(router, "POST", "/api/uid/assign", Some(&body))?;
    // The tag key exists: the request fails as a whole, the metric is made.
    assert_eq!((status, cluster_status), (400, 400), "{local} / {cluster}");
    let (local, cluster) = (json(&local)?, json(&cluster)?);
    let shape = |v: &Value| -> Vec<String> {
        v.as_object()
            .into_iter()
            .flatten()
            .flat_map(|(k, inner)| {
                let names = inner
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(n, _)| n.clone());
                std::iter::once(k.clone()).chain(names).collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(shape(&cluster), shape(&local), "{cluster} / {local}");
    let error = cluster["tagk_errors"]["host"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("Name already exists with UID: "),
        "{cluster}"
    );
    let uid = cluster["metric"]["assigned.by.hand"]
        .as_str()
        .unwrap_or_default();
    let path = format!("/api/uid/uidmeta?type=metric&uid={uid}");
    let (status, text) = json_request(querier, "GET", &path, None)?;
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)?["name"], json!("assigned.by.hand"), "{text}");
    // Again: it exists now, on every node.
    let body = json!({"metric": ["assigned.by.hand"]}).to_string();
    let (status, text) = json_request(querier, "POST", "/api/uid/assign", Some(&body))?;
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        json(&text)?["metric_errors"]["assigned.by.hand"],
        json!(format!("Name already exists with UID: {uid}")),
        "{text}"
    );
    Ok(())
}
