//! Fuzz entry points for frames, the bytes routers send ingesters, their
//! outcomes, and the answers to queriers (staged series, rows, folded
//! groups, export pages, newer points), and for the local shard log's file (`fuzz/`
//! at the repository root runs it under libFuzzer; `cargo test` replays
//! the committed corpus and regressions). It must never panic.

use crate::frame::{
    Newer, ShardBatch, decode, decode_export, decode_folded, decode_newer, decode_outcome,
    decode_rows, decode_staged, encode, encode_export, encode_folded, encode_newer, encode_outcome,
    encode_rows, encode_staged,
};

/// One flags byte, then a frame: with bit 0 set the frame's checksum is
/// recomputed first, so mutations reach the decoder behind it. A decoded
/// frame must encode back to the same batch. With bit 1 set the bytes
/// are an outcome instead, for a frame of `flags >> 2` points; with bit 2
/// set (and bit 1 clear), an answer to a querier: staged series, rows,
/// an export page, folded groups or newer points by `(flags >> 3) % 5`.
/// Whatever decodes must encode back to the same answer; newer points
/// must also lay over a copy (`Overlay::new` sorts what the network
/// sent).
pub fn frame(data: &[u8]) {
    let Some((flags, frame)) = data.split_first() else {
        return;
    };
    if flags & 6 == 4 {
        let same = |a: String, b: String| assert_eq!(a, b, "a re-encoded answer differs");
        match (flags >> 3) % 5 {
            0 => {
                if let Ok(a) = decode_staged(frame) {
                    same(
                        format!("{:?}", decode_staged(&encode_staged(&a))),
                        format!("{:?}", Ok::<_, crate::FrameError>(a)),
                    );
                }
            }
            1 => {
                if let Ok(a) = decode_rows(frame) {
                    same(
                        format!("{:?}", decode_rows(&encode_rows(&a))),
                        format!("{:?}", Ok::<_, crate::FrameError>(a)),
                    );
                }
            }
            2 => {
                if let Ok(a) = decode_export(frame) {
                    same(
                        format!("{:?}", decode_export(&encode_export(&a))),
                        format!("{:?}", Ok::<_, crate::FrameError>(a)),
                    );
                }
            }
            3 => {
                if let Ok(a) = decode_folded(frame) {
                    same(
                        format!("{:?}", decode_folded(&encode_folded(&a))),
                        format!("{:?}", Ok::<_, crate::FrameError>(a)),
                    );
                }
            }
            _ => {
                if let Ok(a) = decode_newer(frame) {
                    same(
                        format!("{:?}", decode_newer(&encode_newer(&a))),
                        format!("{:?}", Ok::<_, crate::FrameError>(&a)),
                    );
                    for (_, part) in a.parts {
                        if let Newer::Rows(rows) = part {
                            drop(sundial_storage::Overlay::new(rows.rows, rows.min_ts));
                        }
                    }
                }
            }
        }
        return;
    }
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

/// A local shard log file (`wal = "local"`): the whole records read from
/// its start must encode back to exactly those bytes, and what follows
/// them is judged torn or damaged without a panic.
pub fn local_log(data: &[u8]) {
    use crate::shard_log::local::{encode, parse, torn_tail};
    let (records, len) = parse(data);
    assert!(len <= data.len(), "parsed past the end");
    let mut again = Vec::with_capacity(len);
    for (position, payload) in &records {
        if let Ok(record) = encode(*position, payload) {
            again.extend(record);
        }
    }
    assert_eq!(again.as_slice(), data.get(..len).unwrap_or_default());
    let last = records.last().map_or(0, |r| r.0);
    let _ = torn_tail(data.get(len..).unwrap_or_default(), last);
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
        // One answer of each kind to a querier.
        use sundial_model::{FieldValue, Kind, SeriesKey};
        let key = SeriesKey::new("cpu", vec![("host".to_owned(), "a".to_owned())]);
        let key_b = SeriesKey::new("cpu", vec![("host".to_owned(), "b".to_owned())]);
        let staged = crate::frame::StagedAnswer {
            shards: vec![0, 3],
            staged: sundial_query::StagedSeries {
                series: vec![(key.clone(), vec![(1_000, FieldValue::Double(2.5))])],
                raw_points: 4,
                metric_known: true,
            },
        };
        let rows = crate::frame::RowsAnswer {
            shards: vec![1],
            half: sundial_query::series_query::SeriesHalf {
                kinds: vec![Some(Kind::Numeric), None],
                series: vec![(
                    key.clone(),
                    vec![(
                        1_000,
                        sundial_model::series_query::RowValues::from_vec(vec![
                            Some(FieldValue::Long(7)),
                            None,
                        ]),
                    )],
                )],
                consumed: 1,
                raw: 1,
            },
        };
        let mut group = sundial_query::series_query::FoldedGroup {
            tags: vec![("host".to_owned(), "a".to_owned())],
            keys: vec![key],
            ..Default::default()
        };
        // A sum of doubles too far apart for the narrow form.
        let mut double_sum = sundial_model::ExactSum::default();
        double_sum.add(0.1);
        double_sum.add(1e-200);
        let stats = sundial_query::stats::Stats::from_parts(sundial_query::stats::StatsParts {
            count: 3,
            long_sum: 7,
            double_sum,
            all_long: false,
            min: 1e-200,
            max: 7.0,
            long_min: 7,
            long_max: 7,
        });
        group.buckets.insert(0, stats);
        let folded = crate::frame::FoldedAnswer {
            shards: vec![2],
            half: sundial_query::series_query::FoldedHalf {
                kinds: vec![Some(Kind::Numeric)],
                points: 3,
                groups: vec![(vec![Some("a".to_owned())], group)],
            },
        };
        let newer = crate::frame::NewerAnswer {
            shards: vec![0, 1, 2],
            parts: vec![
                (0, Newer::Absent),
                (
                    1,
                    Newer::Stale {
                        checkpoint: vec!["1-1.series.cat".to_owned()],
                    },
                ),
                (
                    2,
                    Newer::Rows(crate::frame::NewerRows {
                        epoch: 3,
                        incarnation: 7,
                        min_ts: -5,
                        series: vec![(sundial_storage::SeriesId(4), key_b.clone())],
                        kinds: vec![("value".to_owned(), Kind::Numeric)],
                        rows: vec![(
                            sundial_storage::SeriesId(4),
                            vec![(
                                "value".to_owned(),
                                vec![
                                    (2_000, FieldValue::Double(1.5)),
                                    (1_000, FieldValue::Long(2)),
                                ],
                            )],
                        )],
                    }),
                ),
                (3, Newer::Changed),
            ],
        };
        for (n, (flags, bytes)) in [
            (4u8, encode_staged(&staged)),
            (4 | 8, encode_rows(&rows)),
            (4 | (3 << 3), encode_folded(&folded)),
            (4 | (4 << 3), encode_newer(&newer)),
        ]
        .into_iter()
        .enumerate()
        {
            let mut seed = vec![flags];
            seed.extend(bytes);
            std::fs::write(dir.join(format!("seed-{:02}", n + 4)), seed)?;
        }
        Ok(())
    }

    #[test]
    fn corpus_and_regressions_replay() {
        sundial_codec::fuzz::replay("cluster_frame", frame);
        sundial_codec::fuzz::replay("cluster_local_log", local_log);
    }
}
