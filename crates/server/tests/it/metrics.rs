//! Issue 17, point 1: `/metrics` in Prometheus' text format moves by
//! exactly the points written and the requests made, needs a key when keys
//! are configured, and a real Prometheus scrapes it.

use crate::harness::{TestServer, point};
use anyhow::{Result, anyhow};
use serde_json::{Value, json};

/// The value of the sample `name{labels}` (labels as written) in `text`.
fn sample(text: &str, series: &str) -> Result<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .ok_or_else(|| anyhow!("no sample {series} in:\n{text}"))
}

#[test]
fn metrics_count_points_and_requests() -> Result<()> {
    let s = TestServer::spawn()?;
    let (_, before) = s.get("/metrics")?;
    let written = |text: &str| sample(text, "sundial_points_written_total{database=\"default\"}");
    assert_eq!(written(&before)?, 0.0);
    let points: Vec<Value> = (0..37)
        .map(|i| point("metrics.m", 1_700_000_000 + i, json!(i), &[("h", "a")]))
        .collect();
    for _ in 0..3 {
        let (status, text) = s.post("/api/put", &Value::Array(points.clone()).to_string())?;
        assert_eq!(status, 204, "{text}");
    }
    for _ in 0..2 {
        s.get("/api/query?start=1700000000&m=sum:metrics.m")?;
    }
    let (status, after) = s.get("/metrics")?;
    assert_eq!(status, 200);
    // Three writes of the same 37 points: 111 points made durable.
    assert_eq!(written(&after)?, 111.0);
    let put = "sundial_http_requests_total{api=\"opentsdb\",route=\"/api/put\",code=\"204\"}";
    assert_eq!(sample(&after, put)?, 3.0);
    let query = "sundial_http_requests_total{api=\"opentsdb\",route=\"/api/query\",code=\"200\"}";
    assert_eq!(sample(&after, query)?, 2.0);
    let latency =
        "sundial_http_request_duration_seconds_count{api=\"opentsdb\",route=\"/api/put\"}";
    assert_eq!(sample(&after, latency)?, 3.0);
    assert_eq!(sample(&after, "sundial_series{database=\"default\"}")?, 1.0);
    assert!(sample(&after, "sundial_process_resident_memory_bytes")? > 0.0);
    Ok(())
}

/// Flushes, compactions, the WAL, points scanned per query and the chunk
/// cache move as the work done says.
#[test]
fn metrics_follow_flushes_compactions_and_scans() -> Result<()> {
    let s = TestServer::spawn()?;
    let db = "{database=\"default\"}";
    for round in 0..2 {
        let points: Vec<Value> = (0..50)
            .map(|i| {
                point(
                    "work.m",
                    1_700_000_000 + 100 * round + i,
                    json!(i),
                    &[("h", "a")],
                )
            })
            .collect();
        let (status, text) = s.post("/api/put", &Value::Array(points).to_string())?;
        assert_eq!(status, 204, "{text}");
        let (status, text) = s.post("/admin/compact", "")?;
        assert_eq!(status, 200, "{text}");
    }
    for _ in 0..3 {
        let (status, text) = s.get("/api/query?start=1700000000&end=1700001000&m=sum:work.m")?;
        assert_eq!(status, 200, "{text}");
    }
    let (_, text) = s.get("/metrics")?;
    // Each forced compaction flushed the head once; the second merged the
    // two flushed blocks into one.
    assert_eq!(sample(&text, &format!("sundial_flushes_total{db}"))?, 2.0);
    assert!(sample(&text, &format!("sundial_compactions_total{db}"))? >= 1.0);
    assert_eq!(sample(&text, &format!("sundial_blocks{db}"))?, 1.0);
    assert_eq!(sample(&text, &format!("sundial_flushed_blocks{db}"))?, 0.0);
    // 150 s of points: the merged block lies in one partition's window.
    let level = |l: &str| format!("{{database=\"default\",level=\"{l}\"}}");
    assert_eq!(
        sample(
            &text,
            &format!("sundial_level_blocks{}", level("partition"))
        )?,
        1.0
    );
    for wider in ["day", "week", "wide"] {
        let blocks = sample(&text, &format!("sundial_level_blocks{}", level(wider)))?;
        assert_eq!(blocks, 0.0, "{wider}");
    }
    assert_eq!(
        sample(
            &text,
            &format!("sundial_level_block_bytes{}", level("partition"))
        )?,
        sample(&text, &format!("sundial_block_bytes{db}"))?
    );
    assert!(sample(&text, &format!("sundial_flush_seconds_total{db}"))? > 0.0);
    assert!(sample(&text, &format!("sundial_wal_segments{db}"))? >= 1.0);
    // Three queries of 100 stored points each.
    let api = "{api=\"opentsdb\"}";
    assert_eq!(
        sample(&text, &format!("sundial_query_scanned_points_count{api}"))?,
        3.0
    );
    assert_eq!(
        sample(&text, &format!("sundial_query_scanned_points_sum{api}"))?,
        300.0
    );
    // The block's chunks were decoded by the first query, then found.
    let cache = "{cache=\"decoded\"}";
    assert!(sample(&text, &format!("sundial_chunk_cache_hits_total{cache}"))? >= 2.0);
    assert!(sample(&text, &format!("sundial_chunk_cache_misses_total{cache}"))? >= 1.0);
    Ok(())
}

#[test]
fn metrics_need_a_key_when_keys_are_configured() -> Result<()> {
    let s = TestServer::spawn_with_config(crate::access::KEYS)?;
    let (status, _) = s.get("/metrics")?;
    assert_eq!(status, 401);
    // Any key may scrape, as Prometheus' basic_auth sends it.
    let basic = crate::harness::basic("reader", "reader-secret");
    let reply = s.send("GET", "/metrics", &[("Authorization", &basic)], None)?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("sundial_points_written_total"),
        "{}",
        reply.body
    );
    Ok(())
}

/// A real Prometheus scrapes the server with Basic auth, and its own query
/// API shows the counters moving by exactly the points written and the
/// writes made, round after round.
#[test]
fn prometheus_scrapes_the_points_and_requests_made() -> Result<()> {
    use std::time::{Duration, Instant};
    use sundial_testkit::prometheus::{Prometheus, Scrape};
    let s = TestServer::spawn_with_config(crate::access::KEYS)?;
    let dir = tempfile::tempdir()?;
    let prometheus = Prometheus::start(
        dir.path(),
        &Scrape {
            target: s.addr,
            interval: Duration::from_millis(200),
            basic_auth: Some(("reader", "reader-secret")),
        },
    )?;
    let writer = crate::harness::basic("writer", "writer-secret");
    let points_written = "sundial_points_written_total{database=\"default\"}";
    let puts = "sundial_http_requests_total{api=\"opentsdb\",route=\"/api/put\",code=\"204\"}";
    let (mut total_points, mut total_puts) = (0usize, 0usize);
    for round in 1..=3usize {
        // Round r writes r batches of 10 * r points at new timestamps.
        for batch in 0..round {
            let points: Vec<Value> = (0..10 * round)
                .map(|i| {
                    let ts = 1_700_000_000 + (round * 1000 + batch * 100 + i) as i64;
                    point("scraped.m", ts, json!(i), &[("h", "a")])
                })
                .collect();
            let body = Value::Array(points).to_string();
            let reply = s.send(
                "POST",
                "/api/put",
                &[("Authorization", &writer)],
                Some(body.as_bytes()),
            )?;
            assert_eq!(reply.status, 204, "{}", reply.body);
            total_points += 10 * round;
            total_puts += 1;
        }
        // Wait for a scrape that saw this round (Prometheus' own answer).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = (prometheus.value(points_written)?, prometheus.value(puts)?);
            if seen == (Some(total_points as f64), Some(total_puts as f64)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: Prometheus shows {seen:?}, expected {total_points} points in {total_puts} puts"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(prometheus.value("up{job=\"sundial\"}")?, Some(1.0));
    let series = prometheus.value("sundial_series{database=\"default\"}")?;
    assert_eq!(series, Some(1.0));
    Ok(())
}

/// The value of the statistic `metric` whose tags include `tags`.
fn stat(stats: &Value, metric: &str, tags: &[(&str, &str)]) -> Result<String> {
    stats
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["metric"] == metric && tags.iter().all(|(k, v)| s["tags"][*k] == *v))
        .and_then(|s| s["value"].as_str().map(str::to_owned))
        .ok_or_else(|| anyhow!("no statistic {metric} {tags:?} in {stats}"))
}

/// `/api/stats` lists the counters of `/metrics` in OpenTSDB's shape
/// (values as strings, a `host` tag), and telnet `stats` the same lines.
#[test]
fn api_stats_list_the_counters_of_metrics() -> Result<()> {
    let s = TestServer::spawn()?;
    let points: Vec<Value> = (0..37)
        .map(|i| point("stats.m", 1_700_000_000 + i, json!(i), &[("h", "a")]))
        .collect();
    for round in 0..2 {
        let shifted: Vec<Value> = points
            .iter()
            .map(|p| {
                let mut p = p.clone();
                p["timestamp"] = json!(p["timestamp"].as_i64().unwrap_or(0) + 1000 * round);
                p
            })
            .collect();
        let (status, text) = s.post("/api/put", &Value::Array(shifted).to_string())?;
        assert_eq!(status, 204, "{text}");
    }
    let stats = s.get_json("/api/stats")?;
    assert_eq!(
        stat(&stats, "tsd.datapoints.added", &[("type", "all")])?,
        "74"
    );
    assert_eq!(
        stat(
            &stats,
            "sundial.points.written.total",
            &[("database", "default")]
        )?,
        "74"
    );
    let puts = [("api", "opentsdb"), ("route", "/api/put"), ("code", "204")];
    assert_eq!(stat(&stats, "sundial.http.requests.total", &puts)?, "2");
    // tsd.rpc.received sums every request counted at that moment.
    let counted: u64 = stats
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["metric"] == "sundial.http.requests.total")
        .filter_map(|s| s["value"].as_str()?.parse::<u64>().ok())
        .sum();
    let received: u64 = stat(&stats, "tsd.rpc.received", &[("type", "http")])?.parse()?;
    assert_eq!(received, counted);
    assert!(received >= 2);
    let all_tagged = stats
        .as_array()
        .into_iter()
        .flatten()
        .all(|s| s["tags"]["host"].is_string() && s["timestamp"].is_i64());
    assert!(all_tagged, "{stats}");
    let mut telnet = s.telnet()?;
    telnet.send("stats\n")?;
    let lines = telnet.read_available()?;
    let added = lines
        .lines()
        .find(|l| l.starts_with("tsd.datapoints.added "))
        .ok_or_else(|| anyhow!("no tsd.datapoints.added in {lines}"))?;
    let words: Vec<&str> = added.split(' ').collect();
    assert_eq!(words.get(2), Some(&"74"), "{added}");
    assert!(words.contains(&"type=all"), "{added}");
    Ok(())
}

#[test]
fn telnet_stats_need_auth_when_keys_are_configured() -> Result<()> {
    let s = TestServer::spawn_with_config(crate::access::KEYS)?;
    let mut telnet = s.telnet()?;
    telnet.send("stats\n")?;
    let refused = telnet.read_available()?;
    assert!(
        refused.starts_with("stats: authentication required"),
        "{refused}"
    );
    telnet.send("auth reader reader-secret\nstats\n")?;
    let answered = telnet.read_available()?;
    assert!(answered.contains("\ntsd.rpc.received "), "{answered}");
    Ok(())
}
