//! Fuzz entry points for the on-disk formats (`fuzz/` at the repository
//! root runs them under libFuzzer; `cargo test` replays the committed
//! corpus and regressions). Each takes arbitrary bytes and must never
//! panic.
//!
//! File inputs (`wal_segment`, `block`, `catalog`) are one flags byte and
//! the file: with bit 0 set, every frame's CRC is recomputed first
//! (frames are walked back to back from the 8-byte magic), so the fuzzer
//! reaches the decoders behind the checksums. The file is written into a
//! per-thread scratch directory (on tmpfs when there is one).

use crate::block::{Block, BlockId};
use crate::catalog::Catalog;
use crate::head::SeriesId;
use crate::record::{self, Batch, BatchEncoder, FRAME_HEADER};
use crate::wal;
use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use sundial_model::{FieldValue, SeriesKey};

/// A WAL segment as recovery reads it, strictly and skipping damage;
/// every record read must re-encode to the same batch.
pub fn wal_segment(data: &[u8]) {
    let Some((flags, file)) = data.split_first() else {
        return;
    };
    let mut bytes = file.to_vec();
    if flags & 1 == 1 {
        fix_checksums(&mut bytes);
    }
    for skip in [false, true] {
        let read = wal::parse_segment(&bytes, skip);
        read.batches.iter().for_each(check_batch);
    }
}

/// One WAL record payload (a batch); a decoded batch must re-encode to
/// itself.
pub fn wal_record(data: &[u8]) {
    if let Ok(batch) = record::decode_batch(data) {
        check_batch(&batch);
    }
}

/// A block file: open (index), then every read path over every column.
pub fn block(data: &[u8]) {
    let Some(path) = stage(data, "block/block-0000000001.sdb") else {
        return;
    };
    let id = BlockId {
        wal_below: 1,
        seq: 0,
    };
    let Ok(block) = Block::open(&path, id) else {
        return;
    };
    let _ = block.column_kinds().count();
    let _ = block.series_in(i64::MIN, i64::MAX);
    let _ = block.series_in(0, 1_500_000_000_000);
    let mut columns: Vec<(SeriesId, String)> = block
        .columns()
        .map(|(id, field)| (id, field.to_owned()))
        .collect();
    columns.sort();
    for (id, field) in columns.iter().take(64) {
        for entry in block.chunks(*id, field).iter() {
            let _ = block.read_chunk(entry);
            let _ = block.numeric_chunk(entry);
            let _ = block.stats(entry);
            let _ = block.exact_stats(entry);
            let _ = block.check_rollups(entry);
            if let Some(hour) = crate::rollup::Grid::new(0, 3_600_000) {
                let _ = block.rollup_buckets(entry, hour);
            }
        }
        for (start, end) in [(i64::MIN, i64::MAX), (0, 1_500_000_000_000)] {
            let cached = block.read(*id, field, start, end);
            let uncached = block.read_uncached(*id, field, start, end);
            if let (Ok(a), Ok(b)) = (&cached, &uncached) {
                assert!(
                    a.len() == b.len()
                        && a.iter().zip(b).all(|(x, y)| x.0 == y.0 && same(&x.1, &y.1)),
                    "cached and uncached reads differ: {a:?} vs {b:?}"
                );
            }
        }
    }
}

/// A series catalog: open (which cuts a damaged tail or rewrites an old
/// format), then reopen, which must find the same definitions.
pub fn catalog(data: &[u8]) {
    let Some(path) = stage(data, "catalog/series.cat") else {
        return;
    };
    let Some(dir) = path.parent() else {
        return;
    };
    let Ok((catalog, defs)) = Catalog::open(&crate::vfs::Vfs::default(), dir) else {
        return;
    };
    drop(catalog);
    match Catalog::open(&crate::vfs::Vfs::default(), dir) {
        Ok((_, again)) => assert_eq!(again, defs, "a reopened catalog differs"),
        Err(e) => panic!("a catalog opened once fails to reopen: {e}"),
    }
}

/// Encodes `batch` again and checks it decodes to the same content.
fn check_batch(batch: &Batch) {
    let mut enc = BatchEncoder::default();
    for (id, key) in &batch.new_series {
        enc.define_series(*id, key);
    }
    let mut names = Vec::with_capacity(batch.points.len());
    for p in &batch.points {
        let Some(name) = batch.fields.get(p.field as usize) else {
            panic!(
                "decoded point refers to field {} of {}",
                p.field,
                batch.fields.len()
            );
        };
        let field = enc.field(name);
        enc.point(p.series, field, p.timestamp, &p.value);
        names.push(name);
    }
    let mut payload = Vec::new();
    enc.finish_into(&mut payload);
    let again = match record::decode_batch(&payload) {
        Ok(b) => b,
        Err(e) => panic!("a re-encoded batch does not decode: {e}"),
    };
    assert_eq!(again.new_series, batch.new_series);
    assert_eq!(again.points.len(), batch.points.len());
    for ((a, b), name) in again.points.iter().zip(&batch.points).zip(names) {
        assert_eq!(again.fields.get(a.field as usize), Some(name));
        assert_eq!((a.series, a.timestamp), (b.series, b.timestamp));
        assert!(same(&a.value, &b.value), "{:?} vs {:?}", a.value, b.value);
    }
}

/// Value equality with doubles compared by bits.
fn same(a: &FieldValue, b: &FieldValue) -> bool {
    match (a, b) {
        (FieldValue::Double(x), FieldValue::Double(y)) => x.to_bits() == y.to_bits(),
        (a, b) => a == b,
    }
}

/// Writes the file of a file input to `name` (`dir/file`) in the scratch
/// directory, its directory emptied first; `None` if the input is empty or the write
/// fails.
fn stage(data: &[u8], name: &str) -> Option<PathBuf> {
    let (&flags, file) = data.split_first()?;
    let mut file = file.to_vec();
    if flags & 1 == 1 {
        fix_checksums(&mut file);
    }
    let path = scratch_dir().join(name);
    let dir = path.parent()?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).ok()?;
    std::fs::write(&path, &file).ok()?;
    Some(path)
}

/// Recomputes the CRC of each frame, walking them back to back after the
/// 8-byte magic until one does not fit.
fn fix_checksums(file: &mut [u8]) {
    let mut at = 8;
    while let Some(header) = file.get(at..at + FRAME_HEADER) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let start = at + FRAME_HEADER;
        let Some(payload) = start.checked_add(len).and_then(|end| file.get(start..end)) else {
            return;
        };
        let crc = crc32fast::hash(payload).to_le_bytes();
        file[at + 4..at + 8].copy_from_slice(&crc);
        at = start + len;
    }
}

/// A directory of this thread's own, under `/dev/shm` when it exists
/// (fsyncs cost nothing there). Directories of dead processes are
/// removed on first use.
pub fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static DIR: OnceCell<PathBuf> = const { OnceCell::new() };
    }
    DIR.with(|d| {
        d.get_or_init(|| {
            let shm = Path::new("/dev/shm");
            let base = if shm.is_dir() {
                shm.to_owned()
            } else {
                std::env::temp_dir()
            };
            if NEXT.load(Ordering::Relaxed) == 0 {
                remove_stale(&base);
            }
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = base.join(format!("sundial-fuzz-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::create_dir_all(&dir);
            dir
        })
        .clone()
    })
}

/// Removes `sundial-fuzz-<pid>-*` directories whose process is gone.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        let pid = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("sundial-fuzz-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Small valid inputs per target (written by the ignored test
/// `write_fuzz_seeds` into `fuzz/corpus/<target>/`), made by the real
/// writers.
pub fn seeds() -> crate::Result<Vec<(&'static str, Vec<u8>)>> {
    let mut out = Vec::new();
    let dir = scratch_dir().join("seeds");
    let io = |e| crate::Error::io("write fuzz seeds", "", e);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(io)?;
    let keys = [
        SeriesKey::new(
            "sys.cpu.nice",
            vec![("host".into(), "web01".into()), ("dc".into(), "lga".into())],
        ),
        SeriesKey::new("wind", vec![("city".into(), "sh".into())]),
    ];
    let values = [
        FieldValue::Long(18),
        FieldValue::Double(4.5),
        FieldValue::Bool(true),
        FieldValue::String("High CPU Load".into()),
        FieldValue::Bytes(vec![0, 1, 2]),
    ];
    out.extend(wal_seeds(&keys, &values));
    let payloads: Vec<Vec<u8>> = out
        .iter()
        .filter(|(target, _)| *target == "wal_record")
        .map(|(_, p)| p.clone())
        .collect();
    out.extend(catalog_seeds(&dir, &keys, &payloads)?);
    out.extend(block_seeds(&dir)?);
    Ok(out)
}

/// WAL records (one per series) and a segment holding them, from the WAL
/// writer; whole and with a torn tail.
fn wal_seeds(keys: &[SeriesKey], values: &[FieldValue]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut payloads = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let mut enc = BatchEncoder::default();
        enc.define_series(SeriesId(i as u32), key);
        let field = enc.field(if i == 0 { "value" } else { "speed" });
        for (k, v) in values.iter().enumerate() {
            let ts = 1_346_846_400_000 + 10_000 * k as i64;
            enc.point(SeriesId(i as u32), field, ts, v);
        }
        let mut payload = Vec::new();
        enc.finish_into(&mut payload);
        out.push(("wal_record", payload.clone()));
        payloads.push(payload);
    }
    let mut segment = wal::MAGIC.to_vec();
    for p in &payloads {
        record::frame_into(p, &mut segment);
    }
    out.push(("wal_segment", flagged(1, &segment)));
    out.push(("wal_segment", flagged(0, &segment[..segment.len() - 3])));
    out
}

/// A catalog of the current format, and one of the first format.
fn catalog_seeds(
    dir: &std::path::Path,
    keys: &[SeriesKey],
    payloads: &[Vec<u8>],
) -> crate::Result<Vec<(&'static str, Vec<u8>)>> {
    let io = |e| crate::Error::io("write fuzz seeds", "", e);
    let mut out = Vec::new();
    let cat_dir = dir.join("catalog");
    std::fs::create_dir_all(&cat_dir).map_err(io)?;
    let (mut catalog, _) = Catalog::open(&crate::vfs::Vfs::default(), &cat_dir)?;
    catalog.append(&[(SeriesId(0), keys[0].clone())])?;
    catalog.append(&[(SeriesId(1), keys[1].clone())])?;
    drop(catalog);
    let cat = std::fs::read(cat_dir.join("series.cat")).map_err(io)?;
    out.push(("catalog", flagged(1, &cat)));
    let mut v1 = b"SDCAT001".to_vec();
    for p in payloads {
        record::frame_into(p, &mut v1);
    }
    out.push(("catalog", flagged(1, &v1)));
    Ok(out)
}

/// Blocks: numeric, text and bytes columns, as written (zstd index),
/// and with the index stored plain so mutations reach its decoder.
fn block_seeds(dir: &std::path::Path) -> crate::Result<Vec<(&'static str, Vec<u8>)>> {
    let io = |e| crate::Error::io("write fuzz seeds", "", e);
    let mut out = Vec::new();
    let points: Vec<Vec<(i64, FieldValue)>> = vec![
        (0..20)
            .map(|k| (1_500_000_000_000 + k * 10_000, FieldValue::Long(k)))
            .collect(),
        (0..5)
            .map(|k| {
                (
                    1_500_000_000_000 + k * 7,
                    FieldValue::Double(k as f64 / 4.0),
                )
            })
            .collect(),
        vec![(1_500_000_000_000, FieldValue::String("on".into()))],
        vec![(1_500_000_000_000, FieldValue::Bytes(vec![9, 8]))],
    ];
    // Hourly presampled buckets on the numeric columns.
    let hours: Vec<crate::rollup::Grid> =
        crate::rollup::Grid::new(0, 3_600_000).into_iter().collect();
    let columns: Vec<crate::block::writer::Column<'_>> = points
        .iter()
        .enumerate()
        .map(|(i, p)| crate::block::writer::Column {
            series: SeriesId(i as u32 / 2),
            field: ["value", "speed"][i % 2],
            points: p.into(),
            grids: if i % 2 == 0 { hours.as_slice() } else { &[] },
        })
        .collect();
    let block_dir = dir.join("block");
    std::fs::create_dir_all(&block_dir).map_err(io)?;
    let id = BlockId {
        wal_below: 1,
        seq: 0,
    };
    let mut writer = crate::block::writer::BlockWriter::create(
        &crate::vfs::Vfs::default(),
        &block_dir,
        id,
        sundial_codec::Effort::Small,
    )?;
    for c in &columns {
        writer.add(c)?;
    }
    let block = std::fs::read(writer.finish()?).map_err(io)?;
    out.push(("block", flagged(1, &block)));
    if let Some(plain) = plain_index(&block) {
        out.push(("block", flagged(1, &plain)));
    }
    Ok(out)
}

fn flagged(flags: u8, file: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(file);
    out
}

/// The block with its index frame rewritten uncompressed (flags byte
/// without the zstd bit).
fn plain_index(block: &[u8]) -> Option<Vec<u8>> {
    let footer_at = block.len().checked_sub(16)?;
    let index_at = usize::try_from(u64::from_le_bytes(
        block.get(footer_at..footer_at + 8)?.try_into().ok()?,
    ))
    .ok()?;
    let (payload, _) = record::read_frame(block.get(index_at..footer_at)?).ok()?;
    let (flags, rest) = payload.split_first()?;
    let index = record::inflate(rest, 1 << 20).ok()?;
    let mut plain = vec![flags & !2];
    plain.extend_from_slice(&index);
    let mut out = block.get(..index_at)?.to_vec();
    record::frame_into(&plain, &mut out);
    out.extend_from_slice(&(index_at as u64).to_le_bytes());
    out.extend_from_slice(block.get(footer_at + 8..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    /// A target's name and entry point.
    type Target = (&'static str, fn(&[u8]));

    /// Refreshes the seed files: `cargo test -p sundial-storage
    /// write_fuzz_seeds -- --ignored`.
    #[test]
    #[ignore = "writes into fuzz/corpus"]
    fn write_fuzz_seeds() -> Result<(), Box<dyn std::error::Error>> {
        let mut counts = std::collections::BTreeMap::new();
        for (target, bytes) in super::seeds()? {
            let n = counts.entry(target).or_insert(0);
            *n += 1;
            let dir = sundial_codec::fuzz::fuzz_dir().join("corpus").join(target);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(format!("seed-{n:02}")), bytes)?;
        }
        Ok(())
    }

    #[test]
    fn corpus_and_regressions_replay() {
        let targets: [Target; 4] = [
            ("wal_segment", super::wal_segment),
            ("wal_record", super::wal_record),
            ("block", super::block),
            ("catalog", super::catalog),
        ];
        for (target, run) in targets {
            sundial_codec::fuzz::replay(target, run);
        }
    }
}
