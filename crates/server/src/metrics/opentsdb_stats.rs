//! OpenTSDB's `/api/stats` (and telnet `stats`) from the same registry
//! `/metrics` encodes: every sample but histogram buckets becomes one
//! statistic with its labels as tags, plus the two statistics OpenTSDB
//! dashboards plot most (`tsd.rpc.received`, `tsd.datapoints.added`).

use super::Metrics;
use std::collections::BTreeMap;
use sundial_api::stats::Stat;

impl Metrics {
    /// The server's statistics, tagged with `host`.
    pub(crate) fn opentsdb_stats(&self) -> Vec<Stat> {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
            return Vec::new();
        }
        let host = host_name();
        let mut out = Vec::new();
        let (mut requests, mut points) = (0.0, 0.0);
        for sample in text.lines().filter_map(parse_sample) {
            if sample.name.ends_with("_bucket") || sample.name.ends_with("_created") {
                continue;
            }
            match sample.name.as_str() {
                "sundial_http_requests_total" => requests += sample.value,
                "sundial_points_written_total" => points += sample.value,
                _ => {}
            }
            let mut tags: BTreeMap<String, String> = sample
                .labels
                .into_iter()
                .map(|(k, v)| (k, tag_value(&v)))
                .collect();
            tags.insert("host".into(), host.clone());
            out.push(Stat {
                metric: sample.name.replace('_', "."),
                value: sample.value,
                tags,
            });
        }
        for (metric, kind, value) in [
            ("tsd.rpc.received", "http", requests),
            ("tsd.datapoints.added", "all", points),
        ] {
            let tags = BTreeMap::from([
                ("host".to_owned(), host.clone()),
                ("type".to_owned(), kind.to_owned()),
            ]);
            out.push(Stat {
                metric: metric.into(),
                value,
                tags,
            });
        }
        out
    }
}

#[derive(Debug, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// One sample line of the text format: `name{k="v",...} value`.
fn parse_sample(line: &str) -> Option<Sample> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once("=\"")?;
            let (value, after) = quoted(after)?;
            labels.push((key.to_owned(), value));
            rest = after;
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// A label value up to its closing quote, unescaped, and what follows.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

/// OpenTSDB tag values take letters, digits and `-_./`; anything else
/// (the braces of a route pattern) becomes `_`.
fn tag_value(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_./".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| tag_value(h.trim()))
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::{Sample, parse_sample, tag_value};

    #[test]
    fn samples_parse_with_escaped_labels() {
        let line = r#"sundial_http_requests_total{api="opentsdb",route="/a\"b\\c",code="204"} 3"#;
        assert_eq!(
            parse_sample(line),
            Some(Sample {
                name: "sundial_http_requests_total".into(),
                labels: vec![
                    ("api".into(), "opentsdb".into()),
                    ("route".into(), "/a\"b\\c".into()),
                    ("code".into(), "204".into()),
                ],
                value: 3.0,
            })
        );
        let bare = parse_sample("sundial_process_cpu_seconds_total 1.5e0");
        assert_eq!(bare.map(|s| (s.labels.len(), s.value)), Some((0, 1.5)));
        assert_eq!(parse_sample("# TYPE x counter"), None);
        assert_eq!(parse_sample("# EOF"), None);
        assert_eq!(
            tag_value("/admin/snapshots/{name}"),
            "/admin/snapshots/_name_"
        );
    }
}
