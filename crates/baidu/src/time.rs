//! Baidu's time grammar (spec 6): absolute timestamps with the 10-digit
//! seconds rule, unit words, durations (`"10 minutes"`, `"1 hc"`) and
//! relative times (`"5 days ago"`).

use super::error::BaiduError;
use serde_json::Value;
use sundial_model::Timestamp;
use sundial_model::series_query::CalendarUnit;

/// Largest number of units in a duration: keeps calendar arithmetic far
/// from overflow (a million years of seconds still fits).
const MAX_COUNT: i64 = 1_000_000_000;
/// Calendar units are walked with date arithmetic; 100 000 of them (years
/// at most) stay far inside the millisecond range.
const MAX_CALENDAR_COUNT: i64 = 100_000;

/// A parsed unit word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Fixed(i64),
    Calendar(CalendarUnit),
}

/// A parsed duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    Fixed(i64),
    Calendar { count: i64, unit: CalendarUnit },
}

/// Case-insensitive; singular and plural interchangeable.
pub(crate) fn unit(word: &str) -> Option<Unit> {
    let w = word.to_ascii_lowercase();
    let fixed = |ms| Some(Unit::Fixed(ms));
    match w.as_str() {
        "millisecond" | "milliseconds" => fixed(1),
        "second" | "seconds" => fixed(1_000),
        "minute" | "minutes" => fixed(60_000),
        "hour" | "hours" => fixed(3_600_000),
        "day" | "days" => fixed(86_400_000),
        "week" | "weeks" => fixed(604_800_000),
        // 30 and 365 days (spec 6.2 decision).
        "month" | "months" => fixed(2_592_000_000),
        "year" | "years" => fixed(31_536_000_000),
        "sc" => Some(Unit::Calendar(CalendarUnit::Second)),
        "mc" => Some(Unit::Calendar(CalendarUnit::Minute)),
        "hc" => Some(Unit::Calendar(CalendarUnit::Hour)),
        "dc" => Some(Unit::Calendar(CalendarUnit::Day)),
        "nc" => Some(Unit::Calendar(CalendarUnit::Month)),
        "yc" => Some(Unit::Calendar(CalendarUnit::Year)),
        _ => None,
    }
}

/// `INT UNIT`; `INT >= min_count`; calendar units only if allowed.
pub(crate) fn span(
    text: &str,
    what: &str,
    allow_calendar: bool,
    min_count: i64,
) -> Result<Span, BaiduError> {
    let bad = || {
        BaiduError::invalid(format!(
            "invalid {what} {text:?}: expected like \"10 minutes\""
        ))
    };
    let mut parts = text.split_whitespace();
    let (Some(n), Some(u), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let count = parse_count(n).ok_or_else(bad)?;
    if count > MAX_COUNT {
        return Err(BaiduError::invalid(format!(
            "invalid {what} {text:?}: at most {MAX_COUNT} units"
        )));
    }
    if count < min_count {
        return Err(BaiduError::invalid(format!(
            "invalid {what} {text:?}: the number must be at least {min_count}"
        )));
    }
    match unit(u).ok_or_else(bad)? {
        Unit::Fixed(ms) => count
            .checked_mul(ms)
            .map(Span::Fixed)
            .ok_or_else(|| BaiduError::invalid(format!("{what} {text:?} is too long"))),
        Unit::Calendar(_) if count > MAX_CALENDAR_COUNT => Err(BaiduError::invalid(format!(
            "invalid {what} {text:?}: at most {MAX_CALENDAR_COUNT} calendar units"
        ))),
        Unit::Calendar(unit) if allow_calendar => Ok(Span::Calendar { count, unit }),
        Unit::Calendar(_) => Err(BaiduError::invalid(format!(
            "calendar units are not allowed in {what} {text:?}"
        ))),
    }
}

/// A non-calendar duration in ms.
pub(crate) fn fixed_span(text: &str, what: &str, min_count: i64) -> Result<i64, BaiduError> {
    match span(text, what, false, min_count)? {
        Span::Fixed(ms) => Ok(ms),
        Span::Calendar { .. } => Err(BaiduError::invalid(format!(
            "calendar units are not allowed in {what}"
        ))),
    }
}

fn parse_count(n: &str) -> Option<i64> {
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// An absolute timestamp: at most 10 digits means seconds.
pub(crate) fn from_digits(n: u64, what: &str) -> Result<Timestamp, BaiduError> {
    let ms = if n < 10_000_000_000 {
        n.checked_mul(1000)
    } else {
        Some(n)
    };
    ms.and_then(|v| i64::try_from(v).ok())
        .ok_or_else(|| BaiduError::invalid(format!("{what} {n} is out of range")))
}

/// A JSON timestamp: a non-negative integer (6.1).
pub(crate) fn absolute(v: &Value, what: &str) -> Result<Timestamp, BaiduError> {
    match v.as_u64() {
        Some(n) => from_digits(n, what),
        None => Err(BaiduError::invalid(format!(
            "{what} must be a non-negative integer timestamp, got {v}"
        ))),
    }
}

/// `start` / `end` of a query: an integer, a digit string, or `"N unit ago"`.
pub(crate) fn query_time(v: &Value, what: &str, now: Timestamp) -> Result<Timestamp, BaiduError> {
    let Some(text) = v.as_str() else {
        return absolute(v, what);
    };
    let text = text.trim();
    if let Some(n) = parse_count(text) {
        let n = u64::try_from(n).map_err(|_| BaiduError::invalid(format!("bad {what}")))?;
        return from_digits(n, what);
    }
    relative(text, what, now)
}

/// `"N unit ago"`, non-calendar units.
fn relative(text: &str, what: &str, now: Timestamp) -> Result<Timestamp, BaiduError> {
    let bad = || {
        BaiduError::invalid(format!(
            "invalid {what} {text:?}: expected a timestamp or like \"5 days ago\""
        ))
    };
    let mut words: Vec<&str> = text.split_whitespace().collect();
    if words.len() != 3 || !words.pop().is_some_and(|w| w.eq_ignore_ascii_case("ago")) {
        return Err(bad());
    }
    let ms = fixed_span(&words.join(" "), what, 0).map_err(|_| bad())?;
    let t = now.checked_sub(ms).ok_or_else(bad)?;
    if t < 0 {
        return Err(BaiduError::invalid(format!(
            "{what} {text:?} is before 1970"
        )));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn grammar() -> Result<(), BaiduError> {
        let now = 1_500_003_600_000;
        assert_eq!(
            query_time(&json!("1 hour ago"), "start", now)?,
            1_500_000_000_000
        );
        assert_eq!(
            query_time(&json!("2 HOUR ago"), "start", now)?,
            now - 7_200_000
        );
        assert_eq!(
            query_time(&json!(1_500_000_000), "start", now)?,
            1_500_000_000_000
        );
        assert_eq!(
            query_time(&json!("1500000000"), "start", now)?,
            1_500_000_000_000
        );
        assert_eq!(
            query_time(&json!(1_500_000_000_123u64), "start", now)?,
            1_500_000_000_123
        );
        assert!(query_time(&json!("5 dayz ago"), "start", now).is_err());
        assert!(query_time(&json!("5 dc ago"), "start", now).is_err());
        assert!(query_time(&json!(-1), "start", now).is_err());
        assert!(query_time(&json!(1.5), "start", now).is_err());
        assert_eq!(
            span("10 minutes", "sampling", true, 1)?,
            Span::Fixed(600_000)
        );
        assert_eq!(
            span(" 1 nc ", "sampling", true, 1)?,
            Span::Calendar {
                count: 1,
                unit: CalendarUnit::Month
            }
        );
        assert!(span("1 wc", "sampling", true, 1).is_err());
        assert!(span("0 minutes", "sampling", true, 1).is_err());
        assert!(span("10 minutez", "sampling", true, 1).is_err());
        assert!(fixed_span("1 dc", "interval", 1).is_err());
        assert_eq!(fixed_span("0 minutes", "maxWriteInterval", 0)?, 0);
        Ok(())
    }
}
