//! One TCP listener for HTTP and the telnet protocol, told apart by the
//! first byte (an upper-case letter starts an HTTP method), optionally
//! behind TLS; a cap on open connections, header, body and idle timeouts,
//! and graceful shutdown on SIGTERM / Ctrl-C.

use crate::config::FileConfig;
use crate::guard::{self, Edge};
use crate::stream::Prefixed;
use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use sundial_api::access::Store;
use sundial_opentsdb as opentsdb;
use sundial_opentsdb::{Api, OpenTsdbError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, info, warn};

/// The APIs and the engine the listener serves.
#[derive(Debug)]
pub(crate) struct Apis {
    pub(crate) opentsdb: Api,
    pub(crate) baidu: sundial_baidu::Api,
    pub(crate) bk: sundial_bkmonitor::Api,
    pub(crate) metrics: crate::metrics::Metrics,
    pub(crate) engine: sundial_storage::Engine,
    pub(crate) store: Arc<Store>,
    /// A cluster node: only the routes it serves (`crate::cluster`), and
    /// the cluster's storage view.
    pub(crate) cluster: Option<crate::cluster::ClusterAdmin>,
    /// `(database, id)` of the configuration's presampling rules.
    pub(crate) configured_rules: Arc<std::collections::BTreeSet<(String, String)>>,
}

/// What every connection task needs.
#[derive(Clone)]
struct Conn {
    router: Router,
    telnet: Api,
    tls: Option<TlsAcceptor>,
    header_timeout: Duration,
    telnet_idle: Duration,
}

impl Conn {
    fn new(config: &FileConfig, apis: &Apis, tls: Option<TlsAcceptor>) -> Self {
        let edge = Edge {
            guard: Arc::new(sundial_api::access::web::Guard::new(
                sundial_api::access::web::Settings {
                    cors_allow_origins: config.http.cors_allow_origins.clone(),
                    allowed_hosts: config.http.allowed_hosts.clone(),
                },
                !apis.store.is_enabled(),
            )),
            body_timeout: Duration::from_secs(config.http.body_timeout_secs),
            drain_limit: config
                .opentsdb
                .max_body_bytes
                .max(config.baidu.max_body_bytes),
        };
        Conn {
            router: router(
                apis,
                edge,
                crate::request_log::RequestLog {
                    slow: (config.log.slow_query_ms > 0)
                        .then(|| Duration::from_millis(config.log.slow_query_ms)),
                    board: Default::default(),
                },
            ),
            telnet: apis.opentsdb.clone(),
            tls,
            header_timeout: Duration::from_secs(config.http.header_timeout_secs),
            telnet_idle: Duration::from_secs(config.http.telnet_idle_timeout_secs),
        }
    }
}

pub(crate) async fn run(config: &FileConfig, apis: Apis) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let tls = crate::tls::acceptor(&config.tls)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(%addr, scheme, data_dir = %config.data_dir.display(), "sundial listening");
    // Tests and scripts read the bound address (port 0) from this line.
    println!("sundial listening on {addr}");
    let _ = std::io::stdout().flush();

    let conn = Conn::new(config, &apis, tls);
    let slots = Arc::new(Semaphore::new(config.http.max_connections));
    let graceful = GracefulShutdown::new();
    let tasks = TaskTracker::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "connection refused: max_connections reached");
            tasks.spawn(refuse_busy(stream));
            continue;
        };
        let conn = conn.clone();
        let watcher = graceful.watcher();
        let stop = stop_rx.clone();
        // Everything after accept runs in the connection's own task, so a
        // silent client cannot stall the accept loop.
        tasks.spawn(async move {
            serve_connection(conn, stream, peer, watcher, stop).await;
            drop(slot);
        });
    }
    info!("shutting down: no new connections, finishing requests in flight");
    drop(listener);
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("some HTTP connections did not finish in time");
    }
    tasks.close();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        warn!("some connections did not finish in time");
    }
    Ok(())
}

/// Answers a connection over the cap with a 503 (HTTP clients retry; a
/// telnet client sees the line and the close). What the client sent is
/// read first and the close is graceful, so the answer is not lost to a
/// reset.
async fn refuse_busy(mut stream: TcpStream) {
    let reply = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
Content-Type: text/plain\r\nContent-Length: 28\r\n\r\ntoo many connections; retry\n";
    let linger = async {
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await;
        stream.write_all(reply).await?;
        stream.shutdown().await?;
        while stream.read(&mut buf).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), linger).await;
}

async fn serve_connection(
    conn: Conn,
    stream: TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
    mut stop: watch::Receiver<bool>,
) {
    let Some(tls) = conn.tls.clone() else {
        let mut first = [0u8; 1];
        let peeked = tokio::select! {
            p = tokio::time::timeout(conn.header_timeout, stream.peek(&mut first)) => p,
            _ = stop.changed() => return,
        };
        match peeked {
            Ok(Ok(n)) if n > 0 => serve_protocol(conn, stream, first[0], peer, watcher, stop).await,
            _ => {}
        }
        return;
    };
    let handshake = tokio::time::timeout(conn.header_timeout, tls.accept(stream));
    let mut stream = match handshake.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let mut first = [0u8; 1];
    let read = tokio::select! {
        r = tokio::time::timeout(conn.header_timeout, stream.read(&mut first)) => r,
        _ = stop.changed() => return,
    };
    if let Ok(Ok(1)) = read {
        let stream = Prefixed::new(first[0], stream);
        serve_protocol(conn, stream, first[0], peer, watcher, stop).await;
    }
}

async fn serve_protocol<S>(
    conn: Conn,
    stream: S,
    first: u8,
    peer: SocketAddr,
    watcher: Watcher,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if first.is_ascii_uppercase() {
        serve_http(stream, peer, conn.router, conn.header_timeout, watcher).await;
    } else {
        debug!(%peer, "telnet connection");
        tokio::select! {
            r = opentsdb::serve_telnet(conn.telnet, stream, conn.telnet_idle) => {
                if let Err(e) = r { debug!(%peer, error = %e, "telnet connection ended"); }
            }
            _ = stop.changed() => {}
        }
    }
}

async fn serve_http<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    watcher: Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        TowerToHyperService::new(router.map_request(move |mut req: Request<Incoming>| {
            req.extensions_mut()
                .insert(sundial_bkmonitor::PeerAddr(peer));
            if let Some(path) = opentsdb::normalize_path(req.uri()) {
                let received = sundial_api::ReceivedPath(req.uri().path().to_owned());
                req.extensions_mut().insert(received);
                let rebuilt = match req.uri().query() {
                    Some(q) => format!("{path}?{q}"),
                    None => path,
                };
                if let Ok(uri) = rebuilt.parse() {
                    *req.uri_mut() = uri;
                }
            }
            req
        }));
    // The timer makes hyper enforce the header timeout, which also closes
    // keep-alive connections idle that long (slow or silent clients).
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn).await {
        debug!(error = %e, "HTTP connection ended with an error");
    }
}

fn router(apis: &Apis, edge: Edge, log: crate::request_log::RequestLog) -> Router {
    let mut routes = opentsdb::routes(apis.opentsdb.clone())
        .merge(sundial_baidu::routes(apis.baidu.clone()))
        .merge(sundial_bkmonitor::routes(apis.bk.clone()))
        .merge(crate::admin::routes(
            apis.engine.clone(),
            apis.store.clone(),
            log.board.clone(),
            apis.cluster.clone(),
            apis.configured_rules.clone(),
        ))
        .merge(crate::console::routes())
        .merge(apis.metrics.routes(apis.store.clone()))
        // After routing, so requests are counted by their route pattern.
        .route_layer(axum::middleware::from_fn_with_state(
            apis.metrics.clone(),
            crate::metrics::observe,
        ))
        .fallback(|| async { OpenTsdbError::not_found() });
    if apis.cluster.is_some() {
        routes = routes.layer(axum::middleware::from_fn(
            crate::cluster::only_cluster_routes,
        ));
    }
    routes
        .layer(axum::middleware::from_fn_with_state(edge, guard::check))
        // Outermost: refusals by the guard carry a request id too.
        .layer(axum::middleware::from_fn_with_state(
            log,
            crate::request_log::trace,
        ))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("Ctrl-C received"),
        () = term => info!("SIGTERM received"),
    }
}
