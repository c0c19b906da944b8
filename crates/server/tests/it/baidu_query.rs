//! Baidu `/v1` raw queries, filters and paging: spec 16.2 (TV-Q1 … TV-Q14)
//! and TV-Q15 (relative start, on the real clock).

use crate::baidu::{
    Check, D1, Series, T, adjacent_unique, d1_series, datapoints, long_rows, now_ms,
    percent_encode, put_query, q, select, write, write_ok,
};
use crate::harness::TestServer;
use anyhow::{Result, bail};
use serde_json::{Value, json};

/// A server holding D1.
fn with_d1() -> Result<TestServer> {
    let s = TestServer::spawn()?;
    let r = write(&s, D1)?;
    if r.status != 204 {
        bail!("writing D1 answered {r:?}");
    }
    Ok(s)
}

/// `[ts, value]` of the selected rows.
fn pairs(rows: &[(i64, i64, &Series)]) -> Vec<(i64, i64)> {
    rows.iter().map(|(t, v, _)| (*t, *v)).collect()
}

/// The body of TV-Q1.
fn q1() -> Value {
    q(json!({"metric": "cpu_idle",
        "filters": {"start": 1_500_000_000_000i64, "end": 1_500_000_600_000i64, "tags": {"host": ["a"]}}}))
}

/// TV-Q1, TV-Q2, TV-Q3, TV-Q10.
#[test]
fn raw_query_forms() -> Result<()> {
    let s = with_d1()?;
    let mut c = Check::new();
    let series = d1_series();
    let (start, end) = (T, T + 600_000);
    let rows = pairs(&select(&series, |s, t, _| {
        s.tag("host") == "a" && (start..=end).contains(&t)
    }));
    let result = |values: &[(i64, i64)]| {
        json!({"results": [{"metric": "cpu_idle", "field": "value",
            "rawCount": rows.len(), "consumedCount": rows.len(),
            "groups": [{"groupInfos": [], "values": long_rows(values)}],
            "truncated": false}]})
    };
    let want = result(&rows);

    // TV-Q1
    c.body("TV-Q1", &put_query(&s, &q1())?, &want);

    // TV-Q2: seconds in the filters.
    let mut body = q1();
    body["queries"][0]["filters"]["start"] = json!(1_500_000_000);
    body["queries"][0]["filters"]["end"] = json!(1_500_000_600);
    c.body("TV-Q2", &put_query(&s, &body)?, &want);

    // TV-Q3: GET with the query in the URL.
    let path = format!("/v1/datapoint?query={}", percent_encode(&q1().to_string()));
    c.body("TV-Q3", &s.send("GET", &path, &[], None)?, &want);

    // TV-Q10: offset 1 skips the first row; the counts stay.
    let mut body = q1();
    body["queries"][0]["offset"] = json!(1);
    c.body("TV-Q10", &put_query(&s, &body)?, &result(&rows[1..]));
    c.done()
}

/// TV-Q4 … TV-Q7 and TV-Q9.
#[test]
fn tag_columns_filters_and_empty_results() -> Result<()> {
    let s = with_d1()?;
    let mut c = Check::new();
    let series = d1_series();

    // TV-Q4: rack r1 merged into one group, host as a tag column.
    let end = 1_500_000_060_000;
    let rows = select(&series, |s, t, _| {
        s.tag("rack") == "r1" && (T..=end).contains(&t)
    });
    let want: Vec<Value> = rows
        .iter()
        .map(|(t, v, s)| json!([t, v, s.tag("host")]))
        .collect();
    c.eq(
        "TV-Q4 reference",
        &Value::Array(want.clone()),
        &json!([[T, 1, "a"], [T, 100, "b"], [T + 60_000, 2, "a"]]),
    );
    let r = put_query(
        &s,
        &q(json!({"metric": "cpu_idle", "tags": ["host"],
            "filters": {"start": T, "end": end, "tags": {"rack": ["r1"]}}})),
    )?;
    let body = c.json("TV-Q4", &r, 200);
    let res = &body["results"][0];
    c.eq(
        "TV-Q4 values",
        &res["groups"][0]["values"],
        &Value::Array(want),
    );
    c.eq("TV-Q4 tags", &res["tags"], &json!(["host"]));
    c.eq("TV-Q4 rawCount", &res["rawCount"], &json!(rows.len()));

    // TV-Q5: value filter over all series.
    let end = T + 600_000;
    let in_range = select(&series, |_, t, _| (T..=end).contains(&t));
    let kept = select(&series, |_, t, v| (T..=end).contains(&t) && v >= 10);
    let r = put_query(
        &s,
        &q(json!({"metric": "cpu_idle", "filters": {"start": T, "end": end, "value": ">= 10"}})),
    )?;
    let body = c.json("TV-Q5", &r, 200);
    let res = &body["results"][0];
    c.eq(
        "TV-Q5 values",
        &res["groups"][0]["values"],
        &long_rows(&pairs(&kept)),
    );
    c.eq("TV-Q5 rawCount", &res["rawCount"], &json!(kept.len()));
    c.eq(
        "TV-Q5 consumedCount",
        &res["consumedCount"],
        &json!(in_range.len()),
    );
    c.eq("TV-Q5 literal counts", (kept.len(), in_range.len()), (4, 8));

    // TV-Q6: notIn.
    let kept = select(&series, |s, t, _| {
        s.tag("host") != "a" && (T..=end).contains(&t)
    });
    let r = put_query(
        &s,
        &q(json!({"metric": "cpu_idle",
            "filters": {"start": T, "end": end, "tags": [{"tag": "host", "notIn": ["a"]}]}})),
    )?;
    c.values_eq("TV-Q6", &r, &long_rows(&pairs(&kept)));

    // TV-Q7: or of two branches.
    let (e1, t2) = (1_500_000_060_000, 1_500_000_300_000);
    let kept = select(&series, |s, t, _| {
        (s.tag("host") == "a" && (T..=e1).contains(&t)) || (s.tag("host") == "b" && t == t2)
    });
    let r = put_query(
        &s,
        &q(json!({"metric": "cpu_idle", "filters": {"or": [
            {"start": T, "end": e1, "tags": [{"tag": "host", "in": ["a"]}]},
            {"start": t2, "end": t2, "tags": {"host": ["b"]}}]}})),
    )?;
    let body = c.json("TV-Q7", &r, 200);
    let res = &body["results"][0];
    c.eq(
        "TV-Q7 values",
        &res["groups"][0]["values"],
        &long_rows(&pairs(&kept)),
    );
    c.eq("TV-Q7 rawCount", &res["rawCount"], &json!(kept.len()));

    // TV-Q9: nothing matches; one empty group, or none with groupBy.
    let nothing = json!({"metric": "cpu_idle", "filters": {"start": T, "tags": {"host": ["zzz"]}}});
    let body = c.json("TV-Q9", &put_query(&s, &q(nothing.clone()))?, 200);
    let res = &body["results"][0];
    c.eq("TV-Q9 rawCount", &res["rawCount"], &json!(0));
    c.eq(
        "TV-Q9 groups",
        &res["groups"],
        &json!([{"groupInfos": [], "values": []}]),
    );
    c.eq("TV-Q9 truncated", &res["truncated"], &json!(false));
    let mut grouped = nothing;
    grouped["groupBy"] = json!([{"name": "Tag", "tags": ["rack"]}]);
    let body = c.json("TV-Q9 groupBy", &put_query(&s, &q(grouped))?, 200);
    c.eq(
        "TV-Q9 groupBy groups",
        &body["results"][0]["groups"],
        &json!([]),
    );
    c.done()
}

/// TV-Q8: Desc with marker paging.
#[test]
fn desc_marker_paging() -> Result<()> {
    let s = with_d1()?;
    let mut c = Check::new();
    let series = d1_series();
    let end = T + 600_000;
    let mut rows = pairs(&select(&series, |s, t, _| {
        s.tag("host") == "a" && (T..=end).contains(&t)
    }));
    rows.reverse();
    let pages: Vec<&[(i64, i64)]> = rows.chunks(2).collect();
    let mut marker: Option<Value> = None;
    for (i, page) in pages.iter().enumerate() {
        let what = format!("TV-Q8 page {}", i + 1);
        let mut query = json!({"metric": "cpu_idle", "order": "Desc", "limit": 2,
            "filters": {"start": T, "end": end, "tags": {"host": ["a"]}}});
        if let Some(m) = &marker {
            query["marker"] = m.clone();
        }
        let body = c.json(&what, &put_query(&s, &q(query))?, 200);
        let res = &body["results"][0];
        c.eq(
            &format!("{what} values"),
            &res["groups"][0]["values"],
            &long_rows(page),
        );
        c.eq(
            &format!("{what} rawCount"),
            &res["rawCount"],
            &json!(rows.len()),
        );
        let more = i + 1 < pages.len();
        c.eq(
            &format!("{what} truncated"),
            &res["truncated"],
            &json!(more),
        );
        let next = res.get("nextMarker");
        if more {
            c.that(
                &format!("{what} nextMarker"),
                next.and_then(Value::as_str).is_some_and(|m| !m.is_empty()),
                &body,
            );
        } else {
            c.that(&format!("{what} no nextMarker"), next.is_none(), &body);
        }
        match next {
            Some(m) if more => marker = Some(m.clone()),
            _ => break,
        }
    }
    c.done()
}

/// TV-Q11 (`like` with the `/` escape) and TV-Q12 (tag-reference value
/// filter).
#[test]
fn like_and_tag_reference_filters() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut c = Check::new();
    write_ok(
        &s,
        &json!({"datapoints": [
            {"metric": "dev_status", "tags": {"sn": "value_1-1"}, "timestamp": T, "value": 1},
            {"metric": "dev_status", "tags": {"sn": "valueX1-1"}, "timestamp": T + 1, "value": 2}]}),
    )?;
    let like = |pattern: &str| {
        q(json!({"metric": "dev_status",
            "filters": {"start": T, "tags": [{"tag": "sn", "like": pattern}]}}))
    };
    let both = json!([[T, 1], [T + 1, 2]]);
    c.values_eq(
        "TV-Q11 value/_1-1",
        &put_query(&s, &like("value/_1-1"))?,
        &json!([[T, 1]]),
    );
    c.values_eq(
        "TV-Q11 value_1-1",
        &put_query(&s, &like("value_1-1"))?,
        &both,
    );
    c.values_eq("TV-Q11 value%", &put_query(&s, &like("value%"))?, &both);
    c.values_eq("TV-Q11 v_", &put_query(&s, &like("v_"))?, &json!([]));
    c.error(
        "TV-Q11 trailing /",
        &put_query(&s, &like("value/"))?,
        400,
        "InvalidArgument",
    );

    // TV-Q12
    let threshold = 5i64;
    let temps = [(T, 3i64), (T + 1000, 5), (T + 2000, 8)];
    write_ok(
        &s,
        &json!({"datapoints": [{"metric": "temp",
            "tags": {"sensor": "s1", "threshold": threshold.to_string()},
            "values": long_rows(&temps)}]}),
    )?;
    let filtered = |f: &str| q(json!({"metric": "temp", "filters": {"start": T, "value": f}}));
    let gt: Vec<(i64, i64)> = temps
        .iter()
        .copied()
        .filter(|(_, v)| *v > threshold)
        .collect();
    let ge: Vec<(i64, i64)> = temps
        .iter()
        .copied()
        .filter(|(_, v)| *v >= threshold)
        .collect();
    c.values_eq(
        "TV-Q12 > threshold",
        &put_query(&s, &filtered("> threshold"))?,
        &long_rows(&gt),
    );
    c.values_eq(
        "TV-Q12 >= threshold",
        &put_query(&s, &filtered(">= threshold"))?,
        &long_rows(&ge),
    );
    c.done_with_errors()
}

/// TV-Q13 (String field: filter, Count, AdjacentUnique, Sum refused) and
/// TV-Q14 (multi-field rows and field filters).
#[test]
fn string_and_multi_field_queries() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut c = Check::new();
    let states = [(T, "on"), (T + 1000, "off"), (T + 2000, "on")];
    let rows = |pts: &[(i64, &str)]| -> Value {
        Value::Array(pts.iter().map(|(t, v)| json!([t, v])).collect())
    };
    write_ok(
        &s,
        &json!({"datapoints": [{"metric": "status", "field": "state", "tags": {"dev": "d1"},
            "values": rows(&states)}]}),
    )?;
    let state = |extra: Value| {
        let mut query = json!({"metric": "status", "field": "state", "filters": {"start": T}});
        for (k, v) in extra.as_object().into_iter().flatten() {
            query[k] = v.clone();
        }
        q(query)
    };
    let on: Vec<(i64, &str)> = states.iter().copied().filter(|(_, v)| *v == "on").collect();
    let r = put_query(
        &s,
        &q(
            json!({"metric": "status", "field": "state", "filters": {"start": T, "value": "= 'on'"}}),
        ),
    )?;
    c.values_eq("TV-Q13 = 'on'", &r, &rows(&on));
    let r = put_query(&s, &state(json!({"aggregators": [{"name": "Count"}]})))?;
    c.values_eq("TV-Q13 Count", &r, &json!([[T, states.len()]]));
    let r = put_query(
        &s,
        &state(json!({"aggregators": [{"name": "AdjacentUnique"}]})),
    )?;
    c.values_eq(
        "TV-Q13 AdjacentUnique",
        &r,
        &rows(&adjacent_unique(&states)),
    );
    let r = put_query(&s, &state(json!({"aggregators": [{"name": "Sum"}]})))?;
    c.error("TV-Q13 Sum on String", &r, 400, "InvalidArgument");

    // TV-Q14
    let direction = [(T, 1i64), (T + 1000, 2)];
    let speed = [(T, 4.5f64), (T + 1000, 5.0), (T + 2000, 6.0)];
    write_ok(
        &s,
        &json!({"datapoints": [
            {"metric": "wind", "field": "direction", "tags": {"city": "sh"}, "values": long_rows(&direction)},
            {"metric": "wind", "field": "speed", "tags": {"city": "sh"},
             "values": speed.iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>()}]}),
    )?;
    let mut times: Vec<i64> = direction.iter().map(|p| p.0).collect();
    times.extend(speed.iter().map(|p| p.0));
    times.sort();
    times.dedup();
    let joined: Vec<(i64, Option<i64>, Option<f64>)> = times
        .iter()
        .map(|t| {
            let d = direction.iter().find(|p| p.0 == *t).map(|p| p.1);
            let v = speed.iter().find(|p| p.0 == *t).map(|p| p.1);
            (*t, d, v)
        })
        .collect();
    let as_json = |rows: &[&(i64, Option<i64>, Option<f64>)]| -> Value {
        Value::Array(rows.iter().map(|(t, d, v)| json!([t, d, v])).collect())
    };
    let all: Vec<_> = joined.iter().collect();
    let r = put_query(
        &s,
        &q(json!({"metric": "wind", "fields": ["direction", "speed"], "filters": {"start": T}})),
    )?;
    let body = c.json("TV-Q14", &r, 200);
    let res = &body["results"][0];
    c.eq(
        "TV-Q14 fields",
        &res["fields"],
        &json!(["direction", "speed"]),
    );
    c.that("TV-Q14 no field member", res.get("field").is_none(), res);
    c.eq("TV-Q14 values", &res["groups"][0]["values"], &as_json(&all));
    c.eq(
        "TV-Q14 rawCount",
        &res["rawCount"],
        &json!(direction.len() + speed.len()),
    );
    let kept: Vec<_> = joined
        .iter()
        .filter(|(_, d, _)| d.is_some_and(|d| d >= 2))
        .collect();
    let r = put_query(
        &s,
        &q(json!({"metric": "wind", "fields": ["direction", "speed"],
            "filters": {"start": T, "fields": [{"field": "direction", "value": ">= 2"}]}})),
    )?;
    c.values_eq("TV-Q14 field filter", &r, &as_json(&kept));
    c.done_with_errors()
}

/// TV-Q15 on the real clock: data written relative to now; `"1 hour ago"`
/// selects what an absolute start an hour back selects.
#[test]
fn relative_start() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut c = Check::new();
    let now = now_ms();
    // 1 h 56 min, 50 min and 1 min ago: far from both the 1 h and 2 h edges.
    let pts = [
        (now - 7_000_000, 1i64),
        (now - 3_000_000, 2),
        (now - 60_000, 3),
    ];
    write_ok(
        &s,
        &json!({"datapoints": [{"metric": "cpu_idle", "tags": {"host": "a", "rack": "r1"},
            "values": long_rows(&pts)}]}),
    )?;
    let end = now + 3_600_000;
    let query = |start: Value| {
        q(json!({"metric": "cpu_idle",
            "filters": {"start": start, "end": end, "tags": {"host": ["a"]}}}))
    };
    let absolute = put_query(&s, &query(json!(now - 3_600_000)))?;
    let absolute = c.json("TV-Q15 absolute", &absolute, 200);
    c.eq(
        "TV-Q15 absolute values",
        &absolute["results"][0]["groups"][0]["values"],
        &long_rows(&pts[1..]),
    );
    for rel in [
        "1 hour ago",
        "1 hours ago",
        "60 minutes ago",
        " 3600 SECONDS AGO ",
    ] {
        let r = put_query(&s, &query(json!(rel)))?;
        c.body(&format!("TV-Q15 {rel:?}"), &r, &absolute);
    }
    let r = put_query(&s, &query(json!("2 hour ago")))?;
    c.values_eq("TV-Q15 2 hour ago", &r, &long_rows(&pts));
    c.done()
}

/// Spec 9.4.3: `notIn` matches series that lack the key; `in` and `like`
/// do not.
#[test]
fn not_in_matches_series_without_the_key() -> Result<()> {
    let s = TestServer::spawn()?;
    write_ok(
        &s,
        &datapoints(&[
            json!({"metric": "nk", "tags": {"host": "a"}, "timestamp": T, "value": 1}),
            json!({"metric": "nk", "tags": {"host": "b"}, "timestamp": T, "value": 2}),
            json!({"metric": "nk", "tags": {"rack": "r1"}, "timestamp": T, "value": 3}),
        ]),
    )?;
    let values = |filter: Value| -> Result<Value> {
        let r = put_query(
            &s,
            &q(json!({"metric": "nk", "filters": {"start": T, "tags": [filter]}})),
        )?;
        let body: Value = serde_json::from_str(&r.body)?;
        Ok(body["results"][0]["groups"][0]["values"].clone())
    };
    // Rows at one timestamp come in series-key order: host=b before rack=r1.
    assert_eq!(
        values(json!({"tag": "host", "notIn": ["a"]}))?,
        json!([[T, 2], [T, 3]])
    );
    assert_eq!(
        values(json!({"tag": "host", "in": ["a", "b"]}))?,
        json!([[T, 1], [T, 2]])
    );
    assert_eq!(
        values(json!({"tag": "host", "like": "%"}))?,
        json!([[T, 1], [T, 2]])
    );
    Ok(())
}
