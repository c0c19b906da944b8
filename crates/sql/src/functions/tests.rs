//! The registered functions run through whole statements over the fuzz
//! fixture's database (`power`: watts = 50.5 k, amps = k; `cpu_idle`:
//! value = 10 k; k = 0..10, one row per minute).

use crate::fuzz::{fixture, width};
use crate::{Cell, Options, SqlError};
use std::time::Duration;

fn run(sql: &str) -> Result<Vec<Vec<Cell>>, SqlError> {
    let fixture = fixture().expect("the fixture database opens");
    let opts = Options {
        max_rows: 1000,
        max_scan_points: 10_000,
        timeout: Duration::from_secs(30),
        memory_bytes: 64 << 20,
        bucket_width: width,
    };
    let out = fixture
        .runtime
        .block_on(crate::run(&fixture.db, sql, opts))?;
    Ok(out.cells())
}

#[test]
fn if_evaluates_only_the_branch_a_row_takes() {
    // 1000 / 0 fails on integers; the row with value 0 never computes it.
    let rows = run("select if(value = 0, -1, 1000 / value) as v from cpu_idle").unwrap();
    let expected: Vec<Vec<Cell>> = (0..10i64)
        .map(|k| k * 10)
        .map(|v| vec![Cell::Long(if v == 0 { -1 } else { 1000 / v })])
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn if_takes_three_arguments() {
    let err = run("select if(value > 1, 2) from cpu_idle").unwrap_err();
    assert!(matches!(err, SqlError::Invalid(_)), "{err:?}");
}

#[test]
fn max_by_and_min_by_pick_the_rows_of_the_extremes() {
    let watts = |k: i64| k as f64 * 50.5;
    let by_watts = |a: &i64, b: &i64| watts(*a).total_cmp(&watts(*b));
    let top = (0..10).max_by(by_watts).unwrap();
    let bottom = (0..10).min_by(by_watts).unwrap();
    let rows = run("select max_by(amps, watts), min_by(amps, watts) from power").unwrap();
    assert_eq!(rows, vec![vec![Cell::Long(top), Cell::Long(bottom)]]);
    let top_amps = (0..5).max().unwrap();
    let rows = run("select max_by(watts, amps) from power where amps < 5").unwrap();
    assert_eq!(rows, vec![vec![Cell::Double(watts(top_amps))]]);
}
