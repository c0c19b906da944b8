//! Rollup tiers (`storage.rollup_secs`): queries on a multiple of a tier
//! answer from its buckets exactly as from the points, and past the raw
//! retention the tiers still answer them (`rollup_retention_secs`).

use super::opentsdb::tests::{STREAMING, downsampled_by_host};
use super::presampled_tests::query;
use super::{Limits, execute_series};
use std::collections::BTreeMap;
use sundial_model::series_query::{QueryOutput, RangeFn};
use sundial_model::{
    Buckets, Downsample, FieldValue, FillPolicy, SeriesKey, ValueInput, WritePoint,
};
use sundial_storage::Db;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// The tiers: 10 minutes and an hour.
const TIERS: [u64; 2] = [600, 3600];
/// Query widths the tiers refine (each a multiple of one), then one they
/// do not.
const REFINED: [i64; 5] = [10 * MINUTE, 20 * MINUTE, HOUR, 2 * HOUR, 6 * HOUR];
const UNREFINED: i64 = 7 * MINUTE;

fn open(dir: &std::path::Path) -> Result<Db, sundial_storage::Error> {
    Db::open(sundial_storage::Config {
        data_dir: dir.to_owned(),
        rollup_secs: TIERS.to_vec(),
        // Kept forever once the raw points expire.
        rollup_retention_secs: Some(0),
        ..Default::default()
    })
}

/// The value host `h` gets at `t` in write `round`: Longs, Doubles and
/// Booleans, so sums take every exact path.
fn value(h: i64, t: i64, round: i64) -> FieldValue {
    let k = (t / 10_000 + 7 * h + 13 * round) % 23;
    match k % 3 {
        0 => FieldValue::Long(k * 1000 - 5000 + round),
        1 => FieldValue::Double(k as f64 * 0.37 - h as f64),
        _ => FieldValue::Bool(k % 2 == 0),
    }
}

/// Three hosts over six hours from `base` every 10 s, then rewrites of
/// every seventh point and late points out of order, in two flushes, then
/// compacted with the tiers.
fn write(db: &Db, base: i64) -> TestResult {
    for round in 0..2 {
        let mut batch = Vec::new();
        for h in 0..3 {
            let key = std::sync::Arc::new(SeriesKey::new(
                "cpu",
                vec![("host".into(), format!("h{h}"))],
            ));
            let mut times: Vec<i64> = (0..6 * HOUR)
                .step_by(10_000)
                .filter(|t| round == 0 || (t / 10_000) % 7 == 0)
                .map(|t| base + t)
                .collect();
            if round == 1 {
                times.reverse();
                times.extend((0..40).map(|i| base + i * 9 * MINUTE + 5_000));
            }
            for t in times {
                batch.push(WritePoint {
                    series: key.clone(),
                    field: "value".into(),
                    timestamp: t,
                    value: ValueInput::Typed(value(h, t, round)),
                });
            }
        }
        db.write(batch, false)?.commit.wait_blocking()?;
        db.flush()?;
    }
    db.compact(true)?;
    Ok(())
}

/// Every folded query and OpenTSDB downsampling on `width` over the six
/// hours, in comparison text.
fn answers(db: &Db, base: i64, width: i64, rollups: bool) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let end = base + 6 * HOUR - 1;
    for func in super::tests::FOLDED {
        for grouped in [false, true] {
            let mut q = query(func, (base, width), end, grouped);
            q.now = base + 7 * HOUR;
            let limits = Limits {
                rollups,
                ..Limits::default()
            };
            let mut got: QueryOutput = execute_series(db, &q, limits).map_err(|e| e.to_string())?;
            // What was read differs; what was covered must not.
            got.consumed_count = 0;
            out.push(format!("{func:?} {grouped} {got:?}"));
        }
    }
    if rollups {
        for function in STREAMING {
            let ds = Downsample {
                buckets: Buckets::Fixed(width),
                function,
                fill: FillPolicy::None,
            };
            let by_host: BTreeMap<String, String> = downsampled_by_host(db, &ds, (base, end))?;
            out.push(format!("{function:?} {by_host:?}"));
        }
    }
    Ok(out)
}

/// Asserts `got` is `want`, naming the first answer that differs.
fn same(got: &[String], want: &[String], width: i64) {
    assert_eq!(got.len(), want.len(), "width {width}");
    for (g, w) in got.iter().zip(want) {
        if g != w {
            let at = g.bytes().zip(w.bytes()).take_while(|(a, b)| a == b).count();
            let (g, w) = (
                g.get(at.saturating_sub(200)..).unwrap_or(g),
                w.get(at.saturating_sub(200)..).unwrap_or(w),
            );
            panic!("width {width}: got …{:.400}\nwant …{:.400}", g, w);
        }
    }
}

/// Folds on multiples of a tier answer as the points do, and once the
/// points are past the raw retention, the tiers alone answer the same;
/// queries the tiers cannot answer then find nothing, nor do reads of
/// points. After a restart too.
#[test]
fn rollup_tiers_answer_as_the_points_and_outlive_them() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let now = sundial_model::now_ms();
    let base = now - 10 * DAY - (now - 10 * DAY).rem_euclid(DAY);
    write(&db, base)?;
    let mut before = BTreeMap::new();
    for width in REFINED {
        let raw = answers(&db, base, width, false)?;
        let tiered = answers(&db, base, width, true)?;
        same(&tiered[..raw.len()], &raw, width);
        assert!(
            tiered.iter().any(|a| !a.contains("[]")),
            "width {width}: no answer has data"
        );
        before.insert(width, tiered);
    }
    // Raw points kept a week: the six hours (ten days old) expire.
    db.set_retention_secs(7 * 86_400)?;
    db.compact(false)?;
    let check = |db: &Db| -> TestResult {
        for width in REFINED {
            // Products and sums of squares are not in the buckets: no
            // answer rather than a partial one.
            let want: Vec<String> = before[&width]
                .iter()
                .map(|a| match a.split_once(' ') {
                    Some((f @ ("Mult" | "SquareSum"), _)) => format!("{f} {{}}"),
                    _ => a.clone(),
                })
                .collect();
            same(&answers(db, base, width, true)?, &want, width);
        }
        let end = base + 6 * HOUR;
        let (points, unrefined) = db.read(|view| -> Result<_, Box<dyn std::error::Error>> {
            let ids = view.select("cpu", &[])?;
            let mut points = 0;
            for id in &ids {
                points += view.points(*id, "value", base, end)?.len();
            }
            Ok((points, ids.len()))
        })?;
        assert_eq!(points, 0, "raw points past the retention");
        assert_eq!(unrefined, 3);
        let ds = Downsample {
            buckets: Buckets::Fixed(UNREFINED),
            function: sundial_model::Aggregator::Avg,
            fill: FillPolicy::None,
        };
        let got = downsampled_by_host(db, &ds, (base, end))?;
        assert!(got.values().all(|t| t == "[]"), "{got:?}");
        Ok(())
    };
    check(&db)?;
    db.close();
    let db = open(dir.path())?;
    check(&db)?;
    db.close();
    Ok(())
}

/// Without `rollup_retention_secs` the tiers go with the raw points.
#[test]
fn rollups_expire_with_the_points_by_default() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = Db::open(sundial_storage::Config {
        data_dir: dir.path().to_owned(),
        rollup_secs: TIERS.to_vec(),
        ..Default::default()
    })?;
    let now = sundial_model::now_ms();
    let base = now - 10 * DAY - (now - 10 * DAY).rem_euclid(DAY);
    write(&db, base)?;
    assert_eq!(db.block_count(), 1);
    db.set_retention_secs(7 * 86_400)?;
    db.compact(false)?;
    assert_eq!(db.block_count(), 0);
    let q = query(RangeFn::Count, (base, HOUR), base + 6 * HOUR, false);
    let got = execute_series(&db, &q, Limits::default())?;
    assert_eq!(got.raw_count, 0);
    db.close();
    Ok(())
}

/// `cpu`'s point count per bucket of `width` from `start` to `end`, as
/// (bucket, row text).
fn counts(
    db: &Db,
    (start, end): (i64, i64),
    width: i64,
) -> Result<Vec<(i64, String)>, Box<dyn std::error::Error>> {
    Ok(counted(db, (start, end), width)?.0)
}

/// [`counts`], and the raw count the answer reports.
#[allow(clippy::type_complexity)]
fn counted(
    db: &Db,
    (start, end): (i64, i64),
    width: i64,
) -> Result<(Vec<(i64, String)>, u64), Box<dyn std::error::Error>> {
    let mut q = query(RangeFn::Count, (start, width), end, false);
    q.now = end + DAY;
    q.aggregators.truncate(1);
    let out = execute_series(db, &q, Limits::default())?;
    let rows = out.groups.iter().flat_map(|g| &g.rows);
    let rows = rows.map(|r| (r.timestamp, format!("{r:?}"))).collect();
    Ok((rows, out.raw_count))
}

/// Past the raw retention, a bucket that some rollups cannot answer whole
/// (the range's end cuts a chunk) is left out, not answered from the
/// chunks that could be.
#[test]
fn a_bucket_the_rollups_answer_in_part_is_left_out() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let week = 7 * DAY;
    // Chunks end at Monday 00:00 UTC (the epoch was a Thursday).
    let ten_days_ago = sundial_model::now_ms() - 10 * DAY;
    let monday = ten_days_ago - (ten_days_ago - 4 * DAY).rem_euclid(week);
    let key = std::sync::Arc::new(SeriesKey::new("cpu", vec![("host".into(), "h0".into())]));
    let batch = (-24..24)
        .map(|i| WritePoint {
            series: key.clone(),
            field: "value".into(),
            timestamp: monday + i * 10 * MINUTE,
            value: ValueInput::Typed(FieldValue::Long(i)),
        })
        .collect();
    db.write(batch, false)?.commit.wait_blocking()?;
    db.flush()?;
    db.compact(true)?;
    let (from, to) = (monday - 4 * HOUR, monday + 4 * HOUR - 1);
    let count = |end: i64, width: i64| counts(&db, (from, end), width);
    let (hourly, daily) = (count(to, HOUR)?, count(to, DAY)?);
    assert_eq!((hourly.len(), daily.len()), (8, 1));
    db.set_retention_secs(7 * 86_400)?;
    db.compact(false)?;
    assert_eq!(count(to, HOUR)?, hourly);
    assert_eq!(count(to, DAY)?, daily);
    // The end cuts Monday's chunk: the day's one bucket goes whole, and
    // the hours before Monday stay; the raw count is what the answer
    // covers (six points an hour).
    let cut = monday + 90 * MINUTE;
    assert_eq!(counted(&db, (from, cut), DAY)?, (Vec::new(), 0));
    assert_eq!(counted(&db, (from, cut), HOUR)?, (hourly[..4].to_vec(), 24));
    db.close();
    Ok(())
}

/// A raw chunk reaching back past the raw retention: folds its tiers
/// refine take it whole (its older points included, as rollups would
/// answer them), and a fold that must decode it leaves out the buckets
/// the cut-off points fall in instead of answering them in part.
#[test]
fn a_chunk_across_the_raw_retention_answers_whole_or_not_at_all() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let now = sundial_model::now_ms();
    let base = now - 10 * DAY - (now - 10 * DAY).rem_euclid(DAY);
    write(&db, base)?;
    let end = base + 6 * HOUR - 1;
    let rows = |width: i64| counts(&db, (base, end), width);
    let (hours, sevens) = (rows(HOUR)?, rows(7 * MINUTE)?);
    assert_eq!(hours.len(), 6);
    // The retention now ends 190 minutes into the data, inside a
    // 7-minute bucket.
    let cutoff = base + 190 * MINUTE;
    let secs = (sundial_model::now_ms() - cutoff) / 1000;
    db.set_retention_secs(u64::try_from(secs)?)?;
    assert_eq!(rows(HOUR)?, hours, "the hours the tier refines stay whole");
    let after = rows(7 * MINUTE)?;
    let first = after.first().map_or(i64::MAX, |r| r.0);
    assert!(
        first >= cutoff - 1000,
        "a bucket before the cutoff: {first} < {cutoff}"
    );
    assert_eq!(after[..], sevens[sevens.len() - after.len()..]);
    db.close();
    Ok(())
}
