//! Storage oracle tests: random writes against a BTreeMap model, across
//! flushes, reopens and a torn WAL tail.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use sundial_model::{SeriesKey, Timestamp};

type Model = BTreeMap<(String, String, Timestamp), FieldValue>;

fn config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_owned(),
        wal_segment_bytes: 4096,
        flush_wal_bytes: 4096,
        compaction_min_blocks: 2,
        ..Config::default()
    }
}

fn point(host: &str, ts: Timestamp, v: i64) -> WritePoint {
    WritePoint {
        series: SeriesKey::new("cpu", vec![("host".into(), host.into())]),
        field: "value".into(),
        timestamp: ts,
        value: ValueInput::Typed(FieldValue::Long(v)),
        rejected: false,
    }
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
        for id in view.series_of("cpu") {
            let Some(key) = view.key(*id) else { continue };
            let host = key.tag("host").unwrap_or_default().to_owned();
            for (ts, v) in view
                .points(*id, "value", Timestamp::MIN, Timestamp::MAX)
                .expect("stored data reads back")
            {
                out.insert((host.clone(), "value".into(), ts), v);
            }
        }
        out
    })
}

#[derive(Debug, Clone)]
enum Op {
    Write(Vec<(u8, i16, i64)>),
    Flush,
    Compact(bool),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec((0u8..4, 0i16..50, any::<i64>()), 1..40).prop_map(Op::Write),
        2 => Just(Op::Flush),
        1 => any::<bool>().prop_map(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model(ops in proptest::collection::vec(op(), 1..30)) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut db = Db::open(config(dir.path())).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut model = Model::new();
        for op in ops {
            match op {
                Op::Write(pts) => {
                    let batch = pts.iter().map(|(h, t, v)| point(&format!("h{h}"), i64::from(*t), *v)).collect();
                    write_all(&db, batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    for (h, t, v) in pts {
                        model.insert((format!("h{h}"), "value".into(), i64::from(t)), FieldValue::Long(v));
                    }
                }
                Op::Flush => db.flush().map_err(|e| TestCaseError::fail(e.to_string()))?,
                Op::Compact(force) => db.compact(force).map_err(|e| TestCaseError::fail(e.to_string()))?,
                Op::Reopen => {
                    // Dropping without close() is what a crash leaves behind,
                    // as far as files go: the WAL has every committed record.
                    db.abandon();
                    db = Db::open(config(dir.path())).map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
            }
            prop_assert_eq!(snapshot(&db), model.clone());
        }
        db.close();
        let db = Db::open(config(dir.path())).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(snapshot(&db), model);
        db.close();
    }
}

#[test]
fn torn_wal_tail_is_dropped_not_fatal() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(config(dir.path()))?;
    write_all(&db, vec![point("a", 1, 10)])?;
    write_all(&db, vec![point("a", 2, 20)])?;
    db.abandon();
    let last = *wal::list_segments(dir.path())?
        .last()
        .ok_or(Error::Closed)?;
    let path = wal::segment_path(dir.path(), last);
    let len = fs::metadata(&path)
        .map_err(|e| Error::io("stat", &path, e))?
        .len();
    // Cut the second record in half.
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    file.set_len(len - 5)
        .map_err(|e| Error::io("truncate", &path, e))?;
    let db = Db::open(config(dir.path()))?;
    let got = snapshot(&db);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got.get(&("a".into(), "value".into(), 1)),
        Some(&FieldValue::Long(10))
    );
    db.close();
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
fn compaction_merges_blocks_and_keeps_the_newest_values() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    // Only explicit flushes and compactions here, so block counts are exact.
    let quiet = Config {
        flush_wal_bytes: 64 << 20,
        wal_segment_bytes: 64 << 20,
        compaction_min_blocks: 1000,
        ..config(dir.path())
    };
    let db = Db::open(quiet.clone())?;
    let mut model = Model::new();
    for round in 0..6i64 {
        let batch: Vec<WritePoint> = (0..200)
            .map(|i| point("a", (i * 7 + round) % 300, round * 1000 + i))
            .collect();
        for p in &batch {
            let ValueInput::Typed(v) = &p.value else {
                continue;
            };
            model.insert(("a".into(), "value".into(), p.timestamp), v.clone());
        }
        write_all(&db, batch)?;
        db.flush()?;
    }
    assert_eq!(db.block_count(), 6);
    db.compact(true)?;
    assert_eq!(db.block_count(), 1);
    assert_eq!(snapshot(&db), model);
    let blocks = fs::read_dir(dir.path())
        .map_err(|e| Error::io("list", dir.path(), e))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("block-"))
        .count();
    assert_eq!(blocks, 1);
    db.close();
    let db = Db::open(quiet)?;
    assert_eq!(snapshot(&db), model);
    db.close();
    Ok(())
}

#[test]
fn retention_hides_and_drops_expired_data() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let cfg = Config {
        retention_secs: 3600,
        flush_wal_bytes: 64 << 20,
        wal_segment_bytes: 64 << 20,
        compaction_min_blocks: 1000,
        ..config(dir.path())
    };
    let db = Db::open(cfg)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let old = now - 2 * 3_600_000;
    write_all(&db, vec![point("a", old, 1), point("a", old + 1, 2)])?;
    db.flush()?;
    write_all(&db, vec![point("a", now - 1000, 3)])?;
    db.flush()?;
    // Expired points are hidden at once, and their block goes at maintenance.
    let got = snapshot(&db);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got.get(&("a".into(), "value".into(), now - 1000)),
        Some(&FieldValue::Long(3))
    );
    assert_eq!(db.block_count(), 2);
    db.compact(false)?;
    assert_eq!(db.block_count(), 1);
    db.close();
    Ok(())
}

#[test]
fn listings_are_restricted_to_the_time_range() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let quiet = Config {
        flush_wal_bytes: 64 << 20,
        wal_segment_bytes: 64 << 20,
        compaction_min_blocks: 1000,
        ..config(dir.path())
    };
    let db = Db::open(quiet)?;
    let at = |metric: &str, host: &str, ts: Timestamp| WritePoint {
        series: SeriesKey::new(metric, vec![("host".into(), host.into())]),
        field: "value".into(),
        timestamp: ts,
        value: ValueInput::Typed(FieldValue::Long(1)),
        rejected: false,
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
