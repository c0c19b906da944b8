//! TV-M01..TV-M05, in order after the read-only vectors: UID assignment,
//! deletes, mput/mquery and the disabled delete query.

use super::meta::lookup;
use super::*;

pub(super) fn m01_uid_assign(s: &TestServer) -> Result<()> {
    let (status, text) = s.get("/api/uid/assign?metric=sys.cpu.user,new.metric&tagk=host")?;
    assert_eq!(
        (status, json(&text)?),
        (
            400,
            json!({"metric": {"new.metric": "000006"},
                "metric_errors": {"sys.cpu.user": "Name already exists with UID: 000001"},
                "tagk": {}, "tagk_errors": {"host": "Name already exists with UID: 000002"}})
        )
    );
    // Known metric, no series.
    let got = query(
        s,
        &window(json!({"aggregator": "sum", "metric": "new.metric"})),
    )?;
    assert_eq!(got, json!([]));
    Ok(())
}

/// Series B after TV-M02 deleted its points in `[T0, T0 + 60]`.
const B_AFTER_M02: Series = Series {
    metric: "sys.cpu.user",
    tags: &[("host", "web02"), ("dc", "lga")],
    points: &[(T0 + 90, Num::I(15))],
};

pub(super) fn m02_delete_data(s: &TestServer) -> Result<()> {
    let (status, text) = s.post(
        "/api/delete_data",
        &json!({"metric": "sys.cpu.user", "tags": {"host": "web02"}, "start": T0, "end": T0 + 60})
            .to_string(),
    )?;
    assert_eq!((status, text.as_str()), (200, ""));
    let kept: Vec<(i64, Num)> = B
        .points
        .iter()
        .copied()
        .filter(|p| !(T0..=T0 + 60).contains(&p.0))
        .collect();
    let kept: Map<String, Value> = kept
        .iter()
        .map(|(t, v)| (t.to_string(), v.json()))
        .collect();
    let got = s.get_json(&format!(
        "/api/query?start={T0}&end={END}&m=sum:sys.cpu.user%7Bhost=web02%7D"
    ))?;
    assert_eq!(got, json!([result(&[&B], kept)]));
    assert_eq!(got, json!([grouped(&[&B_AFTER_M02], Agg::Sum)]));
    Ok(())
}

/// (timestamp, speed, level, direction) of sensor s1, written by TV-M03.
const WIND: &[(i64, f64, i64, &str)] = &[(T0, 20.5, 4, "East"), (T0 + 60, 21.0, 5, "East")];

pub(super) fn m03_mput_mquery(s: &TestServer) -> Result<()> {
    let body: Vec<Value> = WIND
        .iter()
        .map(|(t, speed, level, dir)| {
            json!({"metric": "wind", "timestamp": t,
                "fields": {"speed": speed, "level": level, "direction": dir},
                "tags": {"sensor": "s1"}})
        })
        .collect();
    let (status, text) = s.post("/api/mput", &Value::Array(body).to_string())?;
    assert_eq!(status, 204, "{text}");

    let mquery = |fields: Value, end: i64| {
        json!({"start": T0, "end": end, "queries": [{"metric": "wind", "fields": fields,
            "tags": {"sensor": "s1"}}]})
    };
    let (status, got) = post_json(
        s,
        "/api/mquery",
        &mquery(json!([{"field": "speed"}, {"field": "level"}]), T0 + 60),
    )?;
    let rows: Vec<Value> = WIND
        .iter()
        .map(|(t, speed, level, _)| json!([t, level, speed]))
        .collect();
    assert_eq!(
        (status, got),
        (
            200,
            json!([{"metric": "wind", "columns": ["timestamp", "level", "speed"],
                "tags": {"sensor": "s1"}, "aggregatedTags": [], "values": rows}])
        )
    );
    let (status, got) = post_json(s, "/api/mquery", &mquery(json!([{"field": "*"}]), T0 + 60))?;
    assert_eq!(status, 200, "{got}");
    let rows: Vec<Value> = WIND
        .iter()
        .map(|(t, speed, level, dir)| json!([t, dir, level, speed]))
        .collect();
    assert_eq!(
        got[0]["columns"],
        json!(["timestamp", "direction", "level", "speed"])
    );
    assert_eq!(got[0]["values"], json!(rows));
    assert_eq!(
        got[0]["values"],
        json!([
            [1_500_000_000i64, "East", 4, 20.5],
            [1_500_000_060i64, "East", 5, 21.0]
        ])
    );

    // A numeric value for the string field fails the whole element.
    let bad = json!({"metric": "wind", "timestamp": T0 + 120,
        "fields": {"direction": 1, "speed": 22.0}, "tags": {"sensor": "s1"}});
    let (status, got) = post_json(s, "/api/mput?details", &json!([bad]))?;
    assert_eq!(
        (status, got),
        (
            400,
            json!({"errors": [{"datapoint": bad, "error":
                "Cannot write a numeric value to field direction of metric wind: it stores string values"}],
                "failed": 1, "success": 0})
        )
    );
    let (status, got) = post_json(
        s,
        "/api/mquery",
        &mquery(json!([{"field": "speed"}]), T0 + 120),
    )?;
    let speeds: Vec<Value> = WIND
        .iter()
        .map(|(t, speed, _, _)| json!([t, speed]))
        .collect();
    assert_eq!(status, 200, "{got}");
    assert_eq!(got[0]["values"], json!(speeds));
    Ok(())
}

pub(super) fn m04_delete_meta(s: &TestServer) -> Result<()> {
    let (status, text) = s.post(
        "/api/delete_meta",
        &json!({"metric": "pct.test"}).to_string(),
    )?;
    assert_eq!((status, text.as_str()), (200, ""));
    let got = query(
        s,
        &window(json!({"aggregator": "sum", "metric": "pct.test"})),
    )?;
    assert_eq!(got, json!([]));
    let got = lookup(s, "m=pct.test")?;
    assert_eq!(got["results"], json!([]));
    assert_eq!(got["totalResults"], json!(0));
    // UIDs stay.
    assert_eq!(
        s.get_json("/api/suggest?type=metrics&q=pct")?,
        json!(["pct.test"])
    );
    Ok(())
}

pub(super) fn m05_delete_query_disabled(s: &TestServer) -> Result<()> {
    let body = window(json!({"aggregator": "sum", "metric": "sys.cpu.user"}));
    let (status, text) = s.request("DELETE", "/api/query", Some(&body.to_string()))?;
    let got = json(&text)?;
    assert_error(status, &got, 400, "Bad request");
    assert_eq!(
        got["error"]["details"],
        json!("Deleting data is not enabled (allow_delete=false)")
    );
    // Data unchanged: the TV-Q01 sum over the data left by TV-M02.
    assert_eq!(
        query(s, &body)?,
        json!([grouped(&[&A, &B_AFTER_M02, &C], Agg::Sum)])
    );
    Ok(())
}
