//! The telnet line protocol on the shared port (spec section 8).

use super::put::{Limits, number_text, point_error_text, tag_error};
use super::{Api, names, time};
use sundial_model::{DEFAULT_FIELD, NumberText, PointError, SeriesKey, ValueInput, WritePoint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::debug;

/// Parses the words after `put` (spec 8.3, in its order). Kind checks are
/// the engine's.
pub(crate) fn parse_put(words: &[&str], limits: Limits) -> Result<WritePoint, String> {
    if words.len() < 4 {
        return Err(format!(
            "put: illegal argument: not enough arguments (need least 4, got {})",
            words.len()
        ));
    }
    let (metric, ts_text, value_text, tag_words) = (words[0], words[1], words[2], &words[3..]);
    if let Some(c) = ts_text.chars().find(|c| !c.is_ascii_digit() && *c != '.') {
        return Err(format!(
            "put: invalid value: Invalid character '{c}' in {ts_text}"
        ));
    }
    let timestamp = telnet_timestamp(ts_text)
        .ok_or_else(|| format!("put: illegal argument: invalid timestamp: {ts_text}"))?;
    let mut tags: Vec<(String, String)> = Vec::with_capacity(tag_words.len());
    for word in tag_words {
        let (k, v) = word
            .split_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| format!("put: illegal argument: invalid tag: {word}"))?;
        match tags.iter().find(|(tk, _)| tk == k) {
            Some((_, tv)) if tv == v => {}
            Some(_) => return Err(format!("put: illegal argument: duplicate tag: {word}")),
            None => tags.push((k.to_owned(), v.to_owned())),
        }
    }
    let value = match number_text(value_text) {
        NumberText::Number(v) => ValueInput::Typed(v),
        _ => {
            return Err(format!(
                "put: invalid value: Unable to parse value to a number: {value_text}"
            ));
        }
    };
    let illegal = |msg: String| format!("put: illegal argument: {msg}");
    if tags.len() > limits.max_tags {
        return Err(illegal(format!(
            "Too many tags: {} maximum allowed: {}",
            tags.len(),
            limits.max_tags
        )));
    }
    if let Some(c) = names::first_illegal(metric) {
        return Err(illegal(format!(
            "Invalid metric name (\"{metric}\"): illegal character: {c}"
        )));
    }
    if metric.len() > limits.max_metric_bytes {
        return Err(illegal(format!(
            "Metric name too long: {} bytes (limit {})",
            metric.len(),
            limits.max_metric_bytes
        )));
    }
    let series = SeriesKey::new(metric, tags);
    if let Some(e) = series
        .tags
        .iter()
        .find_map(|(k, v)| tag_error(k, Some(v), limits))
    {
        return Err(illegal(e));
    }
    Ok(WritePoint {
        series: series.into(),
        field: DEFAULT_FIELD.into(),
        timestamp,
        value,
        rejected: false,
    })
}

/// `digits` by the seed rule, or `seconds.fff` (1–3 fraction digits).
fn telnet_timestamp(t: &str) -> Option<i64> {
    match t.split_once('.') {
        None => time::classify(t.parse().ok()?),
        Some((secs, frac)) => {
            if secs.is_empty() || !(1..=3).contains(&frac.len()) || frac.contains('.') {
                return None;
            }
            let s: i64 = secs.parse().ok()?;
            if !(time::MIN_SECONDS..=time::MAX_SECONDS).contains(&s) {
                return None;
            }
            let f: i64 = format!("{frac:0<3}").parse().ok()?;
            Some(s * 1000 + f)
        }
    }
}

/// What one line asks for.
pub(super) enum Line {
    Put(Result<WritePoint, String>),
    Reply(String),
    Exit,
    Nothing,
}

pub(super) fn classify_line(line: &str, limits: Limits) -> Line {
    let words: Vec<&str> = line.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
    let Some((&cmd, args)) = words.split_first() else {
        return Line::Nothing;
    };
    match cmd {
        "put" => Line::Put(parse_put(args, limits)),
        "version" => Line::Reply(format!(
            "sundial {} (OpenTSDB 2.4.0 compatible)\nBuilt on {}\n",
            env!("CARGO_PKG_VERSION"),
            option_env!("SUNDIAL_BUILD_DATE").unwrap_or("unknown date")
        )),
        "help" => Line::Reply("available commands: put version help exit\n".into()),
        "exit" => Line::Exit,
        other => Line::Reply(format!("unknown command: {other}.  Try `help'.\n")),
    }
}

/// Serves one telnet connection until the client closes it or says `exit`.
/// Puts of all lines read together are written as one batch.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    api: Api,
    mut stream: S,
) -> std::io::Result<()> {
    let limits = api.limits();
    let max_line = api.config.telnet_max_line_bytes;
    let return_errors = api.config.telnet_return_errors;
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let Some(last_nl) = buf.iter().rposition(|b| *b == b'\n') else {
            if buf.len() > max_line {
                stream.write_all(b"error: line too long\n").await?;
                return Ok(());
            }
            continue;
        };
        let complete: Vec<u8> = buf.drain(..=last_nl).collect();
        let mut out = String::new();
        let mut batch: Vec<(usize, WritePoint)> = Vec::new();
        let mut replies: Vec<(usize, String)> = Vec::new();
        let mut exit = false;
        let mut too_long = false;
        for (i, raw) in complete.split(|b| *b == b'\n').enumerate() {
            if raw.len() > max_line {
                too_long = true;
                break;
            }
            let line = String::from_utf8_lossy(raw.strip_suffix(b"\r").unwrap_or(raw));
            match classify_line(&line, limits) {
                Line::Put(Ok(p)) => batch.push((i, p)),
                Line::Put(Err(e)) if return_errors => replies.push((i, e + "\n")),
                Line::Put(Err(e)) => debug!(error = %e, "telnet put rejected"),
                Line::Reply(r) => replies.push((i, r)),
                Line::Nothing => {}
                Line::Exit => {
                    exit = true;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            let metrics: Vec<(usize, String)> = batch
                .iter()
                .map(|(i, p)| (*i, p.series.metric.clone()))
                .collect();
            let points = batch.into_iter().map(|(_, p)| p).collect();
            match api.db.write(points, false) {
                Ok(written) => {
                    for ((i, metric), r) in metrics.iter().zip(&written.outcome.results) {
                        if let Err(e) = r
                            && return_errors
                        {
                            let text = match e {
                                PointError::NotANumber => {
                                    "Unable to parse value to a number".into()
                                }
                                e => point_error_text(e, metric),
                            };
                            replies.push((*i, format!("put: illegal argument: {text}\n")));
                        }
                    }
                    // Waiting keeps a fast sender from outrunning the WAL.
                    if let Err(e) = written.commit.wait().await {
                        tracing::error!(error = %e, "telnet write not committed");
                        replies.push((usize::MAX, "put: Internal server error\n".into()));
                    }
                }
                Err(e) if e.class() == sundial_storage::ErrorClass::Busy => {
                    replies.extend(
                        metrics
                            .iter()
                            .map(|(i, _)| (*i, "put: Please throttle writes\n".into())),
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "telnet write failed");
                    replies.push((usize::MAX, "put: Internal server error\n".into()));
                }
            }
        }
        replies.sort_by_key(|(i, _)| *i);
        for (_, r) in replies {
            out.push_str(&r);
        }
        if too_long {
            out.push_str("error: line too long\n");
        }
        if !out.is_empty() {
            stream.write_all(out.as_bytes()).await?;
        }
        if exit || too_long {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_tags: 16,
        max_metric_bytes: 255,
        max_tagk_bytes: 255,
        max_tagv_bytes: 255,
    };

    fn err(line: &str) -> String {
        let words: Vec<&str> = line.split(' ').filter(|w| !w.is_empty()).skip(1).collect();
        parse_put(&words, LIMITS).err().unwrap_or_default()
    }

    #[test]
    fn put_errors_in_spec_order() {
        assert_eq!(
            err("put"),
            "put: illegal argument: not enough arguments (need least 4, got 0)"
        );
        assert_eq!(
            err("put m 1500000000 1"),
            "put: illegal argument: not enough arguments (need least 4, got 3)"
        );
        assert_eq!(
            err("put metric.foo notatime 42 host=web01"),
            "put: invalid value: Invalid character 'n' in notatime"
        );
        assert_eq!(
            err("put cpu.idle 1500000000 nan fqdn=h1"),
            "put: invalid value: Unable to parse value to a number: nan"
        );
        assert_eq!(
            err("put m 1000 1 h=x"),
            "put: illegal argument: invalid timestamp: 1000"
        );
        assert_eq!(
            err("put m 1500000000 1 hx"),
            "put: illegal argument: invalid tag: hx"
        );
        assert_eq!(
            err("put m 1500000000 1 h=a h=b"),
            "put: illegal argument: duplicate tag: h=b"
        );
        assert_eq!(
            err("put sys@cpu 1500000000 1 h=x"),
            "put: illegal argument: Invalid metric name (\"sys@cpu\"): illegal character: @"
        );
        assert_eq!(err("put m 1500000000 1 h=a h=a"), "");
    }

    #[test]
    fn fractional_seconds() {
        assert_eq!(telnet_timestamp("1500000000.250"), Some(1_500_000_000_250));
        assert_eq!(telnet_timestamp("1500000000.5"), Some(1_500_000_000_500));
        assert_eq!(telnet_timestamp("1500000000.1234"), None);
        assert_eq!(telnet_timestamp("10000000000"), Some(10_000_000_000));
    }
}
