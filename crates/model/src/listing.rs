//! Listings: the names a database holds (metrics, a metric's fields with
//! their kinds, tag keys and values), as the APIs' discovery routes ask
//! for them. A listing over several stores is the union of theirs
//! ([`Listed::merge`]), which is how a cluster's querier lists across
//! shards.

use crate::{Kind, SeriesKey, TagMatch, Timestamp};
use std::collections::{BTreeMap, BTreeSet};

/// What to list.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Names {
    /// Metric names.
    Metrics,
    /// Fields and their kinds of one metric, or of every metric.
    Fields { metric: Option<String> },
    /// Tag keys of one metric, or of every metric.
    TagKeys { metric: Option<String> },
    /// Tag values (under any key) of one metric, or of every metric.
    TagValues { metric: Option<String> },
    /// A metric's tag keys, each with its values.
    Tags { metric: String },
    /// A metric's columns as SQL sees them (a table): its fields with their
    /// kinds in `fields`, the numeric ones holding a value that is not a
    /// Long in `not_long`, and the tag keys of its series with points in
    /// `names`.
    Columns { metric: String },
    /// The values of tag `key` of one metric, or of every metric
    /// (Alibaba's `dump_meta`).
    KeyValues { metric: Option<String>, key: String },
    /// The keys of the series of `metric` (of every metric when `None`)
    /// whose tags satisfy `tags` and hold each of `any_values` under some
    /// key (OpenTSDB's lookup), in key order, in `series`; every series
    /// the catalog holds, whatever the range.
    Series {
        metric: Option<String>,
        tags: Vec<TagMatch>,
        any_values: Vec<String>,
    },
    /// How many series each metric (`metric`, or every metric) holds, and
    /// per tag key how many of them carry each value, in `cardinality`
    /// (Sundial's `/api/cardinality`). Whole: `prefix`, `range` and `max`
    /// do not apply. A series lives in one store, so counts add up.
    Cardinality { metric: Option<String> },
}

/// A listing request.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Listing {
    pub names: Names,
    /// Only names starting with this (tag values for `TagValues`; not
    /// applied to `Tags`).
    pub prefix: String,
    /// Only series with points in `[start, end]`; `None`: every series
    /// the catalog holds.
    pub range: Option<(Timestamp, Timestamp)>,
    /// The most names wanted, in name order. A store lists at most one
    /// more, so a caller can tell "more than `max`" from "exactly `max`".
    pub max: usize,
}

/// A listing's answer; only the part its [`Names`] asks for is filled.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Listed {
    /// Whether the metric asked about has ever been written.
    pub known: bool,
    /// Metrics, tag keys or tag values, sorted.
    pub names: BTreeSet<String>,
    pub fields: BTreeMap<String, Kind>,
    pub tags: BTreeMap<String, BTreeSet<String>>,
    /// Numeric fields with a value that is not a Long ([`Names::Columns`]).
    #[serde(default)]
    pub not_long: BTreeSet<String>,
    /// Series keys ([`Names::Series`]), sorted.
    #[serde(default)]
    pub series: Vec<SeriesKey>,
    /// Series per metric and per tag value ([`Names::Cardinality`]).
    #[serde(default)]
    pub cardinality: BTreeMap<String, MetricCardinality>,
}

/// A metric's series, and per tag key the series carrying each value.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricCardinality {
    pub series: u64,
    pub tags: BTreeMap<String, BTreeMap<String, u64>>,
}

impl MetricCardinality {
    /// Adds another store's counts (a series is in one store only).
    pub fn add(&mut self, other: MetricCardinality) {
        self.series += other.series;
        for (key, values) in other.tags {
            let mine = self.tags.entry(key).or_default();
            for (value, n) in values {
                *mine.entry(value).or_default() += n;
            }
        }
    }
}

impl Listed {
    /// Adds `other`'s names, keeping at most `max + 1` names and fields
    /// (the first in order). A field two stores know with different
    /// kinds keeps the kind already here.
    pub fn merge(&mut self, other: Listed, max: usize) {
        self.known |= other.known;
        self.names.extend(other.names);
        while self.names.len() > max.saturating_add(1) {
            self.names.pop_last();
        }
        for (field, kind) in other.fields {
            self.fields.entry(field).or_insert(kind);
        }
        while self.fields.len() > max.saturating_add(1) {
            self.fields.pop_last();
        }
        for (key, values) in other.tags {
            self.tags.entry(key).or_default().extend(values);
        }
        self.not_long.extend(other.not_long);
        if !other.series.is_empty() {
            self.series.extend(other.series);
            self.series.sort_unstable();
            self.series.truncate(max.saturating_add(1));
        }
        for (metric, counts) in other.cardinality {
            self.cardinality.entry(metric).or_default().add(counts);
        }
    }

    /// Names listed in all: names, fields, and tag values.
    pub fn count(&self) -> usize {
        self.names.len()
            + self.fields.len()
            + self.tags.values().map(BTreeSet::len).sum::<usize>()
            + self.series.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Listed {
        Listed {
            names: list.iter().map(|s| s.to_string()).collect(),
            ..Listed::default()
        }
    }

    #[test]
    fn merging_keeps_the_first_names_in_order() {
        let mut a = names(&["b", "d", "f"]);
        a.merge(names(&["a", "c", "e"]), 3);
        let kept: Vec<_> = a.names.iter().map(String::as_str).collect();
        // max + 1, so the caller sees there were more than three.
        assert_eq!(kept, ["a", "b", "c", "d"]);
    }

    #[test]
    fn merging_unions_tags_and_keeps_the_first_kind() {
        let mut a = Listed {
            known: false,
            fields: BTreeMap::from([("v".to_string(), Kind::Numeric)]),
            tags: BTreeMap::from([("host".to_string(), BTreeSet::from(["a".to_string()]))]),
            ..Listed::default()
        };
        let b = Listed {
            known: true,
            fields: BTreeMap::from([
                ("v".to_string(), Kind::String),
                ("w".to_string(), Kind::Bytes),
            ]),
            tags: BTreeMap::from([
                ("host".to_string(), BTreeSet::from(["b".to_string()])),
                ("dc".to_string(), BTreeSet::from(["x".to_string()])),
            ]),
            ..Listed::default()
        };
        a.merge(b, 100);
        assert!(a.known);
        assert_eq!(a.fields.get("v"), Some(&Kind::Numeric));
        assert_eq!(a.fields.get("w"), Some(&Kind::Bytes));
        assert_eq!(a.tags["host"].len(), 2);
        assert_eq!(a.count(), 2 + 3);
    }

    #[test]
    fn merging_adds_cardinalities() {
        let counts = |series, values: &[(&str, u64)]| MetricCardinality {
            series,
            tags: BTreeMap::from([(
                "host".to_string(),
                values.iter().map(|(v, n)| (v.to_string(), *n)).collect(),
            )]),
        };
        let one = |c| Listed {
            cardinality: BTreeMap::from([("cpu".to_string(), c)]),
            ..Listed::default()
        };
        let mut a = one(counts(3, &[("a", 2), ("b", 1)]));
        a.merge(one(counts(2, &[("b", 1), ("c", 1)])), 0);
        let merged = &a.cardinality["cpu"];
        assert_eq!(merged.series, 5);
        let hosts: Vec<_> = merged.tags["host"]
            .iter()
            .map(|(v, n)| (v.as_str(), *n))
            .collect();
        assert_eq!(hosts, [("a", 2), ("b", 2), ("c", 1)]);
    }
}
