//! TV-Q13..TV-Q21: downsampling, rate, resolution, explicit tags,
//! showQuery and the query errors.

use super::*;

pub(super) fn q13_to_q18_downsample_rate_resolution(s: &TestServer) -> Result<()> {
    // TV-Q13: 1m-avg per series, then the sum across series; all Doubles.
    let down: Vec<Vec<(i64, Num)>> = [&A, &B, &C]
        .iter()
        .map(|x| downsample_avg_1m(x.points))
        .collect();
    let down: Vec<&[(i64, Num)]> = down.iter().map(Vec::as_slice).collect();
    let got = query(
        s,
        &window(json!({"aggregator": "sum", "metric": "sys.cpu.user", "downsample": "1m-avg"})),
    )?;
    assert_eq!(
        got,
        json!([result(&[&A, &B, &C], aggregate(&down, Agg::Sum))])
    );
    assert_eq!(
        got[0]["dps"],
        json!({"1500000000": 16.5, "1500000060": 35.0, "1500000120": 30.0})
    );

    // TV-Q14: 1m-sum of B with each fill policy, up to +240.
    let end14 = T0 + 240;
    let mut b_minutes = Map::new();
    for (t, v) in B.points {
        b_minutes.insert((t - t.rem_euclid(60)).to_string(), json!(v.float()));
    }
    for (fill, empty) in [
        ("", None),
        ("-nan", Some(json!("NaN"))),
        ("-null", Some(Value::Null)),
        ("-zero", Some(json!(0.0))),
    ] {
        let mut dps = b_minutes.clone();
        if let Some(empty) = empty {
            for b in (T0..=end14).step_by(60) {
                dps.entry(b.to_string()).or_insert_with(|| empty.clone());
            }
        }
        let mut body = window(json!({"aggregator": "sum", "metric": "sys.cpu.user",
            "downsample": format!("1m-sum{fill}"),
            "filters": [{"type": "literal_or", "tagk": "host", "filter": "web02"}]}));
        body["end"] = json!(end14);
        let got = query(s, &body)?;
        assert_eq!(got, json!([result(&[&B], dps)]), "1m-sum{fill}");
    }

    // TV-Q15: per-second rate of A.
    let rate: Map<String, Value> = A
        .points
        .windows(2)
        .map(|w| {
            let rate = (w[1].1.float() - w[0].1.float()) / (w[1].0 - w[0].0) as f64;
            (w[1].0.to_string(), json!(rate))
        })
        .collect();
    let got = query(
        s,
        &window(
            json!({"aggregator": "sum", "metric": "sys.cpu.user", "rate": true,
            "filters": [{"type": "literal_or", "tagk": "host", "filter": "web01"}]}),
        ),
    )?;
    assert_eq!(got, json!([result(&[&A], rate)]));
    assert_eq!(
        got[0]["dps"],
        json!({"1500000060": 0.16666666666666666, "1500000120": 0.16666666666666666})
    );

    // TV-Q16: counter options on net.bytes (100, 200, 50 every 10 s).
    for (options, dps) in [
        (None, json!({"1500000010": 10.0, "1500000020": -15.0})),
        (
            Some(json!({"counter": true, "counterMax": 255})),
            json!({"1500000010": 10.0, "1500000020": 10.5}),
        ),
        (
            Some(json!({"counter": true, "counterMax": 255, "dropResets": true})),
            json!({"1500000010": 10.0}),
        ),
        (
            Some(json!({"counter": true, "counterMax": 255, "resetValue": 10})),
            json!({"1500000010": 10.0, "1500000020": 0.0}),
        ),
    ] {
        let mut sub = json!({"aggregator": "sum", "metric": "net.bytes", "rate": true});
        if let Some(o) = &options {
            sub["rateOptions"] = o.clone();
        }
        let mut body = window(sub);
        body["end"] = json!(T0 + 20);
        let mut expected = result(&[&NET], Map::new());
        expected["dps"] = dps;
        assert_eq!(query(s, &body)?, json!([expected]), "{options:?}");
    }

    // TV-Q17: millisecond points, with and without msResolution.
    let mut body = window(json!({"aggregator": "none", "metric": "app.latency"}));
    body["end"] = json!(T0 + 1);
    let ms: Map<String, Value> = LATENCY
        .points
        .iter()
        .map(|(t, v)| (t.to_string(), v.json()))
        .collect();
    let mut seconds = Map::new();
    for (t, v) in LATENCY.points {
        // Several points in one second: the latest one shows.
        seconds.insert((t / 1000).to_string(), v.json());
    }
    let mut with_ms = body.clone();
    with_ms["msResolution"] = json!(true);
    assert_eq!(query(s, &with_ms)?, json!([result(&[&LATENCY], ms)]));
    assert_eq!(query(s, &body)?, json!([result(&[&LATENCY], seconds)]));

    // TV-Q18: whole-window and 20 s buckets on pct.test (10, 20, 30, 40).
    let values: Vec<f64> = PCT.points.iter().map(|p| p.1.float()).collect();
    let sum: f64 = values.iter().sum();
    let max_of = |lo: i64, hi: i64| {
        PCT.points
            .iter()
            .filter(|p| (lo..hi).contains(&p.0))
            .map(|p| p.1.float())
            .fold(f64::MIN, f64::max)
    };
    for (spec, dps) in [
        ("0all-sum", json!({"1500000000": sum})),
        ("0all-count", json!({"1500000000": values.len() as f64})),
        ("0all-p50", json!({"1500000000": 25.0})),
        ("0all-ep50r3", json!({"1500000000": 20.0})),
        ("0all-ep50r7", json!({"1500000000": 25.0})),
        ("0all-p90", json!({"1500000000": 40.0})),
        (
            "20s-max",
            json!({"1500000000": max_of(T0, T0 + 20), "1500000020": max_of(T0 + 20, T0 + 40)}),
        ),
    ] {
        let mut body =
            window(json!({"aggregator": "sum", "metric": "pct.test", "downsample": spec}));
        body["end"] = json!(T0 + 30);
        assert_eq!(only_dps(s, &body)?, dps, "{spec}");
    }
    Ok(())
}

pub(super) fn q19_q20_explicit_tags_and_show_query(s: &TestServer) -> Result<()> {
    // TV-Q19: explicitTags needs every tag key of a series to be filtered.
    let host = json!({"type": "wildcard", "tagk": "host", "filter": "*"});
    let dc = json!({"type": "wildcard", "tagk": "dc", "filter": "*"});
    let sub = |filters: Value| {
        window(json!({"aggregator": "sum", "metric": "sys.cpu.user",
            "explicitTags": true, "filters": filters}))
    };
    assert_eq!(query(s, &sub(json!([host])))?, json!([]));
    assert_eq!(
        query(s, &sub(json!([host, dc])))?,
        json!([grouped(&[&A, &B, &C], Agg::Sum)])
    );

    // TV-Q20: arrays and showQuery.
    let mut body =
        window(json!({"aggregator": "sum", "metric": "sys.cpu.user", "tags": {"dc": "lga"}}));
    body["showQuery"] = json!(true);
    let (status, mut got) = post_json(s, "/api/query?arrays", &body)?;
    assert_eq!(status, 200, "{got}");
    let shown = got[0]
        .as_object_mut()
        .and_then(|r| r.remove("query"))
        .unwrap_or(Value::Null);
    let mut expected = grouped(&[&A, &B], Agg::Sum);
    let pairs: Vec<Value> = expected["dps"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(t, v)| Ok(json!([t.parse::<i64>()?, v])))
        .collect::<Result<_>>()?;
    expected["dps"] = Value::Array(pairs);
    assert_eq!(got, json!([expected]));
    assert_eq!(
        got[0]["dps"],
        json!([
            [1_500_000_000i64, 10],
            [1_500_000_030i64, 20],
            [1_500_000_060i64, 30],
            [1_500_000_090i64, 40],
            [1_500_000_120i64, 30]
        ])
    );
    for (member, value) in [
        ("index", json!(0)),
        ("aggregator", json!("sum")),
        ("metric", json!("sys.cpu.user")),
        ("downsample", Value::Null),
        ("rate", json!(false)),
        (
            "filters",
            json!([{"tagk": "dc", "filter": "lga", "group_by": true, "type": "literal_or"}]),
        ),
    ] {
        assert_eq!(shown.get(member), Some(&value), "query.{member} in {shown}");
    }
    Ok(())
}

pub(super) fn q21_query_errors(s: &TestServer) -> Result<()> {
    let base = window(json!({"aggregator": "sum", "metric": "sys.cpu.user"}));
    let sub_change = |member: &str, value: Value| {
        let mut b = base.clone();
        b["queries"][0][member] = value;
        b
    };
    let top_change = |changes: &[(&str, Value)]| {
        let mut b = base.clone();
        for (k, v) in changes {
            b[*k] = v.clone();
        }
        b
    };
    let mut no_start = base.clone();
    if let Some(o) = no_start.as_object_mut() {
        o.remove("start");
    }
    let cases = [
        (
            "Q21a",
            sub_change("aggregator", json!("foo")),
            "No such aggregation function: foo",
        ),
        (
            "Q21b",
            sub_change("downsample", json!("1m")),
            "Invalid downsampling specifier '1m': must provide at least interval and function",
        ),
        (
            "Q21c",
            sub_change("downsample", json!("1m-avg-bogus")),
            "No such fill policy: 'bogus': must be one of: none zero nan null",
        ),
        (
            "Q21d",
            sub_change("downsample", json!("1m-none")),
            "cannot use the NONE aggregator for downsampling",
        ),
        (
            "Q21e",
            sub_change("metric", json!("no.such.metric")),
            "No such name for 'metrics': 'no.such.metric'",
        ),
        (
            "Q21f",
            top_change(&[("start", json!(T0 + 100)), ("end", json!(T0))]),
            "End time [1500000000000] must be greater than or equal to the start time [1500000100000]",
        ),
        (
            "Q21g",
            top_change(&[("start", json!(1000))]),
            "Invalid timestamp: 1000",
        ),
        ("Q21h", no_start, "Missing start time"),
        (
            "Q21i",
            top_change(&[("start", json!("1x-ago"))]),
            "Invalid duration (suffix): 1x",
        ),
        (
            "Q21j",
            sub_change(
                "filters",
                json!([{"type": "bogus", "tagk": "host", "filter": "x"}]),
            ),
            "Could not find a tag value filter of the type: bogus",
        ),
        (
            "Q21k",
            sub_change(
                "filters",
                json!([{"type": "wildcard", "tagk": "host", "filter": "web01"}]),
            ),
            "Filter must contain an asterisk",
        ),
        (
            "Q21l",
            top_change(&[("queries", json!([]))]),
            "Missing queries",
        ),
    ];
    for (name, body, message) in cases {
        let (status, got) = post_json(s, "/api/query", &body)?;
        assert_eq!(status, 400, "TV-{name}: {got}");
        assert_eq!(got["error"]["code"], json!(400), "TV-{name}: {got}");
        assert_eq!(got["error"]["message"], json!(message), "TV-{name}: {got}");
    }
    Ok(())
}
