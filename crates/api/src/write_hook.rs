//! The write-side extension point. Every API hands the points of one
//! write request to the server's hooks before the engine stores them and
//! tells the hooks afterwards what was stored; no API knows which hooks
//! exist. BlueKing's group binding (`bk::ingest::Binder`) is one.

use axum::http::HeaderMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use sundial_model::{PointError, WritePoint};

/// What a hook may read of the request a write came with.
#[derive(Debug, Clone, Copy)]
pub struct WriteRequest<'a> {
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// Whether the write goes to the `default` database.
    pub default_database: bool,
}

/// Why a hook refused a whole request or one point of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A request parameter the hook reads is wrong: the request fails.
    #[error("{0}")]
    Request(String),
    /// The point's value has to be a number.
    #[error("Unable to parse value to a number")]
    NotANumber,
    /// The point breaks another rule of the hook.
    #[error("{0}")]
    Point(String),
}

/// What [`HookedWrite::stored`] returns: work that may touch the disk.
pub type StoredFuture = Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;

/// A server-wide hook on writes.
pub trait WriteHook: Send + Sync + std::fmt::Debug {
    /// Starts the hook's part of one request; `None` when it has nothing
    /// to do with it.
    fn begin(&self, request: WriteRequest<'_>) -> Result<Option<Box<dyn HookedWrite>>, Refusal>;
}

/// A hook's part of one write request.
pub trait HookedWrite: Send {
    /// Sees, and may rewrite, the point the API will hand the engine at
    /// `index` of its write.
    fn admit(&mut self, index: usize, point: &mut WritePoint) -> Result<(), Refusal>;

    /// Called once the write is durable, with the engine's result per
    /// index.
    fn stored(self: Box<Self>, results: &[Result<(), PointError>]) -> StoredFuture;
}

/// The hooks of a server, in the order they run.
#[derive(Debug, Clone, Default)]
pub struct WriteHooks(Arc<Vec<Arc<dyn WriteHook>>>);

impl WriteHooks {
    pub fn new(hooks: Vec<Arc<dyn WriteHook>>) -> Self {
        Self(Arc::new(hooks))
    }

    /// Starts every hook's part of one request.
    pub fn begin(&self, request: WriteRequest<'_>) -> Result<HookedRequest, Refusal> {
        let mut parts = Vec::new();
        for hook in self.0.iter() {
            parts.extend(hook.begin(request)?);
        }
        Ok(HookedRequest(parts))
    }
}

/// The hooks' parts of one write request.
#[must_use = "call stored() once the write is durable"]
pub struct HookedRequest(Vec<Box<dyn HookedWrite>>);

impl std::fmt::Debug for HookedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HookedRequest({} hooks)", self.0.len())
    }
}

impl HookedRequest {
    /// Passes the point at `index` through every hook; the first refusal
    /// wins.
    pub fn admit(&mut self, index: usize, point: &mut WritePoint) -> Result<(), Refusal> {
        self.0.iter_mut().try_for_each(|h| h.admit(index, point))
    }

    /// Tells every hook what the engine stored.
    pub async fn stored(self, results: &[Result<(), PointError>]) -> std::io::Result<()> {
        for hook in self.0 {
            hook.stored(results).await?;
        }
        Ok(())
    }
}
