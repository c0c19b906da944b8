//! The telnet line protocol on the shared port (spec section 8).

use super::put::{Limits, number_text, point_error_text, tag_error};
use super::{Api, names, time};
use sundial_api::access::{Action, Identity};
use sundial_api::sink::PointWrite;
use sundial_api::write_hook::{HookedRequest, WriteRequest};
use sundial_model::{
    DEFAULT_FIELD, NumberText, PointError, SeriesKey, Tags, ValueInput, WritePoint,
};
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
    let mut tags: Tags = Vec::with_capacity(tag_words.len());
    for word in tag_words {
        let (k, v) = word
            .split_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| format!("put: illegal argument: invalid tag: {word}"))?;
        match tags.iter().find(|(tk, _)| tk == k) {
            Some((_, tv)) if tv == v => {}
            Some(_) => return Err(format!("put: illegal argument: duplicate tag: {word}")),
            None => tags.push((k.into(), v.into())),
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
    let series = SeriesKey::from_names(metric, tags);
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
    /// `auth <access key id> <secret>`.
    Auth(String, String),
    /// `stats`: the server's statistics in put format.
    Stats,
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
        "auth" => match args {
            [id, secret] => Line::Auth((*id).to_owned(), (*secret).to_owned()),
            _ => Line::Reply("auth: usage: auth <access key id> <secret>\n".into()),
        },
        "version" => Line::Reply(format!(
            "sundial {} (OpenTSDB 2.4.0 compatible)\nBuilt on {}\n",
            env!("CARGO_PKG_VERSION"),
            option_env!("SUNDIAL_BUILD_DATE").unwrap_or("unknown date")
        )),
        "stats" => Line::Stats,
        "help" => Line::Reply("available commands: put auth stats version help exit\n".into()),
        "exit" => Line::Exit,
        other => Line::Reply(format!("unknown command: {other}.  Try `help'.\n")),
    }
}

/// Serves one telnet connection until the client closes it or says `exit`.
/// Puts of all lines read together are written as one batch. With access
/// keys configured, `put` needs an earlier `auth` line of a key that may
/// write the `default` database; a put without one closes the connection.
/// A connection silent for `idle` is closed.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    api: Api,
    mut stream: S,
    idle: std::time::Duration,
) -> std::io::Result<()> {
    let mut identity = api.store.anonymous();
    let max_line = api.config.telnet_max_line_bytes;
    let return_errors = api.config.telnet_return_errors;
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout(idle, stream.read(&mut chunk)).await {
            Ok(read) => read?,
            Err(_) => {
                debug!("telnet connection idle too long; closed");
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let Some(last_nl) = buf.iter().rposition(|b| *b == b'\n') else {
            if buf.len() > max_line {
                stream.write_all(b"error: line too long\n").await?;
                linger(&mut stream).await;
                return Ok(());
            }
            continue;
        };
        let complete: Vec<u8> = buf.drain(..=last_nl).collect();
        // A key revoked or changed since the `auth` line (or keys made
        // since an open start) needs a new `auth` before the next put.
        identity = api.store.current(identity.take());
        let Reading {
            batch,
            mut replies,
            close,
            too_long,
        } = read_lines(&api, &mut identity, &complete);
        if !batch.is_empty() {
            write_batch(&api, batch, return_errors, &mut replies).await;
        }
        replies.sort_by_key(|(i, _)| *i);
        let mut out: String = replies.into_iter().map(|(_, r)| r).collect();
        if too_long {
            out.push_str("error: line too long\n");
        }
        if !out.is_empty() {
            stream.write_all(out.as_bytes()).await?;
        }
        if close || too_long {
            linger(&mut stream).await;
            return Ok(());
        }
    }
}

/// Ends a connection the server closes (`exit`, a refusal): the answers
/// are followed by the end of the stream, then what the client still
/// sends is read and dropped for a moment (up to 1 MiB, 1 s), so its
/// kernel sees a close, not a reset that could discard the answers
/// before the client reads them.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    let mut sink = [0u8; 8192];
    let mut left: usize = 1 << 20;
    while left > 0 {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}

/// What the complete lines of one read asked for.
#[derive(Default)]
struct Reading {
    /// Puts, by line.
    batch: Vec<(usize, WritePoint)>,
    /// Answers, by line.
    replies: Vec<(usize, String)>,
    /// The connection closes after the answers (`exit`, a refusal).
    close: bool,
    /// A line was over the limit; lines after it were not read.
    too_long: bool,
}

/// Classifies the lines of one read; an `auth` line changes `identity`
/// for the lines after it.
fn read_lines(api: &Api, identity: &mut Option<Identity>, complete: &[u8]) -> Reading {
    let limits = api.name_limits();
    let return_errors = api.config.telnet_return_errors;
    let mut r = Reading::default();
    for (i, raw) in complete.split(|b| *b == b'\n').enumerate() {
        if raw.len() > api.config.telnet_max_line_bytes {
            r.too_long = true;
            break;
        }
        let line = String::from_utf8_lossy(raw.strip_suffix(b"\r").unwrap_or(raw));
        match classify_line(&line, limits) {
            Line::Put(_) if !may_write(identity, api) => {
                let why = match identity {
                    None => "authentication required: send 'auth <access key id> <secret>' first",
                    Some(_) => "access denied: this key may not write database default",
                };
                r.replies.push((i, format!("put: {why}\n")));
                r.close = true;
                break;
            }
            Line::Put(Ok(p)) => r.batch.push((i, p)),
            Line::Put(Err(e)) if return_errors => r.replies.push((i, e + "\n")),
            Line::Auth(id, secret) => match api.store.check_secret(&id, &secret) {
                Some(ok) => {
                    *identity = Some(ok);
                    r.replies.push((i, "auth: ok\n".into()));
                }
                None => {
                    r.replies
                        .push((i, "auth: wrong access key id or secret\n".into()));
                    r.close = true;
                    break;
                }
            },
            Line::Put(Err(e)) => debug!(error = %e, "telnet put rejected"),
            Line::Stats if identity.is_none() => r.replies.push((
                i,
                "stats: authentication required: send 'auth <access key id> <secret>' first\n"
                    .into(),
            )),
            Line::Stats => r.replies.push((i, stats_lines(api))),
            Line::Reply(reply) => r.replies.push((i, reply)),
            Line::Nothing => {}
            Line::Exit => {
                r.close = true;
                break;
            }
        }
    }
    r
}

/// Writes the puts of one read and adds their errors to `replies`; waits
/// for the commit, which keeps a fast sender from outrunning the WAL.
async fn write_batch(
    api: &Api,
    batch: Vec<(usize, WritePoint)>,
    return_errors: bool,
    replies: &mut Vec<(usize, String)>,
) {
    let Ok(_slot) = api.limits.write_slot().await else {
        replies.extend(batch.iter().map(|(i, _)| (*i, THROTTLE.to_owned())));
        return;
    };
    let Some((hooked, lines, points)) = admit(api, batch, return_errors, replies) else {
        return;
    };
    let throttle = |replies: &mut Vec<(usize, String)>| {
        replies.extend(lines.iter().map(|i| (*i, THROTTLE.to_owned())));
    };
    let metrics: Vec<String> = points.iter().map(|p| p.series.metric.to_string()).collect();
    // Errors of the whole batch answer at its last put, before any later
    // line's answer (a `version` after the puts stays a barrier).
    let last = lines.last().copied().unwrap_or_default();
    let write = PointWrite::new(api.db.clone(), points);
    let written = match api.sink.write(write).await {
        Ok(w) => w,
        Err(e) if e.class() == sundial_storage::ErrorClass::Busy => return throttle(replies),
        Err(e) => {
            tracing::error!(error = %e, "telnet write failed");
            replies.push((last, INTERNAL.into()));
            return;
        }
    };
    if return_errors {
        for ((i, metric), r) in lines.iter().zip(&metrics).zip(&written.outcome.results) {
            if let Err(e) = r {
                let text = match e {
                    PointError::NotANumber => "Unable to parse value to a number".into(),
                    e => point_error_text(e, metric),
                };
                replies.push((*i, format!("put: illegal argument: {text}\n")));
            }
        }
    }
    let committed = match written.commit.wait().await {
        Ok(()) => hooked.stored(&written.outcome.results).await,
        Err(e) if e.class() == sundial_storage::ErrorClass::Busy => return throttle(replies),
        Err(e) => Err(std::io::Error::other(e)),
    };
    if let Err(e) = committed {
        tracing::error!(error = %e, "telnet write not committed");
        replies.push((last, INTERNAL.into()));
    }
}

/// Passes a batch through the write hooks; returns the hooks' part, and
/// the lines and points that go on (refused ones answered when asked).
fn admit(
    api: &Api,
    batch: Vec<(usize, WritePoint)>,
    return_errors: bool,
    replies: &mut Vec<(usize, String)>,
) -> Option<(HookedRequest, Vec<usize>, Vec<WritePoint>)> {
    let no_headers = axum::http::HeaderMap::new();
    let request = WriteRequest {
        query: None,
        headers: &no_headers,
        default_database: api.is_default(),
    };
    let mut hooked = match api.hooks.begin(request) {
        Ok(h) => h,
        Err(e) => {
            let last = batch.last().map_or(0, |(i, _)| *i);
            replies.push((last, format!("put: illegal argument: {e}\n")));
            return None;
        }
    };
    let mut lines = Vec::with_capacity(batch.len());
    let mut points = Vec::with_capacity(batch.len());
    for (line, mut p) in batch {
        match hooked.admit(points.len(), &mut p) {
            Ok(()) => {
                lines.push(line);
                points.push(p);
            }
            Err(e) if return_errors => {
                replies.push((line, format!("put: illegal argument: {e}\n")));
            }
            Err(_) => {}
        }
    }
    Some((hooked, lines, points))
}

const THROTTLE: &str = "put: Please throttle writes\n";
const INTERNAL: &str = "put: Internal server error\n";

/// `metric timestamp value tag=value...` per statistic, as OpenTSDB's
/// telnet `stats` answers.
fn stats_lines(api: &Api) -> String {
    let (now, stats) = api.stats_now();
    let mut out = String::new();
    for s in stats {
        out.push_str(&format!(
            "{} {now} {}",
            s.metric,
            crate::stat_value(s.value)
        ));
        for (k, v) in &s.tags {
            out.push_str(&format!(" {k}={v}"));
        }
        out.push('\n');
    }
    out
}

fn may_write(identity: &Option<Identity>, api: &Api) -> bool {
    identity
        .as_ref()
        .is_some_and(|i| i.may(&api.database, Action::Write))
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
