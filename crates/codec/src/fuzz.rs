//! Fuzz entry points (`fuzz/` at the repository root runs them under
//! libFuzzer; `cargo test` replays the committed corpus and regressions).
//! Each takes arbitrary bytes and must never panic; a decoded value must
//! survive encode → decode unchanged.

use crate::{
    Effort, Num, decode_number_column, decode_numbers, decode_texts, decode_timestamps,
    encode_numbers_with, encode_texts_into, encode_timestamps_with, varint,
};

/// Timestamp column decoding of arbitrary bytes, then re-encoding.
pub fn timestamps(data: &[u8]) {
    let mut input = data;
    let Ok(ts) = decode_timestamps(&mut input) else {
        return;
    };
    check_timestamps(&ts);
}

/// Numeric column decoding of arbitrary bytes (both decoders agree), then
/// re-encoding.
pub fn numbers(data: &[u8]) {
    let (mut a, mut b) = (data, data);
    let column = decode_number_column(&mut a);
    let nums = decode_numbers(&mut b);
    match (column, nums) {
        (Ok(column), Ok(nums)) => {
            assert_eq!(a.len(), b.len(), "decoders stop at different offsets");
            assert_same_nums(&column.clone().into_nums(), &nums);
            assert_eq!(column.len(), nums.len());
            check_numbers(&nums);
        }
        (Err(_), Err(_)) => {}
        (c, n) => panic!("decoders disagree: {c:?} vs {n:?}"),
    }
}

/// Length-prefixed text decoding of arbitrary bytes, then re-encoding.
pub fn texts(data: &[u8]) {
    let mut input = data;
    let Ok(texts) = decode_texts(&mut input) else {
        return;
    };
    let mut out = Vec::new();
    encode_texts_into(&texts, &mut out);
    let mut again = out.as_slice();
    assert_eq!(decode_texts(&mut again).ok(), Some(texts));
    assert!(again.is_empty());
}

/// Varints and zigzag: decode arbitrary bytes, re-encode, decode again.
pub fn varint(data: &[u8]) {
    let mut input = data;
    while let Ok(v) = varint::get(&mut input) {
        let mut out = Vec::new();
        varint::put(&mut out, v);
        assert!(out.len() <= 10);
        let mut again = out.as_slice();
        assert_eq!(varint::get(&mut again).ok(), Some(v));
        assert!(again.is_empty());
        assert_eq!(varint::zigzag(varint::unzigzag(v)), v);
        let signed = v as i64;
        assert_eq!(varint::unzigzag(varint::zigzag(signed)), signed);
    }
}

/// Encode → decode of columns built from the bytes: timestamps (regular,
/// near-regular, arbitrary), numbers of every kind and decimal scale,
/// texts.
pub fn roundtrip(data: &[u8]) {
    let mut src = Source(data);
    let ts = src.timestamps();
    check_timestamps(&ts);
    let nums = src.numbers();
    check_numbers(&nums);
    let texts = src.texts();
    let mut out = Vec::new();
    encode_texts_into(&texts, &mut out);
    let mut input = out.as_slice();
    assert_eq!(decode_texts(&mut input).ok(), Some(texts));
}

fn check_timestamps(ts: &[i64]) {
    for effort in [Effort::Small, Effort::Fast] {
        let mut out = Vec::new();
        if encode_timestamps_with(ts, effort, &mut out).is_err() {
            // pco refuses nothing it is given today; if it ever does, an
            // error is an acceptable answer, a panic is not.
            continue;
        }
        out.push(0xAB);
        let mut input = out.as_slice();
        let decoded = decode_timestamps(&mut input);
        assert_eq!(decoded.as_deref(), Ok(ts), "timestamps changed");
        assert_eq!(input, [0xAB], "decoder read past its column");
    }
}

fn check_numbers(nums: &[Num]) {
    for effort in [Effort::Small, Effort::Fast] {
        let mut out = Vec::new();
        if encode_numbers_with(nums, effort, &mut out).is_err() {
            continue;
        }
        out.push(0xAB);
        let mut input = out.as_slice();
        let decoded = decode_numbers(&mut input);
        let Ok(decoded) = decoded else {
            panic!("re-encoded numbers do not decode: {decoded:?}");
        };
        assert_same_nums(nums, &decoded);
        assert_eq!(input, [0xAB], "decoder read past its column");
    }
}

/// Equality with doubles compared by bits (NaN payloads and -0.0 count).
fn assert_same_nums(a: &[Num], b: &[Num]) {
    let same = |x: &Num, y: &Num| match (x, y) {
        (Num::Double(x), Num::Double(y)) => x.to_bits() == y.to_bits(),
        (x, y) => x == y,
    };
    assert!(
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y)),
        "numbers changed: {a:?} vs {b:?}"
    );
}

/// Reads structured values from fuzz bytes; zeros once they run out.
struct Source<'a>(&'a [u8]);

/// Longest column built: enough for every encoder path, fast to run.
const MAX_POINTS: usize = 2048;

impl Source<'_> {
    fn u8(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        *first
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |v, _| (v << 8) | u64::from(self.u8()))
    }

    fn len(&mut self) -> usize {
        let n = usize::from(self.u8()) << 8 | usize::from(self.u8());
        n % (MAX_POINTS + 1)
    }

    fn timestamps(&mut self) -> Vec<i64> {
        let n = self.len();
        let first = self.u64() as i64;
        match self.u8() % 4 {
            // One interval: the compact regular form.
            0 => {
                let step = i64::from(self.u8() as i8) * 1000;
                (0..n as i64)
                    .map_while(|k| step.checked_mul(k).and_then(|d| first.checked_add(d)))
                    .collect()
            }
            // Ascending with jitter: what agents send.
            1 => {
                let mut t = first;
                (0..n)
                    .map(|_| {
                        t = t.wrapping_add(10_000 + i64::from(self.u8()));
                        t
                    })
                    .collect()
            }
            // Anything.
            2 => (0..n).map(|_| self.u64() as i64).collect(),
            // Extremes.
            _ => (0..n)
                .map(|_| match self.u8() % 3 {
                    0 => i64::MIN,
                    1 => i64::MAX,
                    _ => 0,
                })
                .collect(),
        }
    }

    fn numbers(&mut self) -> Vec<Num> {
        let n = self.len();
        let kinds = self.u8();
        (0..n)
            .map(|_| {
                // A uniform column when the kinds byte is below 128.
                let pick = if kinds < 128 { kinds } else { self.u8() };
                match pick % 6 {
                    0 => Num::Long(self.u64() as i64),
                    1 => Num::Long(i64::from(self.u8() as i8)),
                    2 => Num::Double(f64::from_bits(self.u64())),
                    3 => {
                        let scale = i32::from(self.u8() % 12);
                        let m = i64::from(self.u64() as i32);
                        Num::Double(m as f64 / 10f64.powi(scale))
                    }
                    4 => Num::Bool(self.u8() & 1 == 1),
                    _ => Num::Double(f64::from(self.u8()) * 0.25),
                }
            })
            .collect()
    }

    fn texts(&mut self) -> Vec<Vec<u8>> {
        let n = usize::from(self.u8() % 16);
        (0..n)
            .map(|_| {
                let len = usize::from(self.u8() % 32);
                (0..len).map(|_| self.u8()).collect()
            })
            .collect()
    }
}

/// Small valid inputs per target, written by the ignored test
/// `write_fuzz_seeds` into `fuzz/corpus/<target>/`.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let regular: Vec<i64> = (0..360).map(|k| 1_500_000_000_000 + 10_000 * k).collect();
    let jitter: Vec<i64> = (0..64)
        .map(|k| 1_500_000_000_000 + 10_000 * k + (k * 7919) % 13)
        .collect();
    for ts in [&regular[..], &jitter[..], &[], &[i64::MIN, 0, i64::MAX]] {
        let mut bytes = Vec::new();
        if encode_timestamps_with(ts, Effort::Small, &mut bytes).is_ok() {
            out.push(("codec_timestamps", bytes));
        }
    }
    let columns: [Vec<Num>; 5] = [
        (0..50).map(|i| Num::Long(i * 3 - 40)).collect(),
        (0..50).map(|i| Num::Double(f64::from(i) * 0.25)).collect(),
        vec![Num::Double(0.1), Num::Double(f64::NAN), Num::Double(-0.0)],
        vec![Num::Bool(true), Num::Bool(false)],
        vec![
            Num::Long(7),
            Num::Double(1.5),
            Num::Bool(true),
            Num::Long(-1),
        ],
    ];
    for nums in &columns {
        let mut bytes = Vec::new();
        if encode_numbers_with(nums, Effort::Small, &mut bytes).is_ok() {
            out.push(("codec_numbers", bytes));
        }
    }
    for texts in [vec!["web01", "web02"], vec![""], vec![]] {
        let mut bytes = Vec::new();
        encode_texts_into(&texts, &mut bytes);
        out.push(("codec_texts", bytes));
    }
    for v in [0u64, 127, 128, 300, u64::MAX] {
        let mut bytes = Vec::new();
        varint::put(&mut bytes, v);
        out.push(("codec_varint", bytes));
    }
    out.push((
        "codec_roundtrip",
        vec![0, 40, 0, 0, 1, 94, 208, 178, 0, 0, 10],
    ));
    out.push(("codec_roundtrip", (0..=255).collect()));
    out.push((
        "codec_roundtrip",
        vec![1, 0, 0x80, 0x81, 3, 2, 0, 5, 1, 1, 0xff],
    ));
    out
}

/// The repository's `fuzz/` directory. Found at run time (cargo and
/// nextest set `CARGO_MANIFEST_DIR` for every test): a test binary built
/// from another clone that shares the target directory would otherwise
/// read that clone's files.
pub fn fuzz_dir() -> std::path::PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    );
    crate_dir.join("../../fuzz")
}

/// Runs `run` over every file of `fuzz/corpus/<target>` and
/// `fuzz/regressions/<target>`: the tests that replay each target. An
/// empty corpus fails, so a moved directory cannot pass silently.
pub fn replay(target: &str, run: fn(&[u8])) {
    let root = fuzz_dir();
    let mut seen = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if let Ok(bytes) = std::fs::read(&path) {
                eprintln!("{target}: {}", path.display());
                run(&bytes);
                seen += 1;
            }
        }
    }
    assert!(seen > 0, "no corpus for {target}");
}

#[cfg(test)]
mod tests {
    /// A target's name and entry point.
    type Target = (&'static str, fn(&[u8]));

    /// Refreshes the seed files: `cargo test -p sundial-codec
    /// write_fuzz_seeds -- --ignored`.
    #[test]
    #[ignore = "writes into fuzz/corpus"]
    fn write_fuzz_seeds() -> std::io::Result<()> {
        let root = super::fuzz_dir().join("corpus");
        let mut counts = std::collections::BTreeMap::new();
        for (target, bytes) in super::seeds() {
            let n = counts.entry(target).or_insert(0);
            *n += 1;
            let dir = root.join(target);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(format!("seed-{n:02}")), bytes)?;
        }
        Ok(())
    }

    #[test]
    fn corpus_and_regressions_replay() {
        let targets: [Target; 5] = [
            ("codec_timestamps", super::timestamps),
            ("codec_numbers", super::numbers),
            ("codec_texts", super::texts),
            ("codec_varint", super::varint),
            ("codec_roundtrip", super::roundtrip),
        ];
        for (target, run) in targets {
            super::replay(target, run);
        }
    }
}
