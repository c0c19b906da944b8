//! Baidu `/v1` fill: spec 16.4 (TV-F1 … TV-F6) and the interpolation
//! example of seed 002 replayed on the real clock.

use crate::baidu::{
    Check, DF, Fill, T, double_rows, fill_rows, now_ms, put_query, q, value_rows, write_ok,
};
use crate::harness::TestServer;
use anyhow::Result;
use serde_json::{Value, json};
use std::time::Duration;

const START: i64 = 1_499_072_400_000;
const END: i64 = 1_499_075_700_000;
const FIVE_MIN: i64 = 300_000;
const HALF_HOUR: i64 = 1_800_000;

/// The seed's response table: 09:00 … 09:55 UTC on 2017-07-03.
const SEED_TABLE: [f64; 12] = [
    20.4, 17.85, 15.3, 22.95, 30.6, 38.25, 45.9, 53.55, 61.2, 61.2, 61.2, 61.2,
];

fn write_df(s: &TestServer, metric: &str, shift: i64) -> Result<()> {
    let values: Vec<Value> = DF.iter().map(|(t, v)| json!([t + shift, v])).collect();
    write_ok(
        s,
        &json!({"datapoints": [{"metric": metric, "tags": {"host": "server1"}, "values": values}]}),
    )
}

/// The TV-F1 query with another `fill`.
fn fill_query(fill: Value) -> Value {
    q(json!({"metric": "fill_demo",
        "filters": {"start": START, "end": END, "tags": {"host": ["server1"]}},
        "fill": fill}))
}

/// Whole expected Result body of a DF fill query.
fn fill_result(rows: &[(i64, Value)], consumed: usize) -> Value {
    let raw = DF.iter().filter(|(t, _)| (START..=END).contains(t)).count();
    json!({"results": [{"metric": "fill_demo", "field": "value",
        "rawCount": raw, "consumedCount": consumed,
        "groups": [{"groupInfos": [], "values": value_rows(rows)}],
        "truncated": false}]})
}

/// DF points inside `[START - w, END + w]`.
fn consumed(w: i64) -> usize {
    DF.iter()
        .filter(|(t, _)| (START - w..=END + w).contains(t))
        .count()
}

/// TV-F1 … TV-F4: Linear with and without look-behind, Previous, Fixed.
#[test]
fn fill_seed_data() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut c = Check::new();
    write_df(&s, "fill_demo", 0)?;

    // TV-F1: computed rows, which must also be the seed's table bit for bit.
    let linear = fill_rows(&DF, START, END, FIVE_MIN, HALF_HOUR, &Fill::Linear);
    let seed: Vec<(i64, f64)> = SEED_TABLE
        .iter()
        .enumerate()
        .map(|(i, v)| (START + i as i64 * FIVE_MIN, *v))
        .collect();
    c.eq(
        "TV-F1 reference equals the seed table",
        value_rows(&linear),
        double_rows(&seed),
    );
    let r = put_query(
        &s,
        &fill_query(
            json!({"type": "Linear", "interval": "5 minutes", "maxWriteInterval": "30 minutes"}),
        ),
    )?;
    let want = fill_result(&linear, consumed(HALF_HOUR));
    c.body("TV-F1", &r, &want);
    let got = c.values("TV-F1 seed table", &r);
    c.eq("TV-F1 seed table", &got, &double_rows(&seed));
    c.eq("TV-F1 literal counts", (consumed(HALF_HOUR), 2), (3, 2));

    // TV-F2: no maxWriteInterval, no look-behind.
    let rows = fill_rows(&DF, START, END, FIVE_MIN, 0, &Fill::Linear);
    let r = put_query(
        &s,
        &fill_query(json!({"type": "Linear", "interval": "5 minutes"})),
    )?;
    c.body("TV-F2", &r, &fill_result(&rows, consumed(0)));
    c.eq(
        "TV-F2 literal first rows",
        value_rows(&rows[..3]),
        json!([
            [START, 15.3],
            [START + FIVE_MIN, 15.3],
            [START + 2 * FIVE_MIN, 15.3]
        ]),
    );

    // TV-F3
    let rows = fill_rows(&DF, START, END, FIVE_MIN, HALF_HOUR, &Fill::Previous);
    let r = put_query(
        &s,
        &fill_query(
            json!({"type": "Previous", "interval": "5 minutes", "maxWriteInterval": "30 minutes"}),
        ),
    )?;
    c.values_eq("TV-F3", &r, &value_rows(&rows));

    // TV-F4
    let rows = fill_rows(&DF, START, END, FIVE_MIN, 0, &Fill::Fixed(json!(0)));
    let r = put_query(
        &s,
        &fill_query(json!({"type": "Fixed", "interval": "5 minutes", "value": 0})),
    )?;
    c.values_eq("TV-F4", &r, &value_rows(&rows));
    c.done()
}

/// Seed 002's interpolation request verbatim (`"1 hour ago"`, no `end`),
/// with DF moved so that now falls where the seed's "now" fell
/// (09:55 < now < 10:00): the response must be the seed's table.
#[test]
fn fill_seed_example_relative() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut c = Check::new();
    // Stay clear of a 5-minute boundary while the request is in flight.
    let mut now = now_ms();
    while now % FIVE_MIN < 1000 || now % FIVE_MIN > FIVE_MIN - 20_000 {
        std::thread::sleep(Duration::from_millis(500));
        now = now_ms();
    }
    let nine_fifty_five = now - now % FIVE_MIN;
    let shift = nine_fifty_five - END;
    write_df(&s, "cpu_idle", shift)?;
    let r = put_query(
        &s,
        &json!({"queries": [{"metric": "cpu_idle",
            "filters": {"start": "1 hour ago", "tags": {"host": ["server1"]}},
            "fill": {"type": "Linear", "interval": "5 minutes", "maxWriteInterval": "30 minutes"}}]}),
    )?;
    let seed: Vec<(i64, f64)> = SEED_TABLE
        .iter()
        .enumerate()
        .map(|(i, v)| (START + shift + i as i64 * FIVE_MIN, *v))
        .collect();
    let body = c.json("seed 002 fill", &r, 200);
    let res = &body["results"][0];
    c.eq(
        "seed 002 fill values",
        &res["groups"][0]["values"],
        &double_rows(&seed),
    );
    c.eq("seed 002 fill rawCount", &res["rawCount"], &json!(2));
    c.eq("seed 002 fill field", &res["field"], &json!("value"));
    c.done()
}

/// TV-F5 (Java SDK fill tests, 1 ms grid) and TV-F6 (fill errors).
#[test]
fn fill_millisecond_grid_and_errors() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut c = Check::new();
    let b = T + 5;
    let lin = [(b, 1.0), (b + 2, 3.0)];
    let fix = [(b, 1.0), (b + 2, 2.0)];
    let vals =
        |pts: &[(i64, f64)]| -> Vec<Value> { pts.iter().map(|(t, v)| json!([t, v])).collect() };
    write_ok(
        &s,
        &json!({"datapoints": [
            {"metric": "fill_lin", "tags": {"k": "v"}, "values": vals(&lin)},
            {"metric": "fill_fix", "tags": {"k": "v"}, "values": vals(&fix)}]}),
    )?;
    let query = |metric: &str, fill: Value| {
        q(json!({"metric": metric, "filters": {"start": b, "end": b + 2}, "fill": fill}))
    };
    let want = fill_rows(&lin, b, b + 2, 1, 0, &Fill::Linear);
    c.eq(
        "TV-F5 Linear reference",
        value_rows(&want),
        json!([[b, 1.0], [b + 1, 2.0], [b + 2, 3.0]]),
    );
    let r = put_query(
        &s,
        &query(
            "fill_lin",
            json!({"type": "Linear", "interval": "1 milliseconds"}),
        ),
    )?;
    c.values_eq("TV-F5 Linear", &r, &value_rows(&want));
    let want = fill_rows(&fix, b, b + 2, 1, 0, &Fill::Fixed(json!(3.0)));
    c.eq(
        "TV-F5 Fixed reference",
        value_rows(&want),
        json!([[b, 1.0], [b + 1, 3.0], [b + 2, 2.0]]),
    );
    let r = put_query(
        &s,
        &query(
            "fill_fix",
            json!({"type": "Fixed", "interval": "1 milliseconds", "value": 3.0}),
        ),
    )?;
    c.values_eq("TV-F5 Fixed", &r, &value_rows(&want));

    // TV-F6
    let linear = json!({"type": "Linear", "interval": "5 minutes"});
    let mut both = query("fill_lin", linear.clone());
    both["queries"][0]["fills"] = json!([linear]);
    c.error(
        "TV-F6 fill and fills",
        &put_query(&s, &both)?,
        400,
        "InvalidArgument",
    );
    let cases = [
        ("no interval", json!({"type": "Linear"}), "ParameterMissing"),
        (
            "Fixed without value",
            json!({"type": "Fixed", "interval": "5 minutes"}),
            "ParameterMissing",
        ),
        (
            "Spline",
            json!({"type": "Spline", "interval": "5 minutes"}),
            "InvalidArgument",
        ),
        (
            "calendar interval",
            json!({"type": "Linear", "interval": "1 dc"}),
            "InvalidArgument",
        ),
    ];
    for (what, fill, code) in cases {
        let r = put_query(&s, &query("fill_lin", fill))?;
        c.error(&format!("TV-F6 {what}"), &r, 400, code);
    }
    c.done_with_errors()
}
