//! The web console at `/` and `/console/` (docs/console.md): static files
//! compiled into the binary. The page holds no data of its own; it asks
//! the APIs with the key its user types in, so it is public and every
//! request it makes is checked like any other client's. uPlot comes from
//! the npm registry through `scripts/console-vendor`; its output is
//! committed, so building needs no Node.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const APP_CSS: &str = include_str!("../console/app.css");
const UPLOT_JS: &str = include_str!("../console/vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../console/vendor/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("../console/vendor/LICENSE-uPlot");

/// Scripts and styles from this server only; no framing by other sites.
/// uPlot sets element styles from script, hence inline styles.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn routes() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        // `/console/` too: the listener routes paths without their
        // trailing slash.
        .route(
            "/console",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/console/app.js",
            get(|| async { file("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/console/app.css",
            get(|| async { file("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/console/vendor/uPlot.iife.min.js",
            get(|| async { file("text/javascript; charset=utf-8", UPLOT_JS) }),
        )
        .route(
            "/console/vendor/uPlot.min.css",
            get(|| async { file("text/css; charset=utf-8", UPLOT_CSS) }),
        )
        .route(
            "/console/vendor/LICENSE-uPlot",
            get(|| async { file("text/plain; charset=utf-8", UPLOT_LICENSE) }),
        )
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // A new binary may serve new files under the same names.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
