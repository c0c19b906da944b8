//! Presampled statistics: for the series a rule selects, each numeric
//! chunk a flush, compaction or delete writes carries its points' exact
//! statistics per bucket of the rule's grid (a frame after the chunk), so
//! a fold over aligned buckets reads one record per bucket instead of
//! every point. They are exact and follow the data: a chunk's records
//! stand for it only where the chunk does (a whole chunk nothing newer
//! overlaps); late or overwritten points make the chunk read raw until
//! compaction merges them and writes the records again. Format:
//! `docs/format/block.md`, "Presampled buckets".

use crate::block::ExactStats;
use crate::head::{Head, SeriesId};
use crate::record::{get_varint, put_varint, take, unzigzag, zigzag};
use std::collections::HashMap;
use std::sync::Arc;
use sundial_codec::Num;
use sundial_model::{SeriesKey, Timestamp};

/// Buckets of `width` ms whose starts are `anchor` plus multiples of
/// `width` (the anchor kept in `0..width`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grid {
    anchor: Timestamp,
    width: i64,
}

impl Grid {
    /// The grid through `anchor`; `None` for a width below 1 ms.
    pub fn new(anchor: Timestamp, width: i64) -> Option<Self> {
        (width > 0).then(|| Self {
            anchor: anchor.rem_euclid(width),
            width,
        })
    }

    /// The start of the bucket holding `t`.
    pub fn bucket(&self, t: Timestamp) -> Timestamp {
        let off = t.wrapping_sub(self.anchor).rem_euclid(self.width);
        t.wrapping_sub(off)
    }

    /// Bucket width in ms.
    pub fn width(&self) -> i64 {
        self.width
    }

    /// Whether each of its buckets lies inside one of `coarser`'s, so
    /// folding its buckets into those gives what folding the points would.
    pub fn refines(&self, coarser: &Grid) -> bool {
        coarser.width % self.width == 0
            && coarser
                .anchor
                .wrapping_sub(self.anchor)
                .rem_euclid(self.width)
                == 0
    }
}

/// A presampling rule as the storage keeps it: one metric's (or every
/// metric's, `None`) series whose tags hold one of the listed values for
/// every listed key get the grid of buckets of `width` ms through
/// `anchor`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PresamplingRule {
    pub id: String,
    /// The rule as its API defined it, shown back as given.
    pub definition: serde_json::Value,
    pub metric: Option<String>,
    pub tags: Vec<(String, Vec<String>)>,
    pub anchor: Timestamp,
    pub width: i64,
}

impl PresamplingRule {
    pub fn grid(&self) -> Option<Grid> {
        Grid::new(self.anchor, self.width)
    }

    fn matches(&self, key: &SeriesKey) -> bool {
        self.metric.as_deref().is_none_or(|m| m == key.metric)
            && self
                .tags
                .iter()
                .all(|(k, values)| key.tag(k).is_some_and(|v| values.iter().any(|x| x == v)))
    }
}

/// One bucket's statistics in a chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketStats {
    pub start: Timestamp,
    pub count: u64,
    /// Every value a Long: the exact extremes are `exact.long_min/max`.
    pub all_long: bool,
    /// The extremes as doubles (Booleans as 1/0).
    pub min: f64,
    pub max: f64,
    pub exact: ExactStats,
}

/// A database's rollup tiers (`storage.rollup_secs`) as grids through
/// the epoch, widest first (a fold takes the widest that fits).
pub(crate) fn tier_grids(config: &crate::config::Config) -> Vec<Grid> {
    let mut grids: Vec<Grid> = config
        .rollup_secs
        .iter()
        .filter_map(|s| Grid::new(0, i64::try_from(*s).ok()?.checked_mul(1000)?))
        .collect();
    grids.sort_by_key(|g| std::cmp::Reverse(g.width));
    grids.dedup();
    grids
}

/// The grids of each series `ids` holds that a rule selects, besides the
/// tiers every series has (none when there are no rules).
pub(crate) fn grids_by_series(
    head: &Head,
    rules: &[PresamplingRule],
    tiers: &[Grid],
    ids: impl Iterator<Item = SeriesId>,
) -> HashMap<SeriesId, Vec<Grid>> {
    let mut out: HashMap<SeriesId, Vec<Grid>> = HashMap::new();
    if rules.is_empty() {
        return out;
    }
    for id in ids {
        let Some(key) = head.key(id) else { continue };
        for grid in rules
            .iter()
            .filter(|r| r.matches(&key))
            .filter_map(|r| r.grid())
        {
            let grids = out.entry(id).or_insert_with(|| tiers.to_vec());
            if !grids.contains(&grid) {
                grids.push(grid);
            }
        }
    }
    out
}

/// What the blocks a write makes carry: the grids per series, and the
/// fingerprint of the rules and tiers that chose them.
pub(crate) struct Grids {
    pub(crate) fingerprint: u64,
    tiers: Vec<Grid>,
    /// Series a rule selects: their rules' grids and the tiers.
    by_series: HashMap<SeriesId, Vec<Grid>>,
}

impl Grids {
    pub(crate) fn of(&self, id: SeriesId) -> &[Grid] {
        self.by_series.get(&id).unwrap_or(&self.tiers)
    }
}

/// A fingerprint of what rules select and on which grids (not their ids
/// or definitions) and of the tiers, stable across versions: 0 for
/// neither. A block written under others is rewritten by compaction,
/// which is how a new rule or tier reaches data written before it.
pub(crate) fn fingerprint(rules: &[PresamplingRule], tiers: &[Grid]) -> u64 {
    if rules.is_empty() && tiers.is_empty() {
        return 0;
    }
    let mut parts: Vec<String> = rules
        .iter()
        .map(|r| {
            let grid = r.grid().map(|g| (g.anchor, g.width));
            let mut tags = r.tags.clone();
            tags.iter_mut().for_each(|(_, v)| v.sort());
            tags.sort();
            format!("{:?}|{:?}|{:?}", r.metric, tags, grid)
        })
        .chain(tiers.iter().map(|g| format!("tier|{}", g.width)))
        .collect();
    parts.sort();
    parts.dedup();
    // FNV-1a: fixed, unlike the standard library's hashers.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.join("\n").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    // 0 is no rules, MAX a block older than fingerprints.
    h.clamp(1, u64::MAX - 1)
}

impl crate::db::Inner {
    /// The grids of the series among `ids` that a rule selects or a tier
    /// covers.
    pub(crate) fn grids_for(&self, ids: impl Iterator<Item = SeriesId>) -> Grids {
        let rules = self.presampling.read().clone();
        let tiers = tier_grids(&self.config);
        Grids {
            fingerprint: fingerprint(&rules, &tiers),
            by_series: grids_by_series(&self.head.read(), &rules, &tiers, ids),
            tiers,
        }
    }

    /// Every grid the rules and tiers keep buckets on.
    pub(crate) fn kept_grids(&self) -> Vec<Grid> {
        let mut grids = tier_grids(&self.config);
        grids.extend(self.presampling.read().iter().filter_map(|r| r.grid()));
        grids
    }

    /// The fingerprint blocks written now get.
    pub(crate) fn presampling_fingerprint(&self) -> u64 {
        fingerprint(&self.presampling.read(), &tier_grids(&self.config))
    }
}

/// Appends the per-bucket statistics of one chunk's points (ascending)
/// for each grid: a header naming each grid and the length of its
/// section, then the sections, each [`pack`]ed on its own so a fold
/// inflates and decodes only the grid it reads.
pub(crate) fn encode(ts: &[Timestamp], values: &[Num], grids: &[Grid], out: &mut Vec<u8>) {
    let sections: Vec<Vec<u8>> = grids
        .iter()
        .map(|g| pack(section(ts, values, *g)))
        .collect();
    out.push(SECTIONED);
    put_varint(out, grids.len() as u64);
    for (g, section) in grids.iter().zip(&sections) {
        put_varint(out, zigzag(g.anchor));
        put_varint(out, g.width as u64);
        put_varint(out, section.len() as u64);
    }
    sections.iter().for_each(|s| out.extend_from_slice(s));
}

/// One grid's records of a chunk's points.
fn section(ts: &[Timestamp], values: &[Num], g: Grid) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buckets: Vec<(Timestamp, usize, usize)> = Vec::new();
    for (i, t) in ts.iter().enumerate() {
        let b = g.bucket(*t);
        match buckets.last_mut() {
            Some((start, _, end)) if *start == b => *end = i + 1,
            _ => buckets.push((b, i, i + 1)),
        }
    }
    put_varint(&mut out, buckets.len() as u64);
    let mut last = 0i64;
    for (start, lo, hi) in buckets {
        put_varint(&mut out, zigzag(start.wrapping_sub(last)));
        last = start;
        let vals = values.get(lo..hi).unwrap_or_default();
        let all_long = vals.iter().all(|v| matches!(v, Num::Long(_)));
        put_varint(&mut out, vals.len() as u64);
        out.push(u8::from(all_long));
        if !all_long {
            let (min, max) = vals
                .iter()
                .map(|v| as_f64(*v))
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                    (lo.min(x), hi.max(x))
                });
            out.extend_from_slice(&min.to_le_bytes());
            out.extend_from_slice(&max.to_le_bytes());
        }
        if let Some(s) = crate::block::exact_of_values(vals.iter().copied()) {
            crate::block::encode_exact(&s, all_long, &mut out);
        }
    }
    out
}

fn as_f64(v: Num) -> f64 {
    match v {
        Num::Long(i) => i as f64,
        Num::Double(d) => d,
        Num::Bool(b) => f64::from(u8::from(b)),
    }
}

/// First byte of an [`encode`]d payload. Payloads of blocks written
/// before sections (presampling rules' buckets since SDBLK004) start with
/// their grid count, a varint of at least 1, never this byte; they hold
/// each grid's records after its header and are read whole.
const SECTIONED: u8 = 0;

/// A chunk's payload, parsed as far as choosing a grid needs.
pub(crate) enum Payload {
    /// Each grid's section as a range of the payload.
    Sections(Vec<(Grid, std::ops::Range<usize>)>),
    /// An older payload, decoded whole.
    Whole(Vec<Presampled>),
}

impl Payload {
    /// Reads a payload's header (an older one whole).
    pub(crate) fn parse(payload: &[u8]) -> Result<Self, String> {
        match payload.split_first() {
            Some((&SECTIONED, rest)) => Self::sections(payload.len() - rest.len(), rest),
            Some(_) => Self::whole(payload),
            None => Err("empty payload".into()),
        }
    }

    /// Every grid's buckets (the integrity check).
    pub(crate) fn decode_all(self, payload: &[u8]) -> Result<Vec<Presampled>, String> {
        match self {
            Self::Sections(s) => s
                .into_iter()
                .map(|(grid, range)| {
                    let section = payload.get(range).ok_or("section beyond the payload")?;
                    decode_section(grid, section)
                })
                .collect(),
            Self::Whole(w) => Ok(w),
        }
    }

    fn sections(offset: usize, payload: &[u8]) -> Result<Self, String> {
        let mut input = payload;
        let n = get_varint(&mut input)?;
        // Each grid's header takes at least 3 bytes.
        let mut heads = Vec::with_capacity((n as usize).min(input.len() / 3));
        for _ in 0..n {
            let grid = take_grid(&mut input)?;
            let len = usize::try_from(get_varint(&mut input)?).map_err(|_| "section length")?;
            heads.push((grid, len));
        }
        let mut at = payload.len() - input.len();
        let mut out = Vec::with_capacity(heads.len());
        for (grid, len) in heads {
            let end = at
                .checked_add(len)
                .filter(|end| *end <= payload.len())
                .ok_or("section beyond the payload")?;
            out.push((grid, offset + at..offset + end));
            at = end;
        }
        if at != payload.len() {
            return Err(format!("{} trailing bytes", payload.len() - at));
        }
        Ok(Self::Sections(out))
    }

    fn whole(mut input: &[u8]) -> Result<Self, String> {
        let input = &mut input;
        let n = get_varint(input)?;
        let mut grids = Vec::with_capacity((n as usize).min(input.len() / 3));
        for _ in 0..n {
            let grid = take_grid(input)?;
            let buckets = take_buckets(input)?;
            grids.push(Presampled { grid, buckets });
        }
        if !input.is_empty() {
            return Err(format!("{} trailing bytes", input.len()));
        }
        Ok(Self::Whole(grids))
    }

    /// The payload's grids, in order.
    pub(crate) fn grids(&self) -> Vec<Grid> {
        match self {
            Self::Sections(s) => s.iter().map(|(g, _)| *g).collect(),
            Self::Whole(w) => w.iter().map(|p| p.grid).collect(),
        }
    }

    /// The index of the widest grid that refines `grid`.
    pub(crate) fn refining(&self, grid: Grid) -> Option<usize> {
        self.grids()
            .into_iter()
            .enumerate()
            .filter(|(_, g)| g.refines(&grid))
            .max_by_key(|(_, g)| g.width)
            .map(|(i, _)| i)
    }

    /// Grid `i`'s buckets; `payload` is the one parsed.
    pub(crate) fn decode(self, payload: &[u8], i: usize) -> Result<Presampled, String> {
        match self {
            Self::Sections(s) => {
                let (grid, range) = s.into_iter().nth(i).ok_or("no such grid")?;
                let section = payload.get(range).ok_or("section beyond the payload")?;
                decode_section(grid, section)
            }
            Self::Whole(w) => w.into_iter().nth(i).ok_or_else(|| "no such grid".into()),
        }
    }
}

fn take_grid(input: &mut &[u8]) -> Result<Grid, String> {
    let anchor = unzigzag(get_varint(input)?);
    let width = i64::try_from(get_varint(input)?).map_err(|_| "grid width")?;
    Ok(Grid::new(anchor, width).ok_or("grid width 0")?)
}

/// One grid's decoded buckets of a chunk (kept in a cache: dashboards
/// ask for the same ones again).
#[derive(Debug)]
pub(crate) struct Presampled {
    grid: Grid,
    buckets: Vec<BucketStats>,
}

impl crate::block::cache::Weigh for Presampled {
    fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<BucketStats>() + 64
    }
}

/// One grid's buckets of a chunk.
#[derive(Debug, Clone)]
pub struct GridBuckets(Arc<Presampled>);

impl GridBuckets {
    pub(crate) fn new(frame: Arc<Presampled>) -> Self {
        Self(frame)
    }

    /// Whether they can stand for buckets of `grid`.
    pub(crate) fn refines(&self, grid: &Grid) -> bool {
        self.0.grid.refines(grid)
    }

    /// The grid they are buckets of.
    pub fn grid(&self) -> Grid {
        self.0.grid
    }
}

impl std::ops::Deref for GridBuckets {
    type Target = [BucketStats];

    fn deref(&self) -> &[BucketStats] {
        &self.0.buckets
    }
}

/// First byte of a section: its records as they are, or compressed.
const PLAIN: u8 = 0;
const PACKED: u8 = 1;
/// Sections from this long on are compressed when that saves bytes: the
/// records of a day's chunk repeat their starts, counts and flags.
const PACK_FROM: usize = 128;
/// Largest section a compressed one may state (a week of 1 s buckets is
/// ~30 MB).
const MAX_UNPACKED: usize = 1 << 28;

/// A section's records behind [`PLAIN`], or zstd-compressed behind
/// [`PACKED`] when that is smaller.
fn pack(records: Vec<u8>) -> Vec<u8> {
    let mut packed = vec![PACKED];
    if records.len() >= PACK_FROM
        && crate::record::deflate_into(&records, 3, &mut packed).is_ok()
        && packed.len() < records.len()
    {
        return packed;
    }
    let mut plain = Vec::with_capacity(records.len() + 1);
    plain.push(PLAIN);
    plain.extend_from_slice(&records);
    plain
}

/// Decodes one [`pack`]ed section of `grid`.
fn decode_section(grid: Grid, section: &[u8]) -> Result<Presampled, String> {
    let buckets = match section.split_first() {
        Some((&PLAIN, records)) => decode_buckets(records)?,
        Some((&PACKED, packed)) => decode_buckets(&crate::record::inflate(packed, MAX_UNPACKED)?)?,
        Some((other, _)) => return Err(format!("section form {other}")),
        None => return Err("empty section".into()),
    };
    Ok(Presampled { grid, buckets })
}

fn decode_buckets(mut input: &[u8]) -> Result<Vec<BucketStats>, String> {
    let buckets = take_buckets(&mut input)?;
    if !input.is_empty() {
        return Err(format!("{} trailing bytes", input.len()));
    }
    Ok(buckets)
}

/// A bucket count and that many records from the front of `input`.
fn take_buckets(input: &mut &[u8]) -> Result<Vec<BucketStats>, String> {
    let n = usize::try_from(get_varint(input)?).map_err(|_| "bucket count")?;
    // Each bucket takes at least 3 bytes: a damaged count allocates no
    // more than the section could hold.
    let mut buckets = Vec::with_capacity(n.min(input.len() / 3));
    let mut last = 0i64;
    for _ in 0..n {
        let start = last.wrapping_add(unzigzag(get_varint(input)?));
        last = start;
        let count = get_varint(input)?;
        let all_long = take(input, 1)?[0] == 1;
        let (mut min, mut max) = (0.0, 0.0);
        if !all_long {
            let mut f = || -> Result<f64, String> {
                let mut b = [0u8; 8];
                b.copy_from_slice(take(input, 8)?);
                Ok(f64::from_le_bytes(b))
            };
            (min, max) = (f()?, f()?);
        }
        let exact = crate::block::decode_exact(input, all_long)?;
        if all_long {
            (min, max) = (exact.long_min as f64, exact.long_max as f64);
        }
        buckets.push(BucketStats {
            start,
            count,
            all_long,
            min,
            max,
            exact,
        });
    }
    Ok(buckets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day_at_10s() -> (Vec<Grid>, Vec<Timestamp>, Vec<Num>) {
        let grids: Vec<Grid> = [600_000, 3_600_000]
            .iter()
            .filter_map(|w| Grid::new(0, *w))
            .collect();
        let ts: Vec<Timestamp> = (0..8640).map(|i| i * 10_000).collect();
        let values: Vec<Num> = (0..8640)
            .map(|i| match i % 3 {
                0 => Num::Long(i * 7 - 3000),
                1 => Num::Double(i as f64 * 0.01),
                _ => Num::Bool(i % 2 == 0),
            })
            .collect();
        (grids, ts, values)
    }

    /// A day at 10 s on tiers of 10 minutes and an hour: each grid's
    /// section packed smaller on its own and decoded alone, the same as
    /// its records plain; a short section stays plain.
    #[test]
    fn each_grid_decodes_alone_packed_or_plain() -> Result<(), String> {
        let (grids, ts, values) = day_at_10s();
        let mut payload = Vec::new();
        encode(&ts, &values, &grids, &mut payload);
        let Payload::Sections(found) = Payload::parse(&payload)? else {
            return Err("not sectioned".into());
        };
        assert_eq!(found.iter().map(|(g, _)| *g).collect::<Vec<_>>(), grids);
        for (i, (grid, range)) in found.iter().enumerate() {
            let records = section(&ts, &values, *grid);
            let packed = &payload[range.clone()];
            assert_eq!(packed.first(), Some(&PACKED));
            assert!(
                packed.len() * 2 < records.len(),
                "{} of {}",
                packed.len(),
                records.len()
            );
            let got = Payload::parse(&payload)?.decode(&payload, i)?;
            let plain = [&[PLAIN][..], &records].concat();
            assert_eq!(got.buckets, decode_section(*grid, &plain)?.buckets);
            assert_eq!(got.buckets.len() as i64, 86_400_000 / grid.width());
            let count: u64 = got.buckets.iter().map(|b| b.count).sum();
            assert_eq!(count, 8640);
        }
        // An hourly fold takes the hourly section; a daily one too.
        let day = Grid::new(0, 86_400_000).ok_or("grid")?;
        assert_eq!(Payload::parse(&payload)?.refining(day), Some(1));
        assert_eq!(Payload::parse(&payload)?.refining(grids[0]), Some(0));
        let short = section(&ts[..3], &values[..3], grids[0]);
        assert_eq!(pack(short.clone()), [&[PLAIN][..], &short].concat());
        Ok(())
    }

    /// Blocks written before sections hold each grid's records after its
    /// header, uncompressed: they read as they did.
    #[test]
    fn payloads_from_before_sections_still_read() -> Result<(), String> {
        let (grids, ts, values) = day_at_10s();
        let mut older = Vec::new();
        put_varint(&mut older, grids.len() as u64);
        for g in &grids {
            put_varint(&mut older, zigzag(g.anchor));
            put_varint(&mut older, g.width as u64);
            older.extend(section(&ts, &values, *g));
        }
        let mut current = Vec::new();
        encode(&ts, &values, &grids, &mut current);
        let day = Grid::new(0, 86_400_000).ok_or("grid")?;
        let parsed = Payload::parse(&older)?;
        assert!(matches!(parsed, Payload::Whole(_)));
        assert_eq!(parsed.grids(), grids);
        assert_eq!(parsed.refining(day), Some(1));
        for i in 0..grids.len() {
            let old = Payload::parse(&older)?.decode(&older, i)?;
            let new = Payload::parse(&current)?.decode(&current, i)?;
            assert_eq!((old.grid, old.buckets), (new.grid, new.buckets));
        }
        assert_eq!(Payload::parse(&older)?.decode_all(&older)?.len(), 2);
        Ok(())
    }
}
