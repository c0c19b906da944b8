//! Issue 14, point 6: I/O faults injected through the file-system seam
//! (EIO on the Nth write, short writes, failed fsyncs, a full disk) in the
//! WAL, blocks and catalog, checked against a model: an acknowledged
//! point is never lost, a refused one never shows up (now or after a
//! crash), reads keep working, and writing resumes by itself.

use super::*;
use crate::error::ErrorClass;
use crate::vfs::{FaultKind, Faults, Op as FsOp, Rule, Vfs};
use std::time::{Duration, Instant};

fn faulty(dir: &std::path::Path, faults: &Arc<Faults>) -> Config {
    Config {
        vfs: Vfs::with_faults(faults.clone()),
        ..quiet(dir)
    }
}

/// Waits (bounded) until the WAL takes writes again.
fn recovered(db: &Db) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(20);
    while db.wal_failure().is_some() {
        if Instant::now() > until {
            return Err(Error::WalFailed {
                reason: "did not recover within 20 s".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// One write of distinct values: `(host, ts) -> value`.
fn batch(round: i64) -> Vec<(String, Timestamp, i64)> {
    (0..4)
        .map(|h| (format!("h{h}"), round, round * 10 + h))
        .collect()
}

/// Opens `dir` again (without faults) and checks it holds exactly `model`.
fn reopened_holds(dir: &std::path::Path, model: &Model, what: &str) -> Result<()> {
    let db = Db::open(quiet(dir))?;
    assert_eq!(&snapshot(&db), model, "{what}");
    db.close();
    Ok(())
}

/// Writes `round`; the model learns it only when acknowledged.
fn write_round(db: &Db, model: &mut Model, round: i64) -> bool {
    let pts = batch(round);
    let points = pts.iter().map(|(h, t, v)| point(h, *t, *v)).collect();
    match write_all(db, points) {
        Ok(()) => {
            for (h, t, v) in pts {
                model.insert((h, "value".into(), t), FieldValue::Long(v));
            }
            true
        }
        Err(e) => {
            assert_eq!(
                e.class(),
                ErrorClass::Busy,
                "a WAL failure is a busy answer: {e}"
            );
            false
        }
    }
}

/// Each fault of the WAL against the model, then a crash.
#[test]
fn wal_faults_never_ack_nor_keep_a_failed_write() -> Result<()> {
    let kinds = [
        ("EIO on a write", FsOp::Write, FaultKind::Io),
        (
            "short write",
            FsOp::Write,
            FaultKind::ShortWrite { keep: 7 },
        ),
        ("fsync failure", FsOp::Sync, FaultKind::Io),
        ("ENOSPC on a write", FsOp::Write, FaultKind::NoSpace),
    ];
    for (name, op, kind) in kinds {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
        let faults = Faults::new();
        let db = Db::open(faulty(dir.path(), &faults))?;
        let mut model = Model::new();
        let mut refused = 0;
        for round in 0..40 {
            if round == 10 {
                // Fail the third matching operation of the WAL from now
                // (zeroing a segment ahead counts as a write too).
                faults.add(Rule::new(op, "wal-", 2, 3, kind));
            }
            if round == 25 {
                faults.clear();
                recovered(&db)?;
            }
            if !write_round(&db, &mut model, round) {
                refused += 1;
            }
            // No refused point is visible, every acknowledged one is.
            assert_eq!(snapshot(&db), model, "{name}, round {round}");
        }
        assert!(refused > 0, "{name}: the fault refused no write");
        assert!(faults.injected() > 0, "{name}");
        // Writing resumed by itself after the faults were gone.
        assert!(
            model.contains_key(&("h0".into(), "value".into(), 39)),
            "{name}"
        );
        db.abandon();
        reopened_holds(dir.path(), &model, &format!("{name}, after a crash"))?;
    }
    Ok(())
}

/// A full disk: writes fail cleanly, reads work, and once space is back
/// writes and flushes go on by themselves.
#[test]
fn a_full_disk_refuses_writes_and_recovers() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let faults = Faults::new();
    let db = Db::open(faulty(dir.path(), &faults))?;
    let mut model = Model::new();
    for round in 0..5 {
        assert!(write_round(&db, &mut model, round));
    }
    db.flush()?;
    faults.set_space(Some(0));
    assert!(!write_round(&db, &mut model, 5));
    assert!(db.wal_failure().is_some());
    // Refused fast while failed, and reads go on.
    assert!(matches!(
        db.write(vec![point("h0", 6, 1)], false),
        Err(Error::WalFailed { .. })
    ));
    assert_eq!(snapshot(&db), model);
    assert!(
        db.flush().is_ok(),
        "nothing to flush: the failed write left no trace"
    );
    faults.set_space(None);
    recovered(&db)?;
    for round in 7..12 {
        assert!(write_round(&db, &mut model, round));
    }
    db.flush()?;
    assert_eq!(snapshot(&db), model);
    db.close();
    reopened_holds(dir.path(), &model, "after reopening")?;
    Ok(())
}

/// Faults in a flush (the block, the catalog, the flushed mark) leave the
/// points readable and in the WAL; the next flush succeeds.
#[test]
fn flush_faults_keep_every_point() -> Result<()> {
    for (name, rule) in [
        (
            "block write",
            Rule::new(FsOp::Write, "block-", 0, 1, FaultKind::NoSpace),
        ),
        (
            "block sync",
            Rule::new(FsOp::Sync, "block-", 0, 1, FaultKind::Io),
        ),
        (
            "catalog append",
            Rule::new(
                FsOp::Write,
                "series.cat",
                0,
                1,
                FaultKind::ShortWrite { keep: 3 },
            ),
        ),
        (
            "flushed mark",
            Rule::new(FsOp::Sync, "wal.flushed", 0, 1, FaultKind::Io),
        ),
    ] {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
        let faults = Faults::new();
        let db = Db::open(faulty(dir.path(), &faults))?;
        let mut model = Model::new();
        for round in 0..5 {
            assert!(write_round(&db, &mut model, round), "{name}");
        }
        faults.add(rule);
        assert!(db.flush().is_err(), "{name}: the flush must fail");
        assert_eq!(
            snapshot(&db),
            model,
            "{name}: readable after the failed flush"
        );
        for round in 5..8 {
            assert!(write_round(&db, &mut model, round), "{name}");
        }
        db.flush()?;
        assert_eq!(snapshot(&db), model, "{name}");
        db.abandon();
        reopened_holds(dir.path(), &model, &format!("{name}: after a crash"))?;
    }
    Ok(())
}

/// Random faults of every kind on every file, with flushes and crashes,
/// against the model (a few seeds here; `scripts/fault-soak N` runs N).
#[test]
fn random_faults_against_the_model() -> Result<()> {
    // 1055 and 1178 are what the soak found: a refused record the disk
    // would not truncate, then a crash; a segment start whose directory
    // sync failed, leaving its file behind.
    for seed in [1, 2, 3, 4, 5, 6, 1055, 1178] {
        random_run(seed, 60)?;
    }
    Ok(())
}

/// The long version for `scripts/fault-soak N`: N seeds (from
/// `SUNDIAL_FAULT_SEEDS`, default 200) of 120 rounds each.
#[test]
#[ignore = "long: run by scripts/fault-soak"]
fn random_faults_soak() -> Result<()> {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (first, count) = (
        env("SUNDIAL_FAULT_FIRST_SEED", 1000),
        env("SUNDIAL_FAULT_SEEDS", 200),
    );
    for seed in first..first + count {
        random_run(seed, 120).inspect_err(|e| eprintln!("seed {seed}: {e}"))?;
    }
    eprintln!(
        "fault soak: seeds {first}..{} (120 rounds each) held against the model",
        first + count
    );
    Ok(())
}

/// After a crash with an uncut failed record: refused `rounds` found
/// stored whole join the model; one stored in part is a failure.
fn adopt_whole_rounds(db: &Db, model: &mut Model, rounds: &[i64], seed: u64) {
    let now = snapshot(db);
    for &round in rounds {
        let pts = batch(round);
        let present = pts
            .iter()
            .filter(|(h, t, _)| now.contains_key(&(h.clone(), "value".into(), *t)))
            .count();
        assert!(
            present == 0 || present == pts.len(),
            "seed {seed}: refused round {round} came back in part"
        );
        if present == pts.len() {
            for (h, t, v) in pts {
                model.insert((h, "value".into(), t), FieldValue::Long(v));
            }
        }
    }
}

/// One random run: `rounds` writes with faults, flushes and crashes.
pub(crate) fn random_run(seed: u64, rounds: i64) -> Result<()> {
    let mut rng = seed;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let faults = Faults::new();
    let mut db = Db::open(faulty(dir.path(), &faults))?;
    let mut model = Model::new();
    let files = ["wal-", "block-", "series.cat", "wal.flushed", ""];
    let ops = [
        FsOp::Write,
        FsOp::Sync,
        FsOp::Create,
        FsOp::Rename,
        FsOp::Truncate,
    ];
    let kinds = [
        FaultKind::Io,
        FaultKind::NoSpace,
        FaultKind::ShortWrite { keep: 5 },
    ];
    let trace = std::env::var_os("SUNDIAL_FAULT_TRACE").is_some();
    let mut refused = Vec::new();
    for round in 0..rounds {
        let action = next(10);
        if trace {
            eprintln!(
                "round {round}: action {action}, injected so far {}",
                faults.injected()
            );
        }
        match action {
            0 => {
                let pick = |n: u64, k: usize| usize::try_from(n).unwrap_or(0) % k;
                let rule = Rule::new(
                    ops[pick(next(5), ops.len())],
                    files[pick(next(5), files.len())],
                    next(4),
                    1 + next(3),
                    kinds[pick(next(3), kinds.len())],
                );
                if trace {
                    eprintln!("  fault {rule:?}");
                }
                faults.add(rule);
            }
            1 => {
                // A flush may fail under faults; the points stay.
                let _ = db.flush();
            }
            2 => {
                faults.clear();
                // A refused record the disk would not even truncate may
                // come back with a crash (the one ambiguous outcome, like
                // a write whose answer was lost); whole or not at all.
                let uncut = db.wal_failure_uncut();
                let ambiguous = std::mem::take(&mut refused);
                db.abandon();
                db = Db::open(faulty(dir.path(), &faults))?;
                if uncut {
                    adopt_whole_rounds(&db, &mut model, &ambiguous, seed);
                }
            }
            3 => {
                faults.clear();
                recovered(&db)?;
            }
            _ => {}
        }
        let acked = write_round(&db, &mut model, round);
        if !acked {
            refused.push(round);
        }
        if trace {
            eprintln!(
                "  write acknowledged: {acked}, WAL failure: {:?}",
                db.wal_failure()
            );
        }
        assert_eq!(snapshot(&db), model, "seed {seed}, round {round}");
    }
    faults.clear();
    recovered(&db)?;
    db.flush()?;
    db.abandon();
    reopened_holds(dir.path(), &model, &format!("seed {seed}, at the end"))
}

/// A checksum error in the middle of a segment stops the start with an
/// error naming it; with `wal_skip_damaged` the intact records around it
/// are replayed and a copy is kept.
#[test]
fn damage_inside_a_wal_segment_is_reported() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(quiet(dir.path()))?;
    for ts in 1..=3 {
        write_all(&db, vec![point("a", ts, ts * 10)])?;
    }
    db.abandon();
    let last = *wal::list_segments(dir.path())?
        .last()
        .ok_or(Error::Closed)?;
    let path = wal::segment_path(dir.path(), last);
    let mut bytes = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    // Flip a byte in the second record's payload (the first defines the
    // series): 8 bytes of magic, then frames of an 8-byte header.
    let first_len = bytes
        .get(8..12)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes) as usize;
    let second = 8 + 8 + first_len;
    if let Some(b) = bytes.get_mut(second + 10) {
        *b ^= 0xff;
    }
    fs::write(&path, &bytes).map_err(|e| Error::io("write", &path, e))?;
    match Db::open(quiet(dir.path())) {
        Err(Error::DamagedWal { offset, .. }) => assert_eq!(offset, second as u64),
        other => panic!("expected the damage to stop the start, got {other:?}"),
    }
    let db = Db::open(Config {
        wal_skip_damaged: true,
        ..quiet(dir.path())
    })?;
    let got = snapshot(&db);
    let want: Model = [1, 3]
        .into_iter()
        .map(|ts| (("a".into(), "value".into(), ts), FieldValue::Long(ts * 10)))
        .collect();
    assert_eq!(got, want, "the records around the damage");
    let mut kept = path.into_os_string();
    kept.push(".damaged");
    assert!(std::path::Path::new(&kept).exists());
    db.close();
    Ok(())
}
