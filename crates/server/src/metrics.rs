//! `GET /metrics` in Prometheus' text format (prometheus-client): HTTP
//! requests, errors and latency per API and route, counted by a layer on
//! every routed request; storage and process state read at each scrape.

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Instant;
use sundial_storage::Engine;

mod cluster;
mod opentsdb_stats;

/// The API a route belongs to and its pattern (bounded cardinality: the
/// matched pattern, never the raw path).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    api: &'static str,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    api: &'static str,
    route: String,
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Api {
    api: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Database {
    database: String,
}

/// The server's metrics; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    requests: Family<Answered, Counter>,
    latency: Family<Route, Histogram>,
    request_bytes: Family<Route, Counter>,
    busy: Family<Api, Counter>,
    scanned: Family<Api, Histogram>,
}

impl Metrics {
    /// The server's metrics; a cluster node's add its shards, its
    /// compactor's work and its shard copies.
    pub(crate) fn new(engine: Engine, node: Option<&crate::cluster::Node>) -> Self {
        let mut registry = Registry::with_prefix("sundial");
        let requests = Family::<Answered, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by API, route and status code",
            requests.clone(),
        );
        let latency = Family::<Route, Histogram>::new_with_constructor(|| {
            // 0.5 ms to 30 s.
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ])
        });
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's routing to its response head",
            Unit::Seconds,
            latency.clone(),
        );
        let request_bytes = Family::<Route, Counter>::default();
        registry.register_with_unit(
            "http_request_body",
            "Request body bytes as announced by Content-Length",
            Unit::Bytes,
            request_bytes.clone(),
        );
        let busy = Family::<Api, Counter>::default();
        registry.register(
            "busy_refusals",
            "Requests refused as busy (503 or 429: queue, head or WAL bounds)",
            busy.clone(),
        );
        let scanned = Family::<Api, Histogram>::new_with_constructor(|| {
            // 1 to 100 M points.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                1.0, 10.0, 9,
            ))
        });
        registry.register(
            "query_scanned_points",
            "Stored points one query read (OpenTSDB and Baidu JSON queries, SQL)",
            scanned.clone(),
        );
        registry.register_collector(Box::new(StorageCollector(engine)));
        registry.register_collector(Box::new(ProcessCollector));
        if let Some(ingester) = node.and_then(|n| n.ingester()) {
            registry.register_collector(Box::new(cluster::ShardsCollector(ingester)));
        }
        if let Some(compactor) = node.and_then(|n| n.compactor()) {
            registry.register_collector(Box::new(cluster::CompactorCollector(compactor)));
        }
        if let Some(copies) = node.and_then(|n| n.copies()) {
            registry.register_collector(Box::new(cluster::CopiesCollector(copies)));
        }
        Self {
            registry: Arc::new(registry),
            requests,
            latency,
            request_bytes,
            busy,
            scanned,
        }
    }

    /// The `/metrics` route: with access keys configured, any valid key
    /// may scrape (Prometheus' `basic_auth`).
    pub(crate) fn routes(&self, store: Arc<sundial_api::access::Store>) -> Router {
        Router::new()
            .route("/metrics", get(scrape))
            .with_state(Scrape {
                metrics: self.clone(),
                store,
            })
    }
}

#[derive(Debug, Clone)]
struct Scrape {
    metrics: Metrics,
    store: Arc<sundial_api::access::Store>,
}

async fn scrape(State(Scrape { metrics, store }): State<Scrape>, req: Request) -> Response {
    if let Err(refused) = crate::admin::identify(&store, req.headers()) {
        return *refused;
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &metrics.registry) {
        tracing::error!(error = %e, "cannot encode the metrics");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Which API a route pattern belongs to.
pub(crate) fn api_of(route: &str) -> &'static str {
    if route.starts_with("/api/c/compapi/") || route.starts_with("/app/") || route == "/v2/push" {
        "bkmonitor"
    } else if route.starts_with("/api/") {
        "opentsdb"
    } else if route.starts_with("/v1/") {
        "baidu"
    } else if route.starts_with("/admin/") {
        "admin"
    } else if route == "/metrics" {
        "metrics"
    } else {
        "other"
    }
}

/// The layer on every routed request: counts it, its body bytes, its
/// status and its latency.
pub(crate) async fn observe(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let api = api_of(&route);
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let started = Instant::now();
    let response = next.run(req).await;
    let labels = Route {
        api,
        route: route.clone(),
    };
    metrics
        .latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    if let Some(bytes) = announced {
        metrics.request_bytes.get_or_create(&labels).inc_by(bytes);
    }
    let code = response.status();
    metrics
        .requests
        .get_or_create(&Answered {
            api,
            route,
            code: code.as_u16(),
        })
        .inc();
    if let Some(sundial_api::Scanned(points)) = response.extensions().get() {
        metrics
            .scanned
            .get_or_create(&Api { api })
            .observe(*points as f64);
    }
    if code == StatusCode::SERVICE_UNAVAILABLE || code == StatusCode::TOO_MANY_REQUESTS {
        metrics.busy.get_or_create(&Api { api }).inc();
    }
    response
}

/// One gauge of a database's status.
type StatusGauge = fn(&sundial_storage::Status) -> i64;

/// One counter of a database's background work.
type WorkCounter = fn(&sundial_storage::WorkDone) -> Count;

enum Count {
    Int(u64),
    Float(f64),
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Cache {
    cache: &'static str,
}

/// Per database, read at each scrape: points written, series, head,
/// blocks; and the object store's fetch counters.
#[derive(Debug)]
struct StorageCollector(Engine);

impl Collector for StorageCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let statuses: Vec<(String, sundial_storage::Status)> = self
            .0
            .database_names()
            .into_iter()
            .filter_map(|name| Some((name.clone(), self.0.database(&name)?.status())))
            .collect();
        let mut family = encoder.encode_descriptor(
            "points_written",
            "Points made durable since the server started",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (database, status) in &statuses {
            let labels = Database {
                database: database.clone(),
            };
            ConstCounter::new(status.points_written).encode(family.encode_family(&labels)?)?;
        }
        let gauges: [(&str, &str, StatusGauge); 7] = [
            ("series", "Series defined", |s| s.series as i64),
            ("head_points", "Points in memory, not yet in a block", |s| {
                s.head_points as i64
            }),
            ("blocks", "Block files or objects", |s| s.blocks as i64),
            (
                "flushed_blocks",
                "Blocks written by flushes, not yet merged by compaction (the compaction backlog)",
                |s| s.flushed_blocks as i64,
            ),
            ("block_bytes", "Bytes of all blocks", |s| {
                s.block_bytes as i64
            }),
            ("wal_segments", "Write-ahead log segment files", |s| {
                s.wal_segments as i64
            }),
            (
                "wal_bytes",
                "Bytes of the write-ahead log segment files (zeroed ahead of their records)",
                |s| s.wal_bytes as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let mut family =
                encoder.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
            for (database, status) in &statuses {
                let labels = Database {
                    database: database.clone(),
                };
                ConstGauge::new(value(status)).encode(family.encode_family(&labels)?)?;
            }
        }
        let work: [(&str, &str, WorkCounter); 4] = [
            ("flushes", "Flushes finished", |w| Count::Int(w.flushes)),
            ("flush_seconds", "Time flushes took", |w| {
                Count::Float(w.flush_seconds)
            }),
            ("compactions", "Compactions (block merges) finished", |w| {
                Count::Int(w.compactions)
            }),
            ("compaction_seconds", "Time compactions took", |w| {
                Count::Float(w.compaction_seconds)
            }),
        ];
        for (name, help, value) in work {
            let kind = ConstCounter::new(0u64).metric_type();
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for (database, status) in &statuses {
                let labels = Database {
                    database: database.clone(),
                };
                let sample = family.encode_family(&labels)?;
                match value(&status.work) {
                    Count::Int(n) => ConstCounter::new(n).encode(sample)?,
                    Count::Float(x) => ConstCounter::new(x).encode(sample)?,
                }
            }
        }
        encode_levels(&mut encoder, &statuses)?;
        let mut caches = vec![("decoded", sundial_storage::decoded_chunk_cache_counts())];
        if let Some(store) = self.0.remote() {
            caches.push(("fetched", store.cache_counts()));
        }
        for (name, help, pick) in [
            (
                "chunk_cache_hits",
                "Chunk lookups the cache answered (decoded chunks; fetched chunk bytes with an object store)",
                (|c| c.hits) as fn(&sundial_storage::CacheCounts) -> u64,
            ),
            (
                "chunk_cache_misses",
                "Chunk lookups the cache did not answer",
                |c| c.misses,
            ),
        ] {
            let kind = ConstCounter::new(0u64).metric_type();
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for (cache, counts) in &caches {
                ConstCounter::new(pick(counts)).encode(family.encode_family(&Cache { cache })?)?;
            }
        }
        if let Some(store) = self.0.remote() {
            for (name, help, value) in [
                (
                    "object_store_fetched_bytes",
                    "Bytes read from the object store (indexes and chunk ranges)",
                    store.fetched_bytes(),
                ),
                (
                    "object_store_chunk_read_bytes",
                    "Bytes of the chunks queries read, from the cache or the store",
                    store.chunk_bytes_read(),
                ),
            ] {
                let counter = ConstCounter::new(value);
                let sample = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
                counter.encode(sample)?;
            }
        }
        Ok(())
    }
}

/// `sundial_level_blocks` and `sundial_level_block_bytes`: the blocks of
/// each database per compaction tier (`partition`, `day`, `week`, `wide`, `rollups`).
fn encode_levels(
    encoder: &mut DescriptorEncoder<'_>,
    statuses: &[(String, sundial_storage::Status)],
) -> Result<(), std::fmt::Error> {
    type Pick = fn(&sundial_storage::LevelStatus) -> i64;
    let families: [(&str, &str, Pick); 2] = [
        ("level_blocks", "Blocks per compaction tier", |l| {
            l.blocks as i64
        }),
        (
            "level_block_bytes",
            "Bytes of the blocks per compaction tier",
            |l| l.bytes as i64,
        ),
    ];
    for (name, help, pick) in families {
        let kind = ConstGauge::new(0i64).metric_type();
        let mut family = encoder.encode_descriptor(name, help, None, kind)?;
        for (database, status) in statuses {
            for level in &status.levels {
                let labels = DatabaseLevel {
                    database: database.clone(),
                    level: level.level,
                };
                ConstGauge::new(pick(level)).encode(family.encode_family(&labels)?)?;
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DatabaseLevel {
    database: String,
    level: &'static str,
}

/// RSS, CPU seconds and open files of this process, from `/proc/self`.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(process) = ProcessState::read() else {
            return Ok(());
        };
        let rss = ConstGauge::new(process.rss_bytes);
        let sample = encoder.encode_descriptor(
            "process_resident_memory",
            "Resident set size",
            Some(&Unit::Bytes),
            rss.metric_type(),
        )?;
        rss.encode(sample)?;
        let cpu = ConstCounter::new(process.cpu_seconds);
        let sample = encoder.encode_descriptor(
            "process_cpu",
            "User and system CPU time",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?;
        cpu.encode(sample)?;
        let files = ConstGauge::new(process.open_files);
        let sample = encoder.encode_descriptor(
            "process_open_fds",
            "Open file descriptors",
            None,
            files.metric_type(),
        )?;
        files.encode(sample)
    }
}

struct ProcessState {
    rss_bytes: i64,
    cpu_seconds: f64,
    open_files: i64,
}

impl ProcessState {
    fn read() -> Option<Self> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let rss_kib: i64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces): utime and
        // stime are the 12th and 13th of them, in clock ticks.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        // SAFETY: sysconf reads a constant of the running system.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let open_files = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
        Some(Self {
            rss_bytes: rss_kib * 1024,
            cpu_seconds: ticks / per_second.max(1.0),
            open_files,
        })
    }
}
