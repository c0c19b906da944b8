//! Who may do what, for every API: one store of access keys with grants per
//! database and action, HTTP Basic credentials (OpenTSDB, admin), and the
//! browser-facing checks (Origin, Host, CORS) every route shares.
//!
//! When no key is configured the server is open: every caller may do
//! everything, and [`web`] keeps foreign web pages and DNS-rebound names
//! away from it. Once any key exists (here, in `[baidu] credentials` or in
//! `[bkmonitor] esb_apps`), every route but `/api/version` and the health
//! check needs one.

mod basic;
mod managed;
mod store;
pub mod web;

pub use basic::{BasicError, basic_credentials};
pub use managed::{KeyChange, KeyError, ListedKey, MAX_MANAGED_KEYS, ManagedKey};
pub use store::{Action, Config, GrantConfig, Identity, KeyConfig, Principal, Store};

/// Routes that answer without credentials.
/// Whether a 401 should carry `WWW-Authenticate: Basic`. Scripts from a
/// page (the console) mark their requests with `X-Requested-With` and ask
/// for the key themselves: the challenge would make the browser open its
/// own login box instead.
pub fn wants_basic_challenge(headers: &http::HeaderMap) -> bool {
    !headers.contains_key("x-requested-with")
}

pub fn is_public_path(path: &str) -> bool {
    matches!(path, "/api/version" | "/api/health")
}
