//! What the loop believes is stored, point by point, and the comparison
//! with what a restarted server answers.
//!
//! Every key (column, timestamp) is written by one thread only, one request
//! at a time, so its operations are totally ordered. A key holds its
//! `sure` state (the effect of the last acknowledged operation) and the
//! effects of the operations after it that got no acknowledgement (`maybe`:
//! in flight at the kill, or answered with an error). After a restart the
//! key must hold one of those; what it holds then becomes `sure` (a
//! replayed write stays, a torn one never comes back).

use super::rng::Rng;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Index into the run's table of columns.
pub(crate) type ColumnId = u16;

/// One column the loop writes: a series (metric and tags) and a field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Column {
    pub(crate) metric: String,
    pub(crate) field: String,
    /// Sorted by key.
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) read: ReadApi,
}

/// How a column is read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ReadApi {
    /// `POST /api/query` with the `none` aggregator.
    OpenTsdb,
    /// The `/v1/datapoint?query` JSON query.
    V1,
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tags: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "{}{{{}}}.{}", self.metric, tags.join(","), self.field)
    }
}

/// One point of a write: every value of a run is unique (see [`value_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Point {
    pub(crate) col: ColumnId,
    /// Milliseconds.
    pub(crate) ts: i64,
    pub(crate) value: u64,
}

/// The state of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Cell {
    #[default]
    Absent,
    Value(u64),
}

/// How a request ended for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answered with success: its effect must survive.
    Acked,
    /// No answer (the kill) or an error answer: its effect may or may not
    /// be there.
    Unknown,
}

/// A unique value that names its write: round (10 bits), writer (4 bits)
/// and sequence (38 bits), below 2^52 so a double holds it exactly.
pub(crate) fn value_of(round: u32, writer: u8, seq: u64) -> u64 {
    (u64::from(round) << 42) | (u64::from(writer & 0xf) << 38) | (seq & ((1 << 38) - 1))
}

/// Who wrote `value`, for reports.
pub(crate) fn describe(value: u64) -> String {
    if value >= 1 << 52 {
        return format!("{value} (no value the loop writes)");
    }
    format!(
        "{value} (round {} writer {} seq {})",
        value >> 42,
        (value >> 38) & 0xf,
        value & ((1 << 38) - 1)
    )
}

#[derive(Debug, Default, Clone)]
struct Entry {
    sure: Cell,
    maybe: Vec<Cell>,
    /// Every value ever sent for this key, acknowledged or not.
    written: Vec<u64>,
    /// `sure` is Absent because of an acknowledged delete.
    deleted: bool,
}

/// Retention bounds of one check, in ms: the server may have dropped points
/// older than `may_drop_before`; none older than `prune_before` can ever be
/// read again, so the model forgets them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Zone {
    pub(crate) may_drop_before: i64,
    pub(crate) prune_before: i64,
}

/// What the server answered: column -> timestamp -> value (`u64::MAX` for
/// a value that is no integer).
pub(crate) type Observed = HashMap<ColumnId, BTreeMap<i64, u64>>;

/// The counts of one check, with the first few failures spelled out.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    /// Acknowledged points (outside the retention zone) compared.
    pub(crate) acked_points: u64,
    /// Acknowledged deletes (outside the retention zone) compared.
    pub(crate) deleted_points: u64,
    pub(crate) lost: u64,
    pub(crate) stray: u64,
    pub(crate) notes: Vec<String>,
}

impl Tally {
    pub(crate) fn note(&mut self, text: String) {
        if self.notes.len() < 20 {
            self.notes.push(text);
        }
    }

    pub(crate) fn add(&mut self, other: Tally) {
        self.acked_points += other.acked_points;
        self.deleted_points += other.deleted_points;
        self.lost += other.lost;
        self.stray += other.stray;
        for n in other.notes {
            self.note(n);
        }
    }
}

/// The keys one writer owns.
#[derive(Debug, Default)]
pub(crate) struct Points {
    entries: BTreeMap<(ColumnId, i64), Entry>,
}

impl Points {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Records a write's points with its outcome.
    pub(crate) fn write(&mut self, points: &[Point], outcome: Outcome) {
        for p in points {
            let e = self.entries.entry((p.col, p.ts)).or_default();
            e.written.push(p.value);
            match outcome {
                Outcome::Acked => {
                    e.sure = Cell::Value(p.value);
                    e.maybe.clear();
                    e.deleted = false;
                }
                Outcome::Unknown => e.maybe.push(Cell::Value(p.value)),
            }
        }
    }

    /// Records a delete of `[start, end]` (ms, inclusive) in `cols`.
    pub(crate) fn delete(&mut self, cols: &[ColumnId], start: i64, end: i64, outcome: Outcome) {
        for col in cols {
            for (_, e) in self.entries.range_mut((*col, start)..=(*col, end)) {
                match outcome {
                    Outcome::Acked => {
                        e.sure = Cell::Absent;
                        e.maybe.clear();
                        e.deleted = true;
                    }
                    Outcome::Unknown => e.maybe.push(Cell::Absent),
                }
            }
        }
    }

    /// The timestamp of a random known key of `col`.
    pub(crate) fn some_ts(&self, col: ColumnId, rng: &mut Rng) -> Option<i64> {
        let mut keys = self.entries.range((col, i64::MIN)..=(col, i64::MAX));
        let lo = keys.next()?.0.1;
        let hi = keys.next_back().map_or(lo, |k| k.0.1);
        let t = rng.range(lo, hi + 1);
        self.entries
            .range((col, t)..=(col, i64::MAX))
            .next()
            .map(|k| k.0.1)
    }

    /// Compares every key with `observed` (taking the matched points out of
    /// it), then continues from what is stored.
    pub(crate) fn check(
        &mut self,
        observed: &mut Observed,
        zone: Zone,
        columns: &[Column],
    ) -> Tally {
        let mut t = Tally::default();
        for (&(col, ts), e) in &mut self.entries {
            let found = observed
                .get_mut(&col)
                .and_then(|m| m.remove(&ts))
                .map_or(Cell::Absent, Cell::Value);
            let retained = ts < zone.may_drop_before;
            if !retained {
                match e.sure {
                    Cell::Value(_) => t.acked_points += 1,
                    Cell::Absent if e.deleted => t.deleted_points += 1,
                    Cell::Absent => {}
                }
            }
            let allowed = found == e.sure || e.maybe.contains(&found);
            if !(allowed || (retained && found == Cell::Absent)) {
                let name = columns.get(usize::from(col)).map(ToString::to_string);
                let name = name.unwrap_or_default();
                let what = |c: Cell| match c {
                    Cell::Absent => "absent".to_owned(),
                    Cell::Value(v) => describe(v),
                };
                let want = format!(
                    "{}{}",
                    what(e.sure),
                    if e.maybe.is_empty() {
                        ""
                    } else {
                        " or an unacknowledged effect"
                    }
                );
                let mut kinds = Vec::new();
                if matches!(e.sure, Cell::Value(_)) {
                    t.lost += 1;
                    kinds.push("lost");
                }
                if let Cell::Value(v) = found {
                    let stale = matches!(e.sure, Cell::Value(_)) && e.written.contains(&v);
                    if !stale {
                        t.stray += 1;
                        kinds.push(if e.written.contains(&v) {
                            "stray (deleted or overwritten value back)"
                        } else {
                            "stray (value never written here)"
                        });
                    }
                }
                t.note(format!(
                    "{}: {name} ts {ts}: expected {want}, found {}",
                    kinds.join(" + "),
                    what(found)
                ));
            }
            // Go on from what is stored, so one fault is reported once.
            e.sure = found;
            e.maybe.clear();
        }
        self.entries.retain(|&(_, ts), _| ts >= zone.prune_before);
        t
    }
}

/// Points the server holds that no writer knows: each is a stray point.
pub(crate) fn leftovers(observed: &Observed, columns: &[Column]) -> Tally {
    let mut t = Tally::default();
    for (col, points) in observed {
        for (ts, v) in points {
            t.stray += 1;
            let name = columns.get(usize::from(*col)).map(ToString::to_string);
            t.note(format!(
                "stray (key never written): {} ts {ts}: found {}",
                name.unwrap_or_default(),
                describe(*v)
            ));
        }
    }
    t
}

#[cfg(test)]
mod tests;
