//! The delete seam: where OpenTSDB's `/api/delete_data` and
//! `/api/delete_meta` delete. On a single node that is the addressed
//! database; on a cluster node every shard's owner deletes in its shards
//! and checkpoints before it answers (`sundial_cluster::Querier`), so no
//! owner that replays the shard's log brings the points back.

use crate::reads::ReadFuture;
use std::fmt::Debug;
use std::sync::Arc;
use sundial_model::Deletion;
use sundial_storage::Db;

/// Deletes run by other nodes.
pub trait RemoteDeletes: Send + Sync + Debug {
    /// Runs `deletion` over `database` in every shard, as
    /// `sundial_query::delete` does on a single node: the points deleted.
    fn delete<'a>(&'a self, database: &'a str, deletion: &'a Deletion) -> ReadFuture<'a, u64>;
}

/// A shared handle on where deletes run: locally unless made remote.
#[derive(Debug, Clone, Default)]
pub struct Deletes(Option<Arc<dyn RemoteDeletes>>);

impl Deletes {
    pub fn remote(deletes: impl RemoteDeletes + 'static) -> Self {
        Self(Some(Arc::new(deletes)))
    }

    /// Runs `deletion` over `db`: off the async workers on this node (it
    /// flushes and rewrites blocks), or at the cluster's owners.
    pub async fn delete(&self, db: &Db, deletion: Deletion) -> sundial_query::Result<u64> {
        match &self.0 {
            None => {
                let db = db.clone();
                tokio::task::spawn_blocking(move || sundial_query::delete(&db, &deletion))
                    .await
                    .map_err(|_| sundial_query::Error::Internal("a delete task panicked"))?
            }
            Some(remote) => remote.delete(db.name(), &deletion).await,
        }
    }
}
