//! Downsampling that folds the column's values straight into per-bucket
//! state as they are decoded, for every function that needs no more than
//! counts, sums, extremes, ends, products and sums of squares: no point
//! vector per series and none per bucket. Where the function allows
//! (count, sums and averages, extremes, ends), a block chunk wholly
//! inside one bucket stands for its points undecoded, and so do the
//! presampled buckets of a chunk that carries the downsampling's grid.

use super::bucket::{Bucket, Keep, Summary};
use super::downsample::{Grid, fill};
use crate::Result;
use crate::series_query::buckets::count_before;
use sundial_model::{Buckets, Downsample, FieldValue, Timestamp};
use sundial_storage::{NumSlice, NumericPart, SeriesId, Snapshot, WholeChunk};

/// Whether [`downsample_column`] answers `ds`.
pub(super) fn streams(ds: &Downsample) -> bool {
    Keep::of(ds.function).is_some()
}

/// Whether `ds` is expected to answer mostly from chunk statistics (long
/// buckets of a function that takes them): fetching every chunk of the
/// range ahead from object storage would cost more than it saves.
pub(super) fn mostly_statistics(ds: &Downsample) -> bool {
    /// Buckets shorter than a day rarely hold a whole chunk (up to 16 384
    /// points within a week).
    const LONG_BUCKET_MS: i64 = 86_400_000;
    let long = match &ds.buckets {
        Buckets::All => true,
        Buckets::Fixed(width) => *width >= LONG_BUCKET_MS,
        Buckets::Edges(edges) => edges
            .windows(2)
            .all(|w| matches!(w, [a, b] if b.saturating_sub(*a) >= LONG_BUCKET_MS)),
    };
    long && Keep::of(ds.function).is_some_and(Keep::statistics_give_it)
}

/// The buckets of one series as they fill.
struct Folder<'a> {
    keep: Keep,
    grid: Option<Grid<'a>>,
    /// The same grid as presampled buckets carry it, when it is one.
    presampled: Option<sundial_storage::Grid>,
    start: Timestamp,
    /// In the order opened; a bucket may come more than once (a chunk
    /// taken whole, then a run) and out of order: see [`Folder::finish`].
    buckets: Vec<(Timestamp, Bucket)>,
    /// The bucket being filled, the last of `buckets`: `[from, to)`.
    current: Option<(Timestamp, Timestamp)>,
    /// Stored points covered, and what was read for them: values decoded
    /// and statistics taken.
    points: usize,
    read: usize,
    scratch: Vec<f64>,
    /// Spans only rollups could answer and did not: their buckets go.
    gaps: Vec<(Timestamp, Timestamp)>,
}

impl Folder<'_> {
    /// Folds one ascending run of the column a bucket at a time.
    fn push_run(&mut self, ts: &[Timestamp], values: NumSlice<'_>) {
        let n = ts.len().min(match values {
            NumSlice::Longs(v) => v.len(),
            NumSlice::Doubles(v) => v.len(),
            NumSlice::Mixed(v) => v.len(),
        });
        self.points += n;
        self.read += n;
        let mut i = 0;
        while let Some(&t) = ts.get(i).filter(|_| i < n) {
            let current = match self.current {
                Some((from, to)) if from <= t && t < to => Some((from, to)),
                _ => self.open(t),
            };
            // A point outside the grid's edges is skipped.
            let j = match current {
                Some((_, to)) => i + count_before(ts.get(i..n).unwrap_or_default(), to),
                None => i + 1,
            };
            if current.is_some()
                && let Some((_, bucket)) = self.buckets.last_mut()
            {
                let (keep, ts) = (self.keep, &ts[i..j]);
                let scratch = &mut self.scratch;
                match values {
                    NumSlice::Longs(v) => bucket.add_longs(keep, ts, &v[i..j], scratch),
                    NumSlice::Doubles(v) => bucket.add_doubles(keep, ts, &v[i..j]),
                    NumSlice::Mixed(v) => bucket.add_nums(keep, ts, &v[i..j], scratch),
                }
            }
            i = j;
        }
    }

    /// Takes a whole chunk from its statistics or presampled buckets;
    /// `false` when it must be decoded.
    fn take_chunk(&mut self, whole: &WholeChunk<'_>) -> bool {
        if !self.keep.statistics_give_it() {
            return false;
        }
        let s = &whole.summary;
        let summary = Summary {
            count: s.count,
            all_long: s.all_long,
            min: s.stats.min,
            max: s.stats.max,
            exact: &whole.exact,
            first_ts: s.min_ts,
            last_ts: s.max_ts,
        };
        if !summary.usable(self.keep) {
            return false;
        }
        if let Some((from, to)) = self.bucket(s.min_ts)
            && s.max_ts < to
        {
            self.add_summary(from, &summary);
            return true;
        }
        self.take_presampled(whole)
    }

    /// Takes a chunk from its presampled buckets on the grid.
    fn take_presampled(&mut self, whole: &WholeChunk<'_>) -> bool {
        let (Some(grid), Some(Grid::Fixed(_))) = (self.presampled, &self.grid) else {
            return false;
        };
        // Maybe a finer grid's buckets, each inside one of the query's.
        let Some(records) = whole.buckets(grid) else {
            return false;
        };
        let width = records.grid().width();
        let s = &whole.summary;
        let summaries: Vec<Summary<'_>> = records
            .iter()
            .map(|r| Summary {
                count: r.count,
                all_long: r.all_long,
                min: r.min,
                max: r.max,
                exact: &r.exact,
                first_ts: r.start.max(s.min_ts),
                last_ts: r.start.saturating_add(width - 1).min(s.max_ts),
            })
            .collect();
        if !summaries.iter().all(|r| r.usable(self.keep)) {
            return false;
        }
        for (r, summary) in records.iter().zip(&summaries) {
            if let Some((from, _)) = self.bucket(r.start) {
                self.add_summary(from, summary);
            }
        }
        true
    }

    fn add_summary(&mut self, from: Timestamp, summary: &Summary<'_>) {
        let mut bucket = Bucket::default();
        bucket.add_summary(self.keep, summary);
        self.points = self.points.saturating_add(summary.count as usize);
        self.read += 1;
        self.buckets.push((from, bucket));
        // Runs reopen their buckets after it.
        self.current = None;
    }

    /// The bucket holding `t` as `[from, to)`; `None` when no bucket does.
    fn bucket(&self, t: Timestamp) -> Option<(Timestamp, Timestamp)> {
        match &self.grid {
            Some(g) => g.bucket(t),
            // One bucket over everything, stamped at the start.
            None => Some((self.start, Timestamp::MAX)),
        }
    }

    /// Opens the bucket holding `t`; `None` when no bucket does.
    fn open(&mut self, t: Timestamp) -> Option<(Timestamp, Timestamp)> {
        self.current = self.bucket(t);
        if let Some((from, _)) = self.current {
            self.buckets.push((from, Bucket::default()));
        }
        self.current
    }

    /// The buckets in time order, parts of one bucket merged.
    fn finish(mut self) -> Vec<(Timestamp, Bucket)> {
        if self.buckets.windows(2).all(|w| w[0].0 < w[1].0) {
            return self.buckets;
        }
        // Stable: parts of a bucket stay in the order they were read.
        self.buckets.sort_by_key(|(b, _)| *b);
        let mut out: Vec<(Timestamp, Bucket)> = Vec::with_capacity(self.buckets.len());
        for (b, bucket) in self.buckets {
            match out.last_mut() {
                Some((last, merged)) if *last == b => merged.merge(&bucket),
                _ => out.push((b, bucket)),
            }
        }
        out
    }
}

/// A series' buckets, the stored points they cover, and what was read for
/// them (values decoded, statistics taken).
#[derive(Debug)]
pub(super) struct Downsampled {
    pub points: Vec<(Timestamp, FieldValue)>,
    pub covered: usize,
    pub read: usize,
}

/// Downsamples the numeric column of a series in `[start, end]` with a
/// [`streams`] function; `None` if the column holds text.
pub(super) fn downsample_column(
    view: &Snapshot<'_>,
    id: SeriesId,
    field: &str,
    ds: &Downsample,
    range: (Timestamp, Timestamp),
    max_points: usize,
) -> Result<Option<Downsampled>> {
    let Some(keep) = Keep::of(ds.function) else {
        return Ok(None);
    };
    let (start, end) = range;
    let grid = Grid::of(&ds.buckets);
    let presampled = match &ds.buckets {
        // OpenTSDB's fixed buckets count from the epoch.
        Buckets::Fixed(width) => sundial_storage::Grid::new(0, *width),
        _ => None,
    };
    let mut folder = Folder {
        keep,
        buckets: Vec::with_capacity(expected_buckets(grid.as_ref(), range)),
        grid,
        presampled,
        start,
        current: None,
        points: 0,
        read: 0,
        scratch: Vec::new(),
        gaps: Vec::new(),
    };
    let numeric = view.visit_numeric_parts(id, field, start, end, &mut |part| match part {
        NumericPart::Chunk(whole) => folder.take_chunk(whole),
        NumericPart::Run(ts, values) => {
            folder.push_run(ts, values);
            true
        }
        NumericPart::Gap(lo, hi) => {
            folder.gaps.push((lo, hi));
            true
        }
    })?;
    if !numeric {
        return Ok(None);
    }
    let gaps = std::mem::take(&mut folder.gaps);
    let (covered, read, grid) = (folder.points, folder.read, folder.grid);
    let buckets = folder.finish();
    let in_gap = |b: Timestamp| {
        let to = match &grid {
            Some(g) => g.bucket(b).map_or(b, |(_, to)| to),
            None => Timestamp::MAX,
        };
        gaps.iter().any(|(lo, hi)| b <= *hi && to > *lo)
    };
    let out: Vec<(Timestamp, FieldValue)> = buckets
        .into_iter()
        // A leading partial bucket before the start is dropped (OpenTSDB),
        // and so are buckets some rollups could not answer.
        .filter(|(b, _)| (start..=end).contains(b) && !in_gap(*b))
        .map(|(b, bucket)| (b, FieldValue::Double(bucket.value(ds.function))))
        .collect();
    let mut points = match &grid {
        Some(g) => fill(out, g, ds.fill, (start, end), covered > 0, max_points)?,
        None => out,
    };
    // Not filled either: their value is unknown, not missing.
    if !gaps.is_empty() {
        points.retain(|(b, _)| !in_gap(*b));
    }
    Ok(Some(Downsampled {
        points,
        covered,
        read,
    }))
}

/// Buckets a series dense over `[start, end]` fills: the vector is sized
/// once instead of growing (and copying) as buckets open.
fn expected_buckets(grid: Option<&Grid<'_>>, (start, end): (Timestamp, Timestamp)) -> usize {
    /// Beyond this the vector grows as usual: a sparse series over a long
    /// range should not reserve for buckets it never opens.
    const MAX_RESERVED: usize = 4096;
    let n = match grid {
        None => 1,
        Some(Grid::Fixed(width)) => {
            usize::try_from(end.saturating_sub(start) / width.max(&1)).unwrap_or(0) + 2
        }
        Some(Grid::Edges(edges)) => edges.len(),
    };
    n.min(MAX_RESERVED)
}
