//! OpenTSDB's UIDs shared through a real PostgreSQL (started by
//! `sundial_testkit::postgres`; the test fails, never skips, when it is
//! missing): nodes assigning at once agree on every name's number, each
//! number names its name back, databases and kinds number apart, and a
//! kind whose numbers are used up leaves the rest without one.

use std::sync::Arc;
use sundial_api::shared::{Assigned, SharedUids};
use sundial_cluster::PgUids;
use sundial_testkit::postgres::Postgres;

const METRIC: u8 = 0;
const TAG_VALUE: u8 = 2;

fn names(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i:03}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_one_number_per_name() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let nodes = [
        Arc::new(PgUids::connect(&pg.url()).await?),
        Arc::new(PgUids::connect(&pg.url()).await?),
        Arc::new(PgUids::connect(&pg.url()).await?),
    ];
    // Three nodes at once over overlapping names: 0..60, 30..90, 60..120.
    let mut assigning = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let (node, wanted) = (node.clone(), names("host-", i * 30..i * 30 + 60));
        assigning.push(tokio::task::spawn_blocking(move || {
            let uids = node.assign("default", TAG_VALUE, &wanted)?;
            anyhow::Ok((wanted, uids))
        }));
    }
    let mut by_name = std::collections::BTreeMap::new();
    for task in assigning {
        let (wanted, uids) = task.await??;
        for (name, uid) in wanted.into_iter().zip(uids) {
            let uid = uid.ok_or_else(|| anyhow::anyhow!("{name} got no UID"))?;
            let earlier = by_name.insert(name.clone(), uid);
            assert!(
                earlier.is_none_or(|e| e == uid),
                "{name}: {earlier:?} and {uid}"
            );
        }
    }
    assert_eq!(by_name.len(), 120);
    let distinct: std::collections::BTreeSet<u32> = by_name.values().copied().collect();
    assert_eq!(distinct.len(), 120, "two names share a UID");
    assert!(distinct.iter().all(|u| (1..=0xFF_FFFF).contains(u)));

    // Every node reads every number back to its name; unknown numbers and
    // other kinds and databases are apart.
    let (names_wanted, uids): (Vec<String>, Vec<u32>) =
        by_name.iter().map(|(n, u)| (n.clone(), *u)).unzip();
    for node in &nodes {
        let node = node.clone();
        let uids = uids.clone();
        let back =
            tokio::task::spawn_blocking(move || node.names("default", TAG_VALUE, &uids)).await??;
        let back: Vec<String> = back.into_iter().flatten().collect();
        assert_eq!(back, names_wanted);
    }
    let node = nodes[0].clone();
    let (unknown, metric, other_db) = tokio::task::spawn_blocking(move || {
        anyhow::Ok((
            node.names("default", TAG_VALUE, &[0xFF_FFF0])?,
            node.assign("default", METRIC, &names("host-", 0..1))?,
            node.assign("other", TAG_VALUE, &names("host-", 0..1))?,
        ))
    })
    .await??;
    assert_eq!(unknown, vec![None]);
    // By hand: a name with a number keeps it; a new one takes the next,
    // described with its creation time.
    let node = nodes[2].clone();
    let host0 = by_name.get("host-000").copied().unwrap_or_default();
    let (existing, new, described) = tokio::task::spawn_blocking(move || {
        let existing = node.assign_new("default", TAG_VALUE, "host-000")?;
        let new = node.assign_new("default", TAG_VALUE, "by-hand")?;
        let Assigned::New(uid) = new else {
            anyhow::bail!("by-hand: {new:?}");
        };
        anyhow::Ok((existing, new, node.describe("default", TAG_VALUE, uid)?))
    })
    .await??;
    assert_eq!(existing, Assigned::Existing(host0));
    // After every number taken before (a lost race leaves one unused).
    let highest = by_name.values().copied().max().unwrap_or_default();
    assert!(
        matches!(new, Assigned::New(u) if u > highest),
        "{new:?} after {highest}"
    );
    let (name, created) = described.unwrap_or_default();
    assert_eq!(name, "by-hand");
    assert!(created > 1_700_000_000, "{created}");
    assert_eq!(metric, vec![Some(1)], "a kind numbers from 1");
    assert_eq!(other_db, vec![Some(1)], "a database numbers from 1");

    // Three numbers left of the three bytes: three new names get them,
    // the fourth none, and names already given keep theirs.
    let changed = set_next(&pg.url(), 0xFF_FFFD).await?;
    anyhow::ensure!(changed == 1, "the counter row was not found");
    let node = nodes[1].clone();
    let mut wanted = names("late-", 0..4);
    wanted.push("host-000".to_owned());
    let late =
        tokio::task::spawn_blocking(move || node.assign("default", TAG_VALUE, &wanted)).await??;
    assert_eq!(
        late,
        vec![
            Some(0xFF_FFFD),
            Some(0xFF_FFFE),
            Some(0xFF_FFFF),
            None,
            by_name.get("host-000").copied()
        ]
    );
    let node = nodes[0].clone();
    let by_hand =
        tokio::task::spawn_blocking(move || node.assign_new("default", TAG_VALUE, "late-9"))
            .await??;
    assert_eq!(by_hand, Assigned::Exhausted);
    Ok(())
}

/// Sets the tag values' counter of `default` to `next`; rows changed.
async fn set_next(url: &str, next: i32) -> anyhow::Result<u64> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client
        .execute(
            "UPDATE uid_counters SET next = $1 WHERE database = 'default' AND kind = 2",
            &[&next],
        )
        .await?)
}
