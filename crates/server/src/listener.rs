//! One TCP listener for HTTP and the telnet protocol, told apart by the
//! first byte (an upper-case letter starts an HTTP method), and graceful
//! shutdown on SIGTERM / Ctrl-C.

use crate::config::FileConfig;
use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::io::Write;
use std::time::Duration;
use sundial_api::opentsdb::{self, Api, OpenTsdbError};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, info, warn};

pub(crate) async fn run(
    config: &FileConfig,
    api: Api,
    baidu: sundial_api::baidu::Api,
    bk: sundial_api::bk::Api,
    engine: sundial_storage::Engine,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    info!(%addr, data_dir = %config.data_dir.display(), "sundial listening");
    // Tests and scripts read the bound address (port 0) from this line.
    println!("sundial listening on {addr}");
    let _ = std::io::stdout().flush();

    let router = router(api.clone(), baidu, bk, engine);
    let graceful = GracefulShutdown::new();
    let telnet = TaskTracker::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
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
        let mut first = [0u8; 1];
        // Peeking happens in the connection's own task so a silent client
        // cannot stall the accept loop.
        let router = router.clone();
        let api = api.clone();
        let watcher = graceful.watcher();
        let mut stop = stop_rx.clone();
        telnet.spawn(async move {
            let peeked = tokio::select! {
                p = stream.peek(&mut first) => p,
                _ = stop.changed() => return,
            };
            let is_http = match peeked {
                Ok(0) | Err(_) => return,
                Ok(_) => first[0].is_ascii_uppercase(),
            };
            if is_http {
                serve_http(stream, peer, router, watcher).await;
            } else {
                debug!(%peer, "telnet connection");
                tokio::select! {
                    r = opentsdb::serve_telnet(api, stream) => {
                        if let Err(e) = r { debug!(%peer, error = %e, "telnet connection ended"); }
                    }
                    _ = stop.changed() => {}
                }
            }
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
    telnet.close();
    if tokio::time::timeout(grace, telnet.wait()).await.is_err() {
        warn!("some connections did not finish in time");
    }
    Ok(())
}

async fn serve_http(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let service =
        TowerToHyperService::new(router.map_request(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(sundial_api::bk::PeerAddr(peer));
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
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn).await {
        debug!(error = %e, "HTTP connection ended with an error");
    }
}

fn router(
    api: Api,
    baidu: sundial_api::baidu::Api,
    bk: sundial_api::bk::Api,
    engine: sundial_storage::Engine,
) -> Router {
    opentsdb::routes(api)
        .merge(sundial_api::baidu::routes(baidu))
        .merge(sundial_api::bk::routes(bk))
        .merge(crate::admin::routes(engine))
        .fallback(|| async { OpenTsdbError::not_found() })
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
