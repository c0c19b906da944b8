//! Flushes cut by time partition and compaction by day and week.

use super::*;
use crate::db::flush::read_covered;
use crate::partition::{DAY, Tiers, WEEK};

const HOUR: i64 = 3_600_000;

/// Closes `db`, opens its directory again and checks it reads `model`.
fn reopened_holds(db: Db, cfg: Config, model: &Model) -> Result<()> {
    db.close();
    let db = Db::open(cfg)?;
    assert_eq!(snapshot(&db), *model);
    db.close();
    Ok(())
}

/// Block ranges, oldest block first.
fn ranges(db: &Db) -> Vec<(Timestamp, Timestamp)> {
    db.inner
        .layers
        .read()
        .blocks
        .iter()
        .map(|b| (b.min_ts, b.max_ts))
        .collect()
}

#[test]
fn flush_writes_a_block_per_partition_and_compaction_merges_days_then_weeks() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let cfg = Config {
        compaction_settle_secs: 0,
        ..quiet(dir.path())
    };
    let tiers = Tiers::new(cfg.partition_secs);
    let db = Db::open(cfg.clone())?;
    // Saturday 2023-11-18 00:00 UTC; points every 90 minutes for 3 days,
    // across a week's edge, written in two halves so the middle day gets
    // blocks from both.
    let saturday = 1_700_265_600_000;
    let stamps: Vec<Timestamp> = (0..48).map(|i| saturday + i * 90 * 60_000).collect();
    let mut model = Model::new();
    for half in stamps.chunks(24) {
        let mut points = Vec::new();
        for (i, ts) in half.iter().enumerate() {
            for host in ["a", "b"] {
                points.push(point(host, *ts, i as i64));
                model.insert(
                    (host.into(), "value".into(), *ts),
                    FieldValue::Long(i as i64),
                );
            }
        }
        write_all(&db, points)?;
        db.flush()?;
    }
    // One block per 2 h partition holding points.
    let partitions: BTreeSet<_> = stamps.iter().map(|t| tiers.window(0, *t)).collect();
    let got = ranges(&db);
    assert_eq!(got.len(), partitions.len());
    assert!(
        got.iter()
            .all(|(lo, hi)| tiers.level_of(*lo, *hi).is_some_and(|(l, _)| l == 0))
    );
    assert_eq!(snapshot(&db), model);

    // Every day and week here closed long ago: days merge, then weeks.
    db.compact(false)?;
    let weeks: BTreeSet<_> = stamps.iter().map(|t| tiers.window(WEEK, *t)).collect();
    let got = ranges(&db);
    assert_eq!(weeks.len(), 2);
    assert_eq!(got.len(), weeks.len(), "one block per week: {got:?}");
    for ((lo, hi), w) in got.iter().zip(&weeks) {
        assert!(w.contains(*lo, *hi));
    }
    assert_eq!(snapshot(&db), model);
    reopened_holds(db, cfg, &model)
}

#[test]
fn an_open_day_merges_once_crowded_and_not_before() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let cfg = Config {
        compaction_min_blocks: 3,
        ..quiet(dir.path())
    };
    let tiers = Tiers::new(cfg.partition_secs);
    let db = Db::open(cfg)?;
    let today = tiers.window(DAY, sundial_model::now_ms());
    // Two partitions of today (settle time not reached): nothing merges.
    for i in 0..2 {
        write_all(&db, vec![point("a", today.start + i * 2 * HOUR, i)])?;
        db.flush()?;
    }
    db.compact(false)?;
    assert_eq!(db.block_count(), 2);
    write_all(&db, vec![point("a", today.start + 4 * HOUR, 2)])?;
    db.flush()?;
    db.compact(false)?;
    assert_eq!(ranges(&db), vec![(today.start, today.start + 4 * HOUR)]);
    db.close();
    Ok(())
}

#[test]
fn a_partial_flush_keeps_the_open_partition_in_the_head_and_the_wal() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let cfg = quiet(dir.path());
    let tiers = Tiers::new(cfg.partition_secs);
    let db = Db::open(cfg.clone())?;
    let now = sundial_model::now_ms();
    let open = tiers.window(0, now);
    let mut model = Model::new();
    let mut points = Vec::new();
    for (i, ts) in [open.start - 5 * HOUR, open.start - 1, open.start, now]
        .iter()
        .enumerate()
    {
        points.push(point("a", *ts, i as i64));
        model.insert(
            ("a".into(), "value".into(), *ts),
            FieldValue::Long(i as i64),
        );
    }
    write_all(&db, points)?;
    let before = tiers.closed_before(now, 0);
    assert_eq!(before, open.start);
    flush_before(&db.inner, Some(before))?;
    // Two closed partitions went to two blocks; the open one stayed.
    assert_eq!(db.block_count(), 2);
    assert_eq!(db.head_points(), 2);
    assert_eq!(snapshot(&db), model);
    // Nothing older left to flush: a second call writes nothing.
    flush_before(&db.inner, Some(before))?;
    assert_eq!(db.block_count(), 2);
    // The segments before the one holding the kept points are gone.
    let covered = read_covered(dir.path())?.ok_or(Error::Closed)?;
    assert!(
        wal::list_segments(dir.path())?
            .iter()
            .all(|n| *n >= covered)
    );
    // A newer write to a kept point must win over the copy logged again.
    write_all(&db, vec![point("a", now, 99)])?;
    model.insert(("a".into(), "value".into(), now), FieldValue::Long(99));
    db.abandon();
    let db = Db::open(cfg)?;
    assert_eq!(db.head_points(), 2);
    assert_eq!(snapshot(&db), model);
    db.close();
    Ok(())
}

#[test]
fn a_flush_that_crashed_midway_is_replayed_from_its_wal() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let cfg = quiet(dir.path());
    let db = Db::open(cfg.clone())?;
    let mut model = Model::new();
    for (i, ts) in [0, 3 * HOUR, 6 * HOUR].iter().enumerate() {
        write_all(&db, vec![point("a", *ts, i as i64)])?;
        model.insert(
            ("a".into(), "value".into(), *ts),
            FieldValue::Long(i as i64),
        );
    }
    let covered = read_covered(dir.path())?;
    // What a crash after the first of three blocks leaves: that block
    // under its final name, the mark where it was, the whole WAL.
    let next = wal::list_segments(dir.path())?.last().copied().unwrap_or(1) + 1;
    let first = [(0, FieldValue::Long(0))];
    let id = db
        .inner
        .head
        .read()
        .lookup(&point("a", 0, 0).series)
        .ok_or(Error::Closed)?;
    let mut w = block::writer::BlockWriter::create(
        &crate::vfs::Vfs::default(),
        dir.path(),
        BlockId {
            wal_below: next,
            seq: 0,
        },
        sundial_codec::Effort::Fast,
    )?;
    w.add(&block::writer::Column {
        series: id,
        field: "value",
        points: first.as_slice().into(),
        grids: &[],
    })?;
    w.finish()?;
    db.abandon();
    let db = Db::open(cfg)?;
    assert_eq!(read_covered(dir.path())?, covered);
    assert_eq!(snapshot(&db), model);
    db.close();
    Ok(())
}

#[test]
fn a_flushed_block_alone_in_a_closed_day_is_recompressed_once() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let cfg = Config {
        compaction_settle_secs: 0,
        ..quiet(dir.path())
    };
    let db = Db::open(cfg.clone())?;
    let mut model = Model::new();
    let points = (0..500)
        .map(|i| {
            let ts = 1_700_006_400_000 + i * 10_000;
            model.insert(("a".into(), "value".into(), ts), FieldValue::Long(i * i));
            point("a", ts, i * i)
        })
        .collect();
    write_all(&db, points)?;
    db.flush()?;
    let fast = |db: &Db| -> Vec<bool> {
        db.inner
            .layers
            .read()
            .blocks
            .iter()
            .map(|b| b.fast)
            .collect()
    };
    assert_eq!(fast(&db), vec![true]);
    db.compact(false)?;
    assert_eq!(fast(&db), vec![false]);
    // Nothing left to do: a second pass rewrites nothing.
    let before = db.inner.layers.read().blocks[0].clone();
    db.compact(false)?;
    assert!(Arc::ptr_eq(&before, &db.inner.layers.read().blocks[0]));
    assert_eq!(snapshot(&db), model);
    db.close();
    let db = Db::open(cfg)?;
    assert_eq!(fast(&db), vec![false]);
    assert_eq!(snapshot(&db), model);
    db.close();
    Ok(())
}

#[test]
fn points_scattered_over_many_weeks_make_one_block_and_such_blocks_merge() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let cfg = quiet(dir.path());
    let tiers = Tiers::new(cfg.partition_secs);
    let db = Db::open(cfg.clone())?;
    let week = 7 * 24 * HOUR;
    let mut model = Model::new();
    for round in 0..2i64 {
        // 40 weeks, one point each: more windows than a flush writes.
        let points = (0..40)
            .map(|i| {
                let ts = 1_600_000_000_000 + i * week + round;
                model.insert(("a".into(), "value".into(), ts), FieldValue::Long(i));
                point("a", ts, i)
            })
            .collect();
        write_all(&db, points)?;
        db.flush()?;
        // And one ordinary partition block in between.
        let ts = 1_600_000_000_000 + 3 * HOUR + round;
        write_all(&db, vec![point("b", ts, round)])?;
        model.insert(("b".into(), "value".into(), ts), FieldValue::Long(round));
        db.flush()?;
    }
    let wide = |db: &Db| {
        ranges(db)
            .iter()
            .filter(|(lo, hi)| tiers.level_of(*lo, *hi).is_none())
            .count()
    };
    assert_eq!((db.block_count(), wide(&db)), (4, 2));
    db.compact(false)?;
    // The two wide blocks and the one between them became one.
    assert_eq!(wide(&db), 1);
    assert_eq!(db.block_count(), 2);
    assert_eq!(snapshot(&db), model);
    reopened_holds(db, cfg, &model)
}

#[test]
fn kept_points_are_logged_again_in_bounded_records() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(quiet(dir.path()))?;
    let points = (0..7)
        .flat_map(|i| [point("a", i, i), point("b", i, i)])
        .collect();
    write_all(&db, points)?;
    let head = db.inner.head.read();
    let records: Vec<Vec<u8>> = head
        .encode_points(2, 3)
        .into_iter()
        .map(|mut enc| {
            let mut out = Vec::new();
            enc.finish_into(&mut out);
            out
        })
        .collect();
    // Ten points from t = 2 on, three per record.
    let sizes: Vec<usize> = records
        .iter()
        .map(|r| crate::record::decode_batch(r).map(|b| b.points.len()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::io("decode record", "", std::io::Error::other(e)))?;
    assert_eq!(sizes, vec![3, 3, 3, 1]);
    drop(head);
    db.close();
    Ok(())
}
