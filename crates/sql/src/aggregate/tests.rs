//! The folded scan against DataFusion's own aggregation: the rule fires
//! on the dashboard shape and on nothing it cannot answer exactly, and on
//! random data (overwrites, out-of-order writes, points in blocks and in
//! the head, series without a grouped tag, long and double fields) both
//! give the same rows.

use crate::{Cell, Options, fuzz::width, run, run_with};
use std::sync::Arc;
use std::time::Duration;
use sundial_model::{FieldValue, SeriesKey, ValueInput, WritePoint};
use sundial_storage::{Config, Db, FsyncPolicy};

const START: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

fn opts() -> Options {
    Options {
        max_rows: 1_000_000,
        max_scan_points: 10_000_000,
        timeout: Duration::from_secs(30),
        memory_bytes: 256 << 20,
        bucket_width: width,
    }
}

/// splitmix64: the data of one seed, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Metric `m`: six hosts, half of them in a `dc`; fields `v` (doubles),
/// `n` (longs) and `s` (text), written in shuffled batches with
/// overwrites, some flushed to a block between batches.
fn random_db(dir: &std::path::Path, seed: u64) -> anyhow::Result<Db> {
    let db = Db::open(Config {
        data_dir: dir.to_owned(),
        fsync: FsyncPolicy::Buffered,
        ..Config::default()
    })?;
    let mut rng = Rng(seed);
    let tags: Vec<Vec<(String, String)>> = (0..6)
        .map(|h| {
            let mut tags = vec![("host".to_owned(), format!("h{h}"))];
            if h % 2 == 0 {
                tags.push(("dc".to_owned(), format!("dc{}", h % 4)));
            }
            tags
        })
        .collect();
    let keys: Vec<Arc<SeriesKey>> = tags
        .iter()
        .map(|t| Arc::new(SeriesKey::new("m", t.clone())))
        .collect();
    // Metrics `one` and `words`: the same series with one field, `v`
    // (doubles) and `w` (text).
    let series_of = |metric: &str| -> Vec<Arc<SeriesKey>> {
        tags.iter()
            .map(|t| Arc::new(SeriesKey::new(metric, t.clone())))
            .collect()
    };
    let (ones, words) = (series_of("one"), series_of("words"));
    for round in 0..4 {
        let mut points = Vec::new();
        for _ in 0..400 {
            let host = rng.below(6) as usize;
            let key = &keys[host];
            // Minutes over 3 h, in any order; repeats overwrite.
            let ts = START + rng.below(180) as i64 * MINUTE + rng.below(3) as i64 * 1000;
            let point = |field: &str, value| WritePoint {
                series: key.clone(),
                field: field.into(),
                timestamp: ts,
                value: ValueInput::Typed(value),
            };
            match rng.below(3) {
                0 => points.push(point(
                    "v",
                    FieldValue::Double(rng.below(10_000) as f64 / 7.0 - 500.0),
                )),
                1 => points.push(point(
                    "n",
                    FieldValue::Long(rng.below(1_000_000) as i64 - 400_000),
                )),
                _ => points.push(point("s", FieldValue::String(format!("t{}", rng.below(5))))),
            }
            if rng.below(2) == 0 {
                points.push(WritePoint {
                    series: ones[host].clone(),
                    field: "v".into(),
                    timestamp: ts + rng.below(2) as i64 * MINUTE,
                    value: ValueInput::Typed(FieldValue::Double(rng.below(1000) as f64 / 3.0)),
                });
            }
            if rng.below(4) == 0 {
                points.push(WritePoint {
                    series: words[host].clone(),
                    field: "w".into(),
                    timestamp: ts,
                    value: ValueInput::Typed(FieldValue::String(format!("w{}", rng.below(3)))),
                });
            }
        }
        let written = db.write(points, false)?;
        written.commit.wait_blocking()?;
        if round % 2 == 0 {
            db.flush()?;
        }
    }
    Ok(db)
}

/// Rows as sorted text, doubles to 9 significant digits: the fold adds
/// doubles in another order than DataFusion.
fn normalised(rows: &[Vec<Cell>]) -> Vec<String> {
    let mut out = crate::row_text(rows);
    out.sort();
    out
}

/// Whether the optimised plan of `sql` computes its aggregate in the scan.
fn folded(db: &Db, sql: &str) -> anyhow::Result<bool> {
    Ok(folded_when(db, sql)?.1)
}

/// Whether the plan of `sql` computes its aggregate in the scan once
/// analysed (before the optimizer), and once optimised.
fn folded_when(db: &Db, sql: &str) -> anyhow::Result<(bool, bool)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let prepared = crate::rewrite::prepare(sql)?;
    let budget = Arc::new(crate::Budget {
        points: Default::default(),
        max_points: 1_000_000,
        deadline: std::time::Instant::now() + Duration::from_secs(10),
        ordered: prepared.ordered,
        partitions: 2,
    });
    let state = crate::session(
        crate::remote::Store::Local(db.clone()),
        budget,
        &opts(),
        true,
    )?;
    let plan = runtime.block_on(crate::plan(&state, prepared.statement))?;
    let analysed =
        state
            .analyzer()
            .execute_and_check(plan.clone(), state.config_options(), |_, _| {})?;
    let optimised = state.optimize(&plan)?;
    let has_fold = |p: &datafusion::logical_expr::LogicalPlan| {
        p.display_indent().to_string().contains("sundial_aggregate")
    };
    Ok((has_fold(&analysed), has_fold(&optimised)))
}

const END: i64 = START + 180 * MINUTE;

#[test]
fn the_rule_takes_the_dashboard_shape_and_nothing_it_cannot_answer() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = random_db(dir.path(), 7)?;
    let range = format!("time >= {START} and time < {END}");
    let taken = [
        format!(
            "select host, time_bucket(time, '1 hour') as h, avg(v) from m where {range} group by host, time_bucket(time, '1 hour')"
        ),
        "select dc, count(s), max(n), sum(v) from m group by dc".to_owned(),
        format!("select min(n) as lo, max(v) as hi from m where host in ('h1', 'h2') and {range}"),
        "select host, avg(n) from m where host = 'h3' group by host order by host".to_owned(),
        "select host, count(*) from one group by host".to_owned(),
    ];
    // Folded before the optimizer runs, which then has little to do.
    for sql in &taken {
        assert_eq!(folded_when(&db, sql)?, (true, true), "{sql}");
    }
    // Conditions the optimizer simplifies into bounds are folded after it.
    let simplified = format!("select host, max(n) from m where not (time < {START}) group by host");
    assert_eq!(folded_when(&db, &simplified)?, (false, true));
    // A condition above the aggregate is left for the optimizer to push
    // into it, where it narrows the scan: the fold reads one host's points.
    let having = "select host, max(n) from m group by host having host = 'h3'";
    let in_where = "select host, max(n) from m where host = 'h3' group by host";
    assert_eq!(folded_when(&db, having)?, (false, true));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (having, in_where) = (
        runtime.block_on(run(&db, having, opts()))?,
        runtime.block_on(run(&db, in_where, opts()))?,
    );
    assert_eq!(having.cells(), in_where.cells());
    assert_eq!(having.scanned_points, in_where.scanned_points);
    // An aggregate in a subquery is left for the optimizer too.
    let nested =
        "select * from (select host, max(n) as top from m group by host) t where host = 'h3'";
    assert_eq!(folded_when(&db, nested)?, (false, true));
    let left = [
        // A condition on a value, DISTINCT, an expression, count(*) over
        // three fields, a text field under sum, grouping by the raw time.
        "select host, avg(v) from m where v > 3 group by host".to_owned(),
        "select count(distinct n) from m".to_owned(),
        "select host, avg(v + 1) from m group by host".to_owned(),
        "select host, count(*) from m group by host".to_owned(),
        "select time, max(n) from m group by time".to_owned(),
        "select host, max(n) from m where host != 'h1' group by host".to_owned(),
        "select host, max(n) from m where time > 1.5 group by host".to_owned(),
    ];
    for sql in &left {
        assert!(!folded(&db, sql)?, "folded: {sql}");
    }
    Ok(())
}

#[test]
fn folded_aggregates_equal_datafusions_on_random_data() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let statements = [
        format!(
            "select host, time_bucket(time, '10 minutes') as b, avg(v), count(v), min(n), max(n), sum(n), sum(v), min(v), max(v), avg(n) \
             from m where time >= {} and time <= {} group by host, time_bucket(time, '10 minutes')",
            START + 7 * MINUTE,
            END - 13 * MINUTE
        ),
        "select dc, time_bucket(timestamp, '1 hour'), count(s), count(n), max(v) from m group by dc, time_bucket(timestamp, '1 hour')".to_owned(),
        "select dc, host, sum(n), avg(v) from m where host in ('h0', 'h2', 'h5') group by dc, host".to_owned(),
        "select count(v), min(v), max(n) from m".to_owned(),
        // No point matches: still one row.
        "select count(v), sum(n), avg(v) from m where host = 'nobody'".to_owned(),
        format!("select time_bucket(time, '7 minutes') as b, sum(v) from m where time between {START} and {} and dc = 'dc2' group by b", START + 100 * MINUTE),
        "select host, time_bucket(time, '10 minutes'), count(*), count(1), avg(v) from one group by host, time_bucket(time, '10 minutes')".to_owned(),
        "select count(*) from one where host = 'nobody'".to_owned(),
        format!("select host, count('x'), count(true) from one where time >= {START} and time < {} group by host", START + 90 * MINUTE),
        "select dc, time_bucket(time, '1 hour'), count(*) from words group by dc, time_bucket(time, '1 hour')".to_owned(),
    ];
    for seed in 0..12u64 {
        let dir = tempfile::tempdir()?;
        let db = random_db(dir.path(), seed)?;
        for sql in &statements {
            assert!(folded(&db, sql)?, "not folded: {sql}");
            let fast = runtime.block_on(run(&db, sql, opts()))?;
            let plain = runtime.block_on(run_with(
                crate::remote::Store::Local(db.clone()),
                sql,
                opts(),
                false,
            ))?;
            assert_eq!(fast.columns, plain.columns, "seed {seed}: {sql}");
            assert!(!plain.is_empty(), "seed {seed}: {sql} has no rows");
            assert_eq!(
                normalised(&fast.cells()),
                normalised(&plain.cells()),
                "seed {seed}: {sql}"
            );
            assert_eq!(fast.scanned_points > 0, plain.scanned_points > 0);
        }
        db.close();
    }
    Ok(())
}
