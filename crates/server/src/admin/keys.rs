//! `/admin/keys`: access keys made and revoked at run time
//! (`sundial_api::access::managed`; docs/config.md, "Access control").
//! A key's secret is never listed; the configuration's keys are listed,
//! fixed.

use super::error;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use sundial_api::access::{KeyChange, KeyError, ManagedKey, Store};
use sundial_bkmonitor::PeerAddr;

/// Every key, without secrets.
pub(super) async fn list(State(store): State<Arc<Store>>) -> Response {
    Json(json!({ "keys": store.listed() })).into_response()
}

/// `PUT /admin/keys/{id}` with `{"secret_access_key", "grants"}`: makes
/// the key, or gives it that secret and those grants.
pub(super) async fn put(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    peer: Option<Extension<PeerAddr>>,
    body: Bytes,
) -> Response {
    let peer = peer.map(|Extension(PeerAddr(addr))| addr);
    if !may_make_key(store.anonymous().is_some(), peer) {
        let message = "the first access key is made from the server's own host (loopback): \
                       until then anyone reaching the server could";
        return error(StatusCode::FORBIDDEN, message);
    }
    let key: ManagedKey = match serde_json::from_slice(&body) {
        Ok(key) => key,
        Err(e) => {
            let message = format!(
                "the body must be {{\"secret_access_key\": \"...\", \"grants\": \
                 {{\"<database or *>\": [\"read\", \"write\", \"admin\"]}}}}: {e}"
            );
            return error(StatusCode::BAD_REQUEST, &message);
        }
    };
    let change = KeyChange::Put {
        id: id.clone(),
        key: key.clone(),
    };
    match apply(store, change).await {
        Ok(()) => {
            let listed = json!({"access_key_id": id, "grants": key.grants, "source": "admin"});
            Json(listed).into_response()
        }
        Err(refused) => refused,
    }
}

/// `DELETE /admin/keys/{id}`: revokes a key made here.
pub(super) async fn remove(State(store): State<Arc<Store>>, Path(id): Path<String>) -> Response {
    match apply(store, KeyChange::Remove { id: id.clone() }).await {
        Ok(()) => Json(json!({ "removed": id })).into_response(),
        Err(refused) => refused,
    }
}

async fn apply(store: Arc<Store>, change: KeyChange) -> Result<(), Response> {
    let applied = tokio::task::spawn_blocking(move || store.change(&change)).await;
    let refused = match applied {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(refused)) => refused,
        Err(e) => {
            tracing::error!(error = %e, "access key change task failed");
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            return Err(error(status, "Internal server error"));
        }
    };
    let status = match &refused {
        KeyError::Invalid(_) => StatusCode::BAD_REQUEST,
        KeyError::NotFound(_) => StatusCode::NOT_FOUND,
        KeyError::Configured(_) | KeyError::LockOut | KeyError::Opens | KeyError::TooMany => {
            StatusCode::CONFLICT
        }
        KeyError::NoBook => StatusCode::NOT_IMPLEMENTED,
        KeyError::Unreachable(e) => {
            tracing::warn!(error = %e, "cannot store the access keys");
            StatusCode::SERVICE_UNAVAILABLE
        }
        KeyError::Busy => StatusCode::SERVICE_UNAVAILABLE,
    };
    Err(error(status, &refused.to_string()))
}

/// Whether a caller at `peer` may make a key: anyone the admin routes let
/// in once keys exist; while the server is still `open`, only its own
/// host, so a server exposed before its first key cannot be taken over.
fn may_make_key(open: bool, peer: Option<std::net::SocketAddr>) -> bool {
    // `to_canonical`: a dual-stack listener sees 127.0.0.1 as ::ffff:127.0.0.1.
    !open || peer.is_some_and(|p| p.ip().to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::may_make_key;

    #[test]
    fn the_first_key_comes_from_loopback() -> Result<(), std::net::AddrParseError> {
        let local = Some("127.0.0.1:5000".parse()?);
        let remote = Some("192.0.2.7:5000".parse()?);
        assert!(may_make_key(true, local));
        assert!(may_make_key(true, Some("[::ffff:127.0.0.1]:5000".parse()?)));
        assert!(!may_make_key(true, remote));
        assert!(!may_make_key(true, None));
        assert!(
            may_make_key(false, remote),
            "keys exist: authorization decides"
        );
        Ok(())
    }
}
