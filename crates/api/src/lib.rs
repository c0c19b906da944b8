//! What Sundial's wire APIs share: one credential store and its grants
//! (`access`), request bodies (`body`), the server-wide `[limits]`, the
//! write hook every API's writes pass through, the sink they all write
//! into (`sink`), where their queries read (`reads`) and deletes run (`deletes`), and metadata a
//! cluster's nodes share (`shared`). The APIs themselves are the
//! crates `sundial-opentsdb`, `sundial-baidu` and `sundial-bkmonitor`, none
//! of which depends on another.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod access;
pub mod body;
pub mod deletes;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
pub mod json;
pub mod limits;
pub mod reads;
pub mod shared;
pub mod sink;
pub mod stats;
pub mod write_hook;

/// Runs a storage write off the async workers: it may wait for the head
/// (behind a flush) or the WAL queue. A panic in it answers as an I/O
/// error of the write.
pub async fn write_off_workers<T: Send + 'static>(
    work: impl FnOnce() -> sundial_storage::Result<T> + Send + 'static,
) -> sundial_storage::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(write_task_failed(&e.to_string())))
}

/// The error of a write whose task failed (`why`: it panicked).
pub(crate) fn write_task_failed(why: &str) -> sundial_storage::Error {
    sundial_storage::Error::Io {
        op: "write task",
        path: std::path::PathBuf::new(),
        source: std::io::Error::other(why.to_owned()),
    }
}

/// The request's id (`X-Request-Id`), put in the request extensions by
/// the server so an API can repeat it in its own answer.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Points a query read from storage: an API puts it in its response's
/// extensions for the server's slow-request log.
#[derive(Debug, Clone, Copy)]
pub struct Scanned(pub u64);

/// The request path exactly as the client sent it, kept in the request
/// extensions when the listener rewrites the URI for routing (signatures
/// cover the path as received).
#[derive(Debug, Clone)]
pub struct ReceivedPath(pub String);
