//! Writing the server's series lines in each format. OpenTSDB JSON and
//! Baidu JSON go out one request body per line (each line can be sent to
//! `/api/put` or `/v1/datapoint` as it is).

use super::csv_tags;
use crate::transfer::{DEFAULT_FIELD, Format, Line, Val};
use serde_json::{Map, Value, json};
use std::io::Write;

/// What a format could not hold, counted for the closing summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Losses {
    /// Points of fields other than `value` written as `<metric>.<field>`
    /// (telnet and VictoriaMetrics have no fields).
    pub(crate) renamed: u64,
    /// Text points left out (telnet and VictoriaMetrics hold numbers only).
    pub(crate) skipped_text: u64,
}

pub(crate) struct Writer<W: Write> {
    format: Format,
    out: W,
    influx_unit_ns: i64,
    pub(crate) losses: Losses,
}

impl<W: Write> Writer<W> {
    pub(crate) fn new(format: Format, out: W, influx_unit_ns: i64) -> Self {
        Self {
            format,
            out,
            influx_unit_ns,
            losses: Losses::default(),
        }
    }

    /// What goes before the first line (a CSV header).
    pub(crate) fn start(&mut self) -> std::io::Result<()> {
        if self.format == Format::Csv {
            self.out.write_all(b"metric,tags,field,timestamp,value\n")?;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    pub(crate) fn inner_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Writes one series line; the points written.
    pub(crate) fn line(&mut self, line: &Line) -> anyhow::Result<u64> {
        let points = line.timestamps.iter().zip(&line.values);
        match self.format {
            Format::OpentsdbJson => {
                let elements: Vec<Value> = points
                    .map(|(t, v)| {
                        let mut e =
                            json!({"metric": line.metric, "timestamp": t, "tags": line.tags});
                        if line.field == DEFAULT_FIELD {
                            e["value"] = json!(v);
                        } else {
                            let mut fields = Map::new();
                            fields.insert(line.field.clone(), json!(v));
                            e["fields"] = Value::Object(fields);
                        }
                        e
                    })
                    .collect();
                serde_json::to_writer(&mut self.out, &elements)?;
                self.out.write_all(b"\n")?;
            }
            Format::BaiduJson => {
                let values: Vec<Value> = points.map(|(t, v)| json!([t, v])).collect();
                let doc = json!({"datapoints": [{
                    "metric": line.metric, "field": line.field, "tags": line.tags, "values": values,
                }]});
                serde_json::to_writer(&mut self.out, &doc)?;
                self.out.write_all(b"\n")?;
            }
            Format::Telnet => return self.telnet(line),
            Format::VmJsonl => return self.vm(line),
            Format::Csv => {
                let tags = csv_tags(line.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                let mut csv = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(&mut self.out);
                for (t, v) in points {
                    let value = match v {
                        Val::Text(s) => s.clone(),
                        // `{:?}` keeps a decimal point on whole doubles,
                        // so they come back as doubles.
                        Val::Double(d) => format!("{d:?}"),
                        Val::Long(i) => i.to_string(),
                        Val::Bool(b) => b.to_string(),
                    };
                    csv.write_record([
                        line.metric.as_str(),
                        &tags,
                        &line.field,
                        &t.to_string(),
                        &value,
                    ])?;
                }
                csv.flush()?;
            }
            Format::InfluxLine => self.influx(line)?,
        }
        Ok(line.timestamps.len() as u64)
    }

    /// The metric a field-less format names a field by.
    fn flat_metric(&mut self, line: &Line) -> String {
        if line.field == DEFAULT_FIELD {
            line.metric.clone()
        } else {
            self.losses.renamed += line.timestamps.len() as u64;
            format!("{}.{}", line.metric, line.field)
        }
    }

    fn telnet(&mut self, line: &Line) -> anyhow::Result<u64> {
        let metric = self.flat_metric(line);
        let tags: String = line.tags.iter().map(|(k, v)| format!(" {k}={v}")).collect();
        let mut written = 0;
        for (t, v) in line.timestamps.iter().zip(&line.values) {
            let Some(value) = telnet_value(v) else {
                self.losses.skipped_text += 1;
                continue;
            };
            writeln!(self.out, "put {metric} {t} {value}{tags}")?;
            written += 1;
        }
        Ok(written)
    }

    fn vm(&mut self, line: &Line) -> anyhow::Result<u64> {
        let mut labels = Map::new();
        labels.insert("__name__".into(), Value::String(self.flat_metric(line)));
        for (k, v) in &line.tags {
            labels.insert(k.clone(), Value::String(v.clone()));
        }
        let (mut timestamps, mut values) = (Vec::new(), Vec::new());
        for (t, v) in line.timestamps.iter().zip(&line.values) {
            match v {
                Val::Text(_) => self.losses.skipped_text += 1,
                Val::Bool(b) => {
                    timestamps.push(*t);
                    values.push(json!(u8::from(*b)));
                }
                other => {
                    timestamps.push(*t);
                    values.push(json!(other));
                }
            }
        }
        if timestamps.is_empty() {
            return Ok(0);
        }
        let written = timestamps.len() as u64;
        let doc = json!({"metric": labels, "values": values, "timestamps": timestamps});
        serde_json::to_writer(&mut self.out, &doc)?;
        self.out.write_all(b"\n")?;
        Ok(written)
    }

    fn influx(&mut self, line: &Line) -> anyhow::Result<()> {
        use influxdb_line_protocol::builder::LineProtocolBuilder;
        let mut buf = Vec::new();
        for (t, v) in line.timestamps.iter().zip(&line.values) {
            let mut b = LineProtocolBuilder::new_with(&mut buf).measurement(&line.metric);
            for (k, tv) in &line.tags {
                b = b.tag(k, tv);
            }
            let b = match v {
                Val::Long(i) => b.field(&line.field, *i),
                Val::Double(d) => b.field(&line.field, *d),
                Val::Bool(x) => b.field(&line.field, *x),
                Val::Text(s) => b.field(&line.field, s.as_str()),
            };
            b.timestamp(t.saturating_mul(1_000_000) / self.influx_unit_ns)
                .close_line();
        }
        self.out.write_all(&buf)?;
        Ok(())
    }
}

/// A value as telnet `put` writes it; text has no telnet form.
fn telnet_value(v: &Val) -> Option<String> {
    match v {
        Val::Long(i) => Some(i.to_string()),
        Val::Double(d) => Some(format!("{d:?}")),
        Val::Bool(b) => Some(u8::from(*b).to_string()),
        Val::Text(_) => None,
    }
}
