use super::*;
use sundial_model::series_query::{Aggregation, Branch, RangeFn, Sampling};
use sundial_model::{TagMatch, ValueInput, WritePoint};

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn db_with(
    points: &[(&str, &str, i64, i64)],
) -> std::result::Result<(tempfile::TempDir, Db), Box<dyn std::error::Error>> {
    let typed: Vec<_> = points
        .iter()
        .map(|(h, r, t, v)| (*h, *r, *t, FieldValue::Long(*v)))
        .collect();
    db_with_values(&typed)
}

fn db_with_values(
    points: &[(&str, &str, i64, FieldValue)],
) -> std::result::Result<(tempfile::TempDir, Db), Box<dyn std::error::Error>> {
    let batch = points
        .iter()
        .map(|(host, rack, t, v)| point(host, rack, *t, v.clone()))
        .collect();
    crate::temp_db_with(batch)
}

fn point(host: &str, rack: &str, t: i64, v: FieldValue) -> WritePoint {
    WritePoint {
        series: std::sync::Arc::new(SeriesKey::new(
            "cpu",
            vec![("host".into(), host.into()), ("rack".into(), rack.into())],
        )),
        field: "value".into(),
        timestamp: t,
        value: ValueInput::Typed(v),
    }
}

pub(super) fn query(start: i64, end: i64) -> SeriesQuery {
    SeriesQuery {
        metric: "cpu".into(),
        fields: vec!["value".into()],
        branches: vec![Branch {
            start,
            end,
            tags: Vec::new(),
            values: Vec::new(),
        }],
        group_by: Vec::new(),
        grouped: false,
        aggregators: Vec::new(),
        fills: vec![None],
        tag_columns: Vec::new(),
        order: Order::Asc,
        limit: 1_000_000,
        offset: 0,
        marker: None,
        now: i64::MAX,
    }
}

fn values(out: &QueryOutput) -> Vec<(Timestamp, Option<FieldValue>)> {
    out.groups
        .iter()
        .flat_map(|g| g.rows.iter().map(|r| (r.timestamp, r.values[0].clone())))
        .collect()
}

/// The first steps the streaming fold answers.
pub(super) const FOLDED: [RangeFn; 5] = [
    RangeFn::Count,
    RangeFn::Sum,
    RangeFn::Min,
    RangeFn::Max,
    RangeFn::Avg,
];

#[test]
fn markers_page_through_equal_timestamps_without_gaps() -> TestResult {
    // Three series share every timestamp: pages must split inside a timestamp.
    let mut pts = Vec::new();
    for t in 0..10 {
        for (i, h) in ["a", "b", "c"].iter().enumerate() {
            pts.push((*h, "r", t * 1000, t * 10 + i as i64));
        }
    }
    let (_dir, db) = db_with(&pts)?;
    for order in [Order::Asc, Order::Desc] {
        let mut q = query(0, 100_000);
        q.order = order;
        q.limit = 4;
        let mut seen = Vec::new();
        loop {
            let out = execute_series(&db, &q, Limits::default())?;
            assert_eq!(out.raw_count, 30);
            seen.extend(values(&out));
            if !out.truncated {
                break;
            }
            q.marker = out.next_marker.clone();
            assert!(q.marker.is_some());
        }
        let mut expected: Vec<(Timestamp, Option<FieldValue>)> = pts
            .iter()
            .map(|(_, _, t, v)| (*t, Some(FieldValue::Long(*v))))
            .collect();
        if order == Order::Desc {
            expected.reverse();
        }
        assert_eq!(seen, expected);
    }
    Ok(())
}

#[test]
fn grouped_sum_and_filters() -> TestResult {
    let (_dir, db) = db_with(&[
        ("a", "r1", 0, 1),
        ("a", "r1", 60_000, 2),
        ("b", "r1", 0, 100),
        ("c", "r2", 0, 7),
    ])?;
    let mut q = query(0, 120_000);
    q.group_by = vec!["rack".into()];
    q.grouped = true;
    q.aggregators = vec![Aggregation::Range {
        func: RangeFn::Sum,
        sampling: Some(Sampling::Fixed(60_000)),
    }];
    let out = execute_series(&db, &q, Limits::default())?;
    assert_eq!(out.groups.len(), 2);
    assert_eq!(
        out.groups[0].tags,
        vec![("rack".to_owned(), "r1".to_owned())]
    );
    assert_eq!(
        values(&QueryOutput {
            groups: vec![out.groups[0].clone()],
            ..Default::default()
        }),
        vec![
            (0, Some(FieldValue::Long(101))),
            (60_000, Some(FieldValue::Long(2)))
        ]
    );
    // A predicate that selects nothing leaves grouped output empty.
    q.branches[0].tags = vec![TagMatch::Eq {
        key: "host".into(),
        value: "zzz".into(),
    }];
    let out = execute_series(&db, &q, Limits::default())?;
    assert!(out.groups.is_empty());
    // A points limit stops the query with an error, not an answer.
    let tiny = Limits {
        max_points: 2,
        ..Limits::default()
    };
    assert!(matches!(
        execute_series(&db, &query(0, 120_000), tiny),
        Err(Error::TooManyPoints { .. })
    ));
    Ok(())
}

/// The streaming path and the general path must give the same answers,
/// to the last bit of a sum of doubles (the fast path adds per series,
/// then merges; the general one row by row); a value predicate that keeps
/// everything forces the general one.
#[test]
fn fast_path_matches_the_general_path() -> TestResult {
    for doubles in [false, true] {
        fast_matches_general(doubles)?;
    }
    Ok(())
}

fn fast_matches_general(doubles: bool) -> TestResult {
    // More than one read batch of series, so the scan runs on several threads.
    let hosts: Vec<String> = (0..150).map(|i| format!("h{i:03}")).collect();
    let mut pts = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        for t in 0..60i64 {
            let rack = if i % 2 == 0 { "r1" } else { "r2" };
            let v = (t * 37 + i as i64 * 11) % 101 - 50;
            // Tenths, and values whose sums lose bits in any order.
            let value = match (doubles, i % 3) {
                (false, _) => FieldValue::Long(v),
                (true, 0) => FieldValue::Double(v as f64 * 0.1),
                (true, 1) => FieldValue::Double(1e16 + v as f64),
                (true, _) => FieldValue::Long(v),
            };
            pts.push((h.as_str(), rack, t * 20_000 + i as i64, value));
        }
    }
    let (_dir, db) = db_with_values(&pts)?;
    db.flush()?;
    let funcs = FOLDED;
    let samplings = [
        None,
        Some(Sampling::Fixed(60_000)),
        Some(Sampling::Fixed(3_600_000)),
    ];
    for func in funcs {
        for sampling in samplings {
            // The second range holds whole chunks: Count reads their statistics.
            for (grouped, (start, end)) in [
                (false, (5_000, 1_200_000)),
                (true, (5_000, 1_200_000)),
                (false, (0, 100_000_000)),
            ] {
                let mut q = query(start, end);
                q.aggregators = vec![Aggregation::Range { func, sampling }, Aggregation::Diff];
                if grouped {
                    q.group_by = vec!["rack".into()];
                    q.grouped = true;
                }
                q.tag_columns = vec!["rack".into()];
                assert!(fast::eligible(&q));
                let fast_out = execute_series(&db, &q, Limits::default())?;
                q.branches[0].values = vec![sundial_model::series_query::ValuePredicate {
                    field: None,
                    op: sundial_model::series_query::CmpOp::Ge,
                    operand: sundial_model::series_query::Operand::Long(i64::MIN),
                }];
                assert!(!fast::eligible(&q));
                let slow_out = execute_series(&db, &q, Limits::default())?;
                assert_eq!(
                    fast_out, slow_out,
                    "{func:?} {sampling:?} grouped={grouped} {start}..{end} doubles={doubles}"
                );
            }
        }
    }
    Ok(())
}

/// A cluster's two halves over three databases (a series in one of them,
/// as in a shard) answer as one database holding every series: rows for
/// any query, folded groups for the ones that fold.
#[test]
fn halves_over_shards_answer_as_one_database() -> TestResult {
    let mut all = Vec::new();
    for (i, host) in ["a", "b", "c", "d", "e", "f"].into_iter().enumerate() {
        let rack = if i % 2 == 0 { "r1" } else { "r2" };
        for t in 0..40i64 {
            if (t + i as i64) % 5 != 0 {
                all.push((host, rack, t * 1_000, (t * 7 + i as i64 * 13) % 50 - 10));
            }
        }
    }
    let (_d, whole) = db_with(&all)?;
    let mut shards = Vec::new();
    for hosts in [["a", "d"], ["b", "e"], ["c", "f"]] {
        let part: Vec<_> = all
            .iter()
            .copied()
            .filter(|p| hosts.contains(&p.0))
            .collect();
        shards.push(db_with(&part)?);
    }
    let range = |func, sampling| Aggregation::Range { func, sampling };
    let grouped = |q: SeriesQuery| SeriesQuery {
        group_by: vec!["rack".into()],
        grouped: true,
        tag_columns: vec!["rack".into()],
        ..q
    };
    let queries = [
        SeriesQuery {
            limit: 7,
            offset: 3,
            ..query(0, 39_000)
        },
        grouped(SeriesQuery {
            aggregators: vec![range(RangeFn::Sum, Some(Sampling::Fixed(10_000)))],
            ..query(0, 39_000)
        }),
        SeriesQuery {
            aggregators: vec![
                range(RangeFn::Avg, Some(Sampling::Fixed(5_000))),
                Aggregation::Diff,
            ],
            order: Order::Desc,
            ..query(2_000, 35_000)
        },
        grouped(SeriesQuery {
            aggregators: vec![range(RangeFn::Max, None)],
            ..query(0, 39_000)
        }),
        grouped(SeriesQuery {
            aggregators: vec![range(RangeFn::Count, Some(Sampling::Fixed(7_000)))],
            ..query(0, 39_000)
        }),
        // Not folded: a first step the statistics do not answer.
        grouped(SeriesQuery {
            aggregators: vec![range(
                RangeFn::Percentile(0.5),
                Some(Sampling::Fixed(10_000)),
            )],
            ..query(0, 39_000)
        }),
    ];
    let limits = Limits::default();
    for (i, q) in queries.iter().enumerate() {
        let one = execute_series(&whole, q, limits)?;
        assert!(
            !one.groups.is_empty() && one.raw_count > 0,
            "query {i}: {one:?}"
        );
        let budget = || Budget::new(limits.timeout, limits.max_points);
        let rows = shards
            .iter()
            .map(|(_, db)| stage_series_rows(db, q, &budget()))
            .collect::<Result<Vec<_>>>()?;
        assert_eq!(finish_series(q, rows, limits)?, one, "query {i} from rows");
        assert_eq!(folds(q), (1..=4).contains(&i), "query {i}");
        if folds(q) {
            let mut folded = shards
                .iter()
                .map(|(_, db)| stage_folded(db, q, &budget(), limits.max_groups))
                .collect::<Result<Vec<_>>>()?;
            // An owner of two shards sends both in one half: the same
            // group twice.
            let last = folded.pop().ok_or("no half")?;
            if let Some(first) = folded.first_mut() {
                first.points += last.points;
                first.groups.extend(last.groups);
            }
            assert_eq!(finish_folded(q, folded, limits)?, one, "query {i} folded");
        }
    }
    Ok(())
}

/// Whole block chunks fold from their exact statistics only while nothing
/// newer overlaps them, and every stage (flushed, overwritten in the head,
/// flushed again over the old block, compacted) answers as the general
/// path, which reads every point.
#[test]
fn whole_chunks_fold_statistics_give_it_only_when_alone() -> TestResult {
    let hosts = ["a", "b", "c"];
    let mut pts = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        for t in 0..720i64 {
            let value = match (t + i as i64) % 4 {
                0 => FieldValue::Double(t as f64 * 0.1 + 1e15),
                1 => FieldValue::Long(i64::MAX / 1024 - t),
                2 => FieldValue::Bool(t % 3 == 0),
                _ => FieldValue::Double(-(t as f64) / 7.0),
            };
            pts.push((*h, "r1", t * 10_000, value));
        }
    }
    let (_dir, db) = db_with_values(&pts)?;
    db.flush()?;
    let taken = |db: &Db| -> std::result::Result<usize, Box<dyn std::error::Error>> {
        db.read(|view| {
            let mut n = 0;
            for id in view.select("cpu", &[])? {
                view.visit_numeric_parts(id, "value", 0, i64::MAX, &mut |part| {
                    n += usize::from(matches!(part, sundial_storage::NumericPart::Chunk(_)));
                    false
                })?;
            }
            Ok(n)
        })
    };
    let check = |db: &Db, stage: &str| -> TestResult {
        for func in FOLDED {
            for sampling in [None, Some(Sampling::Fixed(3_600_000))] {
                let mut q = query(0, 10_000_000);
                q.aggregators = vec![Aggregation::Range { func, sampling }];
                let fast_out = execute_series(db, &q, Limits::default())?;
                q.branches[0].values = vec![sundial_model::series_query::ValuePredicate {
                    field: None,
                    op: sundial_model::series_query::CmpOp::Ge,
                    operand: sundial_model::series_query::Operand::Long(i64::MIN),
                }];
                let slow_out = execute_series(db, &q, Limits::default())?;
                assert_eq!(fast_out, slow_out, "{stage}: {func:?} {sampling:?}");
            }
        }
        Ok(())
    };
    assert_eq!(taken(&db)?, hosts.len(), "one whole chunk per series");
    check(&db, "flushed")?;
    // One newer point inside host a's chunk: that chunk is read.
    db.write(
        vec![point("a", "r1", 3_600_000, FieldValue::Double(0.3))],
        false,
    )?
    .commit
    .wait_blocking()?;
    assert_eq!(taken(&db)?, hosts.len() - 1);
    check(&db, "overwritten in the head")?;
    db.flush()?;
    assert_eq!(taken(&db)?, hosts.len() - 1);
    check(&db, "flushed over the old block")?;
    db.compact(true)?;
    assert_eq!(taken(&db)?, hosts.len());
    check(&db, "compacted")?;
    Ok(())
}

/// A rule added after the data was compacted reaches it through the next
/// compaction, which rewrites blocks written under other rules; a block
/// already written under the current rules is left alone.
#[test]
fn a_new_rule_reaches_older_blocks_through_compaction() -> TestResult {
    let pts: Vec<_> = (0..720i64)
        .map(|t| ("a", "r1", t * 10_000, FieldValue::Double(t as f64 * 0.5)))
        .collect();
    let (dir, db) = db_with_values(&pts)?;
    db.flush()?;
    db.compact(true)?;
    let grid = sundial_storage::Grid::new(0, 600_000).ok_or("grid")?;
    let presampled = |db: &Db| -> std::result::Result<usize, Box<dyn std::error::Error>> {
        db.read(|view| {
            let mut n = 0;
            for id in view.select("cpu", &[])? {
                view.visit_numeric_parts(id, "value", 0, i64::MAX, &mut |part| {
                    if let sundial_storage::NumericPart::Chunk(whole) = part {
                        n += whole.buckets(grid).map_or(0, |b| b.len());
                    }
                    false
                })?;
            }
            Ok(n)
        })
    };
    assert_eq!(presampled(&db)?, 0);
    db.set_presampling_rules(vec![sundial_storage::PresamplingRule {
        id: "1".into(),
        definition: serde_json::Value::Null,
        metric: None,
        tags: vec![("rack".into(), vec!["r1".into()])],
        anchor: 0,
        width: 600_000,
    }])?;
    db.compact(true)?;
    // Two hours of 10-minute buckets.
    assert_eq!(presampled(&db)?, 12);
    let blocks = || -> std::io::Result<Vec<std::path::PathBuf>> {
        let mut b: Vec<_> = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sdb"))
            .collect();
        b.sort();
        Ok(b)
    };
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified());
    let before = blocks()?;
    let stamps: Vec<_> = before
        .iter()
        .map(|p| modified(p))
        .collect::<Result<_, _>>()?;
    db.compact(true)?;
    let after = blocks()?;
    let again: Vec<_> = after
        .iter()
        .map(|p| modified(p))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        (before, stamps),
        (after, again),
        "a settled block was rewritten"
    );
    Ok(())
}
