//! Reading back everything the loop's columns hold after a restart:
//! OpenTSDB columns through `POST /api/query` (`none`, milliseconds), `/v1`
//! and BlueKing columns through the `/v1` JSON query, following markers.

use super::http::{self, Reply};
use super::model::{Column, ColumnId, Observed, ReadApi, Tally, describe};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Every point of every column in `[start, end]` (ms); points of series
/// the loop never wrote count as stray in the returned tally.
pub(crate) fn read_all(
    base_url: &str,
    columns: &[Column],
    start: i64,
    end: i64,
) -> Result<(Observed, Tally)> {
    let agent = http::agent();
    let index: HashMap<&Column, ColumnId> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c, ColumnId::try_from(i).unwrap_or(ColumnId::MAX)))
        .collect();
    let reads: BTreeSet<(ReadApi, &str, &str)> = columns
        .iter()
        .map(|c| (c.read, c.metric.as_str(), c.field.as_str()))
        .collect();
    let mut observed = Observed::new();
    let mut stray = Tally::default();
    for (api, metric, field) in reads {
        let series = match api {
            ReadApi::OpenTsdb => opentsdb(&agent, base_url, metric, start, end)?,
            ReadApi::V1 => {
                let keys: BTreeSet<&str> = columns
                    .iter()
                    .filter(|c| c.metric == metric)
                    .flat_map(|c| c.tags.iter().map(|(k, _)| k.as_str()))
                    .collect();
                v1(&agent, base_url, metric, field, &keys, start, end)?
            }
        };
        for (tags, points) in series {
            let col = Column {
                metric: metric.to_owned(),
                field: field.to_owned(),
                tags,
                read: api,
            };
            match index.get(&col) {
                Some(id) => observed.entry(*id).or_default().extend(points),
                None => {
                    for (ts, v) in points {
                        stray.stray += 1;
                        stray.note(format!(
                            "stray (series never written): {col} ts {ts}: {}",
                            describe(v)
                        ));
                    }
                }
            }
        }
    }
    Ok((observed, stray))
}

/// A JSON number as the loop's value (`u64::MAX` if it is not one).
fn value(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < (1u64 << 53) as f64)
                .map(|f| f as u64)
        })
        .unwrap_or(u64::MAX)
}

type Series = Vec<(Vec<(String, String)>, BTreeMap<i64, u64>)>;

fn answered(reply: Reply, what: &str) -> Result<Value> {
    match reply {
        Reply::Answered { status: 200, body } => {
            serde_json::from_str(&body).with_context(|| format!("{what}: not JSON"))
        }
        r => bail!("{what}: {}", r.summary()),
    }
}

fn opentsdb(
    agent: &ureq::Agent,
    base_url: &str,
    metric: &str,
    start: i64,
    end: i64,
) -> Result<Series> {
    let body = json!({"start": start, "end": end, "msResolution": true,
        "queries": [{"metric": metric, "aggregator": "none"}]});
    let reply = http::request(
        agent,
        "POST",
        &format!("{base_url}/api/query"),
        Some(&body.to_string()),
    );
    if let Reply::Answered { status: 400, body } = &reply
        && body.contains("No such name")
    {
        // The metric was never stored.
        return Ok(Vec::new());
    }
    let answer = answered(reply, &format!("/api/query {metric}"))?;
    let mut out = Vec::new();
    for r in answer.as_array().context("/api/query answer is no array")? {
        let mut tags: Vec<(String, String)> = r["tags"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        tags.sort();
        let mut points = BTreeMap::new();
        for (ts, v) in r["dps"].as_object().into_iter().flatten() {
            points.insert(
                ts.parse().with_context(|| format!("dps key {ts}"))?,
                value(v),
            );
        }
        out.push((tags, points));
    }
    Ok(out)
}

fn v1(
    agent: &ureq::Agent,
    base_url: &str,
    metric: &str,
    field: &str,
    keys: &BTreeSet<&str>,
    start: i64,
    end: i64,
) -> Result<Series> {
    let keys: Vec<&str> = keys.iter().copied().collect();
    let mut by_tags: BTreeMap<Vec<(String, String)>, BTreeMap<i64, u64>> = BTreeMap::new();
    let mut marker: Option<String> = None;
    loop {
        let mut q = json!({"metric": metric, "field": field, "tags": keys,
            "filters": {"start": start, "end": end}, "limit": 1_000_000});
        if let Some(m) = &marker {
            q["marker"] = json!(m);
        }
        let body = json!({ "queries": [q] }).to_string();
        let url = format!("{base_url}/v1/datapoint?query");
        let answer = answered(
            http::request(agent, "PUT", &url, Some(&body)),
            &format!("/v1 query {metric}"),
        )?;
        let result = &answer["results"][0];
        for group in result["groups"].as_array().into_iter().flatten() {
            for row in group["values"].as_array().into_iter().flatten() {
                let row = row.as_array().context("/v1 row is no array")?;
                let ts = row
                    .first()
                    .and_then(Value::as_i64)
                    .context("/v1 row timestamp")?;
                let v = row.get(1).map_or(u64::MAX, value);
                let mut tags: Vec<(String, String)> = keys
                    .iter()
                    .zip(row.iter().skip(2))
                    .filter_map(|(k, v)| Some(((*k).to_owned(), v.as_str()?.to_owned())))
                    .collect();
                tags.sort();
                by_tags.entry(tags).or_default().insert(ts, v);
            }
        }
        match result["nextMarker"].as_str() {
            Some(m) if result["truncated"] == json!(true) => marker = Some(m.to_owned()),
            _ => break,
        }
    }
    Ok(by_tags.into_iter().collect())
}
