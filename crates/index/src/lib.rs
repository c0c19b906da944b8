//! The inverted series index: for each metric, the series of every
//! (tag key, tag value) pair as a roaring bitmap. A tag predicate is
//! evaluated once per distinct value of its key, never per series, and the
//! predicates of a query combine as bitmap intersections.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod matcher;
mod posting;

pub use matcher::Matcher;
pub use posting::Posting;
pub use roaring::RoaringBitmap;

use std::collections::{BTreeMap, HashMap};
use sundial_model::{SeriesKey, TagMatch};

/// Why a predicate could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid regular expression {pattern:?}: {reason}")]
    InvalidRegex { pattern: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Postings of one metric.
#[derive(Debug, Default)]
struct MetricPostings {
    all: RoaringBitmap,
    /// Values as boxed strings: a million host names under one key are
    /// a million entries, and a `String` would spend 8 bytes more each.
    tags: BTreeMap<String, BTreeMap<Box<str>, Posting>>,
}

/// Postings of every metric of a database.
#[derive(Debug, Default)]
pub struct Postings {
    metrics: HashMap<String, MetricPostings>,
}

impl Postings {
    /// Indexes a series under its id.
    pub fn add(&mut self, id: u32, key: &SeriesKey) {
        let m = match self.metrics.get_mut(key.metric.as_str()) {
            Some(m) => m,
            None => self.metrics.entry(key.metric.to_string()).or_default(),
        };
        posting::add_id(&mut m.all, id);
        for (k, v) in &key.tags {
            let values = match m.tags.get_mut(k.as_str()) {
                Some(vals) => vals,
                None => m.tags.entry(k.to_string()).or_default(),
            };
            match values.get_mut(v.as_str()) {
                Some(b) => {
                    b.insert(id);
                }
                None => {
                    let mut posting = Posting::default();
                    posting.insert(id);
                    values.insert(v.as_str().into(), posting);
                }
            }
        }
    }

    /// Unindexes a series; names left without series disappear.
    pub fn remove(&mut self, id: u32, key: &SeriesKey) {
        let Some(m) = self.metrics.get_mut(key.metric.as_str()) else {
            return;
        };
        m.all.remove(id);
        for (k, v) in &key.tags {
            let Some(values) = m.tags.get_mut(k.as_str()) else {
                continue;
            };
            if let Some(b) = values.get_mut(v.as_str()) {
                b.remove(id);
                if b.is_empty() {
                    values.remove(v.as_str());
                }
            }
            if values.is_empty() {
                m.tags.remove(k.as_str());
            }
        }
        if m.all.is_empty() {
            self.metrics.remove(key.metric.as_str());
        }
    }

    /// Series of `metric` satisfying every predicate.
    pub fn select(&self, metric: &str, predicates: &[TagMatch]) -> Result<RoaringBitmap> {
        let Some(m) = self.metrics.get(metric) else {
            return Ok(RoaringBitmap::new());
        };
        let mut out = m.all.clone();
        for p in predicates {
            if out.is_empty() {
                break;
            }
            out &= Self::matching(m, p)?;
        }
        Ok(out)
    }

    fn matching(m: &MetricPostings, p: &TagMatch) -> Result<RoaringBitmap> {
        let values = m.tags.get(p.key());
        if let TagMatch::NotIn {
            values: unwanted, ..
        } = p
        {
            // Series without the key match too (Baidu's notIn).
            let excluded = union(unwanted.iter().filter_map(|w| values?.get(w.as_str())));
            return Ok(&m.all - &excluded);
        }
        if let TagMatch::Absent { .. } = p {
            let with_key = values.map(|vals| union(vals.values())).unwrap_or_default();
            return Ok(&m.all - &with_key);
        }
        let Some(values) = values else {
            return Ok(RoaringBitmap::new());
        };
        match p {
            TagMatch::Eq { value, .. } => Ok(values
                .get(value.as_str())
                .map(Posting::to_bitmap)
                .unwrap_or_default()),
            TagMatch::In { values: wanted, .. } => {
                Ok(union(wanted.iter().filter_map(|w| values.get(w.as_str()))))
            }
            _ => {
                let matcher = Matcher::compile(p)?;
                Ok(union(
                    values
                        .iter()
                        .filter(|(v, _)| matcher.matches(v))
                        .map(|(_, b)| b),
                ))
            }
        }
    }

    /// Metric names, sorted.
    pub fn metrics(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.metrics.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Every series of a metric.
    pub fn series_of(&self, metric: &str) -> Option<&RoaringBitmap> {
        self.metrics.get(metric).map(|m| &m.all)
    }

    /// Tag keys of a metric, sorted, with the series having each.
    pub fn tag_keys(&self, metric: &str) -> Vec<(&str, RoaringBitmap)> {
        let Some(m) = self.metrics.get(metric) else {
            return Vec::new();
        };
        m.tags
            .iter()
            .map(|(k, vals)| (k.as_str(), union(vals.values())))
            .collect()
    }

    /// Whether a series of `metric` carries tag `key` = `value`.
    pub fn has_pair(&self, metric: &str, key: &str, value: &str) -> bool {
        self.metrics
            .get(metric)
            .and_then(|m| m.tags.get(key))
            .is_some_and(|values| values.contains_key(value))
    }

    /// Values of one tag key of a metric, sorted, with their series.
    pub fn tag_values(&self, metric: &str, key: &str) -> Vec<(&str, &Posting)> {
        self.metrics
            .get(metric)
            .and_then(|m| m.tags.get(key))
            .map(|vals| vals.iter().map(|(v, b)| (&**v, b)).collect())
            .unwrap_or_default()
    }
}

/// The series of all `postings`.
fn union<'a>(postings: impl Iterator<Item = &'a Posting>) -> RoaringBitmap {
    let mut acc = RoaringBitmap::new();
    for p in postings {
        p.union_into(&mut acc);
    }
    acc
}

#[cfg(test)]
mod tests;
