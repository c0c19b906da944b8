//! Presampled buckets answer exactly as raw evaluation does: random
//! Longs, Doubles and Booleans written out of order and overwritten,
//! flushes, compactions and deletes, rules added and removed along the way.

use super::{Limits, execute_series};
use crate::stats::{GroupedStats, Stats, StatsRequest};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::cell::Cell;
use sundial_model::series_query::{
    Aggregation, Branch, Order, QueryOutput, RangeFn, Sampling, SeriesQuery,
};
use sundial_model::{FieldValue, SeriesKey, ValueInput, WritePoint};
use sundial_storage::{Db, PresamplingRule};

const HOUR: i64 = 3_600_000;
const SPAN: i64 = 6 * HOUR;
/// (anchor, width) of the rules a case may add.
const GRIDS: [(i64, i64); 3] = [(0, 600_000), (420_000, 600_000), (0, HOUR)];

#[derive(Debug, Clone)]
enum Op {
    /// (host, time, value) in the order written.
    Write(Vec<(u8, i64, FieldValue)>),
    Flush,
    Compact,
    Delete {
        host: u8,
        start: i64,
        end: i64,
    },
    Rules(Vec<usize>),
}

fn value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        (-1000i64..1000).prop_map(FieldValue::Long),
        any::<i64>().prop_map(FieldValue::Long),
        (-10_000i64..10_000).prop_map(|k| FieldValue::Double(k as f64 * 0.1)),
        (-1e6f64..1e6).prop_map(FieldValue::Double),
        any::<bool>().prop_map(FieldValue::Bool),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec((0u8..3, 0..SPAN / 5_000, value()), 1..300)
            .prop_map(|pts| Op::Write(pts.into_iter().map(|(h, t, v)| (h, t * 5_000, v)).collect())),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => (0u8..3, 0..SPAN, 0..HOUR).prop_map(|(host, start, len)| Op::Delete {
            host,
            start,
            end: start + len,
        }),
        1 => prop::collection::vec(0..GRIDS.len(), 0..3).prop_map(Op::Rules),
    ]
}

fn apply(db: &Db, op: &Op) -> Result<(), Box<dyn std::error::Error>> {
    match op {
        Op::Write(pts) => {
            let batch = pts
                .iter()
                .map(|(h, t, v)| WritePoint {
                    series: std::sync::Arc::new(SeriesKey::new(
                        "cpu",
                        vec![("host".into(), format!("h{h}"))],
                    )),
                    field: "value".into(),
                    timestamp: *t,
                    value: ValueInput::Typed(v.clone()),
                })
                .collect();
            db.write(batch, false)?.commit.wait_blocking()?;
        }
        Op::Flush => db.flush()?,
        Op::Compact => {
            db.flush()?;
            db.compact(true)?;
        }
        Op::Delete { host, start, end } => {
            let ids = db.read(|view| {
                view.select(
                    "cpu",
                    &[sundial_model::TagMatch::Eq {
                        key: "host".into(),
                        value: format!("h{host}"),
                    }],
                )
            })?;
            let series: sundial_storage::RoaringBitmap = ids.iter().map(|id| id.0).collect();
            db.delete_points(&series, None, *start, *end)?;
        }
        Op::Rules(which) => {
            let rules = which
                .iter()
                .map(|i| {
                    let (anchor, width) = GRIDS[*i];
                    PresamplingRule {
                        id: format!("g{i}"),
                        definition: serde_json::Value::Null,
                        metric: Some("cpu".into()),
                        tags: Vec::new(),
                        anchor,
                        width,
                    }
                })
                .collect();
            db.set_presampling_rules(rules)?;
        }
    }
    Ok(())
}

pub(super) fn query(
    func: RangeFn,
    (anchor, width): (i64, i64),
    end: i64,
    grouped: bool,
) -> SeriesQuery {
    SeriesQuery {
        metric: "cpu".into(),
        fields: vec!["value".into()],
        branches: vec![Branch {
            start: anchor,
            end,
            tags: Vec::new(),
            values: Vec::new(),
        }],
        group_by: if grouped {
            vec!["host".into()]
        } else {
            Vec::new()
        },
        grouped,
        aggregators: vec![
            Aggregation::Range {
                func,
                sampling: Some(Sampling::Fixed(width)),
            },
            Aggregation::Diff,
        ],
        fills: vec![None],
        tag_columns: vec!["host".into()],
        order: Order::Asc,
        limit: usize::MAX,
        offset: 0,
        marker: None,
        now: i64::MAX,
    }
}

/// Every aligned query, with presampled buckets and without: the same
/// output but for the values read; returns the values presampling saved.
fn compare(db: &Db) -> Result<u64, TestCaseError> {
    let mut saved = 0;
    for func in super::tests::FOLDED {
        for grid in GRIDS {
            for end in [SPAN, SPAN - 13 * 60_000] {
                for grouped in [false, true] {
                    let q = query(func, grid, end, grouped);
                    let run = |presampled| -> Result<QueryOutput, TestCaseError> {
                        let limits = Limits {
                            presampled,
                            ..Limits::default()
                        };
                        execute_series(db, &q, limits)
                            .map_err(|e| TestCaseError::fail(e.to_string()))
                    };
                    let (raw, mut fast) = (run(false)?, run(true)?);
                    saved += raw.consumed_count.saturating_sub(fast.consumed_count);
                    fast.consumed_count = raw.consumed_count;
                    prop_assert_eq!(
                        fast,
                        raw,
                        "{:?} {:?} end {} grouped {}",
                        func,
                        grid,
                        end,
                        grouped
                    );
                }
            }
        }
    }
    Ok(saved)
}

#[test]
fn presampled_buckets_answer_as_raw_evaluation() {
    let saved = Cell::new(0u64);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let ops = prop::collection::vec(op(), 1..12);
    let result = runner.run(&ops, |ops| {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let db = Db::open(sundial_storage::Config {
            data_dir: dir.path().to_owned(),
            ..Default::default()
        })
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Every case ends with every rule, compacted: the buckets are used.
        let tail = [Op::Rules(vec![0, 1, 2]), Op::Compact];
        for op in ops.iter().chain(&tail) {
            apply(&db, op).map_err(|e| TestCaseError::fail(e.to_string()))?;
            saved.set(saved.get() + compare(&db)?);
            // OpenTSDB's downsampling takes the same buckets.
            for range in [(0, SPAN), (7 * 60_000 + 1, SPAN - 13 * 60_000)] {
                super::opentsdb::tests::downsampling_matches_stored_values(&db, range)
                    .map_err(TestCaseError::fail)?;
            }
            sql_matches_stored_values(&db)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(saved.get() > 0, "no query read presampled buckets");
}

/// SQL's statistics per host and epoch bucket of `width`, as adding the
/// stored points one by one gives them.
fn grouped_from_points(
    db: &Db,
    width: i64,
    (start, end): (i64, i64),
) -> Result<GroupedStats, Box<dyn std::error::Error>> {
    let mut out = GroupedStats::new();
    db.read(|view| -> Result<(), Box<dyn std::error::Error>> {
        let ids = match view.select("cpu", &[]) {
            Ok(ids) => ids,
            // Nothing written yet.
            Err(_) if view.metrics().is_empty() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for id in ids {
            let Some(key) = view.key(id) else { continue };
            let points = view.points(id, "value", start, end)?;
            if points.is_empty() {
                continue;
            }
            let cells = out
                .entry(vec![key.tag("host").map(str::to_owned)])
                .or_default();
            for (t, v) in &points {
                let cell = cells
                    .entry(t - t.rem_euclid(width))
                    .or_insert_with(|| vec![Stats::default()]);
                cell[0].add(v);
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// SQL's `GROUP BY host, time_bucket(...)` statistics over `[start, end]`.
fn grouped_by_sql(
    db: &Db,
    width: i64,
    (start, end): (i64, i64),
    budget: &crate::Budget,
) -> crate::Result<GroupedStats> {
    let request = StatsRequest {
        metric: "cpu",
        tags: &[],
        fields: &["value"],
        count_only: &[false],
        start,
        end,
        width_ms: Some(width),
        group_tags: &["host"],
    };
    crate::stats::grouped(db, &request, budget)
}

/// SQL's statistics on both epoch grids (rules may keep buckets on them)
/// equal the stored points'.
fn sql_matches_stored_values(db: &Db) -> Result<(), TestCaseError> {
    let fail = |e: String| TestCaseError::fail(e);
    for width in [600_000, HOUR] {
        for range in [(0, SPAN), (7 * 60_000 + 1, SPAN - 13 * 60_000)] {
            let budget = crate::Budget::new(std::time::Duration::from_secs(60), usize::MAX);
            let got = match grouped_by_sql(db, width, range, &budget) {
                Err(crate::Error::InvalidPredicate(_)) => GroupedStats::new(),
                got => got.map_err(|e| fail(e.to_string()))?,
            };
            let want = grouped_from_points(db, width, range).map_err(|e| fail(e.to_string()))?;
            prop_assert_eq!(got, want, "width {} range {:?}", width, range);
        }
    }
    Ok(())
}

/// SQL's hourly statistics take a rule's presampled buckets: a budget of
/// a tenth of the points answers once the rule's buckets are written, and
/// as the points do.
#[test]
fn sql_time_buckets_take_presampled_buckets() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Db::open(sundial_storage::Config {
        data_dir: dir.path().to_owned(),
        ..Default::default()
    })?;
    let mut points = Vec::new();
    for h in 0..2u8 {
        for t in (0..SPAN).step_by(10_000) {
            let v = if t % 3 == 0 {
                FieldValue::Long(t / 1000 - 7 * i64::from(h))
            } else {
                FieldValue::Double(t as f64 / 7e3)
            };
            points.push((h, t, v));
        }
    }
    let n = points.len();
    apply(&db, &Op::Write(points))?;
    db.flush()?;
    let small = crate::Budget::new(std::time::Duration::from_secs(60), n / 10);
    assert!(
        grouped_by_sql(&db, HOUR, (0, SPAN), &small).is_err(),
        "a tenth of the points' budget answered without presampled buckets"
    );
    apply(&db, &Op::Rules(vec![2]))?;
    apply(&db, &Op::Compact)?;
    let small = crate::Budget::new(std::time::Duration::from_secs(60), n / 10);
    let got = grouped_by_sql(&db, HOUR, (0, SPAN), &small)?;
    assert_eq!(got, grouped_from_points(&db, HOUR, (0, SPAN))?);
    assert_eq!(got.len(), 2);
    Ok(())
}
