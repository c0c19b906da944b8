//! A shard's listing names in PostgreSQL (docs/cluster.md, "Listing
//! names"). After a frame is applied, the owner adds the names its new
//! series brought (before the write is answered, so a listing right after
//! it shows them); after a delete, it removes the names the shard's last
//! series of them took along. A database whose rows may differ from its
//! index (PostgreSQL refused a change or did not answer in time, or the
//! shard was just restored) is settled whole by the next checkpoint pass
//! (each second); after a restore that pass also drops the rows of
//! databases the shard no longer holds. Names PostgreSQL cannot keep (a
//! NUL, over 2000 bytes) are left out.

use super::{Ingester, ShardState};
use crate::frame::ShardBatch;
use crate::names::{PRESENT, SeriesName};
use crate::{Error, Result};
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;
use sundial_storage::{Db, Snapshot};
use tracing::warn;

impl Ingester {
    /// Brings the shard's rows in line with a change of `db`'s index: of
    /// `names`, those it indexes now are added (`Added`: the names
    /// [`new_names`] found before a frame was applied), or those it no
    /// longer indexes are removed (`Removed`: a metric's names before a
    /// delete). A failure leaves the database to the settling pass.
    pub(super) async fn record_names(
        &self,
        shard: u32,
        state: &mut ShardState,
        (database, db): (&str, &Db),
        names: Vec<SeriesName>,
        change: NameChange,
    ) {
        // Most frames bring no name: nothing to read then.
        if names.is_empty() || state.names_unsettled.contains(database) {
            return;
        }
        let added = change == NameChange::Added;
        let changed: Vec<SeriesName> = db.read(|snap| {
            let kept = |name: &SeriesName| indexes(&snap, name) == added;
            names.into_iter().filter(kept).collect()
        });
        if changed.is_empty() {
            return;
        }
        // The connection's lock first, outside the bound (see `bounded`).
        let recorded = match self.meta().await {
            Ok(meta) if added => {
                bounded(CALL_TIMEOUT, meta.add_names(database, shard, &changed)).await
            }
            Ok(meta) => bounded(CALL_TIMEOUT, meta.remove_names(database, shard, &changed)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            warn!(shard, database, error = %e, "cannot record listing names; settling them later");
            state.names_unsettled.insert(database.to_owned());
        }
    }

    /// Makes PostgreSQL's names of each unsettled database of the shard
    /// exactly what its index holds, and (once after a restore) drops
    /// the rows of databases the shard does not hold; what fails is
    /// tried again at the next pass.
    pub(super) async fn settle_names(&self, shard: u32, state: &mut ShardState) {
        if !state.names_swept {
            let held: Vec<String> = state.databases.keys().cloned().collect();
            let swept = match self.meta().await {
                Ok(meta) => bounded(SETTLE_TIMEOUT, meta.keep_names_of(shard, &held)).await,
                Err(e) => Err(e),
            };
            match swept {
                Ok(()) => {
                    state.names_swept = true;
                    // Databases made since the restore (a write after a
                    // local log's loss) may have rows of lost series.
                    state.names_unsettled.extend(held);
                }
                Err(e) => {
                    warn!(shard, error = %e, "cannot sweep listing names; will retry");
                    return;
                }
            }
        }
        let unsettled: Vec<String> = state.names_unsettled.iter().cloned().collect();
        for database in unsettled {
            let Some(shard_db) = state.databases.get(&database) else {
                state.names_unsettled.remove(&database);
                continue;
            };
            let names = shard_db.db.read(|snap| all_names(&snap));
            let settled = match self.meta().await {
                Ok(mut meta) => {
                    bounded(SETTLE_TIMEOUT, meta.settle_names(&database, shard, &names)).await
                }
                Err(e) => Err(e),
            };
            match settled {
                Ok(_) => {
                    state.names_unsettled.remove(&database);
                }
                Err(e) => {
                    // The next pass tries again: the shard's lock is not
                    // held for one bound per database.
                    warn!(shard, database, error = %e, "cannot settle listing names; will retry");
                    return;
                }
            }
        }
    }
}

/// How long a write or a delete waits for PostgreSQL to record its
/// names before it goes on and leaves them to the settling pass.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one database's settling may take.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest name PostgreSQL keeps (its index rows are at most ~2.7 KB):
/// a longer one, or one holding a NUL (which `text` refuses), is listed
/// by the owners' ranged listings only.
const MAX_NAME_BYTES: usize = 2000;

/// `call`, or a timeout error once `limit` passed. Callers take the
/// metadata connection's lock before: waiting for another call is not
/// PostgreSQL failing to answer.
async fn bounded<T>(limit: Duration, call: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(Error::Internal(format!(
            "PostgreSQL did not answer within {limit:?}"
        ))),
    }
}

/// Whether PostgreSQL can keep `name`.
fn storable((metric, key, value): &SeriesName) -> bool {
    metric.len() + key.len() + value.len() <= MAX_NAME_BYTES
        && ![metric, key, value].iter().any(|s| s.contains('\0'))
}

/// How the index changed: names a frame brought, or a delete took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NameChange {
    Added,
    Removed,
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
            let metric = p.series.metric.as_str();
            let present = (metric.to_owned(), PRESENT.to_owned(), PRESENT.to_owned());
            if !snap.has_indexed_metric(metric) {
                names.insert(present);
            }
            for (key, value) in &p.series.tags {
                if !snap.has_tag_value(metric, key, value) {
                    names.insert((metric.to_owned(), key.to_string(), value.to_string()));
                }
            }
        }
    });
    names.into_iter().filter(storable).collect()
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
    names.retain(storable);
    names
}

/// Every name the index holds.
fn all_names(snap: &Snapshot<'_>) -> Vec<SeriesName> {
    snap.indexed_metrics()
        .into_iter()
        .flat_map(|metric| metric_names(snap, metric))
        .collect()
}
