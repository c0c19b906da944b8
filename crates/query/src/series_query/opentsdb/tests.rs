use super::bucket::Keep;
use super::*;
use sundial_model::{Buckets, Downsample, FillPolicy, ValueInput, WritePoint};

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

const DAY: i64 = 86_400_000;
const STEP: i64 = 60_000;

/// The value series `s` has at `t`. Series 0 holds Doubles with zeros and,
/// on the second day, an infinity (its chunk cannot stand for a sum);
/// series 1 Doubles with a NaN on the second day (its chunk cannot stand
/// for anything: the functions skip NaN); series 2 Longs, past 2^53 on the
/// second day (their doubles are not exact: no sum from statistics).
fn stored(s: usize, t: i64) -> FieldValue {
    let minute = t / STEP;
    let wave = (minute as f64 * 0.37 + s as f64 * 5.0).sin() * 100.0;
    match s {
        0 if t == DAY + 100 * STEP => FieldValue::Double(f64::INFINITY),
        0 if minute % 5 == 0 => FieldValue::Double(0.0),
        1 if t == DAY + 7 * STEP => FieldValue::Double(f64::NAN),
        2 if t >= DAY && minute % 97 == 0 => FieldValue::Long((1 << 60) + minute),
        2 => FieldValue::Long(wave as i64),
        _ => FieldValue::Double(wave),
    }
}

/// Three series over two days, one flush per day: each day's chunks in
/// its own block.
fn two_day_db() -> std::result::Result<(tempfile::TempDir, Db), Box<dyn std::error::Error>> {
    two_day_db_with(Vec::new())
}

/// [`two_day_db`] written under presampling `rules`.
fn two_day_db_with(
    rules: Vec<sundial_storage::PresamplingRule>,
) -> std::result::Result<(tempfile::TempDir, Db), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Db::open(sundial_storage::Config {
        data_dir: dir.path().to_owned(),
        ..Default::default()
    })?;
    db.set_presampling_rules(rules)?;
    for day in 0..2 {
        let mut batch = Vec::new();
        for s in 0..3 {
            let key = std::sync::Arc::new(SeriesKey::new(
                "cpu",
                vec![("host".into(), format!("h{s}"))],
            ));
            for t in (day * DAY..(day + 1) * DAY).step_by(STEP as usize) {
                batch.push(WritePoint {
                    series: key.clone(),
                    field: "value".into(),
                    timestamp: t,
                    value: ValueInput::Typed(stored(s, t)),
                });
            }
        }
        db.write(batch, false)?.commit.wait_blocking()?;
        db.flush()?;
    }
    Ok((dir, db))
}

fn query(ds: Downsample, end: Timestamp) -> Query {
    Query {
        metric: "cpu".into(),
        field: "value".into(),
        tags: Vec::new(),
        group_by: Vec::new(),
        start: 0,
        end,
        aggregator: Aggregator::None,
        downsample: Some(ds),
        rate: None,
        explicit_tags: false,
        pre_filter: None,
        only_series: None,
    }
}

/// Runs `ds` over `[start, end]` and checks each series against
/// downsampling the values written there.
fn matches_the_values(
    db: &Db,
    ds: &Downsample,
    (start, end): (Timestamp, Timestamp),
) -> TestResult {
    let mut q = query(ds.clone(), end);
    q.start = start;
    let budget = Budget::new(std::time::Duration::from_secs(60), usize::MAX);
    let got = execute(db, &q, &budget)?;
    assert_eq!(got.len(), 3);
    for (s, result) in got.iter().enumerate() {
        let written: Vec<(Timestamp, FieldValue)> = (0..2 * DAY)
            .step_by(STEP as usize)
            .filter(|t| (start..=end).contains(t))
            .map(|t| (t, stored(s, t)))
            .collect();
        let want = downsample::downsample(&written, ds, start, end, MAX_FILLED)?;
        assert_eq!(text(&result.points), text(&want), "{ds:?} h{s}");
        assert_eq!(result.raw_points, 3 * written.len());
    }
    Ok(())
}

/// NaN-aware comparison text of a series' points.
fn text(points: &[(Timestamp, FieldValue)]) -> String {
    format!("{points:?}")
}

/// Every function that streams gives what reducing the written values
/// gives.
pub(in crate::series_query) const STREAMING: [Aggregator; 14] = [
    Aggregator::Sum,
    Aggregator::ZimSum,
    Aggregator::PfSum,
    Aggregator::Avg,
    Aggregator::Min,
    Aggregator::Max,
    Aggregator::MimMin,
    Aggregator::MimMax,
    Aggregator::Count,
    Aggregator::First,
    Aggregator::Last,
    Aggregator::Mult,
    Aggregator::Diff,
    Aggregator::SquareSum,
];

/// Values decoded and statistics taken, and points covered, downsampling
/// every series of the database.
fn reads(db: &Db, ds: &Downsample, end: Timestamp) -> Result<(usize, usize)> {
    db.read(|view| {
        let (mut read, mut covered) = (0, 0);
        for id in select(&view, "cpu", &[])? {
            let d = streaming::downsample_column(&view, id, "value", ds, (0, end), MAX_FILLED)?
                .ok_or(Error::Internal("a numeric column"))?;
            read += d.read;
            covered += d.covered;
        }
        Ok((read, covered))
    })
}

/// What downsampling [`two_day_db`] with `function` may read of its
/// `covered` points when chunks are taken from statistics: sums decode
/// the second day's chunks that hold the infinity, the NaN and the large
/// Longs, the others only the NaN's.
fn most_read(function: Aggregator, covered: usize) -> usize {
    match Keep::of(function) {
        Some(Keep::Sum) => covered * 3 / 4,
        _ => covered / 2,
    }
}

/// Chunk statistics give what reducing every written value gives, for
/// every function that takes them, with each fill policy, for buckets
/// that hold whole chunks (1d, all), buckets that split them (1h) and a
/// chunk with a NaN (read, since the reductions skip NaN).
#[test]
fn statistics_answer_as_the_values_do() -> TestResult {
    let (_dir, db) = two_day_db()?;
    let end = 3 * DAY - 1;
    let summarised = db.read(|view| -> Result<usize> {
        let mut n = 0;
        for id in select(&view, "cpu", &[])? {
            view.visit_numeric_parts(id, "value", 0, end, &mut |part| {
                n += usize::from(matches!(part, sundial_storage::NumericPart::Chunk(_)));
                false
            })?;
        }
        Ok(n)
    })?;
    // Blocks cut a day into several chunks; each lies wholly in the range.
    assert!(summarised >= 6, "{summarised} chunks summarised");
    let buckets = [Buckets::Fixed(DAY), Buckets::Fixed(3_600_000), Buckets::All];
    let fills = [FillPolicy::None, FillPolicy::Zero, FillPolicy::NaN];
    for function in STREAMING {
        for b in &buckets {
            for fill in fills {
                let ds = Downsample {
                    buckets: b.clone(),
                    function,
                    fill,
                };
                matches_the_values(&db, &ds, (0, end))?;
                let (read, covered) = reads(&db, &ds, end)?;
                let takes = !matches!(function, Aggregator::Mult | Aggregator::SquareSum);
                if takes && *b != Buckets::Fixed(3_600_000) {
                    assert!(
                        read < most_read(function, covered),
                        "{ds:?}: read {read} of {covered}"
                    );
                } else {
                    assert!(read >= covered, "{ds:?}: read {read} of {covered}");
                }
            }
        }
    }
    Ok(())
}

/// A presampling rule for `cpu` on the epoch's hours.
fn hourly_rule() -> sundial_storage::PresamplingRule {
    sundial_storage::PresamplingRule {
        id: "hourly".into(),
        definition: serde_json::Value::Null,
        metric: Some("cpu".into()),
        tags: Vec::new(),
        anchor: 0,
        width: 3_600_000,
    }
}

/// With a presampling rule on the hour, hourly downsampling takes the
/// chunks' presampled buckets, and answers as the values do.
#[test]
fn presampled_buckets_answer_as_the_values_do() -> TestResult {
    let (_dir, db) = two_day_db_with(vec![hourly_rule()])?;
    let end = 2 * DAY - 1;
    for function in STREAMING {
        for fill in [FillPolicy::None, FillPolicy::Zero] {
            let ds = Downsample {
                buckets: Buckets::Fixed(3_600_000),
                function,
                fill,
            };
            matches_the_values(&db, &ds, (0, end))?;
            let (read, covered) = reads(&db, &ds, end)?;
            if matches!(function, Aggregator::Mult | Aggregator::SquareSum) {
                assert!(read >= covered, "{ds:?}: read {read} of {covered}");
            } else {
                assert!(
                    read < most_read(function, covered),
                    "{ds:?}: read {read} of {covered}"
                );
            }
        }
    }
    Ok(())
}

/// Every function that streams gives what reducing the written values
/// gives, over buckets that split chunks, calendar-like edges and one
/// bucket over all, from a start inside a bucket (its partial bucket is
/// dropped), with each fill policy.
#[test]
fn streaming_answers_as_the_values_do() -> TestResult {
    let (_dir, db) = two_day_db()?;
    let (start, end) = (5 * STEP + 1, 2 * DAY - 1);
    let edges: Vec<Timestamp> = (0..=12).map(|i| i * 6 * 3_600_000 - 3 * STEP).collect();
    let buckets = [
        Buckets::Fixed(10 * STEP),
        Buckets::Fixed(3_600_000),
        Buckets::Edges(edges.into()),
        Buckets::All,
    ];
    for function in STREAMING {
        for b in &buckets {
            for fill in [FillPolicy::None, FillPolicy::Zero, FillPolicy::NaN] {
                let ds = Downsample {
                    buckets: b.clone(),
                    function,
                    fill,
                };
                assert!(streaming::streams(&ds));
                matches_the_values(&db, &ds, (start, end))?;
            }
        }
    }
    Ok(())
}

/// A series' points.
type Points = Vec<(Timestamp, FieldValue)>;

/// Each series downsampled with every streaming function on an epoch
/// grid of 10 minutes and of an hour (a rule's presampled buckets may be
/// on it) answers as reducing the values stored in `[start, end]`; for
/// the presampling property test, whose data is Longs of any size,
/// Doubles and Booleans, overwritten and out of order.
pub(in crate::series_query) fn downsampling_matches_stored_values(
    db: &Db,
    (start, end): (Timestamp, Timestamp),
) -> std::result::Result<(), String> {
    let stored = db
        .read(|view| -> Result<Vec<(String, Points)>> {
            let mut out = Vec::new();
            let ids = match select(&view, "cpu", &[]) {
                // Nothing written yet.
                Err(Error::UnknownMetric { .. }) => return Ok(out),
                ids => ids?,
            };
            for id in ids {
                let Some(key) = view.key(id) else { continue };
                let host = key.tag("host").unwrap_or_default().to_owned();
                out.push((host, view.points(id, "value", start, end)?));
            }
            Ok(out)
        })
        .map_err(|e| e.to_string())?;
    if stored.is_empty() {
        return Ok(());
    }
    for function in STREAMING {
        for width in [600_000, 3_600_000] {
            let ds = Downsample {
                buckets: Buckets::Fixed(width),
                function,
                fill: FillPolicy::None,
            };
            let got = downsampled_by_host(db, &ds, (start, end))?;
            for (host, points) in &stored {
                let want = downsample::downsample(points, &ds, start, end, MAX_FILLED)
                    .map_err(|e| e.to_string())?;
                let got = got.get(host).cloned().unwrap_or_default();
                let want = if want.is_empty() {
                    String::new()
                } else {
                    text(&want)
                };
                if got != want {
                    return Err(format!("{ds:?} host {host}: got {got}, want {want}"));
                }
            }
        }
    }
    Ok(())
}

/// `cpu`'s series downsampled by `ds` over `[start, end]`, as comparison
/// text per host.
pub(in crate::series_query) fn downsampled_by_host(
    db: &Db,
    ds: &Downsample,
    (start, end): (Timestamp, Timestamp),
) -> std::result::Result<std::collections::BTreeMap<String, String>, String> {
    let mut q = query(ds.clone(), end);
    q.start = start;
    let budget = Budget::new(std::time::Duration::from_secs(60), usize::MAX);
    let got = execute(db, &q, &budget).map_err(|e| e.to_string())?;
    Ok(got
        .iter()
        .map(|r| {
            let host = r.tags.iter().find(|(k, _)| k == "host");
            let host = host.map(|(_, v)| v.to_string()).unwrap_or_default();
            (host, text(&r.points))
        })
        .collect())
}

/// First, last and diff take a chunk's presampled buckets and points
/// beside the chunk in the same buckets (earlier in its first hour, later
/// in its last) in time order.
#[test]
fn presampled_ends_order_against_points_beside_the_chunk() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = Db::open(sundial_storage::Config {
        data_dir: dir.path().to_owned(),
        ..Default::default()
    })?;
    db.set_presampling_rules(vec![hourly_rule()])?;
    let key = std::sync::Arc::new(SeriesKey::new("cpu", vec![("host".into(), "h0".into())]));
    let write = |times: &mut dyn Iterator<Item = i64>| -> TestResult {
        let batch = times
            .map(|t| WritePoint {
                series: key.clone(),
                field: "value".into(),
                timestamp: t,
                value: ValueInput::Typed(stored(0, t)),
            })
            .collect();
        db.write(batch, false)?.commit.wait_blocking()?;
        Ok(())
    };
    // Three sources, none overlapping another's span: two blocks, the head.
    write(&mut (20 * STEP..190 * STEP).step_by(STEP as usize))?;
    db.flush()?;
    write(&mut std::iter::once(210 * STEP))?;
    db.flush()?;
    write(&mut std::iter::once(5 * STEP))?;
    let end = 4 * 3_600_000 - 1;
    for function in [Aggregator::First, Aggregator::Last, Aggregator::Diff] {
        let ds = Downsample {
            buckets: Buckets::Fixed(3_600_000),
            function,
            fill: FillPolicy::None,
        };
        let (read, covered) = reads(&db, &ds, end)?;
        assert!(read < covered / 10, "{ds:?}: read {read} of {covered}");
        let mut q = query(ds.clone(), end);
        q.start = 0;
        let budget = Budget::new(std::time::Duration::from_secs(60), usize::MAX);
        let got = execute(&db, &q, &budget)?;
        let written: Vec<(Timestamp, FieldValue)> = (5..6)
            .chain(20..190)
            .chain(210..211)
            .map(|m| (m * STEP, stored(0, m * STEP)))
            .collect();
        let want = downsample::downsample(&written, &ds, 0, end, MAX_FILLED)?;
        assert_eq!(got.len(), 1);
        assert_eq!(text(&got[0].points), text(&want), "{ds:?}");
    }
    Ok(())
}
