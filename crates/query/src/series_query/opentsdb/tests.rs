use super::*;
use sundial_model::{Buckets, Downsample, FillPolicy, ValueInput, WritePoint};

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

const DAY: i64 = 86_400_000;
const STEP: i64 = 60_000;

/// The value series `s` has at `t`: a NaN in series 1 on the second day,
/// so that chunk cannot stand for its points.
fn value(s: usize, t: i64) -> f64 {
    if s == 1 && t == DAY + 7 * STEP {
        return f64::NAN;
    }
    ((t / STEP) as f64 * 0.37 + s as f64 * 5.0).sin() * 100.0
}

/// Three series over two days, one flush per day: each day's chunks in
/// its own block.
fn two_day_db() -> std::result::Result<(tempfile::TempDir, Db), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Db::open(sundial_storage::Config {
        data_dir: dir.path().to_owned(),
        ..Default::default()
    })?;
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
                    value: ValueInput::Typed(FieldValue::Double(value(s, t))),
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
            .map(|t| (t, FieldValue::Double(value(s, t))))
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

/// Count, min and max from chunk statistics give what reducing every
/// written value gives, with each fill policy, for buckets that hold whole
/// chunks (1d, all), buckets that split them (1h) and a NaN chunk.
#[test]
fn statistics_answer_as_the_values_do() -> TestResult {
    let (_dir, db) = two_day_db()?;
    let end = 3 * DAY - 1;
    let summarised = db.read(|view| -> Result<usize> {
        let ids = select(&view, "cpu", &[])?;
        let mut n = 0;
        for id in ids {
            n += view.column_parts(id, "value", 0, end)?.summaries.len();
        }
        Ok(n)
    })?;
    // Blocks cut a day into several chunks; each lies wholly in the range.
    assert!(summarised >= 6, "{summarised} chunks summarised");
    let functions = [
        Aggregator::Count,
        Aggregator::Min,
        Aggregator::Max,
        Aggregator::MimMin,
        Aggregator::MimMax,
    ];
    let buckets = [Buckets::Fixed(DAY), Buckets::Fixed(3_600_000), Buckets::All];
    let fills = [FillPolicy::None, FillPolicy::Zero, FillPolicy::NaN];
    for function in functions {
        for b in &buckets {
            for fill in fills {
                let ds = Downsample {
                    buckets: b.clone(),
                    function,
                    fill,
                };
                matches_the_values(&db, &ds, (0, end))?;
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
    let functions = [
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
    let edges: Vec<Timestamp> = (0..=12).map(|i| i * 6 * 3_600_000 - 3 * STEP).collect();
    let buckets = [
        Buckets::Fixed(10 * STEP),
        Buckets::Fixed(3_600_000),
        Buckets::Edges(edges.into()),
        Buckets::All,
    ];
    for function in functions {
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
