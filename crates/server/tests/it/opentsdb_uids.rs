//! UIDs and TSUIDs (spec 2, 15, 22.3 fixtures): assigned in first-seen
//! order, shown by lookup, last and `showTSUIDs`, usable as sub-queries,
//! assignable by hand, and kept across a `kill -9`.

use crate::harness::{TestServer, json, point};
use anyhow::Result;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The fixtures F1–F5 of spec 22.3, in write order: (metric, tags, [(ts, value)]).
type Fixture = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<(i64, Value)>,
);

fn fixtures() -> Vec<Fixture> {
    let lga = |h| vec![("host", h), ("dc", "lga")];
    vec![
        (
            "sys.cpu.user",
            lga("web01"),
            vec![(1_500_000_000, json!(10))],
        ),
        (
            "sys.cpu.user",
            lga("web01"),
            vec![(1_500_000_060, json!(20))],
        ),
        (
            "sys.cpu.user",
            lga("web01"),
            vec![(1_500_000_120, json!(30))],
        ),
        (
            "sys.cpu.user",
            lga("web02"),
            vec![(1_500_000_030, json!(5)), (1_500_000_090, json!(15))],
        ),
        (
            "sys.cpu.user",
            vec![("host", "web03"), ("dc", "sjc")],
            vec![(1_500_000_000, json!(1.5))],
        ),
        (
            "net.bytes",
            vec![("host", "web01")],
            vec![(1_500_000_000, json!(100)), (1_500_000_010, json!(200))],
        ),
        (
            "app.latency",
            vec![("host", "a")],
            vec![(1_500_000_000_123, json!(7))],
        ),
        (
            "pct.test",
            vec![("host", "a")],
            vec![(1_500_000_000, json!(10))],
        ),
        (
            "doc.lerp",
            vec![("host", "b")],
            vec![(1_500_000_000, json!(10))],
        ),
    ]
}

/// UIDs as the spec assigns them: per kind in first-seen order, the metric
/// then each tag key and value in key order.
#[derive(Default)]
struct Model {
    uids: [HashMap<String, u32>; 3],
}

impl Model {
    fn see(&mut self, kind: usize, name: &str) {
        let next = self.uids[kind].len() as u32 + 1;
        self.uids[kind].entry(name.to_owned()).or_insert(next);
    }

    fn add(&mut self, metric: &str, tags: &[(&str, &str)]) {
        self.see(0, metric);
        let mut sorted = tags.to_vec();
        sorted.sort();
        for (k, v) in sorted {
            self.see(1, k);
            self.see(2, v);
        }
    }

    fn tsuid(&self, metric: &str, tags: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(u32, u32)> = tags
            .iter()
            .map(|(k, v)| (self.uids[1][*k], self.uids[2][*v]))
            .collect();
        pairs.sort();
        let mut out = format!("{:06X}", self.uids[0][metric]);
        for (k, v) in pairs {
            out.push_str(&format!("{k:06X}{v:06X}"));
        }
        out
    }
}

fn load(s: &TestServer) -> Result<Model> {
    let mut model = Model::default();
    for (metric, tags, points) in fixtures() {
        let body: Vec<Value> = points
            .iter()
            .map(|(t, v)| point(metric, *t, v.clone(), &tags))
            .collect();
        assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
        model.add(metric, &tags);
    }
    Ok(model)
}

#[test]
fn tsuids_everywhere_and_assigned_uids_survive_kill9() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let mut s = TestServer::spawn_with(&dir, &[])?;
    let model = load(&s)?;
    let a = model.tsuid("sys.cpu.user", &[("dc", "lga"), ("host", "web01")]);
    let b = model.tsuid("sys.cpu.user", &[("dc", "lga"), ("host", "web02")]);
    let c = model.tsuid("sys.cpu.user", &[("dc", "sjc"), ("host", "web03")]);
    // The spec's own rendering of series A (22.3).
    assert_eq!(a, "000001000001000001000002000002");

    // Lookup (TV-Q24) and last (TV-Q22) carry them.
    let got = s.get_json("/api/search/lookup?m=sys.cpu.user%7Bhost=*%7D&limit=10")?;
    let listed: Vec<&str> = got["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["tsuid"].as_str())
        .collect();
    assert_eq!(listed, vec![a.as_str(), b.as_str(), c.as_str()]);
    let (status, body) = s.post(
        "/api/query/last",
        &json!({"queries": [{"tsuids": [b.clone()]}]}).to_string(),
    )?;
    assert_eq!(status, 200, "{body}");
    let last = json(&body)?;
    assert_eq!(last.as_array().map(Vec::len), Some(1));
    assert_eq!(last[0]["tsuid"], json!(b));
    assert_eq!(last[0]["value"], json!("15"));

    // showTSUIDs and a TSUID sub-query: A + C summed, C's lone point at the
    // first timestamp only (no interpolation outside its range).
    let range = json!({"start": 1_500_000_000, "end": 1_500_000_120});
    let query = |subs: Value, extra: Value| -> Result<(u16, Value)> {
        let mut q = range.clone();
        q["queries"] = subs;
        if let (Value::Object(q), Value::Object(extra)) = (&mut q, extra) {
            q.extend(extra);
        }
        let (status, body) = s.post("/api/query", &q.to_string())?;
        Ok((status, json(&body)?))
    };
    let (_, got) = query(
        json!([{"aggregator": "sum", "metric": "sys.cpu.user"}]),
        json!({"showTSUIDs": true, "showSummary": true}),
    )?;
    assert_eq!(got[0]["tsuids"], json!([a, b, c]));
    let summary = &got[1]["statsSummary"];
    assert_eq!(
        summary["datapoints"],
        json!(got[0]["dps"].as_object().map_or(0, |d| d.len()))
    );
    let stored: usize = fixtures()
        .iter()
        .filter(|(m, _, _)| *m == "sys.cpu.user")
        .map(|(_, _, p)| p.len())
        .sum();
    assert_eq!(summary["rawDatapoints"], json!(stored));
    let (status, got) = query(json!([{"aggregator": "sum", "tsuids": [a, c]}]), json!({}))?;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got[0]["dps"],
        json!({"1500000000": 10.0 + 1.5, "1500000060": 20, "1500000120": 30})
    );
    let got = s.get_json(&format!(
        "/api/query?start=1500000000&end=1500000120&tsuid=sum:{b}"
    ))?;
    assert_eq!(got[0]["dps"], json!({"1500000030": 5, "1500000090": 15}));
    let other = model.tsuid("net.bytes", &[("host", "web01")]);
    let (status, got) = query(
        json!([{"aggregator": "sum", "tsuids": [a, other]}]),
        json!({}),
    )?;
    assert_eq!(status, 400);
    assert_eq!(
        got["error"]["message"],
        json!("All TSUIDs must belong to the same metric")
    );
    let (status, got) = query(
        json!([{"aggregator": "sum", "tsuids": ["00001"]}]),
        json!({}),
    )?;
    assert_eq!(status, 400);
    assert_eq!(got["error"]["message"], json!("Invalid TSUID: 00001"));

    // TV-M01: existing names fail with their UID, a new one gets the next.
    let metrics = model.uids[0].len() as u32;
    let (status, body) = s.get("/api/uid/assign?metric=sys.cpu.user,new.metric&tagk=host")?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&body)?,
        json!({"metric": {"new.metric": format!("{:06X}", metrics + 1)},
            "metric_errors": {"sys.cpu.user": format!("Name already exists with UID: {:06X}", model.uids[0]["sys.cpu.user"])},
            "tagk": {},
            "tagk_errors": {"host": format!("Name already exists with UID: {:06X}", model.uids[1]["host"])}})
    );
    // A known metric without series answers no results, not an error.
    assert_eq!(
        query(
            json!([{"aggregator": "sum", "metric": "new.metric"}]),
            json!({})
        )?,
        (200, json!([]))
    );
    let meta = s.get_json("/api/uid/uidmeta?uid=000002&type=tagk")?;
    assert_eq!(
        (meta["name"].clone(), meta["type"].clone()),
        (json!("host"), json!("TAGK"))
    );
    assert_eq!(s.get("/api/uid/uidmeta?uid=0000FF&type=metric")?.0, 404);
    let ts = s.get_json(&format!("/api/uid/tsmeta?tsuid={c}"))?;
    assert_eq!(ts["metric"]["name"], json!("sys.cpu.user"));

    // After kill -9 the hand-assigned metric keeps its UID and every TSUID
    // is unchanged.
    s.kill9()?;
    let s = TestServer::spawn_with(&dir, &[])?;
    let (status, body) = s.get("/api/uid/assign?metric=new.metric")?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        json(&body)?["metric_errors"]["new.metric"],
        json!(format!("Name already exists with UID: {:06X}", metrics + 1))
    );
    let got = s.get_json("/api/search/lookup?m=sys.cpu.user%7Bhost=*%7D")?;
    assert_eq!(got["results"][2]["tsuid"], json!(c));
    let suggested = s.get_json("/api/suggest?type=metrics&q=new")?;
    assert_eq!(suggested, json!(["new.metric"]));
    Ok(())
}
