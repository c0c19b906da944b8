//! A cluster of separate `sundial serve` processes on loopback, with
//! PostgreSQL, nats-server (JetStream) and the S3 test server: three
//! ingesters, a router and two queriers take OpenTSDB and Baidu writes and
//! answer their queries as one node does with the same writes, while
//! shards move as the ingesters join and after one is killed with
//! `kill -9` during writes; while PostgreSQL is down they go on taking
//! writes and answering, and no shard moves when it is back.
//! Listings, newest points, lookups, TSUIDs, Alibaba's multi-field calls
//! and SQL answer alike too; Baidu's databases are the cluster's; BlueKing's metadata is shared by every node. Two compactors: one works at a
//! time, and the other takes over when it is killed. Access keys made through
//! one node hold on every node. Routes not built for clusters say so.

mod databases;
mod keys;
mod local_wal;
mod opentsdb;

use crate::harness::{TestServer, json, point};
use crate::object_store::fresh_store_keys;
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use sundial_testkit::nats::Nats;
use sundial_testkit::postgres::Postgres;

const T0: i64 = 1_700_000_000;
const SECRET: &str = "cluster process test";
const SHARDS: u32 = 8;

fn node_config(pg_url: &str, nats_url: &str, store: &str, role: &str, id: &str) -> String {
    format!(
        "[cluster]\nrole = \"{role}\"\npostgres_url = \"{pg_url}\"\nnats_url = \"{nats_url}\"\n\
         shards = 8\nnode_id = \"{id}\"\nlisten = \"127.0.0.1:0\"\nsecret = \"{SECRET}\"\n\
         lease_secs = 3\nrequest_timeout_secs = 10\ncheckpoint_secs = 2\n\
         compaction_secs = 1\ncompaction_grace_secs = 0\n{store}\n\
         [storage]\ncompaction_settle_secs = 0\n"
    )
}

/// A counter's value on `server`'s `/metrics`.
fn counter(server: &TestServer, name: &str) -> Result<u64> {
    let (status, text) = server.get("/metrics")?;
    assert_eq!(status, 200, "{text}");
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .ok_or_else(|| anyhow::anyhow!("no {name} in {text}"))?;
    Ok(value.trim().parse()?)
}

/// `method path body` on `server`, retried while it answers busy (a shard
/// moving or not yet owned) for up to a minute; the final status and body.
fn until_not_busy(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, text) = json_request(server, method, path, body)?;
        if status != 503 {
            return Ok((status, text));
        }
        if Instant::now() > deadline {
            bail!("{method} {path} still busy after a minute: {text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `method path` with a JSON body (Baidu's API wants the content type).
fn json_request(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let reply = server.send(
        method,
        path,
        &[("Content-Type", "application/json")],
        body.map(str::as_bytes),
    )?;
    Ok((reply.status, reply.body))
}

/// Shards `server` (an ingester) owns now, from its `/metrics`.
fn owned(server: &TestServer) -> Result<usize> {
    gauge(server, "sundial_cluster_shards_owned")
}

/// A gauge of `server`'s `/metrics`.
fn gauge(server: &TestServer, name: &str) -> Result<usize> {
    let (_, text) = server.get("/metrics")?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .ok_or_else(|| anyhow::anyhow!("no {name} in /metrics"))?
        .trim()
        .parse()
        .map_err(Into::into)
}

/// Waits until `done` holds for every ingester's (owned, unconfirmed)
/// shard counts.
fn until_shards(ingesters: &[TestServer], done: impl Fn(usize, usize) -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = true;
        for i in ingesters {
            all &= done(owned(i)?, gauge(i, "sundial_cluster_shards_unconfirmed")?);
        }
        if all {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the shards' leases never got there"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the ingesters own the shards rendezvous hashing gives
/// them (`ids` in the same order): every move among them is done.
fn settled(ingesters: &[TestServer], ids: &[&str]) -> Result<()> {
    let nodes: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    let want: Vec<usize> = ids
        .iter()
        .map(|id| {
            (0..SHARDS)
                .filter(|s| sundial_cluster::owner_of(*s, &nodes) == Some(*id))
                .count()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = ingesters.iter().map(owned).collect::<Result<Vec<_>>>()?;
        if have == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("shards never settled: {have:?}, want {want:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// 8 hosts in 2 data centres, a point a minute over `minutes`, in puts
/// of `per_put` minutes.
fn puts(minutes: std::ops::Range<i64>, per_put: usize) -> Vec<String> {
    let mut all = Vec::new();
    for minute in minutes {
        for host in 0..8 {
            let v = (host * 11 + minute * 7) % 50;
            all.push(point(
                "cpu.load",
                T0 + minute * 60,
                json!(v as f64 + 0.25),
                &[
                    ("host", &format!("h{host}")),
                    ("dc", if host % 2 == 0 { "east" } else { "west" }),
                ],
            ));
        }
    }
    all.chunks(8 * per_put)
        .map(|c| Value::Array(c.to_vec()).to_string())
        .collect()
}

/// The query set over the first `minutes` minutes.
fn queries(minutes: i64) -> Vec<Value> {
    let range = |q: Value| json!({"start": T0, "end": T0 + minutes * 60, "queries": [q]});
    vec![
        range(json!({"metric": "cpu.load", "aggregator": "sum"})),
        range(json!({"metric": "cpu.load", "aggregator": "none", "tags": {"host": "h3"}})),
        range(json!({
            "metric": "cpu.load", "aggregator": "max", "downsample": "5m-avg",
            "filters": [{"type": "literal_or", "tagk": "dc", "filter": "east|west", "groupBy": true}]
        })),
        range(
            json!({"metric": "cpu.load", "aggregator": "avg", "rate": true,
                     "tags": {"host": "h1|h6"}}),
        ),
        range(json!({"metric": "cpu.load", "aggregator": "p90", "downsample": "10m-count"})),
        range(json!({"metric": "no.such.metric", "aggregator": "sum"})),
    ]
}

#[test]
fn a_cluster_of_processes_answers_as_one_node_through_failures() -> Result<()> {
    let mut pg = Postgres::start()?;
    let nats = Nats::start()?;
    let store = fresh_store_keys()?;
    let (pg_url, nats_url) = (pg.url(), nats.url());
    let config = |role: &str, id: &str| node_config(&pg_url, &nats_url, &store, role, id);

    let single = TestServer::spawn()?;
    let first = TestServer::spawn_with_config(&config("ingester", "i1"))?;
    let router = TestServer::spawn_with_config(&config("router", "r1"))?;
    let mut querier = TestServer::spawn_with_config(&config("querier", "q1"))?;
    let second_querier = TestServer::spawn_with_config(&config("querier", "q2"))?;
    let compactors = vec![
        TestServer::spawn_with_config(&config("compactor", "c1"))?,
        TestServer::spawn_with_config(&config("compactor", "c2"))?,
    ];
    let mut ingesters = vec![first];
    let ids = ["i1", "i2", "i3"];
    for (i, body) in puts(0..60, 15).iter().enumerate() {
        // The other ingesters join between the writes: shards move to
        // them with the points written before.
        if i == 1 || i == 2 {
            ingesters.push(TestServer::spawn_with_config(&config("ingester", ids[i]))?);
        }
        settled(&ingesters, &ids[..ingesters.len()])?;
        let (status, text) = single.post("/api/put", body)?;
        assert_eq!(status, 204, "single node: {text}");
        let (status, text) = until_not_busy(&router, "POST", "/api/put", Some(body))?;
        assert_eq!(status, 204, "router: {text}");
    }

    same_answers(&single, &querier, 60)?;
    // The querier read the shards' blocks itself, every shard of them.
    let (here, by_owners) = (
        counter(&querier, "sundial_cluster_shard_reads_here_total")?,
        counter(&querier, "sundial_cluster_shard_reads_by_owners_total")?,
    );
    assert!(here >= u64::from(SHARDS), "{here} {by_owners}");
    baidu_alike(&single, &router, &querier)?;
    // Any node of the cluster answers (the router forwards queries too).
    let body = queries(60)[1].to_string();
    let (_, from_router) = until_not_busy(&router, "POST", "/api/query", Some(&body))?;
    assert_eq!(
        json(&from_router)?,
        json(&single.post("/api/query", &body)?.1)?
    );

    listings_alike(&single, &querier)?;
    opentsdb::opentsdb_alike(&single, &router, &querier, 60)?;

    // Routes that read what one node holds alone are refused, clearly.
    let (status, text) = router.get("/admin/snapshots")?;
    assert_eq!(status, 501, "{text}");
    assert!(text.contains("cluster mode"), "{text}");
    sql_alike(&single, &second_querier)?;
    databases::databases_shared(&router, &querier)?;
    let bk_group = bkmonitor_shared(&router, &querier)?;
    compactor_handover(compactors)?;
    storage_view(&querier)?;
    same_answers(&single, &querier, 60)?;

    // kill -9 of an ingester while writes go on: its shards move to the
    // others (lease time, then restore and replay of the JetStream log),
    // writes meanwhile are busy and retried, and every acknowledged point
    // is there afterwards.
    let nodes = (&single, &router);
    writes_through(nodes, 60..120, || ingesters[1].kill9())?;
    let i2 = ingesters.remove(1);
    settled(&ingesters, &["i1", "i3"])?;
    same_answers(&single, &second_querier, 120)?;
    // What was deleted stays deleted at the dead ingester's successors.
    opentsdb::turbines_alike(&single, &second_querier)?;

    // A querier is stateless: killed and started again, it answers the
    // same.
    querier.kill9()?;
    let querier = TestServer::spawn_with_config(&config("querier", "q1"))?;
    same_answers(&single, &querier, 120)?;

    // PostgreSQL crashes. The ingesters keep their shards, unconfirmed:
    // every write is acknowledged at once (no busy answer), and queries
    // are answered from the owners' heads, whose logs still end where
    // they left them. Then it restarts: every node makes its connection
    // again, the leases are renewed, no shard moves, nothing is lost.
    // One write first, so the router's view of the owners is current.
    writes_through(nodes, 120..121, || Ok(()))?;
    let owned_before = ingesters.iter().map(owned).collect::<Result<Vec<_>>>()?;
    pg.kill();
    until_shards(&ingesters, |owned, unconfirmed| owned == unconfirmed)?;
    for body in puts(121..150, 1) {
        let (status, text) = json_request(&router, "POST", "/api/put", Some(&body))?;
        assert_eq!(status, 204, "router without PostgreSQL: {text}");
        let (status, text) = single.post("/api/put", &body)?;
        assert_eq!(status, 204, "single node: {text}");
    }
    same_answers(&single, &querier, 150)?;
    // BlueKing's metadata cannot change meanwhile: a failure envelope, no
    // group; its reads still answer from what the node holds.
    let group = json!({"bk_data_id": 901, "bk_biz_id": 7, "time_series_group_name": "later",
        "label": "application", "operator": "system"});
    let create = |node: &TestServer| {
        crate::bk::call(
            node,
            "metadata_create_time_series_group",
            &crate::bk::with_auth(group.clone()),
        )
    };
    let (_, refused) = create(&router)?;
    assert_eq!(refused["result"], json!(false), "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("metadata store"), "{refused}");
    // Nor can a TTL or a Baidu database be made: busy, saying why.
    let ttl = format!("/api/ttl?database={}", databases::NAME);
    let (status, text) = json_request(&router, "POST", &ttl, Some(r#"{"val": 60}"#))?;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("metadata store"), "{text}");
    let database = json!({"databaseName": "duringoutage", "ingestDataPointsMonthly": 1,
        "purchaseLength": 1})
    .to_string();
    let path = "/v1/database?clientToken=outage-token";
    let (status, text) = json_request(&querier, "POST", path, Some(&database))?;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("metadata store"), "{text}");
    // Nor an access key.
    let (status, text) = keys::put_key(&router, None, "early", json!({"*": ["admin"]}))?;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("key store"), "{text}");
    crate::bk::ok(
        &querier,
        "metadata_get_time_series_group",
        json!({"time_series_group_id": bk_group}),
    )?;
    pg.restart()?;
    until_shards(&ingesters, |_, unconfirmed| unconfirmed == 0)?;
    settled(&ingesters, &["i1", "i3"])?;
    let owned_after = ingesters.iter().map(owned).collect::<Result<Vec<_>>>()?;
    assert_eq!(owned_after, owned_before, "shards moved after the outage");
    same_answers(&single, &querier, 150)?;
    let (_, created) = create(&router)?;
    assert_eq!(created["result"], json!(true), "{created}");
    keys::keys_shared(&router, &querier)?;
    drop((i2, ingesters));
    Ok(())
}

/// Baidu writes through the router, and Baidu JSON queries (raw with
/// paging, sampled averages per group, counts, fill) answered alike by
/// the single node and the cluster's querier.
fn baidu_alike(single: &TestServer, router: &TestServer, querier: &TestServer) -> Result<()> {
    let t0 = T0 * 1000;
    let series: Vec<Value> = (0..6)
        .map(|s| {
            let values: Vec<Value> = (0..60)
                .filter(|m| (m + s) % 7 != 0)
                .map(|m| json!([t0 + m * 60_000, (m * 3 + s * 5) % 40]))
                .collect();
            json!({"metric": "wind", "field": "speed",
                   "tags": {"site": format!("s{s}"), "region": format!("r{}", s % 2)},
                   "values": values})
        })
        .collect();
    let body = json!({ "datapoints": series }).to_string();
    let (status, text) = json_request(single, "POST", "/v1/datapoint", Some(&body))?;
    assert_eq!(status, 204, "single node: {text}");
    let (status, text) = until_not_busy(router, "POST", "/v1/datapoint", Some(&body))?;
    assert_eq!(status, 204, "router: {text}");
    let filters = json!({"start": t0, "end": t0 + 3_600_000});
    let queries = [
        json!({"metric": "wind", "field": "speed", "filters": filters}),
        json!({"metric": "wind", "field": "speed", "filters": filters, "limit": 50}),
        json!({"metric": "wind", "field": "speed", "filters": filters,
               "groupBy": [{"name": "Tag", "tags": ["region"]}],
               "aggregators": [{"name": "Avg", "sampling": "5 minutes"}]}),
        json!({"metric": "wind", "field": "speed", "filters": filters,
               "aggregators": [{"name": "Count"}]}),
        json!({"metric": "wind", "field": "speed",
               "filters": {"start": t0, "end": t0 + 3_600_000, "tags": {"site": ["s1"]}},
               "fill": {"type": "Linear", "interval": "1 minute", "maxWriteInterval": "10 minutes"}}),
    ];
    for q in queries {
        let body = json!({ "queries": [q] }).to_string();
        let (status, local) = json_request(single, "PUT", "/v1/datapoint?query", Some(&body))?;
        assert_eq!(status, 200, "{body}: {local}");
        let (cluster_status, cluster) =
            until_not_busy(querier, "PUT", "/v1/datapoint?query", Some(&body))?;
        assert_eq!(cluster_status, status, "{body}: {cluster}");
        assert_eq!(json(&cluster)?, json(&local)?, "{body}");
        let result = &json(&local)?["results"][0];
        assert!(
            result["groups"][0]["values"]
                .as_array()
                .is_some_and(|v| !v.is_empty()),
            "{body}: {local}"
        );
    }
    Ok(())
}

/// OpenTSDB's suggestions and Baidu's listings answered alike by the
/// single node and the cluster's querier (names from every shard merged,
/// cut at `max` in name order, unknown metrics refused alike).
fn listings_alike(single: &TestServer, querier: &TestServer) -> Result<()> {
    let t0 = T0 * 1000;
    let paths = [
        "/api/suggest?type=metrics".to_string(),
        "/api/suggest?type=tagk&q=d".to_string(),
        "/api/suggest?type=tagv&max=3".to_string(),
        "/api/suggest?type=tagv&metric=wind&q=s".to_string(),
        "/api/suggest?type=field&metric=wind".to_string(),
        "/api/suggest?type=nonsense".to_string(),
        "/v1/metric".to_string(),
        "/v1/metric/wind/field".to_string(),
        "/v1/metric/cpu.load/tag".to_string(),
        format!("/v1/metric/wind/tag?start={}&end={}", t0, t0 + 600_000),
        "/v1/metric/no.such/field".to_string(),
    ];
    for path in &paths {
        let (status, local) = json_request(single, "GET", path, None)?;
        let (cluster_status, cluster) = until_not_busy(querier, "GET", path, None)?;
        assert_eq!(cluster_status, status, "{path}: {cluster}");
        // Baidu's errors carry a request id of their own.
        let answer = |text: &str| -> Result<Value> {
            let mut v = json(text)?;
            if let Some(o) = v.as_object_mut() {
                o.remove("requestId");
            }
            Ok(v)
        };
        assert_eq!(answer(&cluster)?, answer(&local)?, "{path}");
    }
    // The answers hold what was written, so the comparisons above compare
    // something: both metrics, every host, three tag values at most.
    let (_, metrics) = json_request(querier, "GET", "/v1/metric", None)?;
    assert_eq!(json(&metrics)?["metrics"], json!(["cpu.load", "wind"]));
    let (_, tags) = json_request(querier, "GET", "/v1/metric/cpu.load/tag", None)?;
    let hosts: Vec<String> = (0..8).map(|h| format!("h{h}")).collect();
    assert_eq!(json(&tags)?["tags"]["host"], json!(hosts));
    let (_, values) = json_request(querier, "GET", "/api/suggest?type=tagv&max=3", None)?;
    assert_eq!(json(&values)?.as_array().map(Vec::len), Some(3), "{values}");
    Ok(())
}

/// Baidu's SQL answered alike by the single node and the cluster's
/// querier (plain SELECTs in their row order, aggregates, time buckets,
/// errors), and the answers hold what was written.
fn sql_alike(single: &TestServer, querier: &TestServer) -> Result<()> {
    let statements = [
        "SELECT * FROM wind",
        "SELECT region, count(*), avg(speed), max(speed) FROM wind GROUP BY region ORDER BY region",
        "SELECT time_bucket(time, '10 minutes') AS b, dc, max(value) FROM \"cpu.load\" \
         GROUP BY b, dc ORDER BY b, dc",
        "SELECT * FROM \"cpu.load\" WHERE host = 'h3' ORDER BY time DESC LIMIT 5",
        "SELECT count(*) FROM no_such_metric",
    ];
    let answer = |text: &str| -> Result<Value> {
        let mut v = json(text)?;
        if let Some(o) = v.as_object_mut() {
            o.remove("requestId");
        }
        Ok(v)
    };
    for sql in statements {
        let (status, local) = json_request(single, "PUT", "/v1/row", Some(sql))?;
        let (cluster_status, cluster) = until_not_busy(querier, "PUT", "/v1/row", Some(sql))?;
        assert_eq!(cluster_status, status, "{sql}: {cluster}");
        assert_eq!(answer(&cluster)?, answer(&local)?, "{sql}");
        let unknown = sql.contains("no_such");
        assert_eq!(status, if unknown { 400 } else { 200 }, "{sql}: {local}");
    }
    // Baidu wrote every minute of six sites but where (minute + site) % 7
    // is 0; also asked through GET /v1/datapoint?sql=.
    let written = (0..6)
        .flat_map(|s| (0..60).filter(move |m| (m + s) % 7 != 0))
        .count();
    let (status, text) = until_not_busy(
        querier,
        "GET",
        "/v1/datapoint?sql=SELECT%20count(*)%20FROM%20wind",
        None,
    )?;
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)?["rows"], json!([[written]]));
    Ok(())
}

/// BlueKing's metadata is the cluster's, not a node's: a group created
/// through the router is the querier's too (and its data id taken there),
/// data pushed through the querier is discovered for the router's
/// metric listing, and the points read back through the querier.
/// Answers the group's id.
fn bkmonitor_shared(router: &TestServer, querier: &TestServer) -> Result<Value> {
    use crate::bk::{call, metric_names, ok, table_id, with_auth};
    let create = json!({"bk_data_id": 900, "bk_biz_id": 7, "time_series_group_name": "shared",
        "label": "application", "operator": "system",
        "metric_info_list": [{"field_name": "declared", "tag_list": ["module"]}]});
    // Before the group exists its data id binds nothing (and the querier
    // has just looked at the groups).
    let put = json!([{"metric": "declared", "timestamp": T0 - 60, "value": 3,
        "tags": {"module": "web"}}])
    .to_string();
    let (status, text) = until_not_busy(querier, "POST", "/api/put?bk_data_id=900", Some(&put))?;
    assert_eq!(status, 400, "{text}");
    let group = ok(router, "metadata_create_time_series_group", create.clone())?;
    let id = group["time_series_group_id"].clone();
    // Made through the router, its data id binds an OpenTSDB put through
    // the querier at once.
    let (status, text) = until_not_busy(querier, "POST", "/api/put?bk_data_id=900", Some(&put))?;
    assert_eq!(status, 204, "{text}");
    let elsewhere = ok(
        querier,
        "metadata_get_time_series_group",
        json!({"time_series_group_id": id}),
    )?;
    // The get answers a list (spec 8.2).
    assert_eq!(elsewhere, json!([group]));
    let (_, again) = call(
        querier,
        "metadata_create_time_series_group",
        &with_auth(create),
    )?;
    assert_eq!(again["result"], json!(false), "{again}");

    let token = group["token"].as_str().unwrap_or_default();
    let ts = T0 * 1000;
    let push = json!({"data_id": 900, "access_token": token, "data": [
        {"metrics": {"cpu_load": 12.5}, "target": "10.0.0.1",
         "dimension": {"module": "db"}, "timestamp": ts}]});
    let (status, text) = until_not_busy(querier, "POST", "/v2/push/", Some(&push.to_string()))?;
    assert_eq!(status, 200, "{text}");
    let metrics = ok(
        router,
        "metadata_get_time_series_metrics",
        json!({"table_id": table_id(7, 900)}),
    )?;
    assert_eq!(
        metric_names(&metrics["metric_info_list"]),
        ["declared", "cpu_load"]
    );
    let query = json!({"start": T0, "end": T0 + 60, "queries": [
        {"metric": "7_bkmonitor_time_series_900.cpu_load", "aggregator": "sum"}]});
    let (status, text) = until_not_busy(querier, "POST", "/api/query", Some(&query.to_string()))?;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        json(&text)?[0]["dps"][T0.to_string()],
        json!(12.5),
        "{text}"
    );
    Ok(id)
}

/// `/admin/storage` on a cluster node shows the cluster's manifest: the
/// default database's blocks (checkpoints run every two seconds), and an
/// owner for each of the 8 shards; `/admin/compact` merges every shard's
/// blocks (fewer afterwards; the answers stay the same, checked after);
/// `/admin/queries` the node's own.
fn storage_view(node: &TestServer) -> Result<()> {
    let blocks_of = |view: &Value| view["databases"]["default"]["blocks"].as_u64();
    let before = blocks_of(&node.get_json("/admin/storage")?);
    let (status, text) = until_not_busy(node, "POST", "/admin/compact", None)?;
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)?["compacted"], json!(true), "{text}");
    let view = node.get_json("/admin/storage")?;
    assert!(blocks_of(&view) <= before, "{before:?} then {view}");
    assert_eq!(view["cluster"], json!(true), "{view}");
    let default = &view["databases"]["default"];
    let blocks = default["blocks"].as_u64().unwrap_or(0);
    assert!(
        blocks >= 1 && default["block_bytes"].as_u64() > Some(0),
        "{view}"
    );
    let shards = default["shards"].as_u64().unwrap_or(0);
    assert!((1..=8).contains(&shards), "{view}");
    assert!(
        default["min_ts"].as_i64() <= default["max_ts"].as_i64(),
        "{view}"
    );
    let owned: usize = view["shard_owners"]
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
        .filter_map(Value::as_array)
        .map(Vec::len)
        .sum();
    assert_eq!(owned, 8, "{view}");
    let queries = node.get_json("/admin/queries")?;
    assert!(queries["slow"].is_array(), "{queries}");
    Ok(())
}

/// One compactor of two works (holds the lease) and has the owners
/// merge blocks and deletes what they replaced; killed with `kill -9`,
/// the other takes over and works.
fn compactor_handover(mut compactors: Vec<TestServer>) -> Result<()> {
    let leader = |c: &TestServer| gauge(c, "sundial_cluster_compactor_leader");
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let leading = compactors
            .iter()
            .map(leader)
            .collect::<Result<Vec<usize>>>()?;
        if leading.iter().sum::<usize>() == 1 {
            break leading.iter().position(|&l| l == 1).unwrap_or(0);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no single compactor leads: {leading:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Checkpoints every two seconds left several blocks per shard.
    until_gauge(
        &compactors[first],
        "sundial_cluster_retired_objects_deleted_total",
        |n| n > 0,
    )?;
    let mut dead = compactors.remove(first);
    dead.kill9()?;
    let other = &compactors[0];
    until_gauge(other, "sundial_cluster_compactor_leader", |l| l == 1)?;
    until_gauge(other, "sundial_cluster_compaction_rounds_total", |n| n > 0)
}

/// Waits (up to a minute) until gauge or counter `name` of `server`
/// satisfies `done`.
fn until_gauge(server: &TestServer, name: &str, done: impl Fn(usize) -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = gauge(server, name)?;
        if done(value) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{name} stayed at {value}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A put a minute over `minutes` through the router (retried while busy)
/// and, once acknowledged, into the single node; `meanwhile` runs after
/// the first acknowledgement, so most puts come after it.
fn writes_through(
    (single, router): (&TestServer, &TestServer),
    minutes: std::ops::Range<i64>,
    meanwhile: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let (acked_tx, acked) = std::sync::mpsc::channel();
    std::thread::scope(|scope| -> Result<()> {
        let writes = scope.spawn(move || -> Result<()> {
            for body in puts(minutes, 1) {
                let (status, text) = until_not_busy(router, "POST", "/api/put", Some(&body))?;
                assert_eq!(status, 204, "router: {text}");
                let (status, text) = single.post("/api/put", &body)?;
                assert_eq!(status, 204, "single node: {text}");
                let _ = acked_tx.send(());
            }
            Ok(())
        });
        acked.recv_timeout(Duration::from_secs(60))?;
        meanwhile()?;
        writes
            .join()
            .map_err(|_| anyhow::anyhow!("the writer panicked"))?
    })
}

/// Every query of the set over the first `minutes` answered alike by the
/// single node and the cluster's querier, with data in them.
fn same_answers(single: &TestServer, querier: &TestServer, minutes: i64) -> Result<()> {
    for q in queries(minutes) {
        let body = q.to_string();
        let (status, local) = single.post("/api/query", &body)?;
        let (cluster_status, cluster) = until_not_busy(querier, "POST", "/api/query", Some(&body))?;
        assert_eq!(cluster_status, status, "{body}: {cluster}");
        assert_eq!(json(&cluster)?, json(&local)?, "{body}");
    }
    let (_, sum) = single.post("/api/query", &queries(minutes)[0].to_string())?;
    let dps = json(&sum)?[0]["dps"].as_object().map_or(0, |d| d.len());
    assert_eq!(dps, minutes as usize, "{sum}");
    Ok(())
}
