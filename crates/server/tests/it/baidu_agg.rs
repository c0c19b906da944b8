//! Baidu `/v1` aggregators: spec 16.3 (TV-G1 … TV-G21). Expected rows are
//! computed here from the written data with the reference helpers.

use crate::baidu::{
    BEIJING, Check, D1, DM, T, adjacent_unique, buckets, d1_series, diff, double_rows, fixed,
    least_squares, local_day, local_month, long_rows, mean, percentile, put_query, q, rate,
    sample_dev, select, write, write_ok,
};
use crate::harness::TestServer;
use anyhow::{Result, bail};
use serde_json::{Value, json};

const END: i64 = 1_500_000_599_999;
const FIVE_MIN: i64 = 300_000;

fn with_d1() -> Result<TestServer> {
    let s = TestServer::spawn()?;
    let r = write(&s, D1)?;
    if r.status != 204 {
        bail!("writing D1 answered {r:?}");
    }
    Ok(s)
}

/// Host `a`'s points of D1 in `[T, END]`.
fn host_a() -> Vec<(i64, i64)> {
    let series = d1_series();
    select(&series, |s, t, _| {
        s.tag("host") == "a" && (T..=END).contains(&t)
    })
    .iter()
    .map(|(t, v, _)| (*t, *v))
    .collect()
}

/// The 16.3 base query (host `a`, `[T, END]`) with `aggregators` and any
/// other members of `extra`.
fn agg_query(aggregators: Value, extra: Value) -> Value {
    let mut query = json!({"metric": "cpu_idle", "aggregators": aggregators,
        "filters": {"start": T, "end": END, "tags": {"host": ["a"]}}});
    for (k, v) in extra.as_object().into_iter().flatten() {
        query[k] = v.clone();
    }
    q(query)
}

fn floats(pts: &[(i64, i64)]) -> Vec<f64> {
    pts.iter().map(|p| p.1 as f64).collect()
}

/// Applies `f` to each 5-minute bucket of `pts` (anchor `T`).
fn per_bucket<R>(pts: &[(i64, i64)], f: impl Fn(&[(i64, i64)]) -> R) -> Vec<(i64, R)> {
    buckets(pts, T, END, fixed(T, FIVE_MIN))
        .iter()
        .map(|(b, p)| (*b, f(p)))
        .collect()
}

/// TV-G1, TV-G3 … TV-G7, TV-G14 … TV-G16: range aggregators.
#[test]
fn range_aggregators() -> Result<()> {
    let s = with_d1()?;
    let mut c = Check::new();
    let a = host_a();
    let five = json!("5 minutes");

    // TV-G1
    let sums = per_bucket(&a, |p| p.iter().map(|x| x.1).sum::<i64>());
    c.eq("TV-G1 reference", &sums, &vec![(T, 6), (T + FIVE_MIN, 30)]);
    let r = put_query(
        &s,
        &agg_query(json!([{"name": "Sum", "sampling": five}]), json!({})),
    )?;
    let body = c.json("TV-G1", &r, 200);
    let res = &body["results"][0];
    c.eq(
        "TV-G1 values",
        &res["groups"][0]["values"],
        &long_rows(&sums),
    );
    c.that(
        "TV-G1 no truncated key",
        res.get("truncated").is_none(),
        res,
    );

    // TV-G3: Count, all hosts, one bucket at start.
    let series = d1_series();
    let n = select(&series, |_, t, _| (T..=END).contains(&t)).len();
    let mut all = agg_query(json!([{"name": "Count"}]), json!({}));
    all["queries"][0]["filters"] = json!({"start": T, "end": END});
    c.values_eq("TV-G3", &put_query(&s, &all)?, &json!([[T, n]]));

    // TV-G4
    let avgs = per_bucket(&a, |p| mean(&floats(p)));
    c.values_eq(
        "TV-G4",
        &put_query(
            &s,
            &agg_query(json!([{"name": "Avg", "sampling": five}]), json!({})),
        )?,
        &double_rows(&avgs),
    );

    // TV-G5
    let dev = sample_dev(&floats(&a));
    c.that(
        "TV-G5 reference",
        (dev - 7.981_227_975_693_966).abs() <= 1e-9,
        dev,
    );
    let got = c.values(
        "TV-G5",
        &put_query(&s, &agg_query(json!([{"name": "Dev"}]), json!({})))?,
    );
    c.approx_rows("TV-G5", &got, &[(T, dev)]);

    // TV-G6
    for (p, literal) in [(0.5, 3.0), (0.25, 1.5), (1.0, 20.0), (0.1, 1.0)] {
        let want = percentile(&floats(&a), p);
        c.eq(&format!("TV-G6 reference p={p}"), want, literal);
        let r = put_query(
            &s,
            &agg_query(json!([{"name": "Percentile", "percentile": p}]), json!({})),
        )?;
        let got = c.values(&format!("TV-G6 p={p}"), &r);
        c.approx_rows(&format!("TV-G6 p={p}"), &got, &[(T, want)]);
    }

    // TV-G7: Long in, Long out.
    type Pick = fn(&[(i64, i64)]) -> i64;
    let picks: [(&str, Pick); 4] = [
        ("First", |p| p[0].1),
        ("Last", |p| p[p.len() - 1].1),
        ("Max", |p| p.iter().map(|x| x.1).max().unwrap_or_default()),
        ("Min", |p| p.iter().map(|x| x.1).min().unwrap_or_default()),
    ];
    for (name, pick) in picks {
        let want = per_bucket(&a, pick);
        let r = put_query(
            &s,
            &agg_query(json!([{"name": name, "sampling": five}]), json!({})),
        )?;
        c.values_eq(&format!("TV-G7 {name}"), &r, &long_rows(&want));
    }

    // TV-G14
    let pts: Vec<(i64, f64)> = a.iter().map(|(t, v)| (*t, *v as f64)).collect();
    let fit = least_squares(&pts);
    c.that(
        "TV-G14 reference",
        fit.len() == 2
            && (fit[0].1 - (-58.0 / 67.0)).abs() <= 1e-9
            && (fit[1].1 - 1100.0 / 67.0).abs() <= 1e-9,
        &fit,
    );
    let r = put_query(&s, &agg_query(json!([{"name": "LeastSquares"}]), json!({})))?;
    let got = c.values("TV-G14", &r);
    c.approx_rows("TV-G14", &got, &fit);

    // TV-G15
    let mut desc = sums.clone();
    desc.reverse();
    let r = put_query(
        &s,
        &agg_query(
            json!([{"name": "Sum", "sampling": five}]),
            json!({"order": "Desc"}),
        ),
    )?;
    c.values_eq("TV-G15", &r, &long_rows(&desc));

    // TV-G16: group-wide tag columns after aggregation.
    let want: Vec<Value> = avgs.iter().map(|(t, v)| json!([t, v, "r1", "a"])).collect();
    let r = put_query(
        &s,
        &agg_query(
            json!([{"name": "Avg", "sampling": five}]),
            json!({"tags": ["rack", "host"]}),
        ),
    )?;
    c.values_eq("TV-G16", &r, &Value::Array(want));
    c.done()
}

/// TV-G2: Sum per 5 minutes, grouped by rack.
#[test]
fn group_by_rack() -> Result<()> {
    let s = with_d1()?;
    let mut c = Check::new();
    let series = d1_series();
    let mut groups = Vec::new();
    for rack in ["r1", "r2"] {
        let pts: Vec<(i64, i64)> = select(&series, |s, t, _| {
            s.tag("rack") == rack && (T..=END).contains(&t)
        })
        .iter()
        .map(|(t, v, _)| (*t, *v))
        .collect();
        let sums = per_bucket(&pts, |p| p.iter().map(|x| x.1).sum::<i64>());
        groups.push(
            json!({"groupInfos": [{"name": "Tag", "tags": {"rack": rack}}],
            "values": long_rows(&sums)}),
        );
    }
    c.eq(
        "TV-G2 reference",
        &groups,
        &vec![
            json!({"groupInfos": [{"name": "Tag", "tags": {"rack": "r1"}}],
                "values": [[T, 106], [T + FIVE_MIN, 230]]}),
            json!({"groupInfos": [{"name": "Tag", "tags": {"rack": "r2"}}],
                "values": [[T, 7]]}),
        ],
    );
    let raw = select(&series, |_, t, _| (T..=END).contains(&t)).len();
    let r = put_query(
        &s,
        &q(
            json!({"metric": "cpu_idle", "filters": {"start": T, "end": END},
            "groupBy": [{"name": "Tag", "tags": ["rack"]}],
            "aggregators": [{"name": "Sum", "sampling": "5 minutes"}]}),
        ),
    )?;
    let body = c.json("TV-G2", &r, 200);
    let res = &body["results"][0];
    c.eq("TV-G2 groups", &res["groups"], &Value::Array(groups));
    c.eq("TV-G2 rawCount", &res["rawCount"], &json!(raw));
    c.that(
        "TV-G2 no truncated key",
        res.get("truncated").is_none(),
        res,
    );
    c.done()
}

/// TV-G8 … TV-G13, TV-G17, TV-G18: whole-stream aggregators and a chain.
#[test]
fn stream_aggregators() -> Result<()> {
    let s = with_d1()?;
    let mut c = Check::new();
    let a = host_a();
    let run = |aggs: Value| put_query(&s, &agg_query(aggs, json!({})));

    c.values_eq(
        "TV-G8 Diff",
        &run(json!([{"name": "Diff"}]))?,
        &long_rows(&diff(&a)),
    );

    let literal_minute = [1.0, 1.0, 2.333_333_333_333_333_5, 10.0];
    let literal_second = [
        0.016_666_666_666_666_666,
        0.016_666_666_666_666_666,
        0.038_888_888_888_888_89,
        0.166_666_666_666_666_66,
    ];
    for (unit, ms, literal) in [
        ("minute", 60_000, literal_minute),
        ("second", 1000, literal_second),
    ] {
        let what = format!("TV-G{} Rate {unit}", if unit == "minute" { 9 } else { 10 });
        let want = rate(&a, ms);
        c.that(
            &format!("{what} reference"),
            want.iter()
                .zip(literal)
                .all(|((_, x), l)| (x - l).abs() <= 1e-9),
            &want,
        );
        let got = c.values(&what, &run(json!([{"name": "Rate", "timeUnit": unit}]))?);
        c.approx_rows(&what, &got, &want);
    }

    let scaled: Vec<(i64, f64)> = a.iter().map(|(t, v)| (*t, *v as f64 * 2.5)).collect();
    c.values_eq(
        "TV-G11 Scale",
        &run(json!([{"name": "Scale", "factor": 2.5}]))?,
        &double_rows(&scaled),
    );
    let divided: Vec<(i64, f64)> = a.iter().map(|(t, v)| (*t, *v as f64 / 4.0)).collect();
    c.values_eq(
        "TV-G12 Div",
        &run(json!([{"name": "Div", "divisor": 4}]))?,
        &double_rows(&divided),
    );

    let sums = per_bucket(&a, |p| p.iter().map(|x| x.1).sum::<i64>());
    c.values_eq(
        "TV-G13 Sum then Diff",
        &run(json!([{"name": "Sum", "sampling": "5 minutes"}, {"name": "Diff"}]))?,
        &long_rows(&diff(&sums)),
    );

    // TV-G17 and TV-G18 (Java SDK tests), on their own metrics.
    let b = T + 7;
    let ramp = [(b, 11i64), (b + 1, 12), (b + 2, 13)];
    let runs: Vec<(i64, i64)> = [11i64, 11, 12, 11, 11, 13, 13]
        .iter()
        .enumerate()
        .map(|(i, v)| (b + i as i64, *v))
        .collect();
    write_ok(
        &s,
        &json!({"datapoints": [
            {"metric": "rate_j", "tags": {"k": "v"}, "values": long_rows(&ramp)},
            {"metric": "adj_j", "tags": {"k": "v"}, "values": long_rows(&runs)}]}),
    )?;
    let r = put_query(
        &s,
        &q(json!({"metric": "rate_j", "filters": {"start": b},
            "aggregators": [{"name": "Rate", "timeUnit": "second"}]})),
    )?;
    let got = c.values("TV-G17", &r);
    c.approx_rows("TV-G17", &got, &rate(&ramp, 1000));
    let r = put_query(
        &s,
        &q(json!({"metric": "adj_j", "filters": {"start": b},
            "aggregators": [{"name": "AdjacentUnique"}]})),
    )?;
    c.values_eq("TV-G18", &r, &long_rows(&adjacent_unique(&runs)));
    c.done()
}

/// TV-G19 (seed's calendar-month example) and TV-G20 (natural vs fixed day).
#[test]
fn calendar_sampling() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut c = Check::new();
    write_ok(
        &s,
        &json!({"datapoints": [{"metric": "monthly", "tags": {"id": "1"}, "values": long_rows(&DM)}]}),
    )?;
    let (start, end) = (1_497_499_932_000, 1_505_617_871_000);
    let months = buckets(&DM, start, end, local_month(BEIJING));
    let sums: Vec<(i64, i64)> = months
        .iter()
        .map(|(b, p)| (*b, p.iter().map(|x| x.1).sum()))
        .collect();
    let counts: Vec<(i64, i64)> = months.iter().map(|(b, p)| (*b, p.len() as i64)).collect();
    c.eq(
        "TV-G19 reference sums",
        &sums,
        &vec![
            (1_497_499_932_000, 1),
            (1_498_838_400_000, 5),
            (1_501_516_800_000, 4),
            (1_504_195_200_000, 5),
        ],
    );
    for (name, want) in [("Sum", &sums), ("Count", &counts)] {
        let r = put_query(
            &s,
            &q(
                json!({"metric": "monthly", "filters": {"start": start, "end": end},
                "aggregators": [{"name": name, "sampling": "1 nc"}]}),
            ),
        )?;
        c.values_eq(&format!("TV-G19 {name} 1 nc"), &r, &long_rows(want));
    }

    // TV-G20
    let energy = [
        (1_500_000_000_000i64, 1i64),
        (1_500_044_400_000, 2),
        (1_500_051_600_000, 4),
    ];
    write_ok(
        &s,
        &json!({"datapoints": [{"metric": "energy", "tags": {"meter": "m1"}, "values": long_rows(&energy)}]}),
    )?;
    let end = 1_500_172_800_000;
    let sum_by = |f: &dyn Fn(i64) -> i64| -> Vec<(i64, i64)> {
        buckets(&energy, T, end, f)
            .iter()
            .map(|(b, p)| (*b, p.iter().map(|x| x.1).sum()))
            .collect()
    };
    let natural = sum_by(&local_day(BEIJING));
    let fixed_day = sum_by(&fixed(T, 86_400_000));
    c.eq(
        "TV-G20 reference",
        (&natural, &fixed_day),
        (&vec![(T, 3), (1_500_048_000_000, 4)], &vec![(T, 7)]),
    );
    for (sampling, want) in [("1 dc", &natural), ("1 day", &fixed_day)] {
        let r = put_query(
            &s,
            &q(
                json!({"metric": "energy", "filters": {"start": T, "end": end},
                "aggregators": [{"name": "Sum", "sampling": sampling}]}),
            ),
        )?;
        c.values_eq(&format!("TV-G20 {sampling}"), &r, &long_rows(want));
    }
    c.done()
}

/// TV-G21: aggregator parameter errors.
#[test]
fn aggregator_errors() -> Result<()> {
    let s = with_d1()?;
    let mut c = Check::new();
    let bad = [
        json!({"name": "Percentile"}),
        json!({"name": "Percentile", "percentile": 0}),
        json!({"name": "Percentile", "percentile": 1.5}),
        json!({"name": "Div"}),
        json!({"name": "Div", "divisor": 0}),
        json!({"name": "Scale"}),
        json!({"name": "Rate"}),
        json!({"name": "Rate", "timeUnit": "hc"}),
        json!({"name": "Median"}),
        json!({"name": "Sum", "sampling": "10 minutez"}),
        json!({"name": "Sum", "sampling": "1 wc"}),
        json!({"name": "Sum", "sampling": "0 minutes"}),
    ];
    for agg in bad {
        let r = put_query(&s, &agg_query(json!([agg]), json!({})))?;
        c.error(&format!("TV-G21 {agg}"), &r, 400, "InvalidArgument");
    }
    c.done_with_errors()
}
