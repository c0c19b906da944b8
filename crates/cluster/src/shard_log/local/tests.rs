use super::*;
use std::sync::Arc as StdArc;
use sundial_model::{FieldValue, SeriesKey, ValueInput, WritePoint};

fn batch(shard: u32, epoch: i64, value: f64) -> ShardBatch {
    ShardBatch {
        rules: Default::default(),
        database: "metrics".into(),
        shard,
        epoch,
        id: value as u128,
        points: vec![WritePoint {
            series: StdArc::new(SeriesKey::new("m", vec![("h".into(), "a".into())])),
            field: "value".into(),
            timestamp: 1,
            value: ValueInput::Typed(FieldValue::Double(value)),
        }],
    }
}

fn values(frames: &[(u64, ShardBatch)]) -> Vec<(u64, f64)> {
    frames
        .iter()
        .filter_map(|(position, b)| match &b.points.first()?.value {
            ValueInput::Typed(FieldValue::Double(v)) => Some((*position, *v)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_restarted_owner_replays_its_frames_and_a_torn_tail_is_cut() -> Result<()> {
    let dir = tempfile::tempdir().map_err(io)?;
    let wal = LocalWal::open(dir.path().to_owned());
    let start = wal.fence(3, 1, 1, 0).await?;
    assert_eq!(start, 1);
    for v in [10.0, 11.0, 12.0] {
        let end = wal.last_position(3).await?;
        wal.append_frame_after(&batch(3, 1, v), end).await?;
    }
    // An append expecting another end is refused.
    let moved = wal.append_frame_after(&batch(3, 1, 0.0), 1).await;
    assert!(
        matches!(moved, Err(Error::LogMoved { shard: 3 })),
        "{moved:?}"
    );
    wal.truncate(3, 2).await?;
    // A crash mid-append leaves half a record.
    let path = dir.path().join("shard-0003.log");
    let mut file = OpenOptions::new().append(true).open(&path).map_err(io)?;
    file.write_all(&[9, 0, 0, 0, 1, 2]).map_err(io)?;
    drop(file);

    let again = LocalWal::open(dir.path().to_owned());
    assert_eq!(again.last_position(3).await?, 4);
    // Regained under the next epoch: its own frames stay.
    let fence = again.fence(3, 2, 2, 2).await?;
    assert_eq!(fence, 5);
    let frames = again.replay_frames(3, 0).await?;
    assert_eq!(values(&frames), [(3, 11.0), (4, 12.0)]);
    Ok(())
}

#[tokio::test]
async fn a_log_another_owner_may_have_followed_starts_again_after_every_position() -> Result<()> {
    let dir = tempfile::tempdir().map_err(io)?;
    let wal = LocalWal::open(dir.path().to_owned());
    wal.fence(0, 4, 1, 0).await?;
    wal.append_frame_after(&batch(0, 4, 1.0), 1).await?;
    // Epoch 6: someone held epoch 5 meanwhile. Its frames are not
    // replayed, and positions go on past what PostgreSQL recorded.
    let fence = wal.fence(0, 6, 2, 40).await?;
    assert_eq!(fence, 41);
    assert!(values(&wal.replay_frames(0, 0).await?).is_empty());
    // Positions never go back, even below the log's own end.
    wal.append_frame_after(&batch(0, 6, 2.0), 41).await?;
    let fence = wal.fence(0, 9, 3, 0).await?;
    assert_eq!(fence, 43);
    assert!(values(&wal.replay_frames(0, 0).await?).is_empty());
    Ok(())
}

#[tokio::test]
async fn damage_before_whole_records_is_refused_not_cut() -> Result<()> {
    let dir = tempfile::tempdir().map_err(io)?;
    let wal = LocalWal::open(dir.path().to_owned());
    wal.fence(1, 1, 1, 0).await?;
    wal.append_frame_after(&batch(1, 1, 5.0), 1).await?;
    let path = dir.path().join("shard-0001.log");
    let mut bytes = std::fs::read(&path).map_err(io)?;
    // A flipped byte in the first record's frame.
    if let Some(b) = bytes.get_mut(HEADER + 2) {
        *b ^= 0xff;
    }
    std::fs::write(&path, &bytes).map_err(io)?;
    let again = LocalWal::open(dir.path().to_owned());
    let refused = again.last_position(1).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(std::fs::read(&path).map_err(io)?, bytes, "nothing cut");
    Ok(())
}

#[tokio::test]
async fn a_damaged_length_does_not_cut_the_records_after_it() -> Result<()> {
    let dir = tempfile::tempdir().map_err(io)?;
    let wal = LocalWal::open(dir.path().to_owned());
    wal.fence(2, 1, 1, 0).await?;
    wal.append_frame_after(&batch(2, 1, 5.0), 1).await?;
    let path = dir.path().join("shard-0002.log");
    let mut bytes = std::fs::read(&path).map_err(io)?;
    // The first record claims to run past the end of the file.
    if let Some(b) = bytes.get_mut(3) {
        *b = 0x7f;
    }
    std::fs::write(&path, &bytes).map_err(io)?;
    let refused = LocalWal::open(dir.path().to_owned()).last_position(2).await;
    assert!(refused.is_err(), "{refused:?}");
    // A tail of zeros (a crash after the file grew) is torn: cut.
    let wal = LocalWal::open(dir.path().join("other"));
    wal.fence(2, 1, 1, 0).await?;
    let path = dir.path().join("other").join("shard-0002.log");
    let mut bytes = std::fs::read(&path).map_err(io)?;
    bytes.extend([0u8; 64]);
    std::fs::write(&path, &bytes).map_err(io)?;
    let again = LocalWal::open(dir.path().join("other"));
    assert_eq!(again.last_position(2).await?, 1);
    Ok(())
}
