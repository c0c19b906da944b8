//! `sundial export` and `sundial import` against real servers: a round
//! trip through every format answers as the original, `--resume` goes on
//! where a run stopped, and a VictoriaMetrics export file imports to the
//! answers VictoriaMetrics gives.

use crate::harness::{TestServer, point};
use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const T0: i64 = 1_700_000_000_000;
const FORMATS: [&str; 6] = [
    "opentsdb-json",
    "telnet",
    "csv",
    "baidu-json",
    "influx-line",
    "vm-jsonl",
];

fn sundial(args: &[&str]) -> Result<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_sundial"))
        .args(args)
        .output()?;
    ensure!(
        out.status.success(),
        "sundial {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stderr)? + &String::from_utf8(out.stdout)?)
}

/// Series → timestamp → value, from a server's `/api/export`.
type Points = BTreeMap<(String, Vec<(String, String)>, String), BTreeMap<i64, Value>>;

fn exported(s: &TestServer) -> Result<Points> {
    let (status, body) = s.get("/api/export")?;
    ensure!(status == 200, "{body}");
    let mut out = Points::new();
    for line in body.lines() {
        let l: Value = serde_json::from_str(line)?;
        let tags: Vec<(String, String)> = l["tags"]
            .as_object()
            .context("tags")?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let key = (
            l["metric"].as_str().context("metric")?.to_owned(),
            tags,
            l["field"].as_str().context("field")?.to_owned(),
        );
        let series = out.entry(key).or_default();
        for (t, v) in l["timestamps"]
            .as_array()
            .context("timestamps")?
            .iter()
            .zip(l["values"].as_array().context("values")?)
        {
            series.insert(t.as_i64().context("ts")?, v.clone());
        }
    }
    Ok(out)
}

/// Two hosts of `rt.cpu` (integers and doubles) through `/api/put`, and
/// `rt_wind` with a double and a text field through `/v1/datapoint`.
fn write_sample(s: &TestServer) -> Result<()> {
    let mut points = Vec::new();
    for i in 0..40i64 {
        for host in ["a", "b"] {
            let value = if i % 2 == 0 {
                json!(i * 3)
            } else {
                json!(i as f64 / 4.0)
            };
            points.push(point("rt.cpu", T0 + i * 10_000, value, &[("host", host)]));
        }
    }
    let (status, body) = s.post("/api/put", &Value::Array(points).to_string())?;
    ensure!(status == 204, "{body}");
    let speed: Vec<Value> = (0..20i64)
        .map(|i| json!([T0 + i * 60_000, i as f64 * 1.5 + 0.25]))
        .collect();
    let dir: Vec<Value> = (0..20i64)
        .map(|i| {
            let name = ["north", "east", "south west"][i as usize % 3];
            json!([T0 + i * 60_000, name])
        })
        .collect();
    let body = json!({"datapoints": [
        {"metric": "rt_wind", "field": "speed", "tags": {"station": "s1"}, "values": speed},
        {"metric": "rt_wind", "field": "dir", "tags": {"station": "s1"}, "values": dir},
    ]});
    let r = s.send(
        "POST",
        "/v1/datapoint",
        &[("Content-Type", "application/json")],
        Some(body.to_string().as_bytes()),
    )?;
    ensure!(r.status == 204, "{}", r.body);
    Ok(())
}

/// What a field-less format keeps: numbers only, fields named into the
/// metric, booleans as numbers.
fn flattened(points: &Points) -> Points {
    let mut out = Points::new();
    for ((metric, tags, field), series) in points {
        let metric = if field == "value" {
            metric.clone()
        } else {
            format!("{metric}.{field}")
        };
        let numbers: BTreeMap<i64, Value> = series
            .iter()
            .filter(|(_, v)| v.is_number())
            .map(|(t, v)| (*t, v.clone()))
            .collect();
        if !numbers.is_empty() {
            out.insert((metric, tags.clone(), "value".into()), numbers);
        }
    }
    out
}

fn query(s: &TestServer, m: &str) -> Result<Value> {
    s.get_json(&format!("/api/query?start={T0}&ms=true&m={m}"))
}

#[test]
fn export_then_import_answers_alike_in_every_format() -> Result<()> {
    let source = TestServer::spawn()?;
    write_sample(&source)?;
    let original = exported(&source)?;
    assert_eq!(original.len(), 4, "{original:?}");
    let dir = tempfile::tempdir()?;
    for format in FORMATS {
        let file = dir.path().join(format!("data.{format}"));
        let file = file.to_str().context("path")?;
        let from = format!("http://{}", source.addr);
        let said = sundial(&[
            "export", "--url", &from, "--format", format, "--output", file,
        ])?;
        assert!(said.contains("exported"), "{said}");
        let target = TestServer::spawn()?;
        let to = format!("http://{}", target.addr);
        sundial(&["import", "--url", &to, "--format", format, file])?;
        let back = exported(&target)?;
        let want = match format {
            "telnet" | "vm-jsonl" => flattened(&original),
            _ => original.clone(),
        };
        assert_eq!(back, want, "{format}");
        for m in ["sum:rt.cpu", "none:rt.cpu", "max:1m-avg:rt.cpu"] {
            assert_eq!(query(&target, m)?, query(&source, m)?, "{format} {m}");
        }
        // The progress files are gone after a complete run.
        assert!(!Path::new(&format!("{file}.sundial-export")).exists());
        assert!(!Path::new(&format!("{file}.sundial-import")).exists());
    }
    Ok(())
}

#[test]
fn import_and_export_resume_where_they_stopped() -> Result<()> {
    let s = TestServer::spawn()?;
    let url = format!("http://{}", s.addr);
    let dir = tempfile::tempdir()?;
    // Import: a progress file saying the first 30 lines are in.
    let lines: Vec<String> = (0..50)
        .map(|i| format!("put resume.m {} {i} k=v\n", T0 + i * 1000))
        .collect();
    let file = dir.path().join("in.telnet");
    std::fs::write(&file, lines.concat())?;
    let done: usize = lines[..30].iter().map(String::len).sum();
    std::fs::write(
        dir.path().join("in.telnet.sundial-import"),
        json!({"bytes": done, "points": 30}).to_string(),
    )?;
    let path = file.to_str().context("path")?;
    sundial(&[
        "import", "--url", &url, "--format", "telnet", "--resume", path,
    ])?;
    let stored = exported(&s)?;
    let series = stored.values().next().context("one series")?;
    let want: BTreeMap<i64, Value> = (30..50).map(|i| (T0 + i * 1000, json!(i))).collect();
    assert_eq!(series, &want);

    // Export: the first metric finished, then junk from an interrupted
    // second one; --resume cuts the junk and writes the rest.
    sundial(&["import", "--url", &url, "--format", "telnet", path])?;
    let other = dir.path().join("other.telnet");
    std::fs::write(&other, format!("put resume.n {T0} 7 k=w\n"))?;
    sundial(&[
        "import",
        "--url",
        &url,
        "--format",
        "telnet",
        other.to_str().context("p")?,
    ])?;
    let out = dir.path().join("out.csv");
    let out_path = out.to_str().context("path")?;
    sundial(&[
        "export", "--url", &url, "--format", "csv", "--output", out_path,
    ])?;
    let whole = std::fs::read_to_string(&out)?;
    let first_metric_end = whole
        .find("resume.n")
        .context("the second metric is exported")?;
    let mut cut = whole[..first_metric_end].to_owned();
    cut.push_str("resume.n,k=w,val");
    std::fs::write(&out, &cut)?;
    std::fs::write(
        dir.path().join("out.csv.sundial-export"),
        json!({"bytes": first_metric_end, "points": 50, "metrics_done": ["resume.m"]}).to_string(),
    )?;
    sundial(&[
        "export", "--url", &url, "--format", "csv", "--output", out_path, "--resume",
    ])?;
    assert_eq!(std::fs::read_to_string(&out)?, whole);
    Ok(())
}

#[test]
fn import_refusals_are_counted_and_reported() -> Result<()> {
    let s = TestServer::spawn()?;
    let url = format!("http://{}", s.addr);
    let dir = tempfile::tempdir()?;
    // The second point's kind clashes with the first: the server refuses
    // it, the import says so and exits non-zero, the first point stays.
    let file = dir.path().join("clash.csv");
    std::fs::write(
        &file,
        format!(
            "metric,tags,field,timestamp,value\nk.m,a=1,,{T0},5\nk.m,a=1,,{},text\n",
            T0 + 1
        ),
    )?;
    let out = Command::new(env!("CARGO_BIN_EXE_sundial"))
        .args(["import", "--url", &url, "--format", "csv"])
        .arg(&file)
        .output()?;
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("refused 1 points"), "{said}");
    let stored = exported(&s)?;
    assert_eq!(stored.values().map(BTreeMap::len).sum::<usize>(), 1);
    // A malformed record stops the import and names its line.
    std::fs::write(&file, "put a 1 1 k=v\nput a notatime 1 k=v\n")?;
    let out = Command::new(env!("CARGO_BIN_EXE_sundial"))
        .args(["import", "--url", &url, "--format", "telnet"])
        .arg(&file)
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    Ok(())
}
