//! Searches over positions `0..len` of something sorted, given as a
//! predicate that holds up to some position and not after it (a slice's
//! points before a time, a directory's columns before a series).

use std::ops::Range;

/// The first index of `range` where `before` is false: a binary search.
pub fn first_not(range: Range<usize>, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (range.start, range.end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// [`first_not`] over `0..len`, galloping from the front: for callers
/// whose answer is usually a few steps in (a bucket's end in a run of
/// points, the next series of a directory walked in order), where a binary
/// search over the whole range walks its full depth through memory every
/// time. `before` is only asked about indexes below `len`.
pub fn gallop(len: usize, before: impl Fn(usize) -> bool) -> usize {
    // Everything before `lo` is before the answer.
    let (mut lo, mut step) = (0usize, 1usize);
    while lo.saturating_add(step) <= len && before(lo + step - 1) {
        lo += step;
        step = step.saturating_mul(2);
    }
    first_not(lo..lo.saturating_add(step).min(len), before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn both_searches_find_where_the_predicate_turns(
            len in 0usize..600,
            turn in 0usize..700,
            from in 0usize..700,
        ) {
            let turn = turn.min(len);
            let before = |i: usize| {
                assert!(i < len, "asked about {i} of {len}");
                i < turn
            };
            prop_assert_eq!(gallop(len, before), turn);
            let from = from.min(turn);
            prop_assert_eq!(first_not(from..len, before), turn);
        }
    }
}
