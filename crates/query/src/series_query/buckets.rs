//! Sampling buckets: fixed widths anchored at the query start, or calendar
//! units in a fixed-offset time zone (Baidu's `1 hc`, `1 dc`, `1 nc`, ...).

use jiff::tz::Offset;
use sundial_model::Timestamp;
use sundial_model::series_query::{CalendarUnit, Sampling};

const DAY_MS: i64 = 86_400_000;

/// The (unclipped) start of the bucket holding `t`.
pub(crate) fn bucket_start(sampling: Sampling, anchor: Timestamp, t: Timestamp) -> Timestamp {
    match sampling {
        Sampling::Fixed(width) => {
            let width = width.max(1);
            anchor.saturating_add((t.saturating_sub(anchor)).div_euclid(width) * width)
        }
        Sampling::Calendar {
            count,
            unit,
            utc_offset_ms,
        } => {
            let count = count.max(1);
            let local = t.saturating_add(utc_offset_ms);
            let start_local = match unit {
                CalendarUnit::Second
                | CalendarUnit::Minute
                | CalendarUnit::Hour
                | CalendarUnit::Day => fixed_units(local, fixed_unit_ms(unit), count),
                CalendarUnit::Month => {
                    let index = month_index(local);
                    month_start(index.div_euclid(count) * count)
                }
                CalendarUnit::Year => {
                    let year = month_index(local).div_euclid(12);
                    month_start(year.div_euclid(count) * count * 12)
                }
            };
            start_local.saturating_sub(utc_offset_ms)
        }
    }
}

/// The start of the bucket after the one starting at `start` (a value
/// [`bucket_start`] returned).
pub(crate) fn bucket_end(sampling: Sampling, start: Timestamp) -> Timestamp {
    match sampling {
        Sampling::Fixed(width) => start.saturating_add(width.max(1)),
        Sampling::Calendar {
            count,
            unit,
            utc_offset_ms,
        } => {
            let count = count.max(1);
            let unit_ms = match unit {
                CalendarUnit::Second
                | CalendarUnit::Minute
                | CalendarUnit::Hour
                | CalendarUnit::Day => fixed_unit_ms(unit),
                CalendarUnit::Month | CalendarUnit::Year => {
                    let months = if unit == CalendarUnit::Year {
                        count.saturating_mul(12)
                    } else {
                        count
                    };
                    let local = start.saturating_add(utc_offset_ms);
                    let first = month_start(month_index(local).saturating_add(months));
                    return first.saturating_sub(utc_offset_ms);
                }
            };
            start.saturating_add(count.saturating_mul(unit_ms))
        }
    }
}

/// Months from 1970-01 to the month holding `local` (milliseconds, read
/// as UTC); times past jiff's years -9999..=9999 count from its ends.
fn month_index(local: Timestamp) -> i64 {
    let t = jiff::Timestamp::from_millisecond(local).unwrap_or(if local < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    let date = Offset::UTC.to_datetime(t).date();
    (i64::from(date.year()) - 1970) * 12 + i64::from(date.month()) - 1
}

/// The first millisecond (read as UTC) of the month `index` months after
/// 1970-01; past jiff's range, the far end of [`Timestamp`].
fn month_start(index: i64) -> Timestamp {
    let year = i16::try_from(1970 + index.div_euclid(12)).ok();
    let month = i8::try_from(index.rem_euclid(12) + 1).ok();
    let first = year
        .zip(month)
        .and_then(|(y, m)| jiff::civil::Date::new(y, m, 1).ok())
        .and_then(|d| {
            Offset::UTC
                .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                .ok()
        });
    match first {
        Some(t) => t.as_millisecond(),
        None if index < 0 => Timestamp::MIN,
        None => Timestamp::MAX,
    }
}

/// Bucket starts for ascending timestamps, recomputed only when a
/// timestamp leaves the current bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucketer {
    sampling: Option<Sampling>,
    anchor: Timestamp,
    lo: Timestamp,
    hi: Timestamp,
}

impl Bucketer {
    /// `None` sampling: one bucket starting at `anchor`.
    pub(crate) fn new(sampling: Option<Sampling>, anchor: Timestamp) -> Self {
        let (lo, hi) = match sampling {
            None => (anchor, Timestamp::MAX),
            Some(_) => (Timestamp::MAX, Timestamp::MIN),
        };
        Self {
            sampling,
            anchor,
            lo,
            hi,
        }
    }

    /// The end (exclusive) of the bucket [`Bucketer::bucket`] last gave.
    pub(crate) fn end(&self) -> Timestamp {
        self.hi
    }

    pub(crate) fn bucket(&mut self, t: Timestamp) -> Timestamp {
        if t >= self.lo && t < self.hi {
            return self.lo;
        }
        if let Some(s) = self.sampling {
            self.lo = bucket_start(s, self.anchor, t);
            self.hi = bucket_end(s, self.lo);
        }
        self.lo
    }
}

/// How many of `ts` (ascending) come before `end`: galloping, since a run
/// is folded a bucket at a time and a bucket usually ends a few dozen
/// points in (a binary search over the rest of the run took 84% of a
/// 10-minute max over day-long chunks).
pub(crate) fn count_before(ts: &[Timestamp], end: Timestamp) -> usize {
    sundial_model::search::gallop(ts.len(), |i| ts.get(i).is_some_and(|t| *t < end))
}

/// Length of the calendar units that have one (in a fixed-offset zone);
/// months and years have none.
fn fixed_unit_ms(unit: CalendarUnit) -> i64 {
    match unit {
        CalendarUnit::Second => 1_000,
        CalendarUnit::Minute => 60_000,
        CalendarUnit::Hour => 3_600_000,
        CalendarUnit::Day | CalendarUnit::Month | CalendarUnit::Year => DAY_MS,
    }
}

fn fixed_units(local: i64, unit_ms: i64, count: i64) -> i64 {
    let index = local.div_euclid(unit_ms);
    (index.div_euclid(count) * count).saturating_mul(unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEIJING: i64 = 8 * 3_600_000;

    /// Days since 1970-01-01 of a date.
    fn days(y: i16, m: i8, d: i8) -> i64 {
        let midnight = jiff::civil::date(y, m, d).at(0, 0, 0, 0);
        Offset::UTC.to_timestamp(midnight).unwrap().as_second() / 86_400
    }

    fn cal(count: i64, unit: CalendarUnit) -> Sampling {
        Sampling::Calendar {
            count,
            unit,
            utc_offset_ms: BEIJING,
        }
    }

    #[test]
    fn fixed_buckets_anchor_at_the_start() {
        let s = Sampling::Fixed(300_000);
        assert_eq!(bucket_start(s, 1_000, 1_000), 1_000);
        assert_eq!(bucket_start(s, 1_000, 300_999), 1_000);
        assert_eq!(bucket_start(s, 1_000, 301_000), 301_000);
    }

    #[test]
    fn beijing_months_and_days() {
        // 2017-07-10 00:00 +08 lies in the month starting 2017-07-01 00:00 +08.
        let july_first = days(2017, 7, 1) * DAY_MS - BEIJING;
        let t = days(2017, 7, 10) * DAY_MS - BEIJING;
        assert_eq!(bucket_start(cal(1, CalendarUnit::Month), 0, t), july_first);
        // Quarters start in January, April, July, October.
        let aug = days(2017, 8, 20) * DAY_MS;
        assert_eq!(
            bucket_start(cal(3, CalendarUnit::Month), 0, aug),
            july_first
        );
        // 23:00 +08 and 01:00 +08 the next day are in different natural days.
        let day = days(2017, 7, 14) * DAY_MS - BEIJING;
        let late = day + 23 * 3_600_000;
        assert_eq!(bucket_start(cal(1, CalendarUnit::Day), 0, late), day);
        assert_eq!(
            bucket_start(cal(1, CalendarUnit::Day), 0, late + 2 * 3_600_000),
            day + DAY_MS
        );
        // Two-hour buckets start on even local hours.
        let odd = day + 3 * 3_600_000 + 5;
        assert_eq!(
            bucket_start(cal(2, CalendarUnit::Hour), 0, odd),
            day + 2 * 3_600_000
        );
        let year = days(2017, 1, 1) * DAY_MS - BEIJING;
        assert_eq!(bucket_start(cal(1, CalendarUnit::Year), 0, t), year);
    }

    /// The cached bucketer agrees with `bucket_start` at every step.
    #[test]
    fn bucketer_matches_bucket_start() {
        let samplings = [
            Sampling::Fixed(7_000),
            cal(1, CalendarUnit::Month),
            cal(3, CalendarUnit::Month),
            cal(1, CalendarUnit::Year),
            cal(2, CalendarUnit::Hour),
            cal(1, CalendarUnit::Day),
        ];
        for s in samplings {
            let mut b = Bucketer::new(Some(s), 5);
            let mut t = days(2016, 11, 20) * DAY_MS;
            while t < days(2018, 3, 1) * DAY_MS {
                assert_eq!(b.bucket(t), bucket_start(s, 5, t), "{s:?} {t}");
                t += 3_600_000 * 7 + 13;
            }
        }
    }
}
