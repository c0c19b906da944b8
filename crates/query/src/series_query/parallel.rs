//! The pipeline's read stage: series are read and run through their
//! per-series stages by up to one thread per core, in batches of
//! [`SERIES_PER_READ`] under one storage read lock each.

use super::SERIES_PER_READ;
use crate::{Budget, Error, Result};
use sundial_model::Timestamp;
use sundial_storage::{Db, SeriesId, Snapshot};

/// Threads one query may use at most.
const MAX_THREADS: usize = 8;

/// The columns and time range a read will touch: chunks of blocks in
/// object storage are fetched for a whole batch at once, before its read
/// lock is taken.
pub(crate) struct Reach<'a> {
    pub(crate) fields: &'a [&'a str],
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
}

/// Runs `batch` over `ids` in runs of [`SERIES_PER_READ`], each under its
/// own read lock (so writers never wait long), the runs interleaved over
/// the threads. Each thread folds its batches into one `T` (from
/// `T::default()`); the deadline is checked before every batch. The
/// results come back in thread order. With a `reach`, each batch's remote
/// chunks are prefetched first.
pub(crate) fn read_in_parallel<T, F>(
    db: &Db,
    ids: &[SeriesId],
    budget: &Budget,
    reach: Option<Reach<'_>>,
    batch: F,
) -> Vec<Result<T>>
where
    T: Default + Send,
    F: Fn(&Snapshot<'_>, &[SeriesId], &mut T) -> Result<()> + Sync,
{
    let threads = crate::cores()
        .clamp(1, MAX_THREADS)
        .min(ids.len().div_ceil(SERIES_PER_READ))
        .max(1);
    let run = |first: usize| -> Result<T> {
        let mut acc = T::default();
        for ids in ids.chunks(SERIES_PER_READ).skip(first).step_by(threads) {
            budget.check_time()?;
            if let Some(r) = &reach {
                db.read(|view| view.prefetch(ids, r.fields, r.start, r.end))
                    .run();
            }
            db.read(|view| batch(&view, ids, &mut acc))?;
        }
        Ok(acc)
    };
    if threads == 1 {
        return vec![run(0)];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|i| s.spawn(move || run(i))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or(Err(Error::Internal("a scan thread panicked")))
            })
            .collect()
    })
}
