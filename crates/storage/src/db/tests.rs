//! Storage oracle tests: random writes against a BTreeMap model, across
//! flushes, reopens and a torn WAL tail.

use super::flush::flush_before;
use super::*;
use crate::block::{self, BlockId};
use crate::record;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use sundial_model::{Kind, PointError, SeriesKey, Timestamp};

type Model = BTreeMap<(String, String, Timestamp), FieldValue>;

fn config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_owned(),
        wal_segment_bytes: 4096,
        flush_wal_bytes: 4096,
        compaction_min_blocks: 2,
        // Every window of these tests closed long ago: merge right away.
        compaction_settle_secs: 0,
        ..Config::default()
    }
}

/// Only explicit flushes and compactions, so block counts are exact.
fn quiet(dir: &std::path::Path) -> Config {
    Config {
        flush_wal_bytes: 64 << 20,
        wal_segment_bytes: 64 << 20,
        compaction_min_blocks: 1000,
        ..config(dir)
    }
}

fn point(host: &str, ts: Timestamp, v: i64) -> WritePoint {
    WritePoint {
        series: SeriesKey::new("cpu", vec![("host".into(), host.into())]).into(),
        field: "value".into(),
        timestamp: ts,
        value: ValueInput::Typed(FieldValue::Long(v)),
    }
}

/// Each point's error, in order.
fn point_errors(written: &Written) -> Vec<Option<PointError>> {
    let results = written.outcome.results.iter();
    results.map(|r| r.as_ref().err().cloned()).collect()
}

fn write_all(db: &Db, points: Vec<WritePoint>) -> Result<()> {
    let written = db.write(points, false)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Error::io("runtime", "", e))?;
    rt.block_on(written.commit.wait())
}

fn snapshot(db: &Db) -> Model {
    db.read(|view| {
        let mut out = Model::new();
        for (id, field) in view
            .series_of("cpu")
            .iter()
            .flat_map(|id| FIELDS.map(|f| (id, f)))
        {
            let Some(key) = view.key(*id) else { continue };
            let host = key.tag("host").unwrap_or_default().to_owned();
            let points = view
                .points(*id, field, Timestamp::MIN, Timestamp::MAX)
                .expect("stored data reads back");
            if points.is_empty() {
                continue;
            }
            // The column reader used by aggregations sees the same points.
            let (ts, nums) = view
                .numeric_points(*id, field, Timestamp::MIN, Timestamp::MAX)
                .expect("stored data reads back")
                .expect("numeric column");
            let as_values: Vec<(Timestamp, FieldValue)> = ts
                .into_iter()
                .zip(nums)
                .map(|(t, n)| match n {
                    sundial_codec::Num::Long(v) => (t, FieldValue::Long(v)),
                    sundial_codec::Num::Double(v) => (t, FieldValue::Double(v)),
                    sundial_codec::Num::Bool(v) => (t, FieldValue::Bool(v)),
                })
                .collect();
            assert_eq!(as_values, points);
            for (ts, v) in points {
                out.insert((host.clone(), field.into(), ts), v);
            }
        }
        out
    })
}

/// The listed series of one host (none once removed).
fn series_ids(db: &Db, host: &str) -> RoaringBitmap {
    db.read(|view| {
        view.series_of("cpu")
            .iter()
            .filter(|id| view.key(**id).is_some_and(|k| k.tag("host") == Some(host)))
            .map(|id| id.0)
            .collect()
    })
}

/// Fields the model writes: a block lists them in the order they came,
/// which is not their names' order.
const FIELDS: [&str; 3] = ["value", "b", "a"];

#[derive(Debug, Clone)]
enum Op {
    /// Host, timestamp, value, field (of [`FIELDS`]).
    Write(Vec<(u8, i16, i64, usize)>),
    Flush,
    /// Flush the partitions before this time (scaled like timestamps).
    FlushBefore(i16),
    Compact(bool),
    Reopen,
    /// Host, first timestamp, length of the deleted range.
    Delete(u8, i16, i16),
    Remove(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec((0u8..4, 0i16..50, any::<i64>(), 0..FIELDS.len()), 1..40)
            .prop_map(Op::Write),
        2 => Just(Op::Flush),
        2 => (0i16..50).prop_map(Op::FlushBefore),
        1 => any::<bool>().prop_map(Op::Compact),
        1 => Just(Op::Reopen),
        1 => (0u8..4, 0i16..50, 0i16..20).prop_map(|(h, t, n)| Op::Delete(h, t, n)),
        1 => (0u8..4).prop_map(Op::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model(
        ops in proptest::collection::vec(op(), 1..30),
        // Milliseconds per timestamp step: all in one partition, steps of
        // an hour (flushes cut by 2 h partitions, merges by day), or of
        // three hours (flushes cut by day, merges across a week's edge).
        scale in prop_oneof![Just(1i64), Just(3_600_000), Just(10_800_000)],
    ) {
        run_model(ops, scale, config)?;
    }
}

/// Runs `ops` on a database opened with `config` of a fresh directory,
/// checking it against the model after each and after a last reopen.
fn run_model(
    ops: Vec<Op>,
    scale: i64,
    config: impl Fn(&std::path::Path) -> Config,
) -> std::result::Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut db = Db::open(config(dir.path())).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut model = Model::new();
    for op in ops {
        match op {
            Op::Write(pts) => {
                let batch = pts
                    .iter()
                    .map(|(h, t, v, f)| WritePoint {
                        field: FIELDS[*f].into(),
                        ..point(&format!("h{h}"), i64::from(*t) * scale, *v)
                    })
                    .collect();
                write_all(&db, batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
                for (h, t, v, f) in pts {
                    model.insert(
                        (format!("h{h}"), FIELDS[f].into(), i64::from(t) * scale),
                        FieldValue::Long(v),
                    );
                }
            }
            Op::Flush => db.flush().map_err(|e| TestCaseError::fail(e.to_string()))?,
            Op::FlushBefore(t) => flush_before(&db.inner, Some(i64::from(t) * scale))
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
            Op::Compact(force) => db
                .compact(force)
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
            Op::Reopen => {
                // Dropping without close() is what a crash leaves behind,
                // as far as files go: the WAL has every committed record.
                db.abandon();
                db =
                    Db::open(config(dir.path())).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::Delete(h, t, n) => {
                let (start, end) = (i64::from(t) * scale, (i64::from(t) + i64::from(n)) * scale);
                let ids = series_ids(&db, &format!("h{h}"));
                db.delete_points(&ids, None, start, end)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                model.retain(|(host, _, ts), _| {
                    *host != format!("h{h}") || !(start..=end).contains(ts)
                });
            }
            Op::Remove(h) => {
                let ids = series_ids(&db, &format!("h{h}"));
                db.remove_series(&ids)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                model.retain(|(host, _, _), _| *host != format!("h{h}"));
            }
        }
        prop_assert_eq!(snapshot(&db), model.clone());
        active_among_agrees(&db, scale)?;
    }
    db.close();
    let db = Db::open(config(dir.path())).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(snapshot(&db), model);
    db.close();
    Ok(())
}

/// What `active_among` says of a set of series (some of them unknown) is
/// what `active_series` says of them, in head and blocks alike.
fn active_among_agrees(db: &Db, scale: i64) -> std::result::Result<(), TestCaseError> {
    db.read(|view| {
        let mut all: RoaringBitmap = view.series_of("cpu").iter().map(|id| id.0).collect();
        let odd: RoaringBitmap = all.iter().filter(|id| id % 2 == 1).collect();
        all.insert(1 << 20);
        let ranges = [
            (Timestamp::MIN, Timestamp::MAX),
            (10 * scale, 30 * scale),
            (25 * scale, 25 * scale),
        ];
        for (start, end) in ranges {
            let active = view.active_series(start, end);
            for ids in [&all, &odd] {
                prop_assert_eq!(view.active_among(ids, start, end), &active & ids);
            }
        }
        Ok(())
    })
}

/// The last WAL segment of a database in `dir`, its bytes, and where its
/// records end (the writer zeroes the file ahead of them).
fn last_segment(dir: &std::path::Path) -> Result<(std::path::PathBuf, Vec<u8>, usize)> {
    let last = *wal::list_segments(dir)?.last().ok_or(Error::Closed)?;
    let path = wal::segment_path(dir, last);
    let bytes = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    let mut end = wal::MAGIC.len();
    while let Ok((payload, _)) = record::read_frame(&bytes[end..]) {
        if payload.is_empty() {
            break;
        }
        end += record::FRAME_HEADER + payload.len();
    }
    Ok((path, bytes, end))
}

#[test]
fn torn_wal_tail_is_dropped_not_fatal() -> Result<()> {
    // The second record torn where the file ends (a segment written before
    // segments were zeroed ahead), and torn inside the zeros.
    for cut_file in [true, false] {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
        let db = Db::open(config(dir.path()))?;
        write_all(&db, vec![point("a", 1, 10)])?;
        write_all(&db, vec![point("a", 2, 20)])?;
        db.abandon();
        let (path, mut bytes, end) = last_segment(dir.path())?;
        if cut_file {
            bytes.truncate(end - 5);
        } else {
            bytes[end - 5..end].fill(0);
        }
        fs::write(&path, &bytes).map_err(|e| Error::io("write", &path, e))?;
        let damage = wal::parse_segment(&bytes, false).damage;
        assert_eq!(damage.map(|d| d.resumes_at), Some(None), "a torn tail");
        let db = Db::open(config(dir.path()))?;
        let got = snapshot(&db);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got.get(&("a".into(), "value".into(), 1)),
            Some(&FieldValue::Long(10))
        );
        db.close();
    }
    Ok(())
}

/// Records written over several zeroing steps, up to the segment's size
/// and past it, all come back, and the zeros stop at the segment's size.
#[test]
fn records_across_zeroing_steps_are_all_replayed() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let segment_bytes = 200 << 10;
    let cfg = Config {
        wal_segment_bytes: segment_bytes,
        flush_wal_bytes: 1 << 30,
        ..config(dir.path())
    };
    let db = Db::open(cfg.clone())?;
    let mut want = Model::new();
    let mut sizes = Vec::new();
    for batch in 0..160i64 {
        let mut points = Vec::new();
        for i in 0..200 {
            let (host, ts, v) = (format!("h{}", i % 20), batch * 200 + i, batch * 1000 + i);
            points.push(point(&host, ts, v));
            want.insert((host, "value".into(), ts), FieldValue::Long(v));
        }
        write_all(&db, points)?;
        let (_, bytes, end) = last_segment(dir.path())?;
        sizes.push((bytes.len(), end));
    }
    db.abandon();
    // Zeroed ahead in growing steps, never past the segment's size but
    // for the records themselves.
    assert!(sizes.iter().all(|&(len, end)| len >= end));
    assert!(
        sizes.iter().any(|&(len, end)| len > end + (64 << 10)),
        "{sizes:?}"
    );
    assert!(
        sizes
            .iter()
            .all(|&(len, end)| len as u64 <= segment_bytes.max(end as u64)),
        "{sizes:?}"
    );
    let segments = wal::list_segments(dir.path())?;
    assert!(segments.len() > 1, "the load passed the segment's size");
    for n in segments {
        let path = wal::segment_path(dir.path(), n);
        let bytes = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        let damage = wal::parse_segment(&bytes, false).damage;
        assert!(damage.is_none(), "segment {n}: {damage:?}");
    }
    let db = Db::open(cfg)?;
    assert_eq!(snapshot(&db), want);
    db.close();
    Ok(())
}

/// Segments are zeroed ahead of their records; the zeros are their end,
/// not damage, but a record found past zeros is damage in the middle.
#[test]
fn zeros_after_the_last_record_end_a_segment() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(config(dir.path()))?;
    for ts in 1..=3 {
        write_all(&db, vec![point("a", ts, ts * 10)])?;
    }
    db.abandon();
    let (_, mut bytes, end) = last_segment(dir.path())?;
    assert!(bytes.len() > end, "zeroed ahead: {} > {end}", bytes.len());
    assert!(bytes[end..].iter().all(|&b| b == 0));
    let read = wal::parse_segment(&bytes, false);
    assert!(read.damage.is_none(), "{:?}", read.damage);
    let points: usize = read.batches.iter().map(|b| b.points.len()).sum();
    assert_eq!(points, 3);
    let db = Db::open(config(dir.path()))?;
    let want: Model = (1..=3)
        .map(|ts| (("a".into(), "value".into(), ts), FieldValue::Long(ts * 10)))
        .collect();
    assert_eq!(snapshot(&db), want);
    db.close();
    // The first record again, after a gap of zeros.
    let magic = wal::MAGIC.len();
    let (payload, _) = record::read_frame(&bytes[magic..]).map_err(|_| Error::Closed)?;
    let first = bytes[magic..magic + record::FRAME_HEADER + payload.len()].to_vec();
    let gap = end + 16;
    bytes[gap..gap + first.len()].copy_from_slice(&first);
    let damage = wal::parse_segment(&bytes, false).damage;
    assert_eq!(
        damage.map(|d| (d.offset, d.resumes_at)),
        Some((end as u64, Some(gap as u64)))
    );
    Ok(())
}

#[test]
fn kinds_are_fixed_by_the_first_write_in_a_batch() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(config(dir.path()))?;
    let mut text = point("a", 1, 0);
    text.value = ValueInput::Typed(FieldValue::String("up".into()));
    let written = db.write(vec![text, point("a", 2, 5)], false)?;
    assert_eq!(written.outcome.results[0], Ok(()));
    assert_eq!(
        written.outcome.results[1],
        Err(PointError::KindMismatch {
            stored: Kind::String,
            written: Kind::Numeric
        })
    );
    db.close();
    Ok(())
}

#[test]
fn a_write_that_would_wait_for_a_lock_is_given_back() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(config(dir.path()))?;
    let rules = Rules::default();
    let points = vec![point("a", 1, 7), point("b", 2, 8)];
    // A flush freezing the head holds its write lock.
    let frozen = db.inner.head.write();
    let back = match db.try_write_with(points, rules, false) {
        Err(back) => back,
        Ok(_) => panic!("wrote while the head was locked"),
    };
    drop(frozen);
    assert_eq!(back.len(), 2, "every point is given back");
    let queued = db.inner.pending.lock();
    assert!(db.try_write_with(back.clone(), rules, false).is_err());
    drop(queued);
    let written = match db.try_write_with(back, rules, false) {
        Ok(written) => written?,
        Err(_) => panic!("no lock was held"),
    };
    assert_eq!(point_errors(&written), vec![None, None]);
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Error::io("runtime", "", e))?
        .block_on(written.commit.wait())?;
    let stored = snapshot(&db);
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored.get(&("b".into(), "value".into(), 2)),
        Some(&FieldValue::Long(8))
    );
    db.close();
    Ok(())
}

#[test]
fn threads_done_with_bulk_work_release_memory() -> Result<()> {
    static CALLERS: parking_lot::Mutex<Vec<String>> = parking_lot::Mutex::new(Vec::new());
    crate::memory::on_release(|| {
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        CALLERS.lock().push(name);
    });
    let called_on = |thread: &str| CALLERS.lock().iter().any(|n| n == thread);
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(quiet(dir.path()))?;
    // The WAL writer, once idle after a commit.
    write_all(&db, vec![point("a", 1, 1)])?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !called_on("sundial-wal") {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL writer kept its memory"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A merge, on the thread that ran it.
    for ts in [2, 3] {
        write_all(&db, vec![point("a", ts, ts)])?;
        db.flush()?;
    }
    let this = std::thread::current().name().unwrap_or("?").to_owned();
    assert!(!called_on(&this));
    db.compact(true)?;
    assert_eq!(db.block_count(), 1, "the two blocks merged");
    assert!(called_on(&this), "the merging thread kept its memory");
    db.close();
    Ok(())
}

#[test]
fn listings_are_restricted_to_the_time_range() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let quiet = quiet(dir.path());
    let db = Db::open(quiet)?;
    let at = |metric: &str, host: &str, ts: Timestamp| WritePoint {
        series: SeriesKey::new(metric, vec![("host".into(), host.into())]).into(),
        field: "value".into(),
        timestamp: ts,
        value: ValueInput::Typed(FieldValue::Long(1)),
    };
    // Early data goes to a block, late data stays in the head.
    write_all(&db, vec![at("cpu", "a", 1_000), at("mem", "b", 2_000)])?;
    db.flush()?;
    write_all(&db, vec![at("cpu", "c", 10_000)])?;
    db.read(|s| {
        assert_eq!(s.metrics_in(0, 5_000), vec!["cpu", "mem"]);
        assert_eq!(s.metrics_in(5_000, 20_000), vec!["cpu"]);
        assert_eq!(s.tag_values_in("cpu", "host", 0, 5_000), vec!["a"]);
        assert_eq!(s.tag_values_in("cpu", "host", 0, 20_000), vec!["a", "c"]);
        assert_eq!(s.tag_keys_in("mem", 5_000, 20_000), Vec::<&str>::new());
        assert_eq!(s.tag_keys_in("mem", 0, 20_000), vec!["host"]);
    });
    db.close();
    Ok(())
}

#[test]
fn chunk_statistics_stand_for_whole_chunks_only_when_nothing_overrides_them() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let quiet = quiet(dir.path());
    let db = Db::open(quiet)?;
    const DAY: i64 = 86_400_000;
    // Day 0 and day 1 in one block (two chunks), then an overwrite inside
    // day 1 that stays in the head.
    let batch: Vec<WritePoint> = (0..100)
        .map(|i| point("a", i * 1000, i))
        .chain((0..100).map(|i| point("a", DAY + i * 1000, 1000 + i)))
        .collect();
    write_all(&db, batch)?;
    db.flush()?;
    write_all(&db, vec![point("a", DAY + 5000, -7)])?;
    let id = db
        .read(|s| s.select("cpu", &[]).ok().and_then(|v| v.first().copied()))
        .ok_or(Error::Closed)?;
    let parts = db.read(|s| s.column_parts(id, "value", 0, 2 * DAY))?;
    // Day 0 is summarised; day 1 is overlapped by the head and decoded.
    assert_eq!(parts.summaries.len(), 1);
    let day0_sum: f64 = (0..100).map(|i| i as f64).sum();
    assert_eq!(
        (parts.summaries[0].count, parts.summaries[0].stats.sum),
        (100, day0_sum)
    );
    assert_eq!(parts.points.len(), 100);
    let expected_day1: i64 = (0..100).map(|i| if i == 5 { -7 } else { 1000 + i }).sum();
    let got_day1: i64 = parts.points.iter().filter_map(|(_, v)| v.as_i64()).sum();
    assert_eq!(got_day1, expected_day1);
    // A range cutting into day 0 decodes that chunk instead.
    let parts = db.read(|s| s.column_parts(id, "value", 50_000, DAY - 1))?;
    assert!(parts.summaries.is_empty());
    assert_eq!(parts.points.len(), 50);
    db.close();
    Ok(())
}

/// A group stands or falls whole, and a refused group fixes no kind.
#[test]
fn grouped_writes_are_atomic_per_group() -> Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(quiet(tmp.path()))?;
    let field = |name: &str, ts: Timestamp, v: FieldValue| WritePoint {
        field: name.into(),
        value: ValueInput::Typed(v),
        ..point("a", ts, 0)
    };
    let text = |s: &str| FieldValue::String(s.into());
    // Group 1 fixes `dir` as String; group 2 writes a number to `dir` and so
    // loses its `speed` too, whose kind stays open for group 3 (a String).
    let points = vec![
        field("speed", 1, FieldValue::Double(1.5)),
        field("dir", 1, text("east")),
        field("speed", 2, FieldValue::Double(2.5)),
        field("dir", 2, FieldValue::Long(3)),
        field("level", 3, FieldValue::Long(4)),
        field("level", 4, FieldValue::Long(5)),
    ];
    let rules = Rules {
        groups: &[2, 2, 1],
        vetoed: &[],
    };
    let written = db.write_with(points, rules, false)?;
    let errors = point_errors(&written);
    assert_eq!(errors[..3], [None, None, Some(PointError::Rejected)]);
    assert!(matches!(errors[3], Some(PointError::KindMismatch { .. })));
    assert_eq!(
        errors[4..],
        [None, None],
        "points past the sizes stand alone"
    );
    written.commit.wait_blocking()?;
    db.read(|view| -> Result<()> {
        let id = view.series_of("cpu")[0];
        let speeds = view.points(id, "speed", Timestamp::MIN, Timestamp::MAX)?;
        assert_eq!(speeds, vec![(1, FieldValue::Double(1.5))]);
        assert_eq!(view.points(id, "level", 0, 10)?.len(), 2);
        Ok(())
    })
}

/// A vetoed point reports its kind error first, else `Rejected`; it is
/// never stored and fixes no kind.
#[test]
fn vetoed_points_are_checked_but_never_stored() -> Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(quiet(tmp.path()))?;
    write_all(&db, vec![point("a", 1, 1)])?;
    let text = WritePoint {
        field: "note".into(),
        value: ValueInput::Typed(FieldValue::String("x".into())),
        ..point("a", 2, 0)
    };
    // A number to a Long field and a text to a new field, both vetoed,
    // then a number to the field the vetoed text did not fix.
    let numbered_note = WritePoint {
        field: "note".into(),
        ..point("a", 3, 7)
    };
    let mistyped = WritePoint {
        value: ValueInput::Typed(FieldValue::String("y".into())),
        ..point("a", 4, 0)
    };
    let points = vec![point("a", 2, 2), text, numbered_note, mistyped];
    let rules = Rules {
        groups: &[],
        vetoed: &[true, true, false, true],
    };
    let written = db.write_with(points, rules, false)?;
    let errors = point_errors(&written);
    assert_eq!(
        errors[..3],
        [Some(PointError::Rejected), Some(PointError::Rejected), None]
    );
    assert!(matches!(errors[3], Some(PointError::KindMismatch { .. })));
    written.commit.wait_blocking()?;
    db.read(|view| -> Result<()> {
        let id = view.series_of("cpu")[0];
        let values = view.points(id, "value", Timestamp::MIN, Timestamp::MAX)?;
        assert_eq!(values, vec![(1, FieldValue::Long(1))]);
        let notes = view.points(id, "note", Timestamp::MIN, Timestamp::MAX)?;
        assert_eq!(notes, vec![(3, FieldValue::Long(7))]);
        Ok(())
    })
}

/// Deletes reach the head and every block, survive a reopen, and removed
/// series leave the index until written again.
#[test]
fn deletes_and_removals_persist() -> Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(quiet(tmp.path()))?;
    // Block 1: a and b at 0..10; block 2: a at 10..20; head: b at 20..30.
    write_all(
        &db,
        (0..10)
            .flat_map(|t| [point("a", t, t), point("b", t, t)])
            .collect(),
    )?;
    db.flush()?;
    write_all(&db, (10..20).map(|t| point("a", t, t)).collect())?;
    db.flush()?;
    write_all(&db, (20..30).map(|t| point("b", t, t)).collect())?;
    let id_of = |db: &Db, host: &str| {
        db.read(|view| {
            view.series_of("cpu").iter().copied().find(|id| {
                view.key(*id).and_then(|k| k.tag("host").map(str::to_owned)) == Some(host.into())
            })
        })
    };
    let (a, b) = (id_of(&db, "a"), id_of(&db, "b"));
    let (Some(a), Some(b)) = (a, b) else {
        return Err(Error::Closed);
    };
    let only = |id: SeriesId| RoaringBitmap::from_iter([id.0]);
    // a loses 5..=14 across both blocks; b loses 25..=29 from the head.
    assert_eq!(db.delete_points(&only(a), None, 5, 14)?, 10);
    assert_eq!(
        db.delete_points(&only(b), Some(&["value".into()]), 25, 100)?,
        5
    );
    assert_eq!(
        db.delete_points(&only(b), Some(&["other".into()]), 0, 100)?,
        0
    );
    let mut model = Model::new();
    for t in (0..5).chain(15..20) {
        model.insert(("a".into(), "value".into(), t), FieldValue::Long(t));
    }
    for t in (0..10).chain(20..25) {
        model.insert(("b".into(), "value".into(), t), FieldValue::Long(t));
    }
    assert_eq!(snapshot(&db), model);
    db.close();
    let db = Db::open(quiet(tmp.path()))?;
    assert_eq!(snapshot(&db), model, "deletes survive a reopen");
    // Removing a: gone from listings, back with its old id when written.
    assert_eq!(db.remove_series(&only(a))?, 10);
    model.retain(|(h, _, _), _| h != "a");
    assert_eq!(snapshot(&db), model);
    db.close();
    let db = Db::open(quiet(tmp.path()))?;
    assert_eq!(id_of(&db, "a"), None, "removal survives a reopen");
    assert_eq!(db.read(|v| v.series_of("cpu").len()), 1);
    write_all(&db, vec![point("a", 40, 40)])?;
    assert_eq!(id_of(&db, "a"), Some(a));
    db.abandon();
    let db = Db::open(quiet(tmp.path()))?;
    assert_eq!(id_of(&db, "a"), Some(a), "replayed write brings it back");
    db.flush()?;
    db.close();
    let db = Db::open(quiet(tmp.path()))?;
    assert_eq!(id_of(&db, "a"), Some(a), "and the flush persisted it");
    Ok(())
}

/// A removed metric forgets its kind, and the kind the next write fixes
/// holds again (the series' old columns do not linger without one).
#[test]
fn a_delete_that_empties_a_block_drops_it() -> Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(quiet(tmp.path()))?;
    write_all(&db, (0..10).map(|t| point("a", t, t)).collect())?;
    db.flush()?;
    write_all(&db, (100..110).map(|t| point("b", t, t)).collect())?;
    db.flush()?;
    assert_eq!(db.block_count(), 2);
    // Every point of the first block goes: no empty block is left (it
    // would have no time range, which a cluster's manifest refuses).
    assert_eq!(db.delete_points(&series_ids(&db, "a"), None, 0, 50)?, 10);
    assert_eq!(db.block_count(), 1);
    let left = snapshot(&db);
    assert_eq!(left.len(), 10);
    db.close();
    drop(db);
    let db = Db::open(quiet(tmp.path()))?;
    assert_eq!(db.block_count(), 1);
    assert_eq!(snapshot(&db), left);
    db.close();
    Ok(())
}

#[test]
fn removal_forgets_kinds_and_the_next_write_fixes_one() -> Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(quiet(tmp.path()))?;
    write_all(&db, vec![point("a", 1, 1)])?;
    db.flush()?;
    let ids = series_ids(&db, "a");
    db.remove_series(&ids)?;
    let text = |ts: Timestamp| WritePoint {
        value: ValueInput::Typed(FieldValue::String("x".into())),
        ..point("a", ts, 0)
    };
    let written = db.write(vec![text(2)], false)?;
    assert_eq!(
        written.outcome.results,
        vec![Ok(())],
        "the kind was forgotten"
    );
    let written = db.write(vec![point("a", 3, 5)], false)?;
    assert!(
        matches!(
            written.outcome.results[0],
            Err(PointError::KindMismatch { .. })
        ),
        "the text write fixed the kind: {:?}",
        written.outcome.results
    );
    Ok(())
}

mod faults;
mod lifecycle;
mod partitions;
mod remote;
mod replica;

#[test]
fn only_keys_shared_beyond_their_write_are_remembered() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(quiet(dir.path()))?;
    let recent = |key: &std::sync::Arc<SeriesKey>| db.inner.head.read().recent_id(key);
    let shared = point("a", 1, 1);
    // What an adapter's key cache holds while the write runs.
    let cached = shared.series.clone();
    write_all(&db, vec![shared.clone()])?;
    assert_eq!(
        recent(&cached),
        None,
        "a new series has nothing to skip yet"
    );
    write_all(
        &db,
        vec![WritePoint {
            timestamp: 2,
            ..shared
        }],
    )?;
    let id = recent(&cached);
    assert!(id.is_some());
    // Keys built for one write each: looked up, never kept.
    for ts in 1..=3 {
        write_all(&db, vec![point("b", ts, 1)])?;
    }
    assert_eq!(db.inner.head.read().remembered(), 1);
    write_all(
        &db,
        vec![WritePoint {
            timestamp: 3,
            ..point("a", 0, 2)
        }],
    )?;
    assert_eq!(recent(&cached), id);
    let mut want = Model::new();
    for (host, ts, v) in [
        ("a", 1, 1),
        ("a", 2, 1),
        ("a", 3, 2),
        ("b", 1, 1),
        ("b", 2, 1),
        ("b", 3, 1),
    ] {
        want.insert((host.into(), "value".into(), ts), FieldValue::Long(v));
    }
    assert_eq!(snapshot(&db), want);
    db.close();
    Ok(())
}

#[test]
fn a_shared_key_changed_after_a_write_is_looked_up_again() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(quiet(dir.path()))?;
    let mut first = point("a", 1, 1);
    let key = first.series.clone();
    // The second write looks the series up through a shared key: kept.
    write_all(&db, vec![first.clone()])?;
    write_all(&db, vec![first.clone()])?;
    assert!(db.inner.head.read().recent_id(&key).is_some());
    // The adapter's shared key, rewritten in place by its last owner
    // (what BlueKing's binding does with `Arc::make_mut`).
    drop(key);
    std::sync::Arc::make_mut(&mut first.series).tags = vec![("host".into(), "b".into())];
    first.timestamp = 2;
    write_all(&db, vec![first])?;
    let mut want = Model::new();
    want.insert(("a".into(), "value".into(), 1), FieldValue::Long(1));
    want.insert(("b".into(), "value".into(), 2), FieldValue::Long(1));
    assert_eq!(snapshot(&db), want);
    db.close();
    Ok(())
}
