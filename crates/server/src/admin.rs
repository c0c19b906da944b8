//! Operator endpoints that belong to no client API. With access keys
//! configured they need HTTP Basic credentials of a key that may
//! administer every database (`grants = { "*" = ["admin"] }`). Keys
//! themselves are made and revoked at run time through `/admin/keys`.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde_json::json;
use std::sync::Arc;
use sundial_api::access::{Action, Store, basic_credentials};
use sundial_storage::Engine;

mod keys;
mod presampling;
mod snapshots;

/// The admin routes; on a cluster node `cluster` shows and compacts the
/// cluster's storage instead of this node's.
pub(crate) fn routes(
    engine: Engine,
    store: Arc<Store>,
    board: Arc<crate::query_board::QueryBoard>,
    cluster: Option<crate::cluster::ClusterAdmin>,
    configured_rules: Arc<std::collections::BTreeSet<(String, String)>>,
) -> Router {
    let queries = Router::new()
        .route("/admin/queries", get(queries))
        .with_state(board);
    let rules = Router::new()
        .route(
            "/admin/presampling",
            get(presampling::list).post(presampling::create),
        )
        .route("/admin/presampling/{id}", delete(presampling::remove))
        .with_state(presampling::Rules {
            engine: cluster.is_none().then(|| engine.clone()),
            configured: configured_rules,
            changing: Default::default(),
        });
    let storage_view = match cluster {
        Some(view) => Router::new()
            .route("/admin/storage", get(cluster_storage))
            .route("/admin/compact", post(cluster_compact))
            .with_state(view),
        None => Router::new()
            .route("/admin/storage", get(storage))
            .route("/admin/compact", post(compact))
            .with_state(engine.clone()),
    };
    let keys = Router::new()
        .route("/admin/keys", get(keys::list))
        .route("/admin/keys/{id}", put(keys::put).delete(keys::remove))
        .with_state(store.clone());
    Router::new()
        .route(
            "/admin/snapshots",
            get(snapshots::list_all).post(snapshots::create),
        )
        .route("/admin/snapshots/{name}", delete(snapshots::remove))
        .route("/admin/snapshots/{name}/files", get(snapshots::files))
        .route("/admin/snapshots/{name}/file", get(snapshots::read))
        .with_state(engine)
        .merge(queries)
        .merge(storage_view)
        .merge(keys)
        .merge(rules)
        .layer(axum::middleware::from_fn_with_state(store, authorize))
}

/// The queries running now and the recent slow requests.
async fn queries(State(board): State<Arc<crate::query_board::QueryBoard>>) -> Response {
    axum::Json(board.snapshot()).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message}});
    (status, axum::Json(body)).into_response()
}

/// With access keys configured, the identity of the request's HTTP Basic
/// credentials, or the 401 to answer; `Ok(None)` when none are configured.
pub(crate) fn identify(
    store: &Store,
    headers: &axum::http::HeaderMap,
) -> Result<Option<sundial_api::access::Identity>, Box<Response>> {
    if store.anonymous().is_some() {
        return Ok(None);
    }
    let identity = basic_credentials(headers)
        .ok()
        .and_then(|(id, secret)| store.check_secret(&id, &secret));
    match identity {
        Some(identity) => Ok(Some(identity)),
        None => {
            let mut r = error(StatusCode::UNAUTHORIZED, "Authentication required");
            if sundial_api::access::wants_basic_challenge(headers) {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"sundial\""),
                );
            }
            Err(Box::new(r))
        }
    }
}

async fn authorize(State(store): State<Arc<Store>>, req: Request, next: Next) -> Response {
    let identity = match identify(&store, req.headers()) {
        Ok(identity) => identity,
        Err(refused) => return *refused,
    };
    if let Some(identity) = identity
        && !identity.may_all(Action::Admin)
    {
        return error(
            StatusCode::FORBIDDEN,
            "Access denied: administration needs a key with admin on every database (\"*\")",
        );
    }
    next.run(req).await
}

/// Flushes every database and merges all adjacent blocks (as far as the
/// block size limit allows), then answers. For benchmarks and operators
/// who want the data settled now rather than at the next maintenance pass.
async fn compact(State(engine): State<Engine>) -> Response {
    match tokio::task::spawn_blocking(move || engine.flush_and_compact(true)).await {
        Ok(Ok(())) => (StatusCode::OK, axum::Json(json!({"compacted": true}))).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "forced compaction failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }
        Err(e) => {
            tracing::error!(error = %e, "forced compaction task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }
    }
}

/// A cluster node's storage view: the cluster's (`ClusterAdmin`).
async fn cluster_storage(State(view): State<crate::cluster::ClusterAdmin>) -> Response {
    match view.describe().await {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the cluster's storage");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the cluster's metadata store: {e}; retry"),
            )
        }
    }
}

/// A cluster node's compaction: every shard's, at its owner, now.
async fn cluster_compact(State(view): State<crate::cluster::ClusterAdmin>) -> Response {
    match view.compact().await {
        Ok(retired) => {
            let body = json!({"compacted": true, "blocks_retired": retired});
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cluster compaction failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not every shard was compacted: {e}; retry"),
            )
        }
    }
}

/// Per database: the head, the blocks and where they live, and what is
/// failing (a WAL that refuses writes, a flush the object store refused).
async fn storage(State(engine): State<Engine>) -> Response {
    let engine_store = engine.remote().cloned();
    let statuses = tokio::task::spawn_blocking(move || {
        engine
            .database_names()
            .into_iter()
            .filter_map(|name| Some((name.clone(), engine.database(&name)?.status())))
            .collect::<std::collections::BTreeMap<_, _>>()
    })
    .await;
    let store = engine_store.map(|s| {
        json!({"location": s.location(), "fetched_bytes": s.fetched_bytes(),
            "chunk_bytes_read": s.chunk_bytes_read()})
    });
    match statuses {
        Ok(databases) => {
            axum::Json(json!({ "databases": databases, "object_store": store })).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "storage status task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }
    }
}
