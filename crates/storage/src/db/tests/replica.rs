//! A copy of a database opened from its state files elsewhere, with the
//! owner's newer points laid over it, reads as the owner does; and the
//! owner refuses to describe its newer points once a block of the copy's
//! is gone.

use super::*;
use crate::db::{Overlay, restore_handover};
use crate::remote::RemoteStore;
use crate::vfs::Vfs;
use std::collections::HashSet;

fn on_file_store(dir: &std::path::Path, store: &RemoteStore) -> Config {
    Config {
        remote: Some(store.database("db")),
        blocks_shared: true,
        ..quiet(dir)
    }
}

fn tempdir() -> Result<tempfile::TempDir> {
    tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))
}

/// What the owner holds beyond `base`, as the cluster's owner sends it.
fn newer(
    owner: &Db,
    base: &HashSet<String>,
    first: u32,
) -> Option<(OverlayRows, Vec<(SeriesId, SeriesKey)>)> {
    owner.read_newer(base, |snap| {
        let mut rows = Vec::new();
        for id in snap.series_of("cpu") {
            let points = snap
                .points(*id, "value", Timestamp::MIN, Timestamp::MAX)
                .expect("stored data reads back");
            if !points.is_empty() {
                rows.push((*id, vec![("value".to_owned(), points)]));
            }
        }
        (rows, snap.series_from(first))
    })
}

#[test]
fn a_copy_with_the_owners_newer_points_reads_as_the_owner() -> Result<()> {
    let (owner_dir, copy_dir, bucket) = (tempdir()?, tempdir()?, tempdir()?);
    let url = format!("file://{}", bucket.path().display());
    let store = RemoteStore::open(&url, &BTreeMap::new(), 1 << 20)?;
    let owner = Db::open(on_file_store(owner_dir.path(), &store))?;
    let hosts = ["h0", "h1", "h2"];
    write_all(
        &owner,
        hosts
            .iter()
            .flat_map(|h| (0..100).map(|t| point(h, t, t)))
            .collect(),
    )?;
    let files: Vec<(String, bytes::Bytes)> = owner
        .flush_for_handover()?
        .into_iter()
        .map(|(name, bytes)| (name.to_owned(), bytes))
        .collect();
    let base: HashSet<String> = owner.remote_blocks().into_iter().map(|b| b.key).collect();
    assert_eq!(base.len(), 1);
    // After the checkpoint: overwrites, later points, a new series.
    write_all(&owner, (10..20).map(|t| point("h1", t, -t)).collect())?;
    write_all(&owner, (100..150).map(|t| point("h2", t, 2 * t)).collect())?;
    write_all(&owner, (0..50).map(|t| point("h9", t, 9)).collect())?;

    restore_handover(&Vfs::default(), copy_dir.path(), &files)?;
    let copy = Db::open(Config {
        replica: true,
        ..on_file_store(copy_dir.path(), &store)
    })?;
    let (rows, series) = newer(&owner, &base, copy.next_series_id()).expect("base is intact");
    assert_eq!(series.len(), 1, "only h9 is new: {series:?}");
    // The copy alone lacks what came after; with the overlay it is whole.
    assert_ne!(snapshot(&copy), snapshot(&owner));
    let kinds = [("cpu".to_owned(), "value".to_owned(), Kind::Numeric)];
    assert!(copy.mirror(series, &kinds));
    // Rows arrive in any order; the overlay sorts them.
    let mut shuffled = rows;
    shuffled.reverse();
    let read = copy.with_overlay(Arc::new(Overlay::new(shuffled, Timestamp::MIN)));
    assert_eq!(snapshot(&read), snapshot(&owner));

    // A key the copy holds under another id: not the owner's copy.
    let stranger = SeriesKey::new("cpu", vec![("host".into(), "elsewhere".into())]);
    assert!(!copy.mirror(vec![(SeriesId(0), stranger)], &[]));

    // Once the checkpoint's block is merged away, points laid over the
    // copy could not stand for the owner: the owner says so.
    owner.flush()?;
    owner.compact(true)?;
    assert!(!owner.replaced_blocks().is_empty());
    assert!(newer(&owner, &base, 0).is_none());
    copy.close();
    owner.close();
    Ok(())
}
