//! One head column's points: the timestamps and the values in vectors of
//! their own, numbers unboxed. A `(Timestamp, FieldValue)` pair took 40
//! bytes a point (a value is as wide as its `String` case); a column of
//! longs or of doubles takes 16, one mixing kinds 24. The vectors keep
//! their length and capacity in their allocation ([`ThinVec`]): a column
//! is then as small as one `Vec` was (32 bytes with its field), which
//! matters at millions of series, most of them without points between
//! flushes. Readers borrow a column as [`PointsRef`], which block readers'
//! pairs also convert to.

use crate::snapshot::NumSlice;
use std::borrow::Cow;
use sundial_codec::{Num, NumColumn};
use sundial_model::{FieldValue, Kind, Timestamp};
use thin_vec::ThinVec;

/// Points of one column, ascending by time, timestamps unique.
#[derive(Debug, Clone, Default)]
pub(crate) struct Points {
    ts: ThinVec<Timestamp>,
    values: Values,
}

/// The values of a column, in the narrowest form that holds them all.
#[derive(Debug, Clone)]
enum Values {
    Longs(ThinVec<i64>),
    Doubles(ThinVec<f64>),
    /// Booleans, or numbers of more than one kind.
    Mixed(ThinVec<Num>),
    /// Strings and bytes (or text among numbers, which kinds rule out).
    Other(ThinVec<FieldValue>),
}

impl Default for Values {
    fn default() -> Self {
        Self::Longs(ThinVec::new())
    }
}

/// How far from the end [`Points::insert`] looks for a late point's place
/// first.
const LATE_WINDOW: usize = 32;

impl Points {
    /// Points taken from pairs ascending by time with unique timestamps.
    pub(crate) fn from_sorted(pairs: Vec<(Timestamp, FieldValue)>) -> Self {
        let mut out = Self::default();
        out.ts.reserve_exact(pairs.len());
        for (ts, v) in pairs {
            out.values.admit(&v, out.ts.len());
            out.values.insert(out.ts.len(), v);
            out.ts.push(ts);
        }
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.ts.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    pub(crate) fn first_ts(&self) -> Option<Timestamp> {
        self.ts.first().copied()
    }

    /// How many points are older than `ts`.
    pub(crate) fn count_before(&self, ts: Timestamp) -> usize {
        self.ts.partition_point(|t| *t < ts)
    }

    pub(crate) fn contains(&self, ts: Timestamp) -> bool {
        self.ts.binary_search(&ts).is_ok()
    }

    /// Keeps the points before `at` and returns the rest.
    pub(crate) fn split_off(&mut self, at: usize) -> Self {
        let at = at.min(self.ts.len());
        Self {
            ts: self.ts.split_off(at),
            values: self.values.split_off(at),
        }
    }

    pub(crate) fn as_ref(&self) -> PointsRef<'_> {
        let values = match &self.values {
            Values::Longs(v) => ValuesRef::Nums(NumSlice::Longs(v.as_slice())),
            Values::Doubles(v) => ValuesRef::Nums(NumSlice::Doubles(v.as_slice())),
            Values::Mixed(v) => ValuesRef::Nums(NumSlice::Mixed(v.as_slice())),
            Values::Other(v) => ValuesRef::Other(v.as_slice()),
        };
        PointsRef::Columns {
            ts: self.ts.as_slice(),
            values,
        }
    }

    /// Inserts or overwrites; returns true when the timestamp is new.
    pub(crate) fn insert(&mut self, ts: Timestamp, value: FieldValue) -> bool {
        let at = match self.ts.last() {
            None => {
                // Start small: with millions of series, many hold one
                // point between flushes, and Vec would reserve four.
                self.ts.reserve_exact(1);
                self.values.admit(&value, 0);
                self.values.reserve_exact(1);
                0
            }
            Some(last) if *last < ts => self.ts.len(),
            _ => {
                // Late points (concurrent writers, a retry) land near the
                // end: search the tail, which is in cache, first.
                let tail = self.ts.len().saturating_sub(LATE_WINDOW);
                match self.ts.get(tail) {
                    Some(t) if *t <= ts => {
                        tail + self
                            .ts
                            .get(tail..)
                            .map_or(0, |t| t.partition_point(|p| *p < ts))
                    }
                    _ => self.ts.partition_point(|p| *p < ts),
                }
            }
        };
        self.values.admit(&value, self.ts.len());
        if self.ts.get(at) == Some(&ts) {
            self.values.set(at, value);
            return false;
        }
        self.ts.insert(at, ts);
        self.values.insert(at, value);
        true
    }
}

impl Values {
    /// Widens the representation, if needed, so it can hold `v`; `len` is
    /// the column's length (an empty column takes `v`'s form).
    fn admit(&mut self, v: &FieldValue, len: usize) {
        let fits = matches!(
            (&*self, v),
            (Self::Longs(_), FieldValue::Long(_))
                | (Self::Doubles(_), FieldValue::Double(_))
                | (
                    Self::Mixed(_),
                    FieldValue::Long(_) | FieldValue::Double(_) | FieldValue::Bool(_)
                )
                | (Self::Other(_), _)
        );
        if fits {
            return;
        }
        if len == 0 {
            *self = match v {
                FieldValue::Long(_) => Self::Longs(ThinVec::new()),
                FieldValue::Double(_) => Self::Doubles(ThinVec::new()),
                FieldValue::Bool(_) => Self::Mixed(ThinVec::new()),
                FieldValue::String(_) | FieldValue::Bytes(_) => Self::Other(ThinVec::new()),
            };
            return;
        }
        let nums: ThinVec<Num> = match std::mem::take(self) {
            Self::Longs(v) => v.into_iter().map(Num::Long).collect(),
            Self::Doubles(v) => v.into_iter().map(Num::Double).collect(),
            Self::Mixed(v) => v,
            other @ Self::Other(_) => {
                *self = other;
                return;
            }
        };
        *self = match v {
            FieldValue::String(_) | FieldValue::Bytes(_) => {
                Self::Other(nums.into_iter().map(FieldValue::from).collect())
            }
            _ => Self::Mixed(nums),
        };
    }

    fn reserve_exact(&mut self, n: usize) {
        match self {
            Self::Longs(v) => v.reserve_exact(n),
            Self::Doubles(v) => v.reserve_exact(n),
            Self::Mixed(v) => v.reserve_exact(n),
            Self::Other(v) => v.reserve_exact(n),
        }
    }

    fn split_off(&mut self, at: usize) -> Self {
        match self {
            Self::Longs(v) => Self::Longs(v.split_off(at.min(v.len()))),
            Self::Doubles(v) => Self::Doubles(v.split_off(at.min(v.len()))),
            Self::Mixed(v) => Self::Mixed(v.split_off(at.min(v.len()))),
            Self::Other(v) => Self::Other(v.split_off(at.min(v.len()))),
        }
    }

    /// Inserts `v` at `at`; [`Values::admit`] made room for its kind.
    fn insert(&mut self, at: usize, v: FieldValue) {
        match (self, v) {
            (Self::Longs(c), FieldValue::Long(x)) => c.insert(at.min(c.len()), x),
            (Self::Doubles(c), FieldValue::Double(x)) => c.insert(at.min(c.len()), x),
            (Self::Mixed(c), v) => {
                if let Some(n) = Num::of(&v) {
                    c.insert(at.min(c.len()), n);
                }
            }
            (Self::Other(c), v) => c.insert(at.min(c.len()), v),
            _ => {}
        }
    }

    fn set(&mut self, at: usize, v: FieldValue) {
        match (self, v) {
            (Self::Longs(c), FieldValue::Long(x)) => {
                if let Some(slot) = c.get_mut(at) {
                    *slot = x;
                }
            }
            (Self::Doubles(c), FieldValue::Double(x)) => {
                if let Some(slot) = c.get_mut(at) {
                    *slot = x;
                }
            }
            (Self::Mixed(c), v) => {
                if let (Some(slot), Some(n)) = (c.get_mut(at), Num::of(&v)) {
                    *slot = n;
                }
            }
            (Self::Other(c), v) => {
                if let Some(slot) = c.get_mut(at) {
                    *slot = v;
                }
            }
            _ => {}
        }
    }
}

/// Borrowed points of one column, ascending by time: a head column's
/// vectors, or pairs as blocks decode them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PointsRef<'a> {
    Pairs(&'a [(Timestamp, FieldValue)]),
    Columns {
        ts: &'a [Timestamp],
        values: ValuesRef<'a>,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum ValuesRef<'a> {
    Nums(NumSlice<'a>),
    Other(&'a [FieldValue]),
}

impl<'a> From<&'a [(Timestamp, FieldValue)]> for PointsRef<'a> {
    fn from(pairs: &'a [(Timestamp, FieldValue)]) -> Self {
        Self::Pairs(pairs)
    }
}

impl<'a> From<&'a Vec<(Timestamp, FieldValue)>> for PointsRef<'a> {
    fn from(pairs: &'a Vec<(Timestamp, FieldValue)>) -> Self {
        Self::Pairs(pairs)
    }
}

impl Default for PointsRef<'_> {
    fn default() -> Self {
        Self::Pairs(&[])
    }
}

impl<'a> PointsRef<'a> {
    pub(crate) fn len(self) -> usize {
        match self {
            Self::Pairs(p) => p.len(),
            Self::Columns { ts, .. } => ts.len(),
        }
    }

    pub(crate) fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The timestamp of point `i`.
    pub(crate) fn time(self, i: usize) -> Option<Timestamp> {
        match self {
            Self::Pairs(p) => p.get(i).map(|p| p.0),
            Self::Columns { ts, .. } => ts.get(i).copied(),
        }
    }

    pub(crate) fn first_ts(self) -> Option<Timestamp> {
        self.time(0)
    }

    pub(crate) fn last_ts(self) -> Option<Timestamp> {
        self.time(self.len().checked_sub(1)?)
    }

    /// The timestamps, borrowed when the column keeps them apart.
    pub(crate) fn timestamps(self) -> Cow<'a, [Timestamp]> {
        match self {
            Self::Pairs(p) => Cow::Owned(p.iter().map(|p| p.0).collect()),
            Self::Columns { ts, .. } => Cow::Borrowed(ts),
        }
    }

    /// How many points are older than `ts`.
    pub(crate) fn count_before(self, ts: Timestamp) -> usize {
        match self {
            Self::Pairs(p) => p.partition_point(|p| p.0 < ts),
            Self::Columns { ts: t, .. } => t.partition_point(|t| *t < ts),
        }
    }

    /// How many points are at or before `ts`.
    pub(crate) fn count_through(self, ts: Timestamp) -> usize {
        match self {
            Self::Pairs(p) => p.partition_point(|p| p.0 <= ts),
            Self::Columns { ts: t, .. } => t.partition_point(|t| *t <= ts),
        }
    }

    /// Points `[lo, hi)` (empty when out of range).
    pub(crate) fn slice(self, lo: usize, hi: usize) -> Self {
        let r = lo..hi;
        match self {
            Self::Pairs(p) => Self::Pairs(p.get(r).unwrap_or_default()),
            Self::Columns { ts, values } => {
                let Some(ts) = ts.get(r.clone()) else {
                    return Self::default();
                };
                let values = match values {
                    ValuesRef::Nums(NumSlice::Longs(v)) => {
                        ValuesRef::Nums(NumSlice::Longs(v.get(r).unwrap_or_default()))
                    }
                    ValuesRef::Nums(NumSlice::Doubles(v)) => {
                        ValuesRef::Nums(NumSlice::Doubles(v.get(r).unwrap_or_default()))
                    }
                    ValuesRef::Nums(NumSlice::Mixed(v)) => {
                        ValuesRef::Nums(NumSlice::Mixed(v.get(r).unwrap_or_default()))
                    }
                    ValuesRef::Other(v) => ValuesRef::Other(v.get(r).unwrap_or_default()),
                };
                Self::Columns { ts, values }
            }
        }
    }

    /// The points with timestamps in `[start, end]`.
    pub(crate) fn range(self, start: Timestamp, end: Timestamp) -> Self {
        if start > end {
            return Self::default();
        }
        self.slice(self.count_before(start), self.count_through(end))
    }

    /// Point `i`'s value as a number (`None` for text, or past the end).
    pub(crate) fn num(self, i: usize) -> Option<Num> {
        match self {
            Self::Pairs(p) => Num::of(&p.get(i)?.1),
            Self::Columns { values, .. } => match values {
                ValuesRef::Nums(NumSlice::Longs(v)) => v.get(i).map(|x| Num::Long(*x)),
                ValuesRef::Nums(NumSlice::Doubles(v)) => v.get(i).map(|x| Num::Double(*x)),
                ValuesRef::Nums(NumSlice::Mixed(v)) => v.get(i).copied(),
                ValuesRef::Other(v) => Num::of(v.get(i)?),
            },
        }
    }

    /// Point `i`'s value.
    pub(crate) fn value(self, i: usize) -> Option<FieldValue> {
        match self {
            Self::Pairs(p) => p.get(i).map(|p| p.1.clone()),
            Self::Columns {
                values: ValuesRef::Other(v),
                ..
            } => v.get(i).cloned(),
            Self::Columns { .. } => self.num(i).map(FieldValue::from),
        }
    }

    /// Point `i`'s value as text or bytes (`None` for a number).
    pub(crate) fn text(self, i: usize) -> Option<&'a [u8]> {
        let v = match self {
            Self::Pairs(p) => &p.get(i)?.1,
            Self::Columns {
                values: ValuesRef::Other(v),
                ..
            } => v.get(i)?,
            Self::Columns { .. } => return None,
        };
        match v {
            FieldValue::String(s) => Some(s.as_bytes()),
            FieldValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The kind of the first value.
    pub(crate) fn first_kind(self) -> Option<Kind> {
        match self {
            Self::Pairs(p) => p.first().map(|p| p.1.kind()),
            Self::Columns {
                values: ValuesRef::Other(v),
                ..
            } => v.first().map(FieldValue::kind),
            Self::Columns { ts, .. } => (!ts.is_empty()).then_some(Kind::Numeric),
        }
    }

    /// Whether every value is a Long.
    pub(crate) fn all_long(self) -> bool {
        match self {
            Self::Columns {
                values: ValuesRef::Nums(NumSlice::Longs(_)),
                ..
            } => true,
            Self::Columns {
                values: ValuesRef::Nums(NumSlice::Doubles(v)),
                ..
            } => v.is_empty(),
            _ => (0..self.len()).all(|i| matches!(self.num(i), Some(Num::Long(_)))),
        }
    }

    /// The values as a numeric column; `None` if one is not a number.
    pub(crate) fn num_column(self) -> Option<NumColumn> {
        match self {
            Self::Columns {
                values: ValuesRef::Nums(NumSlice::Longs(v)),
                ..
            } => Some(NumColumn::Longs(v.to_vec())),
            Self::Columns {
                values: ValuesRef::Nums(NumSlice::Doubles(v)),
                ..
            } => Some(NumColumn::Doubles(v.to_vec())),
            Self::Columns {
                values: ValuesRef::Nums(NumSlice::Mixed(v)),
                ..
            } => Some(NumColumn::Mixed(v.to_vec())),
            _ => (0..self.len())
                .map(|i| self.num(i))
                .collect::<Option<Vec<_>>>()
                .map(NumColumn::Mixed),
        }
    }

    /// The points as owned pairs, in order.
    pub(crate) fn iter(self) -> impl Iterator<Item = (Timestamp, FieldValue)> + use<'a> {
        let this = self;
        (0..this.len()).filter_map(move |i| Some((this.time(i)?, this.value(i)?)))
    }

    pub(crate) fn to_vec(self) -> Vec<(Timestamp, FieldValue)> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.iter());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &Points) -> Vec<(Timestamp, FieldValue)> {
        p.as_ref().to_vec()
    }

    #[test]
    fn a_column_keeps_the_narrowest_form_and_widens_when_kinds_mix() {
        let mut p = Points::default();
        assert!(p.insert(20, FieldValue::Long(2)));
        assert!(p.insert(10, FieldValue::Long(1)));
        assert!(!p.insert(20, FieldValue::Long(3)));
        assert!(matches!(p.values, Values::Longs(_)));
        assert!(p.as_ref().all_long());
        assert!(p.insert(30, FieldValue::Double(1.5)));
        assert!(matches!(p.values, Values::Mixed(_)));
        assert!(!p.as_ref().all_long());
        assert!(!p.insert(10, FieldValue::Bool(true)));
        assert_eq!(
            pairs(&p),
            vec![
                (10, FieldValue::Bool(true)),
                (20, FieldValue::Long(3)),
                (30, FieldValue::Double(1.5)),
            ]
        );
        let mut d = Points::default();
        d.insert(5, FieldValue::Double(0.5));
        assert!(matches!(d.values, Values::Doubles(_)));
        let mut t = Points::default();
        t.insert(5, FieldValue::String("a".into()));
        t.insert(1, FieldValue::String("b".into()));
        assert_eq!(t.as_ref().text(0), Some(&b"b"[..]));
        assert_eq!(t.as_ref().first_kind(), Some(Kind::String));
        assert!(t.as_ref().num_column().is_none());
    }

    #[test]
    fn a_column_is_no_larger_than_a_vector_of_pairs_was() {
        let pairs = std::mem::size_of::<Vec<(Timestamp, FieldValue)>>();
        assert!(std::mem::size_of::<Points>() <= pairs);
    }

    #[test]
    fn points_agree_with_a_sorted_map_under_random_writes() {
        use std::collections::BTreeMap;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..50 {
            let (mut p, mut m) = (Points::default(), BTreeMap::new());
            for _ in 0..200 {
                let ts = (next() % 120) as Timestamp;
                let v = match (next() % 4, round % 3) {
                    (_, 0) => FieldValue::Double((next() % 1000) as f64 / 8.0),
                    (0, _) => FieldValue::Bool(next() % 2 == 0),
                    (1, _) => FieldValue::Double(0.25),
                    _ => FieldValue::Long((next() % 1000) as i64),
                };
                assert_eq!(p.insert(ts, v.clone()), m.insert(ts, v).is_none());
            }
            let expected: Vec<_> = m.into_iter().collect();
            assert_eq!(pairs(&p), expected);
            let (lo, hi) = (30, 80);
            let want: Vec<_> = expected
                .iter()
                .filter(|(t, _)| (lo..=hi).contains(t))
                .cloned()
                .collect();
            assert_eq!(p.as_ref().range(lo, hi).to_vec(), want);
            let at = p.count_before(60);
            let rest = p.split_off(at);
            assert!(p.as_ref().last_ts().is_none_or(|t| t < 60));
            assert!(rest.first_ts().is_none_or(|t| t >= 60));
            assert_eq!(p.len() + rest.len(), expected.len());
        }
    }
}
