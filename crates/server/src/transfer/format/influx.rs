//! InfluxDB line protocol through the `influxdb-line-protocol` crate, with
//! each series parsed once: a file repeats a series' measurement and tags
//! on every line, and parsing them again cost most of an import's time.
//! A line whose series part is known is handed to the crate with a one-letter
//! measurement in its place, so fields and timestamp are still the crate's.

use super::{KeyRef, Sink};
use crate::transfer::Val;
use influxdb_line_protocol::{FieldValue as F, ParsedLine};
use std::collections::HashMap;

/// Distinct series kept; the cache starts over past this many.
const MAX_CACHED_SERIES: usize = 1 << 16;

/// Reads line protocol into a sink, line by line.
pub(crate) struct InfluxReader {
    /// Units of the timestamps, in nanoseconds.
    unit_ns: i64,
    /// The time of lines without one, in ns: when the import started, the
    /// same for all its lines (InfluxDB stamps a request's lines alike).
    now_ns: i64,
    /// The series part of a line (up to its first space) -> measurement and
    /// tags.
    series: HashMap<String, Series>,
    /// `x ` and the rest of a line whose series is cached.
    scratch: String,
}

struct Series {
    measurement: String,
    tags: Vec<(String, String)>,
}

impl InfluxReader {
    pub(crate) fn new(unit_ns: i64) -> Self {
        Self::at(unit_ns, jiff::Timestamp::now().as_nanosecond() as i64)
    }

    /// A reader whose lines without a time get `now_ns`.
    fn at(unit_ns: i64, now_ns: i64) -> Self {
        Self {
            unit_ns,
            now_ns,
            series: HashMap::new(),
            scratch: String::new(),
        }
    }

    pub(crate) fn line(&mut self, text: &str, sink: &mut dyn Sink) -> anyhow::Result<()> {
        let Some((series, rest)) = cacheable_split(text) else {
            return self.parse_whole(text, sink).map(drop);
        };
        let Some(known) = self.series.get(series) else {
            if self.series.len() >= MAX_CACHED_SERIES {
                self.series.clear();
            }
            let parsed = self.parse_whole(text, sink)?;
            if let Some(s) = parsed {
                self.series.insert(series.to_owned(), s);
            }
            return Ok(());
        };
        self.scratch.clear();
        self.scratch.push_str("x ");
        self.scratch.push_str(rest);
        let mut lines = influxdb_line_protocol::parse_lines(&self.scratch);
        let (Some(line), None) = (lines.next(), lines.next()) else {
            anyhow::bail!("expected one line");
        };
        let line = line.map_err(|e| anyhow::anyhow!("{e}"))?;
        let tags: Vec<(&str, &str)> = known
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        points(
            &line,
            &known.measurement,
            &tags,
            (self.unit_ns, self.now_ns),
            sink,
        )
    }

    /// Parses the whole line with the crate; its series, when it is one
    /// line with one.
    fn parse_whole(&self, text: &str, sink: &mut dyn Sink) -> anyhow::Result<Option<Series>> {
        let mut series = Vec::new();
        for line in influxdb_line_protocol::parse_lines(text) {
            let line = line.map_err(|e| anyhow::anyhow!("{e}"))?;
            let tags: Vec<(&str, &str)> = line
                .series
                .tag_set
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let measurement = line.series.measurement.as_str();
            points(&line, measurement, &tags, (self.unit_ns, self.now_ns), sink)?;
            series.push(Series {
                measurement: measurement.to_owned(),
                tags: tags
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            });
        }
        // A text of several lines (never one the reader splits) is not
        // cached under its first line's series.
        Ok(series.pop().filter(|_| series.is_empty()))
    }
}

/// The series part of a line and the rest, when the first space surely
/// ends the series: no escapes and no other whitespace before it, and not
/// a comment.
fn cacheable_split(text: &str) -> Option<(&str, &str)> {
    let (series, rest) = text.split_once(' ')?;
    let plain = !series.is_empty()
        && !series.starts_with('#')
        && !series
            .bytes()
            .any(|b| b == b'\\' || b == b'"' || b.is_ascii_whitespace());
    plain.then_some((series, rest))
}

fn points(
    line: &ParsedLine<'_>,
    metric: &str,
    tags: &[(&str, &str)],
    (unit_ns, now_ns): (i64, i64),
    sink: &mut dyn Sink,
) -> anyhow::Result<()> {
    let ns = match line.timestamp {
        Some(t) => t.saturating_mul(unit_ns),
        None => now_ns,
    };
    let ms = ns.div_euclid(1_000_000);
    for (field, value) in &line.field_set {
        let value = match value {
            F::I64(v) => Val::Long(*v),
            F::U64(v) => i64::try_from(*v).map_or(Val::Double(*v as f64), Val::Long),
            F::F64(v) => Val::Double(*v),
            F::String(s) => Val::Text(s.as_str().to_owned()),
            F::Boolean(b) => Val::Bool(*b),
        };
        let key = KeyRef {
            metric,
            tags,
            field: field.as_str(),
        };
        sink.point(&key, ms, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Point = (String, Vec<(String, String)>, String, i64, Val);

    #[derive(Default)]
    struct Collect(Vec<Point>);

    impl Sink for Collect {
        fn point(&mut self, key: &KeyRef<'_>, ts: i64, value: Val) -> anyhow::Result<()> {
            let tags = key
                .tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            self.0
                .push((key.metric.into(), tags, key.field.into(), ts, value));
            Ok(())
        }
        fn boundary(&mut self, _: u64) -> anyhow::Result<()> {
            Ok(())
        }
    }

    /// Per line: whether it was read, and its points.
    fn outcomes(
        mut read: impl FnMut(&str, &mut Collect) -> bool,
        lines: &[&str],
    ) -> Vec<(bool, Vec<Point>)> {
        lines
            .iter()
            .map(|l| {
                let mut out = Collect::default();
                (read(l, &mut out), out.0)
            })
            .collect()
    }

    #[test]
    fn cached_series_read_as_the_crate_reads_whole_lines() {
        let lines = [
            "cpu,host=a,dc=x usage=1.5,idle=2i 1000000",
            "cpu,host=a,dc=x usage=2.5,idle=3i 2000000",
            "cpu,host=a,dc=x  usage=3.5 3000000",
            "cpu,host=a,dc=x usage= 3000000",
            "cpu,host=a,dc=x usage=3.5 3000000 7",
            "cpu,host=b usage=4,note=\"a b\" 4000000",
            "cpu,host=b usage=5,up=t 5000000",
            "cpu,host=b usage=5",
            r"cpu,host=c\ d usage=6 6000000",
            r"cpu,host=c\ d usage=7 7000000",
            "mem free=8u 8000000",
            "mem free=9u 9000000",
            "# mem free=9u 9000000",
        ];
        // One clock for both: a line without a time gets the import's.
        let now = jiff::Timestamp::now().as_nanosecond() as i64;
        let mut reader = InfluxReader::at(1, now);
        let cached = outcomes(|l, out| reader.line(l, out).is_ok(), &lines);
        let whole = outcomes(
            |l, out| InfluxReader::at(1, now).parse_whole(l, out).is_ok(),
            &lines,
        );
        assert_eq!(cached, whole);
        let read: usize = cached.iter().map(|(_, p)| p.len()).sum();
        assert!(read >= 11, "{cached:?}");
        // Only the escape-free series were cached.
        assert_eq!(reader.series.len(), 3);
    }
}
