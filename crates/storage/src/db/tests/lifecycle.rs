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
