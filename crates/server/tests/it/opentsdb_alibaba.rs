//! Alibaba's extensions of the OpenTSDB API (spec 17): multi-field
//! `/api/mput` and `/api/mquery`, `/api/dump_meta`.

use crate::harness::{TestServer, json, point};
use anyhow::Result;
use serde_json::{Value, json};

/// (sensor, timestamp, speed, level, direction) written through mput.
pub(crate) type Wind = (&'static str, i64, f64, i64, &'static str);
pub(crate) const WIND: &[Wind] = &[
    ("s1", 1_500_000_000, 20.5, 4, "East"),
    ("s1", 1_500_000_060, 21.0, 5, "East"),
    ("s2", 1_500_000_000, 10.0, 1, "West"),
    ("s2", 1_500_000_030, 12.5, 2, "North"),
];

pub(crate) fn mput_wind(s: &TestServer) -> Result<()> {
    let body: Vec<Value> = WIND
        .iter()
        .map(|(sensor, t, speed, level, dir)| {
            json!({"metric": "wind", "timestamp": t, "tags": {"sensor": sensor},
                "fields": {"speed": speed, "level": level, "direction": dir}})
        })
        .collect();
    let (status, text) = s.post("/api/mput", &Value::Array(body).to_string())?;
    assert_eq!(status, 204, "{text}");
    Ok(())
}

fn mquery(s: &TestServer, q: Value) -> Result<(u16, Value)> {
    let (status, body) = s.post("/api/mquery", &q.to_string())?;
    Ok((status, json(&body)?))
}

#[test]
fn mput_and_mquery_join_fields_per_series() -> Result<()> {
    let s = TestServer::spawn()?;
    mput_wind(&s)?;
    let rows = |sensor: &str, cols: &dyn Fn(&Wind) -> Vec<Value>| {
        WIND.iter()
            .filter(|w| w.0 == sensor)
            .map(|w| {
                let mut row = vec![json!(w.1)];
                row.extend(cols(w));
                Value::Array(row)
            })
            .collect::<Vec<_>>()
    };
    // TV-M03: two named fields, columns in ascending order.
    let (status, got) = mquery(
        &s,
        json!({"start": 1_500_000_000, "end": 1_500_000_060, "queries": [{"metric": "wind",
            "fields": [{"field": "speed"}, {"field": "level"}], "tags": {"sensor": "s1"}}]}),
    )?;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got,
        json!([{"metric": "wind", "columns": ["timestamp", "level", "speed"],
            "tags": {"sensor": "s1"}, "aggregatedTags": [],
            "values": rows("s1", &|w| vec![json!(w.3), json!(w.2)])}])
    );
    // `*`: every field, one result per series, outer-joined rows.
    let (_, got) = mquery(
        &s,
        json!({"start": 1_500_000_000, "end": 1_500_000_060,
            "queries": [{"metric": "wind", "fields": [{"field": "*"}]}]}),
    )?;
    let all = |w: &Wind| vec![json!(w.4), json!(w.3), json!(w.2)];
    assert_eq!(
        got[0]["columns"],
        json!(["timestamp", "direction", "level", "speed"])
    );
    assert_eq!(got[0]["values"], json!(rows("s1", &all)));
    assert_eq!(got[1]["tags"], json!({"sensor": "s2"}));
    assert_eq!(got[1]["values"], json!(rows("s2", &all)));
    // Aggregated per field: the max speed and summed level over sensors,
    // each with OpenTSDB's interpolation between a series' points.
    let (_, got) = mquery(
        &s,
        json!({"start": 1_500_000_000, "end": 1_500_000_060, "queries": [{"metric": "wind",
            "fields": [{"field": "speed", "aggregator": "max", "alias": "top"},
                       {"field": "level", "aggregator": "sum", "downsample": "1m-sum"}]}]}),
    )?;
    let minute = |t0: i64| -> i64 {
        WIND.iter()
            .filter(|w| w.1 >= t0 && w.1 < t0 + 60)
            .map(|w| w.3)
            .sum()
    };
    // At :30 only s2 has a point; s1 interpolates between 20.5 and 21.0.
    let s1_at_30 = 20.5 + (21.0 - 20.5) * 30.0 / 60.0;
    assert_eq!(got[0]["columns"], json!(["timestamp", "level", "top"]));
    assert_eq!(got[0]["aggregatedTags"], json!(["sensor"]));
    assert_eq!(
        got[0]["values"],
        json!([
            [1_500_000_000, minute(1_500_000_000) as f64, 20.5],
            [1_500_000_030, null, f64::max(12.5, s1_at_30)],
            [1_500_000_060, minute(1_500_000_060) as f64, 21.0],
        ])
    );
    // limit/offset cut rows of each result.
    let (_, got) = mquery(
        &s,
        json!({"start": 1_500_000_000, "end": 1_500_000_060, "queries": [{"metric": "wind",
            "fields": [{"field": "level"}], "tags": {"sensor": "s2"}, "offset": 1, "limit": 1}]}),
    )?;
    assert_eq!(got[0]["values"], json!([[1_500_000_030, 2]]));
    let (status, got) = mquery(
        &s,
        json!({"start": 1_500_000_000, "queries": [{"metric": "wind"}]}),
    )?;
    assert_eq!(
        (status, got["error"]["message"].clone()),
        (400, json!("Missing fields"))
    );
    Ok(())
}

/// A point is atomic: one field of the wrong kind refuses all its fields.
#[test]
fn mput_details_and_per_point_atomicity() -> Result<()> {
    let s = TestServer::spawn()?;
    mput_wind(&s)?;
    let bad = json!([{"metric": "wind", "timestamp": 1_500_000_120, "tags": {"sensor": "s1"},
        "fields": {"direction": 1, "speed": 22.0}},
        {"metric": "wind", "timestamp": 1_500_000_180, "tags": {"sensor": "s1"},
        "fields": {"speed": 23.0, "gust": null}},
        {"metric": "wind", "timestamp": 1_500_000_240, "tags": {"sensor": "s1"},
        "fields": {"speed": 24.0, "bad name": 1}}]);
    let (status, body) = s.post("/api/mput?details", &bad.to_string())?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&body)?,
        json!({"errors": [
            {"datapoint": bad[0], "error": "Cannot write a numeric value to field direction of metric wind: it stores string values"},
            {"datapoint": bad[1], "error": "Empty value"},
            {"datapoint": bad[2], "error": "Invalid field name (\"bad name\"): illegal character:  "}],
            "failed": 3, "success": 0})
    );
    let (_, got) = mquery(
        &s,
        json!({"start": 1_500_000_100, "end": 1_500_000_300,
            "queries": [{"metric": "wind", "fields": [{"field": "speed"}]}]}),
    )?;
    assert_eq!(got, json!([]), "no speed of a refused point was stored");
    // `value` is the field /api/put writes.
    let put = point("wind", 1_500_000_300, json!(7), &[("sensor", "s1")]);
    assert_eq!(s.post("/api/put", &put.to_string())?.0, 204);
    let (_, got) = mquery(
        &s,
        json!({"start": 1_500_000_300, "queries": [{"metric": "wind", "fields": [{"field": "value"}]}]}),
    )?;
    assert_eq!(got[0]["values"], json!([[1_500_000_300, 7]]));
    Ok(())
}

/// TV-Q27 on the spec's fixture tags.
#[test]
fn dump_meta_lists_tag_values_by_prefix() -> Result<()> {
    let s = TestServer::spawn()?;
    let series = [("web01", "lga"), ("web02", "lga"), ("web03", "sjc")];
    let body: Vec<Value> = series
        .iter()
        .map(|(h, dc)| {
            point(
                "sys.cpu.user",
                1_500_000_000,
                json!(1),
                &[("host", h), ("dc", dc)],
            )
        })
        .collect();
    assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    let other = point("net.bytes", 1_500_000_000, json!(1), &[("host", "db01")]);
    assert_eq!(s.post("/api/put", &other.to_string())?.0, 204);
    let dump = |q: Value| -> Result<(u16, Value)> {
        let (status, body) = s.post("/api/dump_meta", &q.to_string())?;
        Ok((status, json(&body)?))
    };
    assert_eq!(
        dump(json!({"tagkey": "host", "tagvalueprefix": "web0", "max": 2}))?,
        (200, json!([{"host": "web01"}, {"host": "web02"}]))
    );
    let mut dcs: Vec<&str> = series.iter().map(|(_, dc)| *dc).collect();
    dcs.dedup();
    let want: Vec<Value> = dcs.iter().map(|dc| json!({"dc": dc})).collect();
    assert_eq!(
        dump(json!({"tagkey": "dc", "tagvalueprefix": ""}))?,
        (200, json!(want))
    );
    assert_eq!(
        dump(json!({"tagkey": "host", "tagvalueprefix": "", "metric": "net.bytes"}))?,
        (200, json!([{"host": "db01"}]))
    );
    let (status, got) = dump(json!({"tagvalueprefix": "a"}))?;
    assert_eq!(
        (status, got["error"]["message"].clone()),
        (400, json!("Missing parameter tagkey"))
    );
    Ok(())
}

/// TV-M02 and TV-M04: deletes keep what they should, also across a
/// `kill -9`.
#[test]
fn delete_data_and_delete_meta() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let mut s = TestServer::spawn_with(&dir, &[])?;
    let hosts = [("web01", "lga"), ("web02", "lga"), ("web03", "sjc")];
    let series: Vec<(usize, i64, i64)> = (0..hosts.len())
        .flat_map(|h| (0..5).map(move |i| (h, 1_500_000_000 + 30 * i, (h as i64 + 1) * 10 + i)))
        .collect();
    let body: Vec<Value> = series
        .iter()
        .map(|(h, t, v)| {
            point(
                "sys.cpu.user",
                *t,
                json!(v),
                &[("host", hosts[*h].0), ("dc", hosts[*h].1)],
            )
        })
        .collect();
    assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    let pct: Vec<Value> = (0..4)
        .map(|i| {
            point(
                "pct.test",
                1_500_000_000 + 10 * i,
                json!(10 * (i + 1)),
                &[("host", "a")],
            )
        })
        .collect();
    assert_eq!(s.post("/api/put", &Value::Array(pct).to_string())?.0, 204);
    let (start, end) = (1_500_000_000, 1_500_000_060);
    let (status, body) = s.post(
        "/api/delete_data",
        &json!({"metric": "sys.cpu.user", "tags": {"host": "web02"}, "start": start, "end": end})
            .to_string(),
    )?;
    assert_eq!((status, body.as_str()), (200, ""));
    let dps = |s: &TestServer, host: usize| -> Result<Value> {
        let got = s.get_json(&format!(
            "/api/query?start=1500000000&end=1500000300&m=sum:sys.cpu.user%7Bhost={}%7D",
            hosts[host].0
        ))?;
        Ok(got[0]["dps"].clone())
    };
    let expect = |host: usize, deleted: &dyn Fn(i64) -> bool| -> Value {
        let map: serde_json::Map<String, Value> = series
            .iter()
            .filter(|(h, t, _)| *h == host && !deleted(*t))
            .map(|(_, t, v)| (t.to_string(), json!(v)))
            .collect();
        Value::Object(map)
    };
    let in_range = |t: i64| (start..=end).contains(&t);
    assert_eq!(dps(&s, 1)?, expect(1, &in_range));
    assert_eq!(dps(&s, 0)?, expect(0, &|_| false), "other series untouched");
    let listed = s.get_json("/api/search/lookup?m=sys.cpu.user%7Bhost=web02%7D")?;
    assert_eq!(listed["totalResults"], json!(1), "the series stays");
    // A field the series does not have deletes nothing.
    let (status, _) = s.post(
        "/api/delete_data",
        &json!({"metric": "sys.cpu.user", "start": start, "fields": ["other"]}).to_string(),
    )?;
    assert_eq!(status, 200);
    assert_eq!(dps(&s, 2)?, expect(2, &|_| false));

    // TV-M04.
    let (status, body) = s.post(
        "/api/delete_meta",
        &json!({"metric": "pct.test"}).to_string(),
    )?;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, body) = s.post(
        "/api/query",
        &json!({"start": start, "queries": [{"aggregator": "sum", "metric": "pct.test"}]})
            .to_string(),
    )?;
    assert_eq!((status, json(&body)?), (200, json!([])));
    let lookup = s.get_json("/api/search/lookup?m=pct.test")?;
    assert_eq!(
        (lookup["results"].clone(), lookup["totalResults"].clone()),
        (json!([]), json!(0))
    );
    assert_eq!(
        s.get_json("/api/suggest?type=metrics&q=pct")?,
        json!(["pct.test"])
    );
    // The kind is forgotten with the last series: text is accepted now.
    let text = point("pct.test", 1_500_000_100, json!("up"), &[("host", "b")]);
    assert_eq!(s.post("/api/put", &text.to_string())?.0, 204);

    s.kill9()?;
    let s = TestServer::spawn_with(&dir, &[])?;
    assert_eq!(
        dps(&s, 1)?,
        expect(1, &in_range),
        "deleted points stay deleted"
    );
    let lookup = s.get_json("/api/search/lookup?m=pct.test")?;
    assert_eq!(lookup["results"][0]["tags"], json!({"host": "b"}));
    assert_eq!(lookup["totalResults"], json!(1));
    for (path, body, message) in [
        (
            "/api/delete_data",
            json!({"start": start}),
            "Missing metric",
        ),
        (
            "/api/delete_data",
            json!({"metric": "sys.cpu.user"}),
            "Missing start time",
        ),
        (
            "/api/delete_meta",
            json!({"tags": {"host": "a"}}),
            "Missing metric",
        ),
    ] {
        let (status, got) = s.post(path, &body.to_string())?;
        assert_eq!(
            (status, json(&got)?["error"]["message"].clone()),
            (400, json!(message))
        );
    }
    Ok(())
}
