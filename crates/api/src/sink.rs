//! The write seam: every API adapter hands its parsed, checked points to
//! one [`Sink`]. On a single node that stores them in the addressed
//! database ([`LocalSink`]); on a cluster's router it sends each shard's
//! points to the shard's owner (`sundial_cluster::Router`). Adapters keep
//! their own replies: the sink answers per point, in request order.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use sundial_model::WritePoint;
use sundial_storage::{Db, Result, Rules, Written};

/// One write as an adapter hands it over.
#[derive(Debug)]
pub struct PointWrite {
    /// The addressed database (the adapter has checked access to it).
    pub db: Db,
    pub points: Vec<WritePoint>,
    /// Sizes of consecutive all-or-nothing groups ([`Rules::groups`]).
    pub groups: Vec<usize>,
    /// Points the API refused after the kind check ([`Rules::vetoed`]).
    pub vetoed: Vec<bool>,
    /// Whether the commit must reach the disk before it resolves.
    pub sync: bool,
}

impl PointWrite {
    /// Points that stand alone, not synced beyond the WAL policy.
    pub fn new(db: Db, points: Vec<WritePoint>) -> Self {
        Self {
            db,
            points,
            groups: Vec::new(),
            vetoed: Vec::new(),
            sync: false,
        }
    }

    /// Every point or none (Baidu's and BlueKing's rule for a request).
    pub fn all_or_nothing(mut self) -> Self {
        self.groups = vec![self.points.len()];
        self
    }
}

/// What [`PointSink::write`] returns.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<Written>> + Send + 'a>>;

/// Where adapters' writes go.
pub trait PointSink: Send + Sync + Debug {
    /// Stores what it can of `write`: the outcome per point, in request
    /// order, and the commit to wait for before acknowledging. A whole
    /// write that cannot be taken now is a busy-class error.
    fn write(&self, write: PointWrite) -> SinkFuture<'_>;
}

/// A shared handle on the server's sink; the default stores locally.
#[derive(Debug, Clone)]
pub struct Sink(Arc<dyn PointSink>);

impl Default for Sink {
    fn default() -> Self {
        Self(Arc::new(LocalSink))
    }
}

impl Sink {
    pub fn new(sink: impl PointSink + 'static) -> Self {
        Self(Arc::new(sink))
    }

    pub async fn write(&self, write: PointWrite) -> Result<Written> {
        self.0.write(write).await
    }
}

/// Writes of at most this many points run on the async worker when no
/// lock is taken: 50-point puts from 16 connections spent more CPU on the
/// hand-off to a blocking thread and back than on the write; a write of
/// thousands of points would hold the worker for milliseconds.
const INLINE_POINTS: usize = 1000;

/// Stores writes in the addressed database on this node: small ones that
/// need not wait for a lock at once, others off the async workers (a
/// write may wait for the head or the WAL queue).
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalSink;

impl PointSink for LocalSink {
    fn write(&self, write: PointWrite) -> SinkFuture<'_> {
        Box::pin(async move {
            let PointWrite {
                db,
                mut points,
                groups,
                vetoed,
                sync,
            } = write;
            if points.len() <= INLINE_POINTS {
                let rules = Rules {
                    groups: &groups,
                    vetoed: &vetoed,
                };
                // A panic answers as an I/O error of the write, as it
                // does on a blocking thread.
                let tried = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    db.try_write_with(points, rules, sync)
                }));
                match tried {
                    Ok(Ok(written)) => return written,
                    Ok(Err(back)) => points = back,
                    Err(_) => return Err(crate::write_task_failed("panicked")),
                }
            }
            crate::write_off_workers(move || {
                let rules = Rules {
                    groups: &groups,
                    vetoed: &vetoed,
                };
                db.write_with(points, rules, sync)
            })
            .await
        })
    }
}
