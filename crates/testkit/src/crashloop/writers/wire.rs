//! Request bodies of each write API, and the telnet exchange.

use super::Sent;
use crate::crashloop::model::{Column, ColumnId, Point};
use crate::crashloop::{PushTarget, RoundCtx};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

fn column(cols: &[Column], id: ColumnId) -> &Column {
    &cols[usize::from(id)]
}

fn tags(c: &Column) -> Value {
    Value::Object(
        c.tags
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// `/api/put`: one element per point, timestamps in ms.
pub(super) fn put_body(cols: &[Column], batch: &[Point]) -> Value {
    batch
        .iter()
        .map(|p| {
            let c = column(cols, p.col);
            json!({"metric": c.metric, "timestamp": p.ts, "value": p.value, "tags": tags(c)})
        })
        .collect()
}

/// `/v1/datapoint`: one datapoint per point, with its field.
pub(super) fn v1_body(cols: &[Column], batch: &[Point]) -> Value {
    let dps: Vec<Value> = batch
        .iter()
        .map(|p| {
            let c = column(cols, p.col);
            json!({"metric": c.metric, "field": c.field, "tags": tags(c),
                "timestamp": p.ts, "value": p.value})
        })
        .collect();
    json!({ "datapoints": dps })
}

/// `/v2/push/`: points of one series and timestamp share an item; the
/// metric is the column's physical name without the group's prefix.
pub(super) fn push_body(cols: &[Column], batch: &[Point], push: &PushTarget) -> Value {
    let mut data: Vec<Value> = Vec::new();
    for p in batch {
        let c = column(cols, p.col);
        let name = c
            .metric
            .split_once('.')
            .map_or(c.metric.as_str(), |(_, m)| m);
        let dims = tags(c);
        match data
            .iter_mut()
            .find(|i| i["timestamp"] == json!(p.ts) && i["dimension"] == dims)
        {
            Some(item) => item["metrics"][name] = json!(p.value),
            None => {
                data.push(json!({"metrics": {name: p.value}, "dimension": dims, "timestamp": p.ts}))
            }
        }
    }
    json!({"data_id": push.data_id, "access_token": push.token, "data": data})
}

/// `/api/delete_data` of `[start, end]` in the series of `col`, of the
/// fields of `fields` or of every field.
pub(super) fn delete_body(
    cols: &[Column],
    col: ColumnId,
    fields: Option<&[ColumnId]>,
    start: i64,
    end: i64,
) -> Value {
    let c = column(cols, col);
    let mut body = json!({"metric": c.metric, "tags": tags(c), "start": start, "end": end});
    if let Some(f) = fields {
        body["fields"] = f.iter().map(|id| json!(column(cols, *id).field)).collect();
    }
    body
}

/// An open telnet connection and a reader on it.
pub(crate) struct Telnet {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl std::fmt::Debug for Telnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telnet")
    }
}

/// Sends the batch as `put` lines and then `version`: the server writes
/// (and commits) the puts of what it has read before it answers a later
/// line, so the version reply acknowledges every put before it. A failed
/// commit is reported after the replies of the lines read with the puts,
/// so a second `version` (read by itself) must come back clean too.
pub(super) fn telnet(ctx: &RoundCtx, conn: &mut Option<Telnet>, batch: &[Point]) -> Sent {
    if conn.is_none() {
        *conn = connect(ctx).ok();
    }
    let Some(t) = conn.as_mut() else {
        return Sent::Broken;
    };
    let mut text = String::new();
    for p in batch {
        let c = column(&ctx.columns, p.col);
        let tags: Vec<String> = c.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        text.push_str(&format!(
            "put {} {} {} {}\n",
            c.metric,
            p.ts,
            p.value,
            tags.join(" ")
        ));
    }
    let mut errors = Vec::new();
    for request in [text.as_str(), ""] {
        if t.stream
            .write_all(format!("{request}version\n").as_bytes())
            .is_err()
        {
            return Sent::Broken;
        }
        loop {
            let mut line = String::new();
            match t.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return Sent::Broken,
                Ok(_) if line.starts_with("Built on") => break,
                Ok(_) if line.starts_with("sundial ") => {}
                Ok(_) => errors.push(line.trim_end().to_owned()),
            }
        }
    }
    if errors.is_empty() {
        Sent::Acked
    } else {
        Sent::Refused(format!("telnet: {}", errors.join(" | ")))
    }
}

fn connect(ctx: &RoundCtx) -> std::io::Result<Telnet> {
    let stream = TcpStream::connect(ctx.addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let reader = BufReader::new(stream.try_clone()?);
    Ok(Telnet { stream, reader })
}
