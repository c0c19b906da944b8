//! Sampling buckets: fixed widths anchored at the query start, or calendar
//! units in a fixed-offset time zone (Baidu's `1 hc`, `1 dc`, `1 nc`, ...).

use sundial_model::Timestamp;
use sundial_model::civil::{civil_from_days, days_from_civil};
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
                CalendarUnit::Second => fixed_units(local, 1_000, count),
                CalendarUnit::Minute => fixed_units(local, 60_000, count),
                CalendarUnit::Hour => fixed_units(local, 3_600_000, count),
                CalendarUnit::Day => fixed_units(local, DAY_MS, count),
                CalendarUnit::Month => {
                    let (y, m, _) = civil_from_days(local.div_euclid(DAY_MS));
                    let index = (y - 1970) * 12 + i64::from(m) - 1;
                    let first = index.div_euclid(count) * count;
                    let month = u32::try_from(first.rem_euclid(12) + 1).unwrap_or(1);
                    days_from_civil(1970 + first.div_euclid(12), month, 1) * DAY_MS
                }
                CalendarUnit::Year => {
                    let (y, _, _) = civil_from_days(local.div_euclid(DAY_MS));
                    let first = (y - 1970).div_euclid(count) * count;
                    days_from_civil(1970 + first, 1, 1) * DAY_MS
                }
            };
            start_local.saturating_sub(utc_offset_ms)
        }
    }
}

fn fixed_units(local: i64, unit_ms: i64, count: i64) -> i64 {
    let index = local.div_euclid(unit_ms);
    index.div_euclid(count) * count * unit_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEIJING: i64 = 8 * 3_600_000;

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
        let july_first = days_from_civil(2017, 7, 1) * DAY_MS - BEIJING;
        let t = days_from_civil(2017, 7, 10) * DAY_MS - BEIJING;
        assert_eq!(bucket_start(cal(1, CalendarUnit::Month), 0, t), july_first);
        // Quarters start in January, April, July, October.
        let aug = days_from_civil(2017, 8, 20) * DAY_MS;
        assert_eq!(
            bucket_start(cal(3, CalendarUnit::Month), 0, aug),
            july_first
        );
        // 23:00 +08 and 01:00 +08 the next day are in different natural days.
        let day = days_from_civil(2017, 7, 14) * DAY_MS - BEIJING;
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
        let year = days_from_civil(2017, 1, 1) * DAY_MS - BEIJING;
        assert_eq!(bucket_start(cal(1, CalendarUnit::Year), 0, t), year);
    }
}
