//! A listing over one database (`sundial_model::Listing`); a cluster's
//! owners each answer one over their shards and the querier merges them.

use crate::{Budget, Error, Result};
use std::collections::BTreeSet;
use sundial_model::{Kind, Listed, Listing, MetricCardinality, Names, SeriesKey, Timestamp};
use sundial_storage::Db;

/// `listing` over `db`: at most `max + 1` names (the first in order), the
/// budget's deadline checked between metrics.
pub fn list(db: &Db, listing: &Listing, budget: &Budget) -> Result<Listed> {
    db.read(|mut view| {
        let mut listed = Listed::default();
        let cap = listing.max.saturating_add(1);
        // Series with points in the range, found once for every metric.
        let active = |view: &sundial_storage::Snapshot<'_>| {
            listing
                .range
                .map(|(start, end)| view.active_series(start, end))
        };
        let prefixed = |name: &&str| name.starts_with(&listing.prefix);
        match &listing.names {
            Names::Metrics => {
                let metrics = match listing.range {
                    None => view.metrics(),
                    Some((start, end)) => view.metrics_in(start, end),
                };
                add(&mut listed.names, metrics.into_iter().filter(prefixed), cap);
            }
            Names::Fields { metric } => {
                listed.known = metric.as_deref().is_some_and(|m| view.has_metric(m));
                for m in &metrics_of(&view, metric.as_deref()) {
                    budget.check_time()?;
                    view.yield_to_writers();
                    for (field, kind) in view.fields(m).into_iter().filter(|(f, _)| prefixed(f)) {
                        listed.fields.entry(field.to_owned()).or_insert(kind);
                    }
                    while listed.fields.len() > cap {
                        listed.fields.pop_last();
                    }
                }
            }
            Names::Columns { metric } => {
                listed.known = view.has_metric(metric);
                for (field, kind) in view.fields(metric) {
                    if kind == Kind::Numeric && !view.all_long(metric, field) {
                        listed.not_long.insert(field.to_owned());
                    }
                    listed.fields.insert(field.to_owned(), kind);
                }
                let keys = view.tag_keys_in(metric, Timestamp::MIN, Timestamp::MAX);
                listed.names.extend(keys.into_iter().map(str::to_owned));
            }
            Names::KeyValues { metric, key } => {
                listed.known = metric.as_deref().is_some_and(|m| view.has_metric(m));
                let (start, end) = listing.range.unwrap_or((Timestamp::MIN, Timestamp::MAX));
                for m in &metrics_of(&view, metric.as_deref()) {
                    budget.check_time()?;
                    view.yield_to_writers();
                    let values = view.tag_values_in(m, key, start, end);
                    add(&mut listed.names, values.into_iter().filter(prefixed), cap);
                }
            }
            Names::Series {
                metric,
                tags,
                any_values,
            } => {
                listed.known = metric.as_deref().is_some_and(|m| view.has_metric(m));
                for m in &metrics_of(&view, metric.as_deref()) {
                    budget.check_time()?;
                    view.yield_to_writers();
                    let ids = view
                        .select(m, tags)
                        .map_err(|e| Error::InvalidPredicate(e.to_string()))?;
                    let mut keys: Vec<SeriesKey> = view
                        .keys_of(ids)
                        .into_iter()
                        .map(|(_, k)| k)
                        .filter(|k| {
                            let has = |want: &String| k.tags.iter().any(|(_, v)| v == want);
                            any_values.iter().all(has)
                        })
                        .collect();
                    keys.sort_unstable();
                    listed.series.extend(keys);
                    if listed.series.len() >= cap {
                        listed.series.sort_unstable();
                        listed.series.truncate(cap);
                        break;
                    }
                }
                listed.series.sort_unstable();
            }
            Names::Cardinality { metric } => {
                listed.known = metric.as_deref().is_some_and(|m| view.has_metric(m));
                for m in &metrics_of(&view, metric.as_deref()) {
                    budget.check_time()?;
                    view.yield_to_writers();
                    let tags = view.tag_cardinality(m).into_iter().map(|(key, values)| {
                        let values = values.into_iter().map(|(v, n)| (v.to_owned(), n));
                        (key.to_owned(), values.collect())
                    });
                    let counts = MetricCardinality {
                        series: view.series_of(m).len() as u64,
                        tags: tags.collect(),
                    };
                    listed.cardinality.insert(m.clone(), counts);
                }
            }
            Names::Tags { metric } => {
                listed.known = view.has_metric(metric);
                let active = active(&view);
                let mut count = 0usize;
                for (key, values) in view.tags_of(metric, active.as_ref()) {
                    let room = cap.saturating_sub(count);
                    let values: BTreeSet<String> =
                        values.into_iter().take(room).map(str::to_owned).collect();
                    count += values.len();
                    listed.tags.insert(key.to_owned(), values);
                    if count >= cap {
                        break;
                    }
                }
            }
            Names::TagKeys { metric } | Names::TagValues { metric } => {
                let keys_only = matches!(listing.names, Names::TagKeys { .. });
                listed.known = metric.as_deref().is_some_and(|m| view.has_metric(m));
                let active = active(&view);
                for m in &metrics_of(&view, metric.as_deref()) {
                    budget.check_time()?;
                    view.yield_to_writers();
                    for (key, values) in view.tags_of(m, active.as_ref()) {
                        if keys_only {
                            add(&mut listed.names, [key].into_iter().filter(prefixed), cap);
                        } else {
                            add(&mut listed.names, values.into_iter().filter(prefixed), cap);
                        }
                    }
                }
            }
        }
        Ok(listed)
    })
}

/// Adds `names` to `set`, keeping the first `cap` in order.
fn add<'a>(set: &mut BTreeSet<String>, names: impl Iterator<Item = &'a str>, cap: usize) {
    for name in names {
        if set.len() >= cap && set.last().is_some_and(|last| name >= last.as_str()) {
            continue;
        }
        set.insert(name.to_owned());
        if set.len() > cap {
            set.pop_last();
        }
    }
}

/// `metric` if it was written, or every metric when `None`.
fn metrics_of(view: &sundial_storage::Snapshot<'_>, metric: Option<&str>) -> Vec<String> {
    match metric {
        Some(m) if view.has_metric(m) => vec![m.to_owned()],
        Some(_) => Vec::new(),
        None => view.metrics().into_iter().map(str::to_owned).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;
    use sundial_model::{FieldValue, Kind, SeriesKey, TagMatch, Timestamp, ValueInput, WritePoint};

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// (metric, host, field, time, value) points.
    type Point = (&'static str, String, &'static str, Timestamp, FieldValue);

    fn db_with(
        points: &[Point],
    ) -> std::result::Result<(tempfile::TempDir, Db), Box<dyn std::error::Error>> {
        let batch = points
            .iter()
            .map(|(metric, host, field, t, v)| WritePoint {
                series: Arc::new(SeriesKey::new(
                    *metric,
                    vec![
                        ("host".into(), host.clone()),
                        ("dc".into(), format!("dc{}", host.len() % 2)),
                    ],
                )),
                field: (*field).into(),
                timestamp: *t,
                value: ValueInput::Typed(v.clone()),
            })
            .collect();
        crate::temp_db_with(batch)
    }

    fn listing(
        names: Names,
        prefix: &str,
        range: Option<(Timestamp, Timestamp)>,
        max: usize,
    ) -> Listing {
        Listing {
            names,
            prefix: prefix.into(),
            range,
            max,
        }
    }

    #[test]
    fn shards_listed_and_merged_answer_as_one_database() -> TestResult {
        // Host hN writes cpu at minute N (and text at N + 100 for odd N),
        // and disk for N < 4.
        let mut all: Vec<Point> = Vec::new();
        for n in 0..12i64 {
            let host = format!("h{n}");
            all.push((
                "cpu",
                host.clone(),
                "value",
                n * 60_000,
                FieldValue::Double(n as f64),
            ));
            if n % 2 == 1 {
                all.push((
                    "cpu",
                    host.clone(),
                    "note",
                    (n + 100) * 60_000,
                    FieldValue::String("x".into()),
                ));
            }
            if n < 4 {
                all.push((
                    "disk",
                    host.clone(),
                    "used",
                    n * 60_000,
                    FieldValue::Long(n),
                ));
            }
        }
        let (_w, whole) = db_with(&all)?;
        let mut parts = Vec::new();
        for shard in 0..3 {
            let mine: Vec<Point> = all
                .iter()
                .filter(|p| p.1[1..].parse::<i64>().is_ok_and(|n| n % 3 == shard))
                .cloned()
                .collect();
            parts.push(db_with(&mine)?);
        }
        let budget = Budget::new(Duration::from_secs(10), usize::MAX);
        let cpu = || Some("cpu".to_string());
        let listings = [
            listing(Names::Metrics, "", None, 100),
            listing(Names::Metrics, "d", Some((0, 60_000)), 100),
            listing(Names::Fields { metric: cpu() }, "", None, 100),
            listing(Names::Fields { metric: None }, "", None, 1),
            listing(Names::TagKeys { metric: None }, "", None, 100),
            listing(Names::TagValues { metric: cpu() }, "h1", None, 100),
            listing(
                Names::TagValues { metric: None },
                "h",
                Some((120_000, 420_000)),
                3,
            ),
            listing(
                Names::Tags {
                    metric: "cpu".into(),
                },
                "",
                Some((101 * 60_000, Timestamp::MAX)),
                100,
            ),
            listing(
                Names::Tags {
                    metric: "cpu".into(),
                },
                "",
                None,
                5,
            ),
            listing(
                Names::Tags {
                    metric: "none".into(),
                },
                "",
                None,
                100,
            ),
            listing(
                Names::Columns {
                    metric: "cpu".into(),
                },
                "",
                None,
                usize::MAX,
            ),
            listing(
                Names::Columns {
                    metric: "disk".into(),
                },
                "",
                None,
                usize::MAX,
            ),
            listing(
                Names::KeyValues {
                    metric: None,
                    key: "host".into(),
                },
                "h1",
                None,
                2,
            ),
            listing(
                Names::Series {
                    metric: cpu(),
                    tags: vec![TagMatch::Eq {
                        key: "dc".into(),
                        value: "dc1".into(),
                    }],
                    any_values: Vec::new(),
                },
                "",
                None,
                100,
            ),
            listing(
                Names::Series {
                    metric: None,
                    tags: Vec::new(),
                    any_values: vec!["h2".into()],
                },
                "",
                None,
                100,
            ),
            listing(
                Names::Series {
                    metric: None,
                    tags: vec![TagMatch::Exists { key: "host".into() }],
                    any_values: Vec::new(),
                },
                "",
                None,
                3,
            ),
            listing(Names::Cardinality { metric: None }, "", None, 0),
            listing(Names::Cardinality { metric: cpu() }, "", None, 0),
        ];
        for l in &listings {
            let one = list(&whole, l, &budget)?;
            let mut merged = Listed::default();
            for (_, db) in &parts {
                merged.merge(list(db, l, &budget)?, l.max);
            }
            assert_eq!(merged.known, one.known, "{l:?}");
            assert_eq!(merged.names, one.names, "{l:?}");
            assert_eq!(merged.fields, one.fields, "{l:?}");
            assert_eq!(merged.not_long, one.not_long, "{l:?}");
            assert_eq!(merged.series, one.series, "{l:?}");
            assert_eq!(merged.cardinality, one.cardinality, "{l:?}");
            // A capped tag listing is cut per store: only "more than max"
            // carries over.
            if one.count() <= l.max {
                assert_eq!(merged.tags, one.tags, "{l:?}");
            } else {
                assert!(merged.count() > l.max, "{l:?}");
            }
        }

        // The answers themselves, from what was written.
        let names = |l: &Listing| -> Result<Vec<String>> {
            Ok(list(&whole, l, &budget)?.names.into_iter().collect())
        };
        assert_eq!(names(&listings[0])?, ["cpu", "disk"]);
        // Disk's points in [0, 1 min] are h0's and h1's.
        assert_eq!(names(&listings[1])?, ["disk"]);
        let fields = list(&whole, &listings[2], &budget)?.fields;
        assert_eq!(
            fields.into_iter().collect::<Vec<_>>(),
            [
                ("note".to_string(), Kind::String),
                ("value".to_string(), Kind::Numeric)
            ]
        );
        // Two of three fields (cap is max + 1): "note", "used".
        assert_eq!(list(&whole, &listings[3], &budget)?.fields.len(), 2);
        assert_eq!(names(&listings[4])?, ["dc", "host"]);
        let series = |i: usize| -> Result<Vec<String>> {
            let listed = list(&whole, &listings[i], &budget)?;
            Ok(listed
                .series
                .iter()
                .map(|k| format!("{}:{}", k.metric, k.tags[1].1))
                .collect())
        };
        // Hosts with three-letter names are in dc1; h2 writes both metrics;
        // the first four of every series (cap is max + 1).
        // Hosts starting "h1", of either metric: the first three.
        assert_eq!(names(&listings[12])?, ["h1", "h10", "h11"]);
        assert_eq!(series(13)?, ["cpu:h10", "cpu:h11"]);
        assert_eq!(series(14)?, ["cpu:h2", "disk:h2"]);
        assert_eq!(series(15)?, ["cpu:h0", "cpu:h1", "cpu:h2", "cpu:h3"]);
        assert_eq!(names(&listings[5])?, ["h1", "h10", "h11"]);
        // Minutes 2..7: h2..h7 of cpu, h2, h3 of disk; the first four.
        assert_eq!(names(&listings[6])?, ["h2", "h3", "h4", "h5"]);
        let text_hosts = list(&whole, &listings[7], &budget)?;
        let odd: BTreeSet<String> = (0..12)
            .filter(|n| n % 2 == 1)
            .map(|n| format!("h{n}"))
            .collect();
        assert_eq!(text_hosts.tags["host"], odd);
        assert!(text_hosts.known);
        assert!(list(&whole, &listings[8], &budget)?.count() > 5);
        assert!(!list(&whole, &listings[9], &budget)?.known);
        // SQL's tables: cpu's value holds doubles, disk's used only longs.
        let cpu = list(&whole, &listings[10], &budget)?;
        assert_eq!(cpu.not_long, BTreeSet::from(["value".to_string()]));
        assert_eq!(cpu.fields.len(), 2);
        assert_eq!(names(&listings[10])?, ["dc", "host"]);
        let disk = list(&whole, &listings[11], &budget)?;
        assert!(disk.not_long.is_empty() && disk.known);
        assert_eq!(disk.fields.get("used"), Some(&Kind::Numeric));
        // Twelve cpu series, one per host, hosts h0..h11 split by length
        // into dc0 (h0..h9) and dc1; four disk series.
        let every = list(&whole, &listings[16], &budget)?.cardinality;
        assert_eq!(every["cpu"].series, 12);
        assert_eq!(every["disk"].series, 4);
        let dcs: Vec<_> = every["cpu"].tags["dc"].values().copied().collect();
        assert_eq!(dcs, [10, 2]);
        let only_cpu = list(&whole, &listings[17], &budget)?;
        assert!(only_cpu.known);
        assert_eq!(only_cpu.cardinality.keys().collect::<Vec<_>>(), ["cpu"]);
        assert_eq!(only_cpu.cardinality["cpu"].tags["host"].len(), 12);
        Ok(())
    }
}
