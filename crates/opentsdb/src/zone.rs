//! Time zones of `/api/query` (spec 4.5): absolute date strings and
//! calendar downsampling (9.7.3) are read in an IANA zone.

use super::error::OpenTsdbError;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Span, Zoned};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use sundial_model::Timestamp;

/// Most calendar bucket edges one request may ask for across all its
/// sub-queries: computing each costs a zone lookup, so without a shared
/// cap a few hundred bytes of `m=` parameters bought seconds of work.
pub(crate) const MAX_REQUEST_CALENDAR_EDGES: usize = 1_000_000;

/// The calendar edges of one request: a specification repeated by several
/// sub-queries is cut once, and all distinct ones together stay under
/// [`MAX_REQUEST_CALENDAR_EDGES`].
#[derive(Debug, Default)]
pub(crate) struct EdgeMemo {
    cut: Mutex<Memo>,
}

#[derive(Debug, Default)]
struct Memo {
    edges: HashMap<EdgeKey, Arc<[Timestamp]>>,
    total: usize,
}

/// What decides a list of edges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EdgeKey {
    count: i64,
    unit: Unit,
    zone: Option<String>,
    start: Timestamp,
    end: Timestamp,
}

impl EdgeMemo {
    /// [`calendar_edges`] of a request, reused when asked again.
    pub(crate) fn edges(
        &self,
        count: i64,
        unit: Unit,
        tz: &TimeZone,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Arc<[Timestamp]>, OpenTsdbError> {
        let key = EdgeKey {
            count,
            unit,
            zone: tz.iana_name().map(str::to_owned),
            start,
            end,
        };
        // A poisoned memo only means another sub-query's parse panicked;
        // its contents are still whole lists.
        let mut memo = self.cut.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(edges) = memo.edges.get(&key) {
            return Ok(edges.clone());
        }
        let left = MAX_REQUEST_CALENDAR_EDGES.saturating_sub(memo.total);
        let edges = calendar_edges(count, unit, tz, start, end, left)?;
        memo.total += edges.len();
        // A zone without a name cannot be told apart from another one.
        if key.zone.is_some() {
            memo.edges.insert(key, edges.clone());
        }
        Ok(edges)
    }
}

/// The IANA zone `name` (the bundled database, so no host files are needed).
pub(crate) fn by_name(name: &str) -> Result<TimeZone, OpenTsdbError> {
    TimeZone::get(name)
        .map_err(|_| OpenTsdbError::bad_request("The timezone specification could not be found"))
}

/// The instant of a local wall-clock time; a time skipped by a DST change
/// moves forward (as Java's calendar does), an ambiguous one takes the
/// earlier instant.
pub(crate) fn local_ms(
    tz: &TimeZone,
    date: (i16, i8, i8),
    time: (i8, i8, i8),
) -> Option<Timestamp> {
    let dt = DateTime::new(date.0, date.1, date.2, time.0, time.1, time.2, 0).ok()?;
    let zoned = dt.to_zoned(tz.clone()).ok()?;
    Some(zoned.timestamp().as_millisecond())
}

/// A calendar unit of `<n><unit>c` (spec 9.7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Unit {
    Millis,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    /// The unit of a duration text already validated by
    /// `time::parse_duration`, with its count.
    pub(crate) fn split(duration: &str) -> Option<(i64, Unit)> {
        let digits = duration.bytes().take_while(u8::is_ascii_digit).count();
        let (n, unit) = duration.split_at(digits);
        let unit = match unit.to_ascii_lowercase().as_str() {
            "ms" => Unit::Millis,
            "s" => Unit::Second,
            "m" => Unit::Minute,
            "h" => Unit::Hour,
            "d" => Unit::Day,
            "w" => Unit::Week,
            "n" => Unit::Month,
            "y" => Unit::Year,
            _ => return None,
        };
        Some((n.parse().ok()?, unit))
    }

    fn fixed_ms(self) -> Option<i64> {
        match self {
            Unit::Millis => Some(1),
            Unit::Second => Some(1_000),
            Unit::Minute => Some(60_000),
            Unit::Hour => Some(3_600_000),
            Unit::Day | Unit::Week | Unit::Month | Unit::Year => None,
        }
    }
}

/// Bucket boundaries of `count` calendar `unit`s in `tz` covering
/// `[start, end]`: the first at or before `start`, the last after `end`.
/// More than `max` boundaries is an error (a client asking for years of
/// one-second calendar buckets), found before computing more than `max`.
pub(crate) fn calendar_edges(
    count: i64,
    unit: Unit,
    tz: &TimeZone,
    start: Timestamp,
    end: Timestamp,
    max: usize,
) -> Result<Arc<[Timestamp]>, OpenTsdbError> {
    let invalid = || OpenTsdbError::bad_request("Invalid calendar downsampling interval");
    let count = count.max(1);
    let first = first_boundary(count, unit, tz, start).ok_or_else(invalid)?;
    let mut edges = vec![first.timestamp().as_millisecond()];
    let mut k: i64 = 1;
    while edges.last().is_some_and(|e| *e <= end) {
        if edges.len() > max {
            return Err(OpenTsdbError::bad_request(format!(
                "Too many calendar buckets: more than {MAX_REQUEST_CALENDAR_EDGES} in one request"
            )));
        }
        // Step from the first boundary, not from the previous one, so a
        // month clipped to the 28th does not stay clipped.
        let n = k.checked_mul(count).ok_or_else(invalid)?;
        let next = match unit.fixed_ms() {
            Some(ms) => n
                .checked_mul(ms)
                .and_then(|d| edges[0].checked_add(d))
                .ok_or_else(invalid)?,
            None => {
                let span = match unit {
                    Unit::Day => Span::new().try_days(n),
                    Unit::Week => Span::new().try_weeks(n),
                    Unit::Month => Span::new().try_months(n),
                    _ => Span::new().try_years(n),
                }
                .map_err(|_| invalid())?;
                first
                    .checked_add(span)
                    .map_err(|_| invalid())?
                    .timestamp()
                    .as_millisecond()
            }
        };
        edges.push(next);
        k += 1;
    }
    Ok(edges.into())
}

/// The unit boundary at or before `t` (spec 9.7.3): sub-day units count
/// from local midnight, weeks start on Monday (spec D26).
fn first_boundary(count: i64, unit: Unit, tz: &TimeZone, t: Timestamp) -> Option<Zoned> {
    let local = jiff::Timestamp::from_millisecond(t)
        .ok()?
        .to_zoned(tz.clone());
    let midnight = local.start_of_day().ok()?;
    let date: Date = local.date();
    match unit.fixed_ms() {
        Some(ms) => {
            let since = t - midnight.timestamp().as_millisecond();
            let width = ms.checked_mul(count)?;
            let aligned = midnight.timestamp().as_millisecond() + since - since.rem_euclid(width);
            Some(
                jiff::Timestamp::from_millisecond(aligned)
                    .ok()?
                    .to_zoned(tz.clone()),
            )
        }
        None => {
            let day = match unit {
                Unit::Week => {
                    let back = i64::from(date.weekday().to_monday_zero_offset());
                    date.checked_sub(Span::new().days(back)).ok()?
                }
                Unit::Month => date.first_of_month(),
                Unit::Year => date.first_of_year(),
                _ => date,
            };
            day.to_zoned(tz.clone()).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(tz: &TimeZone, y: i16, mo: i8, d: i8, h: i8) -> Timestamp {
        local_ms(tz, (y, mo, d), (h, 0, 0)).unwrap_or(Timestamp::MIN)
    }

    #[test]
    fn days_months_and_weeks_follow_the_zone() -> Result<(), OpenTsdbError> {
        let ny = by_name("America/New_York")?;
        // 2017-03-12 is 23 hours long in New York.
        let start = ms(&ny, 2017, 3, 11, 15);
        let edges = calendar_edges(1, Unit::Day, &ny, start, ms(&ny, 2017, 3, 13, 1), 100)?;
        let want = [
            ms(&ny, 2017, 3, 11, 0),
            ms(&ny, 2017, 3, 12, 0),
            ms(&ny, 2017, 3, 13, 0),
            ms(&ny, 2017, 3, 14, 0),
        ];
        assert_eq!(&edges[..], &want);
        assert_eq!(want[2] - want[1], 23 * 3_600_000);

        let utc = by_name("UTC")?;
        let edges = calendar_edges(
            1,
            Unit::Month,
            &utc,
            ms(&utc, 2020, 1, 31, 5),
            ms(&utc, 2020, 3, 1, 0),
            100,
        )?;
        assert_eq!(
            &edges[..],
            &[
                ms(&utc, 2020, 1, 1, 0),
                ms(&utc, 2020, 2, 1, 0),
                ms(&utc, 2020, 3, 1, 0),
                ms(&utc, 2020, 4, 1, 0)
            ]
        );
        // 2020-01-01 was a Wednesday; its week starts Monday 2019-12-30.
        let edges = calendar_edges(
            1,
            Unit::Week,
            &utc,
            ms(&utc, 2020, 1, 1, 12),
            ms(&utc, 2020, 1, 1, 13),
            100,
        )?;
        assert_eq!(
            &edges[..],
            &[ms(&utc, 2019, 12, 30, 0), ms(&utc, 2020, 1, 6, 0)]
        );
        // Six-hour buckets count from local midnight.
        let sh = by_name("Asia/Shanghai")?;
        let edges = calendar_edges(
            6,
            Unit::Hour,
            &sh,
            ms(&sh, 2020, 5, 1, 7),
            ms(&sh, 2020, 5, 1, 12),
            100,
        )?;
        assert_eq!(
            &edges[..],
            &[
                ms(&sh, 2020, 5, 1, 6),
                ms(&sh, 2020, 5, 1, 12),
                ms(&sh, 2020, 5, 1, 18)
            ]
        );
        assert!(calendar_edges(1, Unit::Second, &utc, 0, 10_000_000, 100).is_err());
        assert!(by_name("Mars/Olympus").is_err());
        Ok(())
    }

    #[test]
    fn one_request_shares_its_edges_and_their_cap() -> Result<(), OpenTsdbError> {
        let sh = by_name("Asia/Shanghai")?;
        let day = 86_400_000;
        let memo = EdgeMemo::default();
        let (start, end) = (0, 400 * day);
        let first = memo.edges(1, Unit::Day, &sh, start, end)?;
        // The same specification again is the same list, not a new cut.
        let again = memo.edges(1, Unit::Day, &sh, start, end)?;
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(first.len(), 402);
        assert!(first.windows(2).all(|w| w[1] - w[0] == day));

        // Distinct specifications add up: ten of a quarter of the cap each
        // stop at the fourth, and a fresh request starts from zero.
        let span = (MAX_REQUEST_CALENDAR_EDGES as i64 / 4) * 1_000;
        let memo = EdgeMemo::default();
        let mut accepted = 0;
        for k in 1..=10 {
            match memo.edges(1, Unit::Second, &sh, k, k + span) {
                Ok(edges) => accepted += edges.len(),
                Err(e) => {
                    assert!(e.message.contains("Too many calendar buckets"), "{e:?}");
                    break;
                }
            }
        }
        assert!(accepted <= MAX_REQUEST_CALENDAR_EDGES);
        assert!(accepted >= 3 * (span / 1_000) as usize);
        assert!(
            EdgeMemo::default()
                .edges(1, Unit::Second, &sh, 0, span)
                .is_ok()
        );
        Ok(())
    }
}
