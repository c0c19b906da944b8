//! Fuzz entry point for frames, the bytes routers send ingesters, and
//! their outcomes, the bytes ingesters answer with (`fuzz/`
//! at the repository root runs it under libFuzzer; `cargo test` replays
//! the committed corpus and regressions). It must never panic.

use crate::frame::{ShardBatch, decode, decode_outcome, encode, encode_outcome};

/// One flags byte, then a frame: with bit 0 set the frame's checksum is
/// recomputed first, so mutations reach the decoder behind it. A decoded
/// frame must encode back to the same batch. With bit 1 set the bytes
/// are an outcome instead, for a frame of `flags >> 2` points.
pub fn frame(data: &[u8]) {
    let Some((flags, frame)) = data.split_first() else {
        return;
    };
    if flags & 2 == 2 {
        let points = usize::from(flags >> 2);
        if let Ok(outcome) = decode_outcome(frame, points) {
            let again = decode_outcome(&encode_outcome(&outcome), points)
                .unwrap_or_else(|e| panic!("a re-encoded outcome does not decode: {e}"));
            assert_eq!(format!("{again:?}"), format!("{outcome:?}"));
        }
        return;
    }
    let mut bytes = frame.to_vec();
    if flags & 1 == 1 && bytes.len() >= 8 {
        let end = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[4..end]).to_le_bytes();
        bytes[end..].copy_from_slice(&crc);
    }
    let Ok(batch) = decode(&bytes) else {
        return;
    };
    match decode(&encode(&batch)) {
        Ok(again) => assert_eq!(facts(&again), facts(&batch)),
        Err(e) => panic!("a re-encoded frame does not decode: {e}"),
    }
}

/// A batch's content in comparable form.
pub(crate) fn facts(b: &ShardBatch) -> (String, u32, i64, u128, Vec<String>, String) {
    let points = b
        .points
        .iter()
        .map(|p| format!("{:?} {} {} {:?}", p.series, p.field, p.timestamp, p.value))
        .collect();
    let vetoed: Vec<usize> = (b.rules.vetoed.iter().enumerate())
        .filter_map(|(i, v)| v.then_some(i))
        .collect();
    let rules = format!("groups {:?} vetoed {vetoed:?}", b.rules.groups);
    (b.database.clone(), b.shard, b.epoch, b.id, points, rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::sample;

    /// Refreshes the seed files: `cargo test -p sundial-cluster
    /// write_fuzz_seeds -- --ignored`.
    #[test]
    #[ignore = "writes into fuzz/corpus"]
    fn write_fuzz_seeds() -> Result<(), Box<dyn std::error::Error>> {
        let dir = sundial_codec::fuzz::fuzz_dir().join("corpus/cluster_frame");
        std::fs::create_dir_all(&dir)?;
        let full = sample();
        let one = ShardBatch {
            rules: Default::default(),
            points: full.points[..1].to_vec(),
            ..full.clone()
        };
        for (n, batch) in [full, one].iter().enumerate() {
            let mut seed = vec![1u8];
            seed.extend(encode(batch));
            std::fs::write(dir.join(format!("seed-{:02}", n + 1)), seed)?;
        }
        // An outcome of a 12-point frame with two points refused.
        let mut results = vec![Ok(()); 12];
        results[3] = Err(sundial_model::PointError::NotANumber);
        results[7] = Err(sundial_model::PointError::Rejected);
        let mut seed = vec![2u8 | (12 << 2)];
        seed.extend(encode_outcome(&sundial_model::WriteOutcome { results }));
        std::fs::write(dir.join("seed-03"), seed)?;
        Ok(())
    }

    #[test]
    fn corpus_and_regressions_replay() {
        sundial_codec::fuzz::replay("cluster_frame", frame);
    }
}
