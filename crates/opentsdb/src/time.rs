//! Time rules of the OpenTSDB API (spec 4.1–4.3): the seed's
//! seconds-or-milliseconds ranges, query time strings and durations.

use super::dto::Scalar;
use jiff::tz::TimeZone;
use sundial_model::Timestamp;

/// Smallest value read as seconds.
pub(crate) const MIN_SECONDS: i64 = 4_294_768;
/// Largest value read as seconds; the next is the smallest milliseconds.
pub(crate) const MAX_SECONDS: i64 = 9_999_999_999;
/// Largest value read as milliseconds.
pub(crate) const MAX_MILLIS: i64 = 9_999_999_999_999;

/// Applies the seed rule to a numeric timestamp: milliseconds, or `None`
/// when the value is outside both ranges.
pub(crate) fn classify(v: i64) -> Option<Timestamp> {
    match v {
        MIN_SECONDS..=MAX_SECONDS => Some(v * 1000),
        10_000_000_000..=MAX_MILLIS => Some(v),
        _ => None,
    }
}

/// A write timestamp from JSON: an integer, a number (truncated toward
/// zero) or a string of ASCII digits.
pub(crate) fn from_scalar(v: &Scalar<'_>) -> Option<Timestamp> {
    let n = match v {
        Scalar::I64(i) => *i,
        Scalar::F64(f) => {
            let f = f.trunc();
            if !(i64::MIN as f64..=i64::MAX as f64).contains(&f) {
                return None;
            }
            f as i64
        }
        Scalar::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()?
        }
        _ => return None,
    };
    classify(n)
}

/// Why a query time did not parse; the text is OpenTSDB's message.
pub(crate) type TimeError = String;

/// A query time (spec 4.2) relative to `now_ms`; dates are read in `tz`.
pub(crate) fn parse_query_time(
    raw: &str,
    now_ms: Timestamp,
    tz: &TimeZone,
) -> Result<Timestamp, TimeError> {
    let s = raw.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now_ms);
    }
    if let Some(d) = s.strip_suffix("-ago") {
        return Ok(now_ms.saturating_sub(parse_duration(d)?));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let v: i64 = s.parse().map_err(|_| format!("Invalid timestamp: {raw}"))?;
        return classify(v).ok_or_else(|| format!("Invalid timestamp: {raw}"));
    }
    if let Some(ms) = s.strip_suffix("ms")
        && !ms.is_empty()
        && ms.bytes().all(|b| b.is_ascii_digit())
    {
        let v: i64 = ms
            .parse()
            .map_err(|_| format!("Invalid timestamp: {raw}"))?;
        return if v <= MAX_MILLIS {
            Ok(v)
        } else {
            Err(format!("Invalid timestamp: {raw}"))
        };
    }
    if let Some((secs, frac)) = s.split_once('.')
        && !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && (1..=3).contains(&frac.len())
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        let v: i64 = secs
            .parse()
            .map_err(|_| format!("Invalid timestamp: {raw}"))?;
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&v) {
            return Err(format!("Invalid timestamp: {raw}"));
        }
        let frac_ms: i64 = format!("{frac:0<3}")
            .parse()
            .map_err(|_| format!("Invalid timestamp: {raw}"))?;
        return Ok(v * 1000 + frac_ms);
    }
    if s.contains('/') {
        return parse_date(s, tz).ok_or_else(|| format!("Invalid date: {raw}"));
    }
    Err(format!("Invalid time: {raw}"))
}

/// `yyyy/MM/dd[( |-)HH:mm[:ss]]` in `tz`.
fn parse_date(s: &str, tz: &TimeZone) -> Option<Timestamp> {
    let (date, time) = match s.split_once(['-', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut d = date.split('/');
    let ymd: (i16, i8, i8) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    if d.next().is_some() {
        return None;
    }
    let mut hms = [0i8; 3];
    if let Some(t) = time {
        let parts: Vec<&str> = t.split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return None;
        }
        for (slot, p) in hms.iter_mut().zip(&parts) {
            *slot = p.parse().ok()?;
        }
    }
    super::zone::local_ms(tz, ymd, (hms[0], hms[1], hms[2]))
}

/// A duration `<n><unit>` in milliseconds (spec 4.3).
pub(crate) fn parse_duration(d: &str) -> Result<i64, TimeError> {
    let split = d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len());
    let (num, unit) = d.split_at(split);
    if num.is_empty() || unit.is_empty() {
        return Err(format!(
            "Invalid duration, must have an integer and unit: {d}"
        ));
    }
    let n: i64 = num
        .parse()
        .map_err(|_| format!("Invalid duration (number): {d}"))?;
    let unit_ms: i64 = match unit.to_ascii_lowercase().as_str() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "n" => 30 * 86_400_000,
        "y" => 365 * 86_400_000,
        _ => return Err(format!("Invalid duration (suffix): {d}")),
    };
    if n == 0 {
        return Err(format!("Zero or negative duration: {d}"));
    }
    n.checked_mul(unit_ms)
        .ok_or_else(|| format!("Duration must be < Long.MAX_VALUE ms: {d}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_timestamp_ranges() {
        assert_eq!(classify(4_294_767), None);
        assert_eq!(classify(4_294_768), Some(4_294_768_000));
        assert_eq!(classify(9_999_999_999), Some(9_999_999_999_000));
        assert_eq!(classify(10_000_000_000), Some(10_000_000_000));
        assert_eq!(classify(9_999_999_999_999), Some(9_999_999_999_999));
        assert_eq!(classify(10_000_000_000_000), None);
        assert_eq!(classify(0), None);
        assert_eq!(classify(-1), None);
    }

    #[test]
    fn json_timestamp_forms() {
        let ts = |j: &str| {
            serde_json::from_str::<Scalar<'_>>(j)
                .ok()
                .and_then(|s| from_scalar(&s))
        };
        assert_eq!(ts("\"1500000000\""), Some(1_500_000_000_000));
        assert_eq!(ts("1500000000.9"), Some(1_500_000_000_000));
        assert_eq!(ts("\"abc\""), None);
        assert_eq!(ts("\"-5\""), None);
        assert_eq!(ts("null"), None);
    }

    #[test]
    fn query_time_strings() -> Result<(), TimeError> {
        let now = 1_600_000_000_000;
        assert_eq!(
            parse_query_time("1h-ago", now, &TimeZone::UTC)?,
            now - 3_600_000
        );
        assert_eq!(parse_query_time("NOW", now, &TimeZone::UTC)?, now);
        assert_eq!(
            parse_query_time("1500000000", now, &TimeZone::UTC)?,
            1_500_000_000_000
        );
        assert_eq!(
            parse_query_time("1500000000123ms", now, &TimeZone::UTC)?,
            1_500_000_000_123
        );
        assert_eq!(
            parse_query_time("1500000000.5", now, &TimeZone::UTC)?,
            1_500_000_000_500
        );
        assert_eq!(
            parse_query_time("1970/01/02", now, &TimeZone::UTC)?,
            86_400_000
        );
        // 2017-07-14T02:40:00Z is 1500000000 s.
        assert_eq!(
            parse_query_time("2017/07/14-02:40", now, &TimeZone::UTC)?,
            1_500_000_000_000
        );
        // Shanghai is eight hours ahead all year.
        let shanghai = TimeZone::get("Asia/Shanghai").map_err(|e| e.to_string())?;
        assert_eq!(
            parse_query_time("2017/07/14 10:40:00", now, &shanghai)?,
            1_500_000_000_000
        );
        assert!(parse_query_time("2017/02/30", now, &TimeZone::UTC).is_err());
        assert!(parse_query_time("garbage", now, &TimeZone::UTC).is_err());
        assert_eq!(
            parse_duration("5"),
            Err("Invalid duration, must have an integer and unit: 5".into())
        );
        assert_eq!(
            parse_duration("0s"),
            Err("Zero or negative duration: 0s".into())
        );
        assert_eq!(
            parse_duration("2x"),
            Err("Invalid duration (suffix): 2x".into())
        );
        Ok(())
    }
}
