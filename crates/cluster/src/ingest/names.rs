//! A shard's listing names in PostgreSQL (docs/cluster.md, "Listing
//! names"). After a frame is applied, the owner adds the names its new
//! series brought (before the write is answered, so a listing right after
//! it shows them); after a delete, it removes the names the shard's last
//! series of them took along. A database whose rows may differ from its
//! index (PostgreSQL refused a change, or the shard was just restored) is
//! settled whole: at once when the shard is gained, else by the next
//! checkpoint pass.

use super::{Ingester, ShardState};
use crate::frame::ShardBatch;
use crate::names::{PRESENT, SeriesName};
use std::collections::{BTreeSet, HashSet};
use sundial_storage::{Db, Snapshot};
use tracing::warn;

impl Ingester {
    /// Adds the names of `candidates` (from [`new_names`] before the
    /// frame was applied) that `db` indexes now.
    pub(super) async fn publish_names(
        &self,
        shard: u32,
        state: &mut ShardState,
        database: &str,
        db: &Db,
        candidates: Vec<SeriesName>,
    ) {
        if candidates.is_empty() || state.names_unsettled.contains(database) {
            return;
        }
        let stored: Vec<SeriesName> = db.read(|snap| {
            candidates
                .into_iter()
                .filter(|name| indexes(&snap, name))
                .collect()
        });
        let added = match self.meta().await {
            Ok(meta) => meta.add_names(database, shard, &stored).await,
            Err(e) => Err(e),
        };
        if let Err(e) = added {
            warn!(shard, database, error = %e, "cannot record listing names; settling them later");
            state.names_unsettled.insert(database.to_owned());
        }
    }

    /// Removes the names of `metric` in `before` that `db` no longer
    /// indexes (a delete took their last series).
    pub(super) async fn withdraw_names(
        &self,
        shard: u32,
        state: &mut ShardState,
        database: &str,
        db: &Db,
        before: BTreeSet<SeriesName>,
    ) {
        let gone: Vec<SeriesName> = db.read(|snap| {
            before
                .into_iter()
                .filter(|name| !indexes(&snap, name))
                .collect()
        });
        if gone.is_empty() || state.names_unsettled.contains(database) {
            return;
        }
        let removed = match self.meta().await {
            Ok(meta) => meta.remove_names(database, shard, &gone).await,
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            warn!(shard, database, error = %e, "cannot remove listing names; settling them later");
            state.names_unsettled.insert(database.to_owned());
        }
    }

    /// Makes PostgreSQL's names of each unsettled database of the shard
    /// exactly what its index holds; those that fail stay unsettled.
    pub(super) async fn settle_names(&self, shard: u32, state: &mut ShardState) {
        let unsettled: Vec<String> = state.names_unsettled.iter().cloned().collect();
        for database in unsettled {
            let Some(shard_db) = state.databases.get(&database) else {
                state.names_unsettled.remove(&database);
                continue;
            };
            let names = shard_db.db.read(|snap| all_names(&snap));
            let settled = match self.meta().await {
                Ok(mut meta) => meta.settle_names(&database, shard, &names).await,
                Err(e) => Err(e),
            };
            match settled {
                Ok(_) => {
                    state.names_unsettled.remove(&database);
                }
                Err(e) => {
                    warn!(shard, database, error = %e, "cannot settle listing names; will retry");
                    return;
                }
            }
        }
    }
}

/// Whether the index holds `name`.
fn indexes(snap: &Snapshot<'_>, (metric, key, value): &SeriesName) -> bool {
    if key == PRESENT {
        snap.has_indexed_metric(metric)
    } else {
        snap.has_tag_value(metric, key, value)
    }
}

/// The names `batch` may bring to `db`: those of its series that `db`
/// does not index, and that it does not hold yet. Points a rule vetoed
/// bring none.
pub(super) fn new_names(db: &Db, batch: &ShardBatch) -> Vec<SeriesName> {
    let mut seen: HashSet<*const sundial_model::SeriesKey> = HashSet::new();
    let mut names: BTreeSet<SeriesName> = BTreeSet::new();
    db.read(|snap| {
        for (i, p) in batch.points.iter().enumerate() {
            if batch.rules.vetoed.get(i).copied().unwrap_or(false)
                || !seen.insert(std::sync::Arc::as_ptr(&p.series))
                || snap.is_indexed(&p.series)
            {
                continue;
            }
            let metric = &p.series.metric;
            let present = (metric.clone(), PRESENT.to_owned(), PRESENT.to_owned());
            if !snap.has_indexed_metric(metric) {
                names.insert(present);
            }
            for (key, value) in &p.series.tags {
                if !snap.has_tag_value(metric, key, value) {
                    names.insert((metric.clone(), key.clone(), value.clone()));
                }
            }
        }
    });
    names.into_iter().collect()
}

/// Every name of `metric` the index holds.
pub(super) fn metric_names(snap: &Snapshot<'_>, metric: &str) -> BTreeSet<SeriesName> {
    let mut names = BTreeSet::new();
    if snap.has_indexed_metric(metric) {
        names.insert((metric.to_owned(), PRESENT.to_owned(), PRESENT.to_owned()));
    }
    for (key, values) in snap.tags_of(metric, None) {
        for value in values {
            names.insert((metric.to_owned(), key.to_owned(), value.to_owned()));
        }
    }
    names
}

/// Every name the index holds.
fn all_names(snap: &Snapshot<'_>) -> Vec<SeriesName> {
    snap.indexed_metrics()
        .into_iter()
        .flat_map(|metric| metric_names(snap, metric))
        .collect()
}
