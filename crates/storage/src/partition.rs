//! Time windows: the head is flushed by partition (2 h by default) and
//! compaction merges the blocks of a day, then of a week. Each tier's
//! windows nest in the next one's, so a block written for one window lies
//! inside exactly one window of every larger tier.

use sundial_model::Timestamp;

pub(crate) const DAY_MS: i64 = 86_400_000;
pub(crate) const WEEK_MS: i64 = 7 * DAY_MS;
/// Weeks start on Monday, 00:00 UTC; 1970-01-05 was the first Monday.
const WEEK_ORIGIN_MS: i64 = 4 * DAY_MS;

/// `[start, end)` in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Window {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
}

impl Window {
    pub(crate) fn contains(&self, min_ts: Timestamp, max_ts: Timestamp) -> bool {
        self.start <= min_ts && max_ts < self.end
    }

    pub(crate) fn overlaps(&self, min_ts: Timestamp, max_ts: Timestamp) -> bool {
        min_ts < self.end && max_ts >= self.start
    }
}

/// The three tiers: partition, day, week.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tiers {
    partition_ms: i64,
}

/// Index of the day tier in [`Tiers::window`].
pub(crate) const DAY: usize = 1;
/// Index of the week tier.
pub(crate) const WEEK: usize = 2;
/// What `/admin/storage` and `/metrics` call the tiers, smallest first.
pub(crate) const LEVEL_NAMES: [&str; 4] = ["partition", "day", "week", "wide"];

impl Tiers {
    /// `partition_secs` must divide a day (checked by the config).
    pub(crate) fn new(partition_secs: u64) -> Self {
        let ms = i64::try_from(partition_secs.saturating_mul(1000)).unwrap_or(DAY_MS);
        Self {
            partition_ms: ms.clamp(1000, DAY_MS),
        }
    }

    /// The window of tier `level` (0 partition, 1 day, 2 week) holding `ts`.
    pub(crate) fn window(&self, level: usize, ts: Timestamp) -> Window {
        let (width, origin) = match level {
            0 => (self.partition_ms, 0),
            DAY => (DAY_MS, 0),
            _ => (WEEK_MS, WEEK_ORIGIN_MS),
        };
        let (start, end) = floor_window(ts, width, origin);
        Window { start, end }
    }

    /// The smallest tier whose window holds all of `[min_ts, max_ts]`, with
    /// that window; `None` for a range wider than a week's window.
    pub(crate) fn level_of(&self, min_ts: Timestamp, max_ts: Timestamp) -> Option<(usize, Window)> {
        (0..=WEEK)
            .map(|level| (level, self.window(level, min_ts)))
            .find(|(_, w)| w.contains(min_ts, max_ts))
    }

    /// The name of the tier a block spanning `[min_ts, max_ts]` sits in:
    /// `wide` for one no week's window holds (written before a partition
    /// size change, or merged across weeks by a forced compaction).
    pub(crate) fn level_name(&self, min_ts: Timestamp, max_ts: Timestamp) -> &'static str {
        match self.level_of(min_ts, max_ts) {
            Some((0, _)) => LEVEL_NAMES[0],
            Some((DAY, _)) => LEVEL_NAMES[1],
            Some(_) => LEVEL_NAMES[2],
            None => LEVEL_NAMES[3],
        }
    }

    /// Points before the returned time lie in partitions that closed at
    /// least `grace_ms` ago at `now`.
    pub(crate) fn closed_before(&self, now: Timestamp, grace_ms: i64) -> Timestamp {
        self.window(0, now.saturating_sub(grace_ms)).start
    }
}

/// The start of the week (Monday 00:00 UTC) holding `ts`.
pub(crate) fn week_start(ts: Timestamp) -> Timestamp {
    floor_window(ts, WEEK_MS, WEEK_ORIGIN_MS).0
}

/// `[start, end)` of the `width`-wide window (aligned to `origin`) holding
/// `ts`, computed wide and clamped, so it holds `ts` even at the ends of
/// time (the last window's end is `Timestamp::MAX`, included by readers).
fn floor_window(ts: Timestamp, width: i64, origin: i64) -> (Timestamp, Timestamp) {
    let (ts, width, origin) = (i128::from(ts), i128::from(width.max(1)), i128::from(origin));
    let start = (ts - origin).div_euclid(width) * width + origin;
    let clamp = |v: i128| {
        Timestamp::try_from(v.clamp(i128::from(Timestamp::MIN), i128::from(Timestamp::MAX)))
            .unwrap_or(Timestamp::MAX)
    };
    (clamp(start), clamp(start + width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_nest_and_weeks_start_on_monday() {
        let tiers = Tiers::new(7200);
        // 2023-11-14T22:13:20Z, a Tuesday.
        let ts = 1_700_000_000_000;
        let p = tiers.window(0, ts);
        assert_eq!((p.start % 7_200_000, p.end - p.start), (0, 7_200_000));
        assert!(p.start <= ts && ts < p.end);
        let d = tiers.window(DAY, ts);
        let w = tiers.window(WEEK, ts);
        assert!(d.contains(p.start, p.end - 1) && w.contains(d.start, d.end - 1));
        // Monday 2023-11-13T00:00:00Z.
        assert_eq!(w.start, 1_699_833_600_000);
        assert_eq!(tiers.level_of(ts, ts + 1000), Some((0, p)));
        assert_eq!(tiers.level_of(d.start, d.start + 7_200_000), Some((DAY, d)));
        // The partition's end is the next day's first instant.
        assert_eq!(tiers.level_of(p.start, p.end), Some((WEEK, w)));
        assert_eq!(tiers.level_of(w.start, w.end), None);
        // Extremes clamp instead of overflowing, and still hold the point.
        for ts in [Timestamp::MIN, Timestamp::MIN + 1000, Timestamp::MAX] {
            for level in 0..=WEEK {
                let w = tiers.window(level, ts);
                assert!(w.start <= ts && (ts < w.end || w.end == Timestamp::MAX));
            }
        }
        let low = tiers.window(WEEK, Timestamp::MIN);
        assert!(low.start <= low.end);
        let high = tiers.window(0, Timestamp::MAX);
        assert!(high.start <= high.end && high.end - high.start <= 7_200_000);
    }

    #[test]
    fn partitions_close_after_the_grace() {
        let tiers = Tiers::new(7200);
        let boundary = 1_700_006_400_000; // a multiple of 2 h
        assert_eq!(
            tiers.closed_before(boundary + 299_000, 300_000),
            boundary - 7_200_000
        );
        assert_eq!(tiers.closed_before(boundary + 300_000, 300_000), boundary);
    }
}
