//! Operator endpoints that belong to no client API.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use sundial_storage::Engine;

pub(crate) fn routes(engine: Engine) -> Router {
    Router::new()
        .route("/admin/compact", post(compact))
        .with_state(engine)
}

/// Flushes every database and merges all adjacent blocks (as far as the
/// block size limit allows), then answers. For benchmarks and operators
/// who want the data settled now rather than at the next maintenance pass.
async fn compact(State(engine): State<Engine>) -> Response {
    match tokio::task::spawn_blocking(move || engine.flush_and_compact(true)).await {
        Ok(Ok(())) => (StatusCode::OK, axum::Json(json!({"compacted": true}))).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "forced compaction failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": {"code": 500, "message": "Internal server error"}})),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "forced compaction task failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
