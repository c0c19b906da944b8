//! A consistent read view: the head plus the flush in progress plus the
//! blocks, merged by time with the newest source winning an equal timestamp.

use crate::block::Block;
use crate::block::cache::NumericChunk;
use crate::error::Result;
use crate::head::{Frozen, Head, PointsRef, SeriesId};
use crate::remote::Prefetch;
use std::collections::BTreeMap;
use std::sync::Arc;
use sundial_codec::{Num, NumColumn};
use sundial_index::{Posting, RoaringBitmap};
use sundial_model::{FieldValue, Kind, SeriesKey, TagMatch, Timestamp};

/// The immutable part of a database's data: blocks, oldest first, and the
/// points of a flush whose block is being written.
#[derive(Debug, Default)]
pub(crate) struct Layers {
    pub(crate) blocks: Vec<Arc<Block>>,
    pub(crate) frozen: Option<Arc<Frozen>>,
}

/// A block chunk summarised by its statistics instead of its points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkSummary {
    pub min_ts: Timestamp,
    pub max_ts: Timestamp,
    pub count: u64,
    pub stats: crate::block::ChunkStats,
    /// Every value a Long.
    pub all_long: bool,
}

/// A piece of a numeric column, as [`Snapshot::visit_numeric_parts`]
/// offers it.
#[derive(Debug, Clone, Copy)]
pub enum NumericPart<'a> {
    /// A block chunk inside the range that no other source overlaps, with
    /// exact statistics: the visitor takes it (returns `true`), or it is
    /// decoded and offered again as a run.
    Chunk(&'a WholeChunk<'a>),
    /// Ascending points, none inside a taken chunk's time range.
    Run(&'a [Timestamp], NumSlice<'a>),
    /// Points in `[lo, hi]` past the raw retention that only a
    /// rollups-only chunk's statistics hold, which the visitor did not
    /// take (or could not be offered): a fold leaves out the buckets it
    /// reaches into rather than answer them in part.
    Gap(Timestamp, Timestamp),
}

/// A column's data in a range, split into chunks whose statistics stand
/// for them and the points that must be read one by one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnParts {
    pub summaries: Vec<ChunkSummary>,
    /// Ascending, newest write winning; never inside a summarised chunk's
    /// time range.
    pub points: Vec<(Timestamp, FieldValue)>,
}

/// A whole block chunk that is the only source of its points.
#[derive(Debug)]
pub struct WholeChunk<'a> {
    pub summary: ChunkSummary,
    pub exact: crate::block::ExactStats,
    block: &'a Block,
    entry: &'a crate::block::ChunkEntry,
    /// The grids the database's rules and tiers keep now.
    grids: &'a [crate::rollup::Grid],
}

impl WholeChunk<'_> {
    /// Its points' statistics per bucket of the widest grid it carries
    /// (from a presampling rule or a rollup tier) that refines `grid`:
    /// each lies inside one of `grid`'s buckets. Buckets that cannot be
    /// read, or that do not add up to the chunk, are logged and not
    /// offered: the chunk itself may be sound, and is read.
    pub fn buckets(&self, grid: crate::rollup::Grid) -> Option<crate::rollup::GridBuckets> {
        // No grid kept now refines it: the chunk's frame is not read in
        // vain (a block written under older rules is read point by point).
        if !self.grids.iter().any(|g| g.refines(&grid)) {
            return None;
        }
        let records = match self.block.rollup_buckets(self.entry, grid) {
            Ok(records) => records?,
            Err(e) => {
                tracing::warn!(error = %e, "presampled buckets unreadable; reading the chunk");
                return None;
            }
        };
        let covered = records.iter().fold(0u64, |a, r| a.saturating_add(r.count));
        if covered != self.summary.count {
            let count = self.summary.count;
            tracing::warn!(
                covered,
                count,
                "presampled buckets disagree with their chunk; reading it"
            );
            return None;
        }
        Some(records)
    }
}

/// Read access held for one query. Writers wait while it is held: a long
/// reader calls [`Snapshot::yield_to_writers`] between series.
#[derive(Debug)]
pub struct Snapshot<'a> {
    pub(crate) head: parking_lot::RwLockReadGuard<'a, Head>,
    /// Where `layers` comes from, to refresh it after a yield.
    pub(crate) source: &'a parking_lot::RwLock<Arc<Layers>>,
    pub(crate) layers: Arc<Layers>,
    /// Retention: nothing older is returned, even before its block is dropped.
    pub(crate) min_ts: Timestamp,
    /// The rollup tiers' retention (at most `min_ts`): rollups-only blocks
    /// answer folds back to it.
    pub(crate) rollup_min_ts: Timestamp,
    /// The grids of the database's presampling rules and rollup tiers.
    pub(crate) grids: Vec<crate::rollup::Grid>,
    /// Another node's newer points, kept over every refresh.
    pub(crate) overlay: Option<Arc<crate::db::Overlay>>,
    /// The layers were chosen by the reader (`Db::read_newer`): a yield
    /// does nothing, since points a flush moved out of the head meanwhile
    /// would be in neither.
    pub(crate) pinned: bool,
}

impl Snapshot<'_> {
    /// Lets waiting writers in (they apply durable writes, and flushes
    /// move points from the head to blocks), then reads on from the state
    /// after them. Call between series: each series is read from one
    /// consistent state.
    pub fn yield_to_writers(&mut self) {
        if self.pinned {
            return;
        }
        parking_lot::RwLockReadGuard::bump(&mut self.head);
        self.layers = crate::db::layers_under(self.source, self.overlay.as_deref());
    }
    /// Every point of a column in the flush in progress, ascending.
    fn frozen_points(&self, id: SeriesId, field: &str) -> PointsRef<'_> {
        self.layers
            .frozen
            .as_ref()
            .and_then(|f| {
                let i = f.binary_search_by_key(&id, |(sid, _)| *sid).ok()?;
                let (_, cols) = f.get(i)?;
                cols.iter()
                    .find(|(n, _)| **n == *field)
                    .map(|(_, p)| p.as_ref())
            })
            .unwrap_or_default()
    }

    /// The chunks of `ids` x `fields` in `[start, end]` that blocks in
    /// object storage would fetch one request each: run the result after
    /// releasing this snapshot, so the fetch holds no lock writers wait on.
    pub fn prefetch(
        &self,
        ids: &[SeriesId],
        fields: &[&str],
        start: Timestamp,
        end: Timestamp,
    ) -> Prefetch {
        let start = start.max(self.rollup_min_ts);
        Prefetch {
            blocks: self
                .layers
                .blocks
                .iter()
                .filter_map(|b| b.remote_ranges(ids, fields, start, end))
                .collect(),
        }
    }

    /// Every defined series from id `first` on (hidden ones too), with
    /// its key.
    pub fn series_from(&self, first: u32) -> Vec<(SeriesId, SeriesKey)> {
        self.head.defined_from(first)
    }

    /// How often series were hidden or shown again since the database
    /// opened (see `Db::read_newer`).
    pub fn index_changes(&self) -> u64 {
        self.head.index_changes
    }

    /// Nothing older than this is returned (retention).
    pub fn min_ts(&self) -> Timestamp {
        self.min_ts
    }

    /// Whether the metric has ever been written.
    pub fn has_metric(&self, metric: &str) -> bool {
        self.head.has_metric(metric)
    }

    /// The kind of a metric's field, if it has one.
    pub fn kind(&self, metric: &str, field: &str) -> Option<Kind> {
        self.head.kind(metric, field)
    }

    /// Whether every stored value of a numeric field of `metric` is a Long
    /// (so SQL can type it Int64). Reads only block indexes and the head;
    /// chunks of blocks that predate the index's all-Long kind count as
    /// not all Long.
    pub fn all_long(&self, metric: &str, field: &str) -> bool {
        self.series_of(metric).iter().all(|id| {
            self.head
                .points(*id, field, Timestamp::MIN, Timestamp::MAX)
                .all_long()
                && self
                    .layers
                    .blocks
                    .iter()
                    .all(|b| b.chunks(*id, field).iter().all(|c| c.all_long()))
        }) && self.layers.frozen.as_ref().is_none_or(|f| {
            f.iter()
                .filter(|(id, _)| self.head.key(*id).is_some_and(|k| k.metric == metric))
                .flat_map(|(_, cols)| cols.iter().filter(|(name, _)| **name == *field))
                .all(|(_, pts)| pts.as_ref().all_long())
        })
    }

    /// A metric's fields and their kinds, sorted by name.
    pub fn fields(&self, metric: &str) -> Vec<(&str, Kind)> {
        self.head.fields(metric)
    }

    /// Every series of a metric, in creation order.
    pub fn series_of(&self, metric: &str) -> &[SeriesId] {
        self.head.series_of(metric)
    }

    /// The keys of `ids` (ids without one skipped), letting writers in
    /// every few thousand keys.
    pub fn keys_of(
        &mut self,
        ids: impl IntoIterator<Item = SeriesId>,
    ) -> Vec<(SeriesId, SeriesKey)> {
        const KEYS_PER_YIELD: usize = 4096;
        let mut out = Vec::new();
        for (n, id) in ids.into_iter().enumerate() {
            if n > 0 && n % KEYS_PER_YIELD == 0 {
                self.yield_to_writers();
            }
            if let Some(key) = self.key(id) {
                out.push((id, key));
            }
        }
        out
    }

    /// The series' key (rebuilt from interned names).
    pub fn key(&self, id: SeriesId) -> Option<SeriesKey> {
        self.head.key(id)
    }

    /// Whether the series is in the index (written, and not removed
    /// since).
    pub fn is_indexed(&self, key: &SeriesKey) -> bool {
        self.head
            .lookup(key)
            .is_some_and(|id| !self.head.is_hidden(id))
    }

    /// The metrics of the series in the index, sorted.
    pub fn indexed_metrics(&self) -> Vec<&str> {
        self.head.postings.metrics()
    }

    /// Whether a series in the index has metric `metric`.
    pub fn has_indexed_metric(&self, metric: &str) -> bool {
        self.head.postings.series_of(metric).is_some()
    }

    /// Whether a series in the index has metric `metric` and tag `key` =
    /// `value`.
    pub fn has_tag_value(&self, metric: &str, key: &str, value: &str) -> bool {
        self.head.postings.has_pair(metric, key, value)
    }

    /// Metric names, sorted.
    pub fn metrics(&self) -> Vec<&str> {
        self.head.metrics()
    }

    /// Series of `metric` satisfying every predicate, as bitmap algebra
    /// over the postings (each predicate looks at each distinct tag value
    /// once). Data in any time range; callers read the range.
    pub fn select(
        &self,
        metric: &str,
        predicates: &[TagMatch],
    ) -> std::result::Result<Vec<SeriesId>, sundial_index::Error> {
        Ok(self
            .head
            .postings
            .select(metric, predicates)?
            .iter()
            .map(SeriesId)
            .collect())
    }

    /// Series with at least one point in `[start, end]` (blocks by chunk
    /// time range, the head and a flush in progress by their points).
    pub fn active_series(&self, start: Timestamp, end: Timestamp) -> RoaringBitmap {
        let rollup_start = start.max(self.rollup_min_ts);
        let start = start.max(self.min_ts);
        let mut out = RoaringBitmap::new();
        for b in &self.layers.blocks {
            // Rollups-only blocks answer folds back to their retention.
            match b.rollups_only {
                true if rollup_start <= end => out |= b.series_in(rollup_start, end),
                false if start <= end => out |= b.series_in(start, end),
                _ => {}
            }
        }
        if start > end {
            return out;
        }
        if let Some(frozen) = &self.layers.frozen {
            for (id, cols) in frozen.iter() {
                if cols
                    .iter()
                    .any(|(_, p)| !p.as_ref().range(start, end).is_empty())
                {
                    out.insert(id.0);
                }
            }
        }
        for id in &self.head.live {
            if self.head.has_points_in(SeriesId(id), start, end) {
                out.insert(id);
            }
        }
        out
    }

    /// Which of `ids` have data in `[start, end]`: what
    /// [`Snapshot::active_series`] says of them, in time that grows with
    /// their number rather than the database's.
    pub fn active_among(
        &self,
        ids: &RoaringBitmap,
        start: Timestamp,
        end: Timestamp,
    ) -> RoaringBitmap {
        let rollup_start = start.max(self.rollup_min_ts);
        let start = start.max(self.min_ts);
        let mut out = RoaringBitmap::new();
        for b in &self.layers.blocks {
            let from = if b.rollups_only { rollup_start } else { start };
            if from <= end {
                out |= b.series_among(&(ids - &out), from, end);
            }
        }
        if start > end {
            return out;
        }
        if let Some(frozen) = &self.layers.frozen {
            let has_points = |id: SeriesId| {
                let i = frozen.binary_search_by_key(&id, |(sid, _)| *sid).ok()?;
                let (_, cols) = frozen.get(i)?;
                Some(
                    cols.iter()
                        .any(|(_, p)| !p.as_ref().range(start, end).is_empty()),
                )
            };
            for id in &(ids - &out) {
                if has_points(SeriesId(id)) == Some(true) {
                    out.insert(id);
                }
            }
        }
        let rest = ids - &out;
        for id in &(rest & &self.head.live) {
            if self.head.has_points_in(SeriesId(id), start, end) {
                out.insert(id);
            }
        }
        out
    }

    /// Metrics with data in `[start, end]`, sorted.
    pub fn metrics_in(&self, start: Timestamp, end: Timestamp) -> Vec<&str> {
        let active = self.active_series(start, end);
        self.head
            .postings
            .metrics()
            .into_iter()
            .filter(|m| {
                self.head
                    .postings
                    .series_of(m)
                    .is_some_and(|all| !all.is_disjoint(&active))
            })
            .collect()
    }

    /// Tag keys of `metric` on series with data in `[start, end]`, sorted.
    pub fn tag_keys_in(&self, metric: &str, start: Timestamp, end: Timestamp) -> Vec<&str> {
        let Some(series) = self.head.postings.series_of(metric) else {
            return Vec::new();
        };
        let active = self.active_among(series, start, end);
        self.head
            .postings
            .tag_keys(metric)
            .into_iter()
            .filter(|(_, series)| !series.is_disjoint(&active))
            .map(|(k, _)| k)
            .collect()
    }

    /// Values of tag `key` of `metric` on series with data in
    /// `[start, end]`, sorted.
    pub fn tag_values_in(
        &self,
        metric: &str,
        key: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<&str> {
        let Some(series) = self.head.postings.series_of(metric) else {
            return Vec::new();
        };
        let active = self.active_among(series, start, end);
        self.head
            .postings
            .tag_values(metric, key)
            .into_iter()
            .filter(|(_, series)| !series.is_disjoint(&active))
            .map(|(v, _)| v)
            .collect()
    }

    /// Per tag key of `metric` (sorted), its sorted values: on the series
    /// in `among` (say [`Snapshot::active_series`], computed once for many
    /// metrics), or on every series when `None`.
    pub fn tags_of(&self, metric: &str, among: Option<&RoaringBitmap>) -> Vec<(&str, Vec<&str>)> {
        self.per_tag(metric, among, |v, _| v)
    }

    /// Per tag key of `metric` (sorted), its values with the number of
    /// series carrying each: what a cardinality view shows.
    pub fn tag_cardinality(&self, metric: &str) -> Vec<(&str, Vec<(&str, u64)>)> {
        self.per_tag(metric, None, |v, series| (v, series.len()))
    }

    /// Per tag key of `metric` with series in `among` (all when `None`),
    /// `each` of its values with series in `among`.
    fn per_tag<'s, T>(
        &'s self,
        metric: &str,
        among: Option<&RoaringBitmap>,
        each: impl Fn(&'s str, &Posting) -> T,
    ) -> Vec<(&'s str, Vec<T>)> {
        let postings = &self.head.postings;
        postings
            .tag_keys(metric)
            .into_iter()
            .filter(|(_, series)| among.is_none_or(|a| !series.is_disjoint(a)))
            .map(|(key, _)| {
                let values = postings
                    .tag_values(metric, key)
                    .into_iter()
                    .filter(|(_, series)| among.is_none_or(|a| !series.is_disjoint(a)))
                    .map(|(v, series)| each(v, series))
                    .collect();
                (key, values)
            })
            .collect()
    }

    pub fn series_count(&self) -> usize {
        self.head.series_count()
    }

    /// Every series id is below this (ids of writes that failed leave gaps).
    pub fn id_bound(&self) -> u32 {
        self.head.next_id()
    }

    /// Points of one field of one series in `[start, end]`, ascending, with
    /// later writes winning equal timestamps. Reads only the block chunks
    /// whose time range overlaps.
    pub fn points(
        &self,
        id: SeriesId,
        field: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<(Timestamp, FieldValue)>> {
        let start = start.max(self.min_ts);
        let mut sources: Vec<Vec<(Timestamp, FieldValue)>> = Vec::new();
        for block in &self.layers.blocks {
            let pts = block.read(id, field, start, end)?;
            if !pts.is_empty() {
                sources.push(pts);
            }
        }
        if start <= end {
            let pts = self.frozen_points(id, field).range(start, end);
            if !pts.is_empty() {
                sources.push(pts.to_vec());
            }
        }
        let head = self.head.points(id, field, start, end).to_vec();
        if !head.is_empty() {
            sources.push(head);
        }
        Ok(merge(sources))
    }
}

impl Snapshot<'_> {
    /// Like [`Snapshot::points`], but a numeric block chunk that lies wholly
    /// inside `[start, end]` and that no other source (another block, a
    /// flush in progress, the head) overlaps in time is returned as its
    /// statistics, undecoded (when it keeps them in memory: chunks of more
    /// than a few points). Aggregations (count, sum, min, max, avg) over
    /// whole chunks then cost nothing per point.
    pub fn column_parts(
        &self,
        id: SeriesId,
        field: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<ColumnParts> {
        let (raw_start, start) = (start.max(self.min_ts), start.max(self.rollup_min_ts));
        let spans = self.spans(id, field, Timestamp::MIN);
        let frozen_pts = self.frozen_points(id, field);
        let head_pts = self.head.points(id, field, Timestamp::MIN, Timestamp::MAX);
        let mut parts = ColumnParts::default();
        let mut sources: Vec<Vec<(Timestamp, FieldValue)>> = Vec::new();
        for (i, b) in self.layers.blocks.iter().enumerate() {
            let mut decoded = Vec::new();
            for c in b.chunks(id, field).iter() {
                if c.max_ts < start || c.min_ts > end {
                    continue;
                }
                let inside = start <= c.min_ts && c.max_ts <= end;
                let alone = alone(&spans, i, c);
                match b.stats(c) {
                    Some(stats) if inside && alone => parts.summaries.push(ChunkSummary {
                        min_ts: c.min_ts,
                        max_ts: c.max_ts,
                        count: u64::from(c.count),
                        stats,
                        all_long: c.all_long(),
                    }),
                    _ => decoded.extend(
                        b.read_chunk(c)?
                            .into_iter()
                            .filter(|(t, _)| (raw_start..=end).contains(t)),
                    ),
                }
            }
            if !decoded.is_empty() {
                sources.push(decoded);
            }
        }
        for pts in [frozen_pts, head_pts] {
            let r = pts.range(raw_start, end);
            if !r.is_empty() {
                sources.push(r.to_vec());
            }
        }
        parts.points = merge(sources);
        parts.summaries.sort_by_key(|s| s.min_ts);
        Ok(parts)
    }
}

/// A numeric column as parallel vectors: timestamps ascending, values.
pub type NumericPoints = (Vec<Timestamp>, Vec<Num>);

/// A run of numeric values, one kind per run when the data allows.
#[derive(Debug, Clone, Copy)]
pub enum NumSlice<'a> {
    Longs(&'a [i64]),
    Doubles(&'a [f64]),
    Mixed(&'a [Num]),
}

/// Part of one decoded chunk: `[lo, hi)` of its points.
struct Run {
    chunk: Arc<NumericChunk>,
    lo: usize,
    hi: usize,
}

impl Run {
    fn ts(&self) -> &[Timestamp] {
        self.chunk.ts.get(self.lo..self.hi).unwrap_or_default()
    }

    fn values(&self) -> NumSlice<'_> {
        let r = self.lo..self.hi;
        match &self.chunk.values {
            NumColumn::Longs(v) => NumSlice::Longs(v.get(r).unwrap_or_default()),
            NumColumn::Doubles(v) => NumSlice::Doubles(v.get(r).unwrap_or_default()),
            NumColumn::Mixed(v) => NumSlice::Mixed(v.get(r).unwrap_or_default()),
        }
    }
}

impl Snapshot<'_> {
    /// Calls `visit` with ascending, non-overlapping runs of a numeric
    /// column in `[start, end]` (later writes winning equal timestamps),
    /// straight from cached decoded chunks where possible: aggregations
    /// read through this. `false` when the column holds text.
    pub fn visit_numeric(
        &self,
        id: SeriesId,
        field: &str,
        start: Timestamp,
        end: Timestamp,
        visit: &mut dyn FnMut(&[Timestamp], NumSlice<'_>),
    ) -> Result<bool> {
        self.visit_parts(id, field, start, end, false, &mut |part| {
            if let NumericPart::Run(ts, values) = part {
                visit(ts, values);
            }
            false
        })
    }

    /// [`Snapshot::visit_numeric`], offering first each block chunk that
    /// its exact statistics can stand for: folds that take such chunks
    /// whole never decode them.
    pub fn visit_numeric_parts(
        &self,
        id: SeriesId,
        field: &str,
        start: Timestamp,
        end: Timestamp,
        visit: &mut dyn FnMut(NumericPart<'_>) -> bool,
    ) -> Result<bool> {
        self.visit_parts(id, field, start, end, true, visit)
    }

    fn visit_parts(
        &self,
        id: SeriesId,
        field: &str,
        start: Timestamp,
        end: Timestamp,
        summarise: bool,
        visit: &mut dyn FnMut(NumericPart<'_>) -> bool,
    ) -> Result<bool> {
        let (raw_start, rollup_start) = (start.max(self.min_ts), start.max(self.rollup_min_ts));
        if rollup_start > end {
            return Ok(true);
        }
        let start = raw_start;
        let mut runs: Vec<Run> = Vec::new();
        let push = |chunk: Arc<NumericChunk>, runs: &mut Vec<Run>| {
            let lo = chunk.ts.partition_point(|t| *t < start);
            let hi = chunk.ts.partition_point(|t| *t <= end);
            if lo < hi {
                runs.push(Run { chunk, lo, hi });
            }
        };
        let spans = if summarise {
            self.spans(id, field, Timestamp::MIN)
        } else {
            Vec::new()
        };
        // A rollups-only chunk meets only what a read sees: other such
        // chunks, and points not past the raw retention.
        let rollups = self.layers.blocks.iter().any(|b| b.rollups_only);
        let rollup_spans = if summarise && rollups {
            self.spans(id, field, self.min_ts)
        } else {
            Vec::new()
        };
        for (i, block) in self.layers.blocks.iter().enumerate() {
            // Past the raw retention (back to the rollups') chunks count
            // only whole, by their statistics: a rollups-only block's hold
            // no points, and a decoded chunk's older points are cut off.
            let start = if summarise { rollup_start } else { raw_start };
            for c in block.chunks(id, field).iter() {
                if c.max_ts < start || c.min_ts > end || (block.rollups_only && !summarise) {
                    continue;
                }
                let whole = start <= c.min_ts && c.max_ts <= end;
                let spans = if block.rollups_only {
                    &rollup_spans
                } else {
                    &spans
                };
                if summarise
                    && whole
                    && alone(spans, i, c)
                    && let (Some(stats), Some(exact)) = (block.stats(c), block.exact_stats(c))
                {
                    let whole = WholeChunk {
                        summary: ChunkSummary {
                            min_ts: c.min_ts,
                            max_ts: c.max_ts,
                            count: u64::from(c.count),
                            stats,
                            all_long: c.all_long(),
                        },
                        exact,
                        block,
                        entry: c,
                        grids: &self.grids,
                    };
                    if visit(NumericPart::Chunk(&whole)) {
                        continue;
                    }
                }
                if block.rollups_only {
                    visit(NumericPart::Gap(c.min_ts.max(start), c.max_ts.min(end)));
                    continue;
                }
                // Decoded, its points past the raw retention are cut off:
                // where rollups reach, that span is a gap too.
                if summarise && rollup_start < raw_start && c.min_ts < raw_start {
                    visit(NumericPart::Gap(c.min_ts.max(start), raw_start - 1));
                }
                let Some(chunk) = block.numeric_chunk(c)? else {
                    return Ok(false);
                };
                push(chunk, &mut runs);
            }
        }
        let frozen = self.frozen_points(id, field).range(start, end);
        for pts in [frozen, self.head.points(id, field, start, end)] {
            if pts.is_empty() {
                continue;
            }
            let Some(values) = pts.num_column() else {
                return Ok(false);
            };
            let chunk = NumericChunk {
                ts: pts.timestamps().into_owned(),
                values,
            };
            push(Arc::new(chunk), &mut runs);
        }
        // Sources in order oldest first; the common case (compacted data,
        // head after it) is already ascending and disjoint.
        let disjoint = runs
            .windows(2)
            .all(|w| match (w[0].ts().last(), w[1].ts().first()) {
                (Some(a), Some(b)) => a < b,
                _ => true,
            });
        if disjoint {
            for r in &runs {
                visit(NumericPart::Run(r.ts(), r.values()));
            }
            return Ok(true);
        }
        let mut merged: BTreeMap<Timestamp, Num> = BTreeMap::new();
        for r in &runs {
            for (i, t) in r.ts().iter().enumerate() {
                if let Some(v) = r.chunk.values.get(r.lo + i) {
                    merged.insert(*t, v);
                }
            }
        }
        let (ts, nums): (Vec<Timestamp>, Vec<Num>) = merged.into_iter().unzip();
        visit(NumericPart::Run(&ts, NumSlice::Mixed(&nums)));
        Ok(true)
    }

    /// [`Snapshot::visit_numeric`] collected into two vectors; `None` when
    /// the column holds text.
    pub fn numeric_points(
        &self,
        id: SeriesId,
        field: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Option<NumericPoints>> {
        let (mut ts, mut nums) = (Vec::new(), Vec::new());
        let numeric = self.visit_numeric(id, field, start, end, &mut |t, v| {
            ts.extend_from_slice(t);
            match v {
                NumSlice::Longs(v) => nums.extend(v.iter().map(|x| Num::Long(*x))),
                NumSlice::Doubles(v) => nums.extend(v.iter().map(|x| Num::Double(*x))),
                NumSlice::Mixed(v) => nums.extend_from_slice(v),
            }
        })?;
        Ok(numeric.then_some((ts, nums)))
    }
}

/// Merges ascending sources, oldest first; a later source wins a tie.
fn merge(mut sources: Vec<Vec<(Timestamp, FieldValue)>>) -> Vec<(Timestamp, FieldValue)> {
    match sources.len() {
        0 => Vec::new(),
        1 => sources.pop().unwrap_or_default(),
        _ => {
            let disjoint = sources
                .windows(2)
                .all(|w| match (w[0].last(), w[1].first()) {
                    (Some(a), Some(b)) => a.0 < b.0,
                    _ => true,
                });
            if disjoint {
                return sources.into_iter().flatten().collect();
            }
            let mut merged = BTreeMap::new();
            for s in sources {
                merged.extend(s);
            }
            merged.into_iter().collect()
        }
    }
}

impl Snapshot<'_> {
    /// The time span of each block chunk of a column (with its block's
    /// place) and of the flush in progress and the head (after every
    /// block): a chunk no other span meets is the only source of its
    /// points. Points are counted from `from` on (rollups-only chunks
    /// whole).
    fn spans(
        &self,
        id: SeriesId,
        field: &str,
        from: Timestamp,
    ) -> Vec<(usize, Timestamp, Timestamp)> {
        let mut spans = Vec::new();
        for (i, b) in self.layers.blocks.iter().enumerate() {
            for c in b.chunks(id, field).iter() {
                match b.rollups_only {
                    true => spans.push((i, c.min_ts, c.max_ts)),
                    false if c.max_ts >= from => spans.push((i, c.min_ts.max(from), c.max_ts)),
                    false => {}
                }
            }
        }
        let newer = self.layers.blocks.len();
        let frozen = self.frozen_points(id, field);
        let head = self.head.points(id, field, from, Timestamp::MAX);
        for pts in [frozen.range(from, Timestamp::MAX), head] {
            if let (Some(a), Some(b)) = (pts.first_ts(), pts.last_ts()) {
                spans.push((newer, a, b));
            }
        }
        spans
    }

    /// Whether folds may reach past the raw retention: rollup tiers that
    /// outlive it, or rollups-only blocks (`crate::compact`). Such folds
    /// take chunks whole there, by statistics or buckets.
    pub fn rollups_past_retention(&self) -> bool {
        self.rollup_min_ts < self.min_ts || self.layers.blocks.iter().any(|b| b.rollups_only)
    }
}

/// Whether block `i`'s chunk `c` meets no other span.
fn alone(spans: &[(usize, Timestamp, Timestamp)], i: usize, c: &crate::block::ChunkEntry) -> bool {
    !spans.iter().any(|(j, lo, hi)| {
        (*j != i || (*lo, *hi) != (c.min_ts, c.max_ts)) && *lo <= c.max_ts && *hi >= c.min_ts
    })
}
