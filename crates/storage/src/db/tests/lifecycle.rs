//! The life of stored data: flushes (failed and retried, or forced by a
//! quiet head's age), compaction keeping the newest values, retention.

use super::*;

#[test]
fn compaction_merges_blocks_and_keeps_the_newest_values() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(quiet(dir.path()))?;
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
    let db = Db::open(quiet(dir.path()))?;
    assert_eq!(snapshot(&db), model);
    db.close();
    Ok(())
}

#[test]
fn retention_hides_and_drops_expired_data() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let cfg = Config {
        retention_secs: 3600,
        ..quiet(dir.path())
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
fn a_failed_flush_keeps_every_point_readable_and_retries() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(quiet(dir.path()))?;
    let mut model = Model::new();
    for i in 0..50 {
        model.insert(("a".into(), "value".into(), i), FieldValue::Long(i * 3));
    }
    write_all(&db, (0..50).map(|i| point("a", i, i * 3)).collect())?;
    // The first flush rotates to segment 2 and writes block 2: make its
    // temporary path unusable so the block write fails.
    let blocker = dir.path().join("block-0000000002.tmp");
    fs::create_dir(&blocker).map_err(|e| Error::io("mkdir", &blocker, e))?;
    assert!(db.flush().is_err());
    assert_eq!(snapshot(&db), model);
    // Newer writes during the failure win over the restored points.
    write_all(&db, vec![point("a", 7, -1)])?;
    model.insert(("a".into(), "value".into(), 7), FieldValue::Long(-1));
    fs::remove_dir(&blocker).map_err(|e| Error::io("rmdir", &blocker, e))?;
    db.flush()?;
    assert_eq!(db.block_count(), 1);
    assert_eq!(snapshot(&db), model);
    db.abandon();
    let db = Db::open(quiet(dir.path()))?;
    assert_eq!(snapshot(&db), model);
    db.close();
    Ok(())
}

#[test]
fn a_quiet_head_is_flushed_after_its_maximum_age() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let cfg = Config {
        max_head_age_secs: 1,
        maintenance_interval_secs: 1,
        ..quiet(dir.path())
    };
    let db = Db::open(cfg)?;
    write_all(&db, vec![point("a", 1, 1), point("a", 2, 2)])?;
    assert_eq!(db.head_points(), 2);
    // Bounded wait: the maintenance thread wakes every second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while db.block_count() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(db.block_count(), 1);
    assert_eq!(db.head_points(), 0);
    assert_eq!(snapshot(&db).len(), 2);
    db.close();
    Ok(())
}

/// Points (count) each host's whole chunks in `[start, end]` stand for,
/// by their statistics: what a fold past the raw retention sees.
fn summarised(db: &Db, start: Timestamp, end: Timestamp) -> Result<BTreeMap<String, u64>> {
    db.read(|view| {
        let mut out = BTreeMap::new();
        for (id, key) in view.series_from(0) {
            let mut n = 0;
            view.visit_numeric_parts(id, "value", start, end, &mut |part| {
                if let crate::snapshot::NumericPart::Chunk(whole) = part {
                    n += whole.summary.count;
                }
                true
            })?;
            out.insert(key.tag("host").unwrap_or_default().to_owned(), n);
        }
        Ok(out)
    })
}

/// An hourly tier whose rollups outlive the raw points (20 days).
fn hourly_rollups_for_20_days(dir: &std::path::Path) -> Config {
    Config {
        rollup_secs: vec![3600],
        rollup_retention_secs: Some(20 * 86_400),
        ..quiet(dir)
    }
}

/// Past the raw retention a block with rollup tiers becomes rollups-only:
/// no points to read, its chunks' statistics kept, `check` content with
/// it; a delete drops the selected series' chunks there and keeps the
/// others'; past the rollups' retention the block goes.
#[test]
fn expired_blocks_keep_their_rollups_until_the_rollups_expire() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let config = hourly_rollups_for_20_days(dir.path());
    let engine = crate::Engine::open(config.clone())?;
    let db = engine.default_db();
    let now = sundial_model::now_ms();
    let (old, older) = (now - 10 * 86_400_000, now - 30 * 86_400_000);
    for base in [older, old] {
        let batch = (0..100)
            .flat_map(|i| ["a", "b"].map(|h| point(h, base + i * 60_000, i)))
            .collect();
        write_all(&db, batch)?;
        db.flush()?;
    }
    db.compact(true)?;
    let span = (old, old + 100 * 60_000);
    let whole = BTreeMap::from([("a".to_owned(), 100), ("b".to_owned(), 100)]);
    assert_eq!(summarised(&db, span.0, span.1)?, whole);
    db.set_retention_secs(7 * 86_400)?;
    db.compact(false)?;
    // The thirty-day-old points went whole; the ten-day-old ones' rollups stay.
    assert_eq!(summarised(&db, span.0, span.1)?, whole);
    assert_eq!(
        summarised(&db, older, older + 100 * 60_000)?
            .values()
            .sum::<u64>(),
        0
    );
    assert!(snapshot(&db).is_empty());
    let report = crate::check::check(&config)?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.chunks >= 2);
    let a: RoaringBitmap = db
        .read(|v| v.series_from(0))
        .into_iter()
        .filter(|(_, key)| key.tag("host") == Some("a"))
        .map(|(id, _)| id.0)
        .collect();
    db.delete_points(&a, None, span.0 + 60_000, span.0 + 120_000)?;
    let left = summarised(&db, span.0, span.1)?;
    assert_eq!(left.values().sum::<u64>(), 100, "{left:?}");
    // Points written late around b's kept chunk become chunks of their own
    // beside it, not one spanning it (which neither could stand alone in).
    write_all(
        &db,
        vec![
            point("b", old - 60_000, 7),
            point("b", old + 101 * 60_000, 8),
        ],
    )?;
    db.flush()?;
    db.compact(false)?;
    let around = summarised(&db, old - 60_000, old + 101 * 60_000)?;
    assert_eq!(around.get("b"), Some(&102), "{around:?}");
    engine.close();
    Ok(())
}

/// An expired block that cannot be read is kept as it is, and holds back
/// only itself: the other expired blocks are still summarised.
#[test]
fn an_unreadable_expired_block_holds_back_only_itself() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let config = hourly_rollups_for_20_days(dir.path());
    // At a partition's start: a's hundred minutes stay in one block. Left
    // to the clock, a block of a's could hold four points or fewer, whose
    // chunk has no statistics and is read, damaged (a 3% flake).
    let partition_ms = config.partition_secs as i64 * 1000;
    let engine = crate::Engine::open(config)?;
    let db = engine.default_db();
    let ten_days_ago = sundial_model::now_ms() - 10 * 86_400_000;
    let old = ten_days_ago - ten_days_ago.rem_euclid(partition_ms);
    let paths = |db: &Db| -> Vec<_> {
        let layers = db.inner.layers.read();
        layers.blocks.iter().map(|b| b.path().to_owned()).collect()
    };
    // Host a's points in the first flush's blocks, b's in the second's.
    let mut flushed = Vec::new();
    for (host, base) in [("a", old), ("b", old + 200 * 60_000)] {
        write_all(
            &db,
            (0..100)
                .map(|i| point(host, base + i * 60_000, i))
                .collect(),
        )?;
        db.flush()?;
        let before = flushed.iter().map(Vec::len).sum::<usize>();
        flushed.push(paths(&db).split_off(before));
    }
    let (Some(bad), Some(newest)) = (flushed[0].first(), flushed[1].last()) else {
        panic!("each flush should write a block: {flushed:?}");
    };
    // Flip a byte of the first chunk of one of a's blocks.
    let mut bytes = fs::read(bad).map_err(|e| Error::io("read", bad, e))?;
    bytes[12] ^= 0x40;
    fs::write(bad, &bytes).map_err(|e| Error::io("write", bad, e))?;
    db.set_retention_secs(7 * 86_400)?;
    // A compaction that reaches the damaged block fails on it as well.
    if let Err(e) = db.compact(false) {
        assert!(
            matches!(&e, Error::Corrupt { path, .. } if path == bad),
            "{e}"
        );
    }
    let kept: Vec<_> = db
        .inner
        .layers
        .read()
        .blocks
        .iter()
        .map(|b| (b.path().to_owned(), b.rollups_only))
        .collect();
    // The others became one rollups-only block under the newest's name;
    // the damaged one stays as written.
    assert_eq!(kept, vec![(bad.clone(), false), (newest.clone(), true)]);
    assert_eq!(fs::read(bad).map_err(|e| Error::io("read", bad, e))?, bytes);
    let whole = BTreeMap::from([("a".to_owned(), 100), ("b".to_owned(), 100)]);
    assert_eq!(summarised(&db, old, old + 300 * 60_000)?, whole);
    assert!(snapshot(&db).is_empty());
    engine.close();
    Ok(())
}
