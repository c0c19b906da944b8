//! Reading each format into points. Line formats are read line by line
//! (the import's resume offsets are line ends); OpenTSDB and Baidu JSON
//! are streams of JSON documents, each document a record.

use super::{KeyRef, Sink, opentsdb_millis, parse_csv_tags};
use crate::transfer::{DEFAULT_FIELD, Format, Val};
use anyhow::{Context, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufRead;

/// How to read an input.
#[derive(Debug, Clone)]
pub(crate) struct ReadOptions {
    /// Where in the file the input starts (a resumed import).
    pub(crate) offset: u64,
    /// A CSV file's header row, when the input starts after it.
    pub(crate) csv_header: Option<String>,
    /// Units of InfluxDB line protocol timestamps, in nanoseconds.
    pub(crate) influx_unit_ns: i64,
    /// Bytes of JSON documents read before parsing what they complete
    /// (fewer passes over a document cut by the buffer's end).
    pub(crate) json_buffer: usize,
    /// JSON read at once from this many bytes on is parsed in two parts,
    /// on two threads.
    pub(crate) split_bytes: usize,
}

pub(crate) fn read(
    format: Format,
    input: &mut dyn BufRead,
    options: &ReadOptions,
    sink: &mut dyn Sink,
) -> anyhow::Result<()> {
    match format {
        Format::OpentsdbJson | Format::BaiduJson => {
            super::documents::read_documents(format, input, options, sink)
        }
        Format::Csv => read_csv(input, options, sink),
        _ => {
            let mut lines = Lines::new(input, options.offset);
            let mut influx = super::influx::InfluxReader::new(options.influx_unit_ns);
            while let Some((line, n, end)) = lines.next_line()? {
                let text = line.trim_end_matches(['\n', '\r']);
                match format {
                    Format::Telnet => telnet_line(text, sink),
                    Format::InfluxLine => influx.line(text, sink),
                    _ => vm_line(text, sink),
                }
                .with_context(|| format!("line {n} (byte {})", end - line.len() as u64))?;
                sink.boundary(end)?;
            }
            Ok(())
        }
    }
}

/// Lines of the input with their end offsets.
struct Lines<'a> {
    input: &'a mut dyn BufRead,
    buf: Vec<u8>,
    /// Bytes read so far, counted from the start of the file.
    offset: u64,
    /// Lines read in this run, from 1.
    number: u64,
}

impl<'a> Lines<'a> {
    fn new(input: &'a mut dyn BufRead, offset: u64) -> Self {
        Self {
            input,
            buf: Vec::with_capacity(4096),
            offset,
            number: 0,
        }
    }

    /// The next line (with its line break), its number and the offset
    /// of its end.
    fn next_line(&mut self) -> anyhow::Result<Option<(&str, u64, u64)>> {
        self.buf.clear();
        let n = self.input.read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.offset += n as u64;
        self.number += 1;
        let text = std::str::from_utf8(&self.buf)
            .with_context(|| format!("line {} is not UTF-8", self.number))?;
        Ok(Some((text, self.number, self.offset)))
    }
}

fn telnet_line(text: &str, sink: &mut dyn Sink) -> anyhow::Result<()> {
    let mut words = text.split_ascii_whitespace();
    match words.next() {
        None => return Ok(()),
        Some(w) if w.starts_with('#') => return Ok(()),
        Some("put") => {}
        Some(other) => bail!("expected 'put', found {other:?}"),
    }
    let (Some(metric), Some(ts), Some(value)) = (words.next(), words.next(), words.next()) else {
        bail!("a put needs a metric, a timestamp and a value");
    };
    let ts: i64 = ts
        .parse()
        .with_context(|| format!("bad timestamp {ts:?}"))?;
    let value = Val::from_text(value);
    if let Val::Text(t) = &value {
        bail!("value {t:?} is not a number");
    }
    let tags = words
        .map(|pair| pair.split_once('=').context("a tag without '='"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let key = KeyRef {
        metric,
        tags: &tags,
        field: DEFAULT_FIELD,
    };
    sink.point(&key, opentsdb_millis(ts), value)
}

/// One line of VictoriaMetrics' export.
#[derive(serde::Deserialize)]
struct VmLine {
    metric: BTreeMap<String, String>,
    values: Vec<Val>,
    timestamps: Vec<i64>,
}

fn vm_line(text: &str, sink: &mut dyn Sink) -> anyhow::Result<()> {
    if text.trim().is_empty() {
        return Ok(());
    }
    let line: VmLine = serde_json::from_str(text)?;
    anyhow::ensure!(
        line.values.len() == line.timestamps.len(),
        "{} values for {} timestamps",
        line.values.len(),
        line.timestamps.len()
    );
    let metric = line.metric.get("__name__").context("no __name__")?;
    let tags: Vec<(&str, &str)> = line
        .metric
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let key = KeyRef {
        metric,
        tags: &tags,
        field: DEFAULT_FIELD,
    };
    for (t, v) in line.timestamps.into_iter().zip(line.values) {
        sink.point(&key, t, v)?;
    }
    Ok(())
}

fn read_csv(
    input: &mut dyn BufRead,
    options: &ReadOptions,
    sink: &mut dyn Sink,
) -> anyhow::Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut records = reader.records();
    let names: Vec<String> = match &options.csv_header {
        Some(h) => h.split(',').map(|n| n.trim().to_owned()).collect(),
        None => match records.next() {
            Some(h) => h?.iter().map(String::from).collect(),
            None => return Ok(()),
        },
    };
    let column = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .with_context(|| format!("the CSV header has no {name} column"))
    };
    let [metric, tags, field, ts, value] = [
        column("metric")?,
        column("tags")?,
        column("field")?,
        column("timestamp")?,
        column("value")?,
    ];
    let (mut last_tags, mut pairs) = (String::new(), Vec::new());
    while let Some(record) = records.next() {
        let record = record?;
        let n = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let cell = |i: usize| record.get(i).unwrap_or_default();
        // Rows of one series follow each other: parse their tags once.
        if cell(tags) != last_tags {
            pairs = parse_csv_tags(cell(tags)).with_context(|| format!("line {n}"))?;
            cell(tags).clone_into(&mut last_tags);
        }
        let tag_refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let t: i64 = cell(ts)
            .parse()
            .with_context(|| format!("line {n}: bad timestamp {:?}", cell(ts)))?;
        let key = KeyRef {
            metric: cell(metric),
            tags: &tag_refs,
            field: match cell(field) {
                "" => DEFAULT_FIELD,
                f => f,
            },
        };
        sink.point(&key, t, Val::from_text(cell(value)))?;
        sink.boundary(options.offset + records.reader().position().byte())?;
    }
    Ok(())
}

fn string_tags(tags: &Value) -> anyhow::Result<Vec<(String, String)>> {
    let Some(map) = tags.as_object() else {
        return Ok(Vec::new());
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(n) => Ok((k.clone(), n.to_string())),
            Value::Bool(b) => Ok((k.clone(), b.to_string())),
            _ => bail!("tag {k} is not a string"),
        })
        .collect()
}

/// A JSON value as a point's value: strings read as OpenTSDB reads them
/// (numbers when they are numbers).
fn json_val(v: &Value) -> anyhow::Result<Val> {
    Ok(match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => Val::Long(i),
            None => Val::Double(n.as_f64().context("a number out of range")?),
        },
        Value::String(s) => Val::from_text(s),
        Value::Bool(b) => Val::Bool(*b),
        _ => bail!("a value must be a number, a string or a boolean"),
    })
}

fn json_ts(v: &Value) -> anyhow::Result<i64> {
    match v {
        Value::Number(n) => n.as_i64().context("a timestamp must be an integer"),
        Value::String(s) => s.parse().context("a timestamp must be an integer"),
        _ => bail!("a timestamp must be an integer"),
    }
}

pub(super) fn baidu_document(doc: &Value, sink: &mut dyn Sink) -> anyhow::Result<()> {
    let points = doc["datapoints"]
        .as_array()
        .context("expected {\"datapoints\": [...]}")?;
    for p in points {
        let metric = p["metric"].as_str().context("no metric")?;
        let field = p["field"].as_str().unwrap_or(DEFAULT_FIELD);
        let pairs = string_tags(&p["tags"])?;
        let tags: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let key = KeyRef {
            metric,
            tags: &tags,
            field,
        };
        match (&p["values"], &p["value"]) {
            (Value::Array(values), _) => {
                for pair in values {
                    let ts = json_ts(&pair[0])?;
                    sink.point(&key, ts, baidu_val(&pair[1])?)?;
                }
            }
            (_, Value::Null) => bail!("a datapoint needs value or values"),
            (_, v) => {
                let ts = match &p["timestamp"] {
                    Value::Null => jiff::Timestamp::now().as_millisecond(),
                    t => json_ts(t)?,
                };
                sink.point(&key, ts, baidu_val(v)?)?;
            }
        }
    }
    Ok(())
}

/// Baidu keeps strings as strings.
fn baidu_val(v: &Value) -> anyhow::Result<Val> {
    match v {
        Value::String(s) => Ok(Val::Text(s.clone())),
        other => json_val(other),
    }
}
