//! The exact sum of doubles, rounded once when read.
//!
//! A running `f64` sum depends on the order of its additions, so a sum
//! folded per series and then merged, or kept per block chunk, or per
//! presampled bucket, would differ in its last bits from the same points
//! summed row by row. [`ExactSum`] keeps the sum without rounding, so every
//! order, split and merge gives the same total, correctly rounded (to
//! nearest, ties to even) by [`ExactSum::value`].
//!
//! Most sums fit in an `i128` scaled by a power of two (the values' bits
//! span less than about 100 places); a sum that does not moves to a
//! superaccumulator of 32-bit windows over every place a double can have.

/// Places below 1 the smallest double has (2^-1074).
const BIAS: i32 = 1074;
/// Bits of one window of the wide form.
const WINDOW: u32 = 32;
/// Windows over 2^-1074 .. 2^1024, a 128-bit integer added at place 0 and
/// the carries of 2^29 additions.
const WINDOWS: usize = 70;
/// Additions the wide form takes before its carries must be propagated
/// (each adds less than 2^33 to a window; an i64 holds 2^62 of them).
const CARRY_EVERY: u32 = 1 << 29;
/// The place of the largest double's lowest bit.
const MAX_PLACE: i32 = 971;
/// Past the highest bit a sum of doubles can reach (2^1024 times 2^64
/// additions).
const MAX_TOP: i32 = 1024 + 64;
/// Bits the narrow form may use (one spare for the sign).
const NARROW_BITS: u32 = 126;

/// An exact sum of doubles and integers; see the module documentation.
/// Sums are equal when they hold the same number, whatever their form.
#[derive(Clone, Default)]
pub struct ExactSum {
    /// The sum is `narrow * 2^place` while `wide` is `None`.
    narrow: i128,
    place: i32,
    wide: Option<Box<Wide>>,
    /// Infinities and NaNs added, which the sum cannot hold.
    special: Special,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Special {
    nan: bool,
    pos_inf: bool,
    neg_inf: bool,
}

#[derive(Clone)]
struct Wide {
    /// Window `i` holds a multiple of 2^(32 i - 1074), signed and not yet
    /// carried: windows may exceed 32 bits until [`Wide::carry`].
    windows: [i64; WINDOWS],
    pending: u32,
}

impl ExactSum {
    /// Adds one double.
    #[inline]
    pub fn add(&mut self, x: f64) {
        let bits = x.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i32;
        let frac = (bits & ((1 << 52) - 1)) as i64;
        if exp == 0x7ff {
            self.add_special(x);
            return;
        }
        let (mantissa, place) = if exp == 0 {
            (frac, -BIAS)
        } else {
            (frac | (1 << 52), exp - BIAS - 1)
        };
        if mantissa == 0 {
            return;
        }
        let signed = if x.is_sign_negative() {
            -mantissa
        } else {
            mantissa
        };
        let tz = mantissa.trailing_zeros();
        self.add_scaled(i128::from(signed >> tz), place + tz as i32);
    }

    /// Adds every double of `xs` and returns their minimum and maximum
    /// (folds want both, and one pass over the values costs least). While
    /// the values lie within 2^20 above and 2^32 below the first nonzero
    /// one (the usual case) they add in one pass into an `i128`, 2^21 at a
    /// time; otherwise one by one.
    pub fn add_slice(&mut self, xs: &[f64]) -> (f64, f64) {
        let (min, max, _) = self.add_slice_with::<true>(xs, false);
        (min, max)
    }

    /// Adds every double of `xs` but NaNs, and returns how many NaNs there
    /// were (OpenTSDB's reductions skip them); no extremes, which cost a
    /// quarter of the loop.
    pub fn add_slice_skipping_nan(&mut self, xs: &[f64]) -> usize {
        self.add_slice_with::<false>(xs, true).2
    }

    /// Whether a NaN was added (infinities of both signs make the sum NaN
    /// without one).
    pub fn holds_nan(&self) -> bool {
        self.special.nan
    }

    fn add_slice_with<const EXTREMES: bool>(
        &mut self,
        xs: &[f64],
        skip_nan: bool,
    ) -> (f64, f64, usize) {
        /// Values per piece: each adds less than 2^105 (below), so a
        /// piece's total stays under 2^126.
        const PIECE: usize = 1 << 21;
        let (mut min, mut max, mut nans) = (f64::INFINITY, f64::NEG_INFINITY, 0);
        for piece in xs.chunks(PIECE) {
            let (lo, hi, n) = self.add_piece::<EXTREMES>(piece, skip_nan);
            (min, max, nans) = (min.min(lo), max.max(hi), nans + n);
        }
        (min, max, nans)
    }

    /// [`add_slice_with`](Self::add_slice_with) of at most 2^21 values.
    fn add_piece<const EXTREMES: bool>(&mut self, xs: &[f64], skip_nan: bool) -> (f64, f64, usize) {
        if let Some((total, place, min, max)) = integer_total::<EXTREMES>(xs) {
            if total != 0 {
                self.add_scaled(total, place);
            }
            return (min, max, 0);
        }
        // Biased exponents: the lowest bit of a value with exponent e is
        // at place max(e, 1) - 1075, its highest 52 places up. Places are
        // counted from the first nonzero value's (zeros add nothing
        // wherever they are): a value within 20 above and 32 below it
        // adds less than 2^(53 + 52).
        let e0 = xs
            .iter()
            .map(|x| x.to_bits())
            .find(|bits| bits << 1 != 0)
            .map_or(1, |bits| ((bits >> 52) & 0x7ff) as i32)
            .max(1);
        // No place below the subnormals' (2^-1074); infinities and NaNs
        // (exponent 0x7ff) always lie outside.
        let (base, top) = ((e0 - 32).max(1), (e0 + 20).min(0x7fe));
        let mut outside = false;
        // Independent chains of additions and extremes: the loop is bound
        // by their latency, not by its instructions.
        const LANES: usize = 2;
        let mut totals = [0i128; LANES];
        let mut lows = [f64::INFINITY; LANES];
        let mut highs = [f64::NEG_INFINITY; LANES];
        let mut add = |lane: usize, x: f64| {
            if EXTREMES {
                lows[lane] = lows[lane].min(x);
                highs[lane] = highs[lane].max(x);
            }
            let bits = x.to_bits();
            let e = ((bits >> 52) & 0x7ff) as i32;
            let frac = (bits & ((1 << 52) - 1)) as i128;
            let m = if e == 0 { frac } else { frac | 1 << 52 };
            let at = e.max(1);
            outside |= (at < base || at > top) && m != 0;
            let v = m << (at - base).clamp(0, 64);
            // Negated without a branch: signs are as mixed as the data.
            let sign = -((bits >> 63) as i128);
            // Wrapping: only a total with nothing outside is used.
            totals[lane] = totals[lane].wrapping_add((v ^ sign) - sign);
        };
        in_lanes::<LANES>(xs, &mut add);
        let total = totals.iter().fold(0i128, |a, b| a.wrapping_add(*b));
        let min = lows.iter().fold(f64::INFINITY, |a, b| a.min(*b));
        let max = highs.iter().fold(f64::NEG_INFINITY, |a, b| a.max(*b));
        // NaN's exponent is past every value's: only this path sees one.
        let mut nans = 0;
        if outside {
            for x in xs {
                if skip_nan && x.is_nan() {
                    nans += 1;
                } else {
                    self.add(*x);
                }
            }
        } else if total != 0 {
            self.add_scaled(total, base - BIAS - 1);
        }
        (min, max, nans)
    }

    /// Adds an integer exactly.
    pub fn add_integer(&mut self, n: i128) {
        if n != 0 {
            self.add_scaled(n, 0);
        }
    }

    /// Adds everything `other` holds.
    pub fn merge(&mut self, other: &ExactSum) {
        self.special.nan |= other.special.nan;
        self.special.pos_inf |= other.special.pos_inf;
        self.special.neg_inf |= other.special.neg_inf;
        match &other.wide {
            None => {
                if other.narrow != 0 {
                    self.add_scaled(other.narrow, other.place);
                }
            }
            Some(w) => self.widen().absorb(w),
        }
    }

    /// Whether nothing but zeros was added.
    pub fn is_zero(&self) -> bool {
        self.narrow == 0 && self.wide.is_none() && self.special == Special::default()
    }

    /// The sum rounded to the nearest double (ties to even); infinite past
    /// the doubles' range, NaN when NaN or both infinities were added.
    pub fn value(&self) -> f64 {
        let s = self.special;
        if s.nan || (s.pos_inf && s.neg_inf) {
            return f64::NAN;
        }
        if s.pos_inf {
            return f64::INFINITY;
        }
        if s.neg_inf {
            return f64::NEG_INFINITY;
        }
        match &self.wide {
            // A normal place: the integer rounds once, scaling is exact
            // (or overflows to infinity, as the rounded sum would).
            None if (-1022..=1023).contains(&self.place) => self.narrow as f64 * pow2(self.place),
            None => {
                let mut w = Wide::default();
                w.add_scaled(self.narrow, self.place);
                w.round()
            }
            Some(w) => w.round(),
        }
    }

    fn add_special(&mut self, x: f64) {
        if x.is_nan() {
            self.special.nan = true;
        } else if x > 0.0 {
            self.special.pos_inf = true;
        } else {
            self.special.neg_inf = true;
        }
    }

    #[inline]
    fn add_scaled(&mut self, n: i128, place: i32) {
        if let Some(w) = &mut self.wide {
            w.add_scaled(n, place);
            return;
        }
        if self.narrow == 0 && bits(n) <= NARROW_BITS {
            self.narrow = n;
            self.place = place;
            return;
        }
        let aligned = if place >= self.place {
            shifted(n, place - self.place).map(|n| (self.narrow, n, self.place))
        } else {
            shifted(self.narrow, self.place - place).map(|s| (s, n, place))
        };
        match aligned {
            Some((a, b, at)) if bits(a + b) <= NARROW_BITS => {
                self.narrow = a + b;
                self.place = at;
            }
            _ => self.widen().add_scaled(n, place),
        }
    }

    fn widen(&mut self) -> &mut Wide {
        let (narrow, place) = (self.narrow, self.place);
        (self.narrow, self.place) = (0, 0);
        self.wide.get_or_insert_with(|| {
            let mut w = Box::<Wide>::default();
            if narrow != 0 {
                w.add_scaled(narrow, place);
            }
            w
        })
    }

    /// Appends its encoding (`docs/format/exact-sum.md`): a narrow sum
    /// takes 4 to 20 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let specials = u8::from(self.special.nan)
            | u8::from(self.special.pos_inf) << 1
            | u8::from(self.special.neg_inf) << 2;
        let (narrow, place) = match &self.wide {
            None => (Some(self.narrow), self.place),
            Some(w) => match w.magnitude() {
                // A wide sum that fits the narrow form is encoded as one:
                // the form a sum reaches depends on the order of its
                // additions, its encoding must not.
                Magnitude::Narrow(n, place) => (Some(n), place),
                Magnitude::Wide(negative, lo, windows) => {
                    out.push(specials << 4 | 1 | u8::from(negative) << 1);
                    out.push(lo as u8);
                    out.push(windows.len() as u8);
                    for x in windows {
                        out.extend_from_slice(&(x as u32).to_le_bytes());
                    }
                    (None, 0)
                }
            },
        };
        if let Some(n) = narrow {
            // Lowest bit set: one number, one encoding.
            let tz = n.trailing_zeros().min(127);
            let (n, place) = match n {
                0 => (0, 0),
                n => (n >> tz, place + tz as i32),
            };
            let z = ((n << 1) ^ (n >> 127)) as u128;
            let len = 16 - z.leading_zeros() / 8;
            out.push(specials << 4);
            out.extend_from_slice(&(place as i16).to_le_bytes());
            out.push(len as u8);
            out.extend_from_slice(&z.to_le_bytes()[..len as usize]);
        }
    }

    /// Reads one [`encode`](Self::encode)d sum from the front of `input`;
    /// `None` for bytes no sum encodes to (damaged or hostile).
    pub fn decode(input: &mut &[u8]) -> Option<Self> {
        let (&head, rest) = input.split_first()?;
        let specials = head >> 4;
        if specials > 7 || head & 0b1100 != 0 {
            return None;
        }
        let special = Special {
            nan: specials & 1 != 0,
            pos_inf: specials & 2 != 0,
            neg_inf: specials & 4 != 0,
        };
        let take = |input: &mut &[u8], n: usize| -> Option<Vec<u8>> {
            let (a, b) = (input.get(..n)?.to_vec(), input.get(n..)?);
            *input = b;
            Some(a)
        };
        let mut rest = rest;
        let sum = if head & 1 == 0 {
            let place = i16::from_le_bytes(take(&mut rest, 2)?.try_into().ok()?);
            let len = *take(&mut rest, 1)?.first()? as usize;
            if len > 16 {
                return None;
            }
            let mut z = [0u8; 16];
            z[..len].copy_from_slice(&take(&mut rest, len)?);
            let z = u128::from_le_bytes(z);
            let n = (z >> 1) as i128 ^ -((z & 1) as i128);
            let place = i32::from(place);
            // Canonical places reach past the largest double's by the bits
            // stripped.
            if bits(n) > NARROW_BITS
                || !(-BIAS..=MAX_PLACE + NARROW_BITS as i32).contains(&place)
                || place + bits(n) as i32 > MAX_TOP
            {
                return None;
            }
            Self {
                narrow: n,
                place: if n == 0 { 0 } else { place },
                wide: None,
                special,
            }
        } else {
            let negative = head & 2 != 0;
            let lo = *take(&mut rest, 1)?.first()? as usize;
            let n = *take(&mut rest, 1)?.first()? as usize;
            // The top window stays empty: it only takes a carried sign.
            if n == 0 || lo + n > WINDOWS - 1 {
                return None;
            }
            let mut w = Wide::default();
            for i in 0..n {
                let x = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?);
                w.windows[lo + i] = if negative {
                    -i64::from(x)
                } else {
                    i64::from(x)
                };
            }
            Self {
                narrow: 0,
                place: 0,
                wide: Some(Box::new(w)),
                special,
            }
        };
        *input = rest;
        Some(sum)
    }
}

impl ExactSum {
    fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

impl PartialEq for ExactSum {
    fn eq(&self, other: &Self) -> bool {
        self.canonical() == other.canonical()
    }
}

impl std::fmt::Debug for ExactSum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExactSum({:e}, {:02x?})", self.value(), self.canonical())
    }
}

/// A wide sum's value (see [`Wide::magnitude`]).
enum Magnitude {
    Narrow(i128, i32),
    Wide(bool, usize, Vec<i64>),
}

impl Default for Wide {
    fn default() -> Self {
        Self {
            windows: [0; WINDOWS],
            pending: 0,
        }
    }
}

impl Wide {
    /// Adds `n * 2^place`, `place >= -1074`.
    fn add_scaled(&mut self, n: i128, place: i32) {
        if self.pending >= CARRY_EVERY {
            self.carry();
        }
        self.pending += 1;
        let at = (place + BIAS) as u32;
        let (mut i, shift) = ((at / WINDOW) as usize, at % WINDOW);
        let negative = n < 0;
        let mut rest = n.unsigned_abs();
        // Each 32-bit piece of |n|, shifted, lands in two windows.
        while rest != 0 && i < WINDOWS {
            let piece = ((rest & 0xffff_ffff) as i64) << shift;
            let (low, high) = (piece & 0xffff_ffff, piece >> WINDOW);
            let (low, high) = if negative { (-low, -high) } else { (low, high) };
            self.windows[i] += low;
            if let Some(next) = self.windows.get_mut(i + 1) {
                *next += high;
            }
            rest >>= WINDOW;
            i += 1;
        }
    }

    fn absorb(&mut self, other: &Wide) {
        if self.pending.saturating_add(other.pending) >= CARRY_EVERY {
            self.carry();
        }
        let mut o = other.clone();
        if o.pending >= CARRY_EVERY / 2 {
            o.carry();
        }
        for (a, b) in self.windows.iter_mut().zip(o.windows) {
            *a += b;
        }
        self.pending += o.pending + 1;
    }

    /// Moves every window's bits above 32 into the next window.
    fn carry(&mut self) {
        for i in 0..WINDOWS - 1 {
            let c = self.windows[i] >> WINDOW;
            self.windows[i] -= c << WINDOW;
            self.windows[i + 1] += c;
        }
        self.pending = 0;
    }

    /// Its value as a sign and carried magnitude windows from the lowest
    /// nonzero one, or as `n * 2^place` when that fits the narrow form.
    fn magnitude(&self) -> Magnitude {
        let mut w = self.clone();
        w.carry();
        let negative = w.windows[WINDOWS - 1] < 0;
        if negative {
            w.windows.iter_mut().for_each(|x| *x = -*x);
            w.carry();
        }
        let Some(lo) = w.windows.iter().position(|x| *x != 0) else {
            return Magnitude::Narrow(0, 0);
        };
        let hi = w.windows.iter().rposition(|x| *x != 0).unwrap_or(lo);
        // Counted from the lowest set bit: 126 bits may span five windows.
        let tz = w.windows[lo].trailing_zeros();
        let top = (w.windows[hi] as u64).ilog2() + 1;
        if (hi - lo) as u32 * WINDOW + top - tz <= NARROW_BITS {
            let m = w.windows[lo..=hi]
                .iter()
                .enumerate()
                .fold(0u128, |acc, (k, x)| {
                    let at = k as u32 * WINDOW;
                    let x = *x as u128;
                    acc | if at >= tz {
                        x << (at - tz)
                    } else {
                        x >> (tz - at)
                    }
                });
            let n = if negative { -(m as i128) } else { m as i128 };
            return Magnitude::Narrow(n, lo as i32 * WINDOW as i32 - BIAS + tz as i32);
        }
        Magnitude::Wide(negative, lo, w.windows[lo..=hi].to_vec())
    }

    fn round(&self) -> f64 {
        let mut w = self.clone();
        w.carry();
        let negative = w.windows[WINDOWS - 1] < 0;
        if negative {
            for x in &mut w.windows {
                *x = -*x;
            }
            w.carry();
        }
        let Some(top) = w.windows.iter().rposition(|x| *x != 0) else {
            return 0.0;
        };
        // Bits of the magnitude; the top window is below 2^32 after the
        // carry since the sum is below 2^(32 * (WINDOWS - 1)).
        let len = top as u32 * WINDOW + (64 - (w.windows[top] as u64).leading_zeros());
        let magnitude = if len <= 53 {
            let n = w.windows[0] as u64 | (w.windows[1] as u64) << WINDOW;
            n as f64 * pow2(-BIAS)
        } else {
            let shift = len - 53;
            let mut mantissa = bits_at(&w.windows, shift, 53);
            let half = bits_at(&w.windows, shift - 1, 1) == 1;
            let below = shift >= 2 && any_below(&w.windows, shift - 1);
            if half && (below || mantissa & 1 == 1) {
                mantissa += 1;
            }
            let mut shift = shift as i32;
            if mantissa == 1 << 53 {
                mantissa >>= 1;
                shift += 1;
            }
            // mantissa * 2^(shift - 1074) with mantissa in [2^52, 2^53).
            let biased = shift + 1;
            if biased >= 0x7ff {
                f64::INFINITY
            } else {
                f64::from_bits((biased as u64) << 52 | (mantissa & ((1 << 52) - 1)))
            }
        };
        if negative { -magnitude } else { magnitude }
    }
}

/// `len` (at most 64) bits of carried windows from bit `from`.
fn bits_at(windows: &[i64; WINDOWS], from: u32, len: u32) -> u64 {
    let mut out = 0u128;
    let first = (from / WINDOW) as usize;
    for k in 0..4 {
        if let Some(x) = windows.get(first + k) {
            out |= (*x as u128 & 0xffff_ffff) << (WINDOW * k as u32);
        }
    }
    ((out >> (from % WINDOW)) & ((1u128 << len) - 1)) as u64
}

/// Whether any bit below `bit` is set.
fn any_below(windows: &[i64; WINDOWS], bit: u32) -> bool {
    let w = (bit / WINDOW) as usize;
    windows[..w].iter().any(|x| *x != 0) || windows[w] & ((1i64 << (bit % WINDOW)) - 1) != 0
}

/// The common case of a slice's sum, about three times faster than the
/// general loop: every value scaled by the power of two that brings the
/// largest magnitude just below 2^63 is an integer (no value has bits more
/// than 62 places below the largest's top bit; small integers and zeros
/// always qualify), so the values add as `i64`s. Gives the total and its
/// place (`total * 2^place`) and the extremes; `None` otherwise (NaN or
/// infinity, magnitudes at or past 2^63 or below 2^-961, or a value with
/// bits too far down), and the general loop adds the slice.
///
/// Each value is scaled from its bits (mantissa shifted by how far its
/// exponent lies below the largest's), integer work only, in eight lanes
/// adding each value's 32-bit halves into `i64`s (a piece's 2^21 values
/// cannot carry either past 2^53). Also compiled for AVX2 and AVX-512 and
/// chosen at run time: those have the per-lane shifts that let the lanes
/// run side by side.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512dq+avx512vl", "x86_64+avx2+fma"))]
fn integer_total<const EXTREMES: bool>(xs: &[f64]) -> Option<(i128, i32, f64, f64)> {
    let largest = xs.iter().fold(0u64, |m, x| m.max(x.to_bits() & !(1 << 63)));
    // Biased exponent: magnitudes are below 2^(e - 1022). Scaled by 2^k,
    // k = 1085 - e, they lie below 2^63. The bounds on e are those of the
    // earlier scaling by a double 2^k (k in 0..=1023), kept so that this
    // path takes the same slices.
    let e = (largest >> 52) as i32;
    if !(62..=1085).contains(&e) {
        return None;
    }
    let k = 1085 - e;
    const LANES: usize = 8;
    let mut low_halves = [0i64; LANES];
    let mut high_halves = [0i64; LANES];
    let mut lows = [f64::INFINITY; LANES];
    let mut highs = [f64::NEG_INFINITY; LANES];
    let mut inexact = [false; LANES];
    let mut add = |lane: usize, x: f64| {
        // No NaN gets here (its exponent is past every bound above): the
        // extremes need no NaN handling.
        if EXTREMES {
            lows[lane] = if x < lows[lane] { x } else { lows[lane] };
            highs[lane] = if x > highs[lane] { x } else { highs[lane] };
        }
        let bits = x.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as i64;
        let fraction = bits & ((1 << 52) - 1);
        // x = mantissa * 2^(max(biased, 1) - 1075); scaled by 2^k its
        // mantissa moves `up` places (at most 10: below 2^63) or down.
        let mantissa = if biased == 0 {
            fraction
        } else {
            fraction | 1 << 52
        };
        let up = biased.max(1) - i64::from(e) + 10;
        let (left, right) = (up.clamp(0, 10) as u64, (-up).clamp(0, 63) as u64);
        inexact[lane] |= mantissa & ((1 << right) - 1) != 0;
        let magnitude = ((mantissa << left) >> right) as i64;
        let sign = -((bits >> 63) as i64);
        let scaled = (magnitude ^ sign) - sign;
        low_halves[lane] += scaled & 0xffff_ffff;
        high_halves[lane] += scaled >> 32;
    };
    in_lanes::<LANES>(xs, &mut add);
    if inexact.iter().any(|x| *x) {
        return None;
    }
    let min = lows.iter().fold(f64::INFINITY, |a, b| a.min(*b));
    let max = highs.iter().fold(f64::NEG_INFINITY, |a, b| a.max(*b));
    let halves = |h: &[i64; LANES]| h.iter().map(|x| i128::from(*x)).sum::<i128>();
    let total = (halves(&high_halves) << 32) + halves(&low_halves);
    Some((total, -k, min, max))
}

/// Hands value `i` of `xs` to `add` with lane `i % LANES`: independent
/// chains of additions, so a loop is bound by their latency, not by its
/// instructions.
#[inline(always)]
fn in_lanes<const LANES: usize>(xs: &[f64], add: &mut impl FnMut(usize, f64)) {
    let mut groups = xs.chunks_exact(LANES);
    for group in &mut groups {
        for (lane, x) in group.iter().enumerate() {
            add(lane, *x);
        }
    }
    for (lane, x) in groups.remainder().iter().enumerate() {
        add(lane, *x);
    }
}

/// 2^e for e in -1074..=1023.
fn pow2(e: i32) -> f64 {
    if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (e + BIAS))
    }
}

/// Bits of |n|.
fn bits(n: i128) -> u32 {
    128 - n.unsigned_abs().leading_zeros()
}

/// `n << by` when nothing is lost.
fn shifted(n: i128, by: i32) -> Option<i128> {
    let by = u32::try_from(by).ok()?;
    (bits(n) + by <= NARROW_BITS).then(|| n << by)
}

#[cfg(test)]
mod tests;
