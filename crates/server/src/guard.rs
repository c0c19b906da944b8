//! The checks every HTTP request passes before its API sees it: foreign
//! web pages and DNS-rebound host names are refused (in the shape of the
//! API the path belongs to), CORS preflights are answered, listed origins
//! get CORS headers, and the request body gets its deadline and lingers.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use sundial_api::access::web::{Guard, Verdict};
use sundial_api::body::Deadline;
use sundial_opentsdb::OpenTsdbError;

/// What the middleware needs.
#[derive(Debug, Clone)]
pub(crate) struct Edge {
    pub(crate) guard: Arc<Guard>,
    pub(crate) body_timeout: Duration,
    /// How much of a body a handler left unread is read and dropped.
    pub(crate) drain_limit: usize,
}

pub(crate) async fn check(State(edge): State<Edge>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let (body, leftover) = crate::linger::split(Body::new(Deadline::new(body, edge.body_timeout)));
    let req = Request::from_parts(parts, body);
    let response = match edge.guard.check(req.method(), req.headers()) {
        Verdict::Refuse(reason) => {
            tracing::info!(path = req.uri().path(), %reason, "request refused");
            refusal(&req, StatusCode::FORBIDDEN, &reason)
        }
        Verdict::Preflight(cors) => {
            let mut r = StatusCode::OK.into_response();
            if let Some(cors) = cors {
                cors.apply_preflight(req.headers(), r.headers_mut());
            }
            r
        }
        Verdict::Pass(cors) => {
            let mut r = next.run(req).await;
            if let Some(cors) = cors {
                cors.apply(r.headers_mut());
            }
            r
        }
    };
    leftover.drain(edge.drain_limit);
    response
}

/// A refusal in the shape of the API that owns the request's path.
fn refusal(req: &Request, status: StatusCode, message: &str) -> Response {
    let path = req.uri().path();
    if path == "/v1" || path.starts_with("/v1/") {
        let id = req.extensions().get::<sundial_api::RequestId>();
        return sundial_baidu::refusal(id, status, "AccessDenied", message);
    }
    if sundial_bkmonitor::owns(path) {
        return sundial_bkmonitor::refusal(path, status, message);
    }
    OpenTsdbError {
        status,
        message: "Request refused".into(),
        details: Some(message.to_owned()),
    }
    .into_response()
}
