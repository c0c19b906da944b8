//! The file formats: `read` turns a file into points for the importer,
//! `write` turns the server's series lines into a file. What each format
//! cannot hold, and how it is mapped, is in docs/cli.md.

mod documents;
mod influx;
mod read;
mod tsdb_json;
mod write;

pub(crate) use read::{ReadOptions, read};
#[cfg(test)]
pub(crate) use write::Losses;
pub(crate) use write::Writer;

use super::Val;

/// A point's series, borrowed from the input being read.
#[derive(Debug)]
pub(crate) struct KeyRef<'a> {
    pub(crate) metric: &'a str,
    pub(crate) tags: &'a [(&'a str, &'a str)],
    pub(crate) field: &'a str,
}

/// Where the reader puts what it reads.
pub(crate) trait Sink {
    fn point(&mut self, key: &KeyRef<'_>, timestamp: i64, value: Val) -> anyhow::Result<()>;
    /// A record ended `offset` bytes into the input: the importer may cut
    /// a batch here, and a resumed import starts from such an offset.
    fn boundary(&mut self, offset: u64) -> anyhow::Result<()>;
}

/// OpenTSDB's rule for a timestamp that may be seconds: 10 digits or
/// fewer are seconds, more are milliseconds.
pub(crate) fn opentsdb_millis(t: i64) -> i64 {
    if t.unsigned_abs() < 10_000_000_000 {
        t.saturating_mul(1000)
    } else {
        t
    }
}

/// CSV tags: `k=v;k2=v2`, with `\`, `;` and `=` escaped by a backslash.
pub(crate) fn csv_tags<'a>(tags: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let escape = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if matches!(c, '\\' | ';' | '=') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    };
    tags.map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join(";")
}

/// Reads [`csv_tags`] text back.
pub(crate) fn parse_csv_tags(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let (mut key, mut current, mut in_value) = (String::new(), String::new(), false);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            '=' if !in_value => {
                key = std::mem::take(&mut current);
                in_value = true;
            }
            ';' => {
                anyhow::ensure!(in_value, "a tag without '=' in {text:?}");
                pairs.push((std::mem::take(&mut key), std::mem::take(&mut current)));
                in_value = false;
            }
            c => current.push(c),
        }
    }
    if in_value {
        pairs.push((key, current));
    } else {
        anyhow::ensure!(current.is_empty(), "a tag without '=' in {text:?}");
    }
    Ok(pairs)
}
