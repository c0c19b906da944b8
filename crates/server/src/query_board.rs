//! The queries running now and the last slow requests, for
//! `GET /admin/queries` (the console's "Slow queries" page). The request
//! log fills it; the statement of a running query is what its body has
//! delivered so far.

use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

/// Slow requests kept.
const KEPT_SLOW: usize = 100;

#[derive(Debug, Default)]
pub(crate) struct QueryBoard {
    running: Mutex<BTreeMap<u64, Running>>,
    next: std::sync::atomic::AtomicU64,
    slow: Mutex<VecDeque<Slow>>,
}

#[derive(Debug)]
struct Running {
    id: String,
    api: &'static str,
    path: String,
    query_string: Option<String>,
    body_start: Option<Arc<Mutex<Vec<u8>>>>,
    started: Instant,
}

/// One slow request, as listed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Slow {
    pub(crate) id: String,
    pub(crate) api: &'static str,
    pub(crate) path: String,
    pub(crate) status: u16,
    pub(crate) elapsed_ms: u64,
    pub(crate) scanned_points: Option<u64>,
    pub(crate) statement: Option<String>,
    pub(crate) at_ms: i64,
}

/// Removes its query from the board when the request ends (or is dropped).
pub(crate) struct Entry {
    board: Arc<QueryBoard>,
    key: u64,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.board.running.lock().remove(&self.key);
    }
}

impl QueryBoard {
    pub(crate) fn start(
        self: &Arc<Self>,
        id: &str,
        path: &str,
        query_string: Option<String>,
        body_start: Option<Arc<Mutex<Vec<u8>>>>,
    ) -> Entry {
        let key = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.running.lock().insert(
            key,
            Running {
                id: id.to_owned(),
                api: crate::metrics::api_of(path),
                path: path.to_owned(),
                query_string,
                body_start,
                started: Instant::now(),
            },
        );
        Entry {
            board: self.clone(),
            key,
        }
    }

    pub(crate) fn record_slow(&self, slow: Slow) {
        let mut kept = self.slow.lock();
        if kept.len() == KEPT_SLOW {
            kept.pop_front();
        }
        kept.push_back(slow);
    }

    /// The board as `/admin/queries` answers it: running oldest first,
    /// slow newest first.
    pub(crate) fn snapshot(&self) -> serde_json::Value {
        let running: Vec<_> = self
            .running
            .lock()
            .values()
            .map(|r| {
                let body = r
                    .body_start
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(&b.lock()).into_owned());
                let statement = statement(r.query_string.as_deref(), body);
                serde_json::json!({
                    "id": r.id, "api": r.api, "path": r.path, "statement": statement,
                    "elapsed_ms": r.started.elapsed().as_millis() as u64,
                })
            })
            .collect();
        let slow: Vec<Slow> = self.slow.lock().iter().rev().cloned().collect();
        serde_json::json!({"running": running, "slow": slow})
    }
}

/// A query as the log shows it: `?query-string body`. A presigned URL's
/// `authorization` parameter is left out: it would let a log reader
/// replay the request until it expires.
pub(crate) fn statement(query_string: Option<&str>, body: Option<String>) -> Option<String> {
    let kept = query_string.map(|q| {
        q.split('&')
            .filter(|pair| {
                let name = pair.split('=').next().unwrap_or_default();
                !name.eq_ignore_ascii_case("authorization")
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    let query_string = kept.as_deref().filter(|q| !q.is_empty());
    match (query_string, body) {
        (Some(q), Some(b)) => Some(format!("?{q} {b}")),
        (Some(q), None) => Some(format!("?{q}")),
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn statements_leave_signatures_out() {
        let s = super::statement(Some("sql=select%201&authorization=bce-auth-v1%2Fk"), None);
        assert_eq!(s.as_deref(), Some("?sql=select%201"));
        assert_eq!(
            super::statement(Some("Authorization=x"), Some("{}".into())).as_deref(),
            Some("{}")
        );
    }
}
