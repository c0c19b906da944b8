//! The database registry: shared by nodes over one document, and the
//! calendar arithmetic of expiry.

use super::*;
use sundial_api::shared::MemoryDocument;

fn engine(dir: &tempfile::TempDir) -> Result<Engine, String> {
    Engine::open(sundial_storage::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    })
    .map_err(|e| e.to_string())
}

fn msg(e: BaiduError) -> String {
    e.message
}

/// A shared document on which another node stores first, once: right
/// before this node's first store.
struct Racing {
    doc: Arc<MemoryDocument>,
    before_first_store: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl std::fmt::Debug for Racing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Racing")
    }
}

impl SharedDocument for Racing {
    fn load(&self) -> std::io::Result<Option<(i64, Vec<u8>)>> {
        self.doc.load()
    }

    fn version(&self) -> std::io::Result<i64> {
        self.doc.version()
    }

    fn store(&self, expected: i64, body: &[u8]) -> std::io::Result<bool> {
        let first = self.before_first_store.lock().take();
        if let Some(other_node) = first {
            other_node();
        }
        self.doc.store(expected, body)
    }
}

/// The shards of a cluster as the registry sees them: the drops asked
/// for, or none while they are down.
#[derive(Debug, Default)]
struct Shards {
    dropped: Mutex<Vec<String>>,
    down: std::sync::atomic::AtomicBool,
}

impl ShardedData for Shards {
    fn drop_database(&self, database: &str) -> std::io::Result<u64> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(std::io::Error::other("shard 3 has no owner now"));
        }
        self.dropped.lock().push(database.to_owned());
        Ok(1)
    }

    fn set_retention(&self, _: &str, _: u64) -> std::io::Result<u64> {
        Err(std::io::Error::other("the registry sets no retention"))
    }
}

fn body(name: &str) -> Value {
    json!({"databaseName": name, "ingestDataPointsMonthly": 1, "purchaseLength": 1})
}

#[test]
fn nodes_sharing_the_registry_see_and_keep_each_others_databases() -> Result<(), String> {
    let doc: Arc<dyn SharedDocument> = Arc::new(MemoryDocument::default());
    let dir = || tempfile::tempdir().map_err(|e| e.to_string());
    let (dir_a, dir_b) = (dir()?, dir()?);
    let (engine_a, engine_b) = (engine(&dir_a)?, engine(&dir_b)?);
    let shards = Arc::new(Shards::default());
    let a = Registry::open_shared(doc.clone(), shards.clone());
    let b = Registry::open_shared(doc, shards.clone());
    let open = Identity::Open;
    let first = a
        .create(&engine_a, &open, "t1", &body("first01"), 1_000)
        .map_err(msg)?;
    let second = b
        .create(&engine_b, &open, "t2", &body("second02"), 2_000)
        .map_err(msg)?;
    assert_eq!(a.names().map_err(msg)?, ["first01", "second02"]);
    assert_eq!(b.names().map_err(msg)?, ["first01", "second02"]);
    // Each node opened its own creation at once.
    assert!(engine_a.database("first01").is_some());
    assert!(engine_b.database("second02").is_some());
    // A repeated create, on the other node: the same database.
    let again = b
        .create(&engine_b, &open, "t1", &body("other03"), 3_000)
        .map_err(msg)?;
    assert_eq!(again["databaseId"], first["databaseId"]);
    assert!(engine_b.database("first01").is_some());
    // A name either node created is taken on both.
    let taken = a.create(&engine_a, &open, "t3", &body("second02"), 4_000);
    assert!(taken.is_err_and(|e| e.message.contains("taken")));
    let listed = a.list(&open, "bj").map_err(msg)?;
    let ids: Vec<&Value> = listed["databases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| &d["databaseId"])
        .collect();
    assert_eq!(ids, [&first["databaseId"], &second["databaseId"]]);
    // Each create first cleared the shards of its name (what writes for
    // a dropped database of that name may have left).
    assert_eq!(*shards.dropped.lock(), ["first01", "second02"]);
    // A drop while a shard cannot be reached: busy, still listed.
    let id = first["databaseId"].as_str().unwrap_or_default();
    shards
        .down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let refused = b.delete(&engine_b, &open, id);
    assert!(refused.is_err_and(|e| e.status == StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(a.names().map_err(msg)?, ["first01", "second02"]);
    // Then through b: the shards drop it, every node's list forgets it,
    // b's handle goes at once.
    shards
        .down
        .store(false, std::sync::atomic::Ordering::Relaxed);
    b.delete(&engine_b, &open, id).map_err(msg)?;
    assert_eq!(
        shards.dropped.lock().last().map(String::as_str),
        Some("first01")
    );
    assert_eq!(a.names().map_err(msg)?, ["second02"]);
    assert!(engine_b.database("first01").is_none());
    let gone = a.get(&open, id, "bj");
    assert!(gone.is_err_and(|e| e.status == StatusCode::NOT_FOUND));
    // a's handles follow the list: b's database opened, the dropped one
    // closed; a second pass has nothing to do.
    let synced = a.sync(&engine_a).map_err(msg)?;
    assert_eq!(
        synced,
        (vec!["second02".to_owned()], vec!["first01".to_owned()])
    );
    assert!(engine_a.database("first01").is_none());
    assert_eq!(a.sync(&engine_a).map_err(msg)?, (Vec::new(), Vec::new()));

    // A create that loses the race (another node stores between its
    // read and its store) reads the winner's and stores again.
    let racing = Arc::new(Racing {
        doc: Arc::new(MemoryDocument::default()),
        before_first_store: Mutex::new(None),
    });
    let c = Registry::open_shared(racing.clone(), shards.clone());
    let other = Registry::open_shared(racing.doc.clone(), shards);
    let dir_c = dir()?;
    let engine_c = engine(&dir_c)?;
    *racing.before_first_store.lock() = Some(Box::new(move || {
        let _ = other.create(&engine_c, &Identity::Open, "t9", &body("winner09"), 9);
    }));
    c.create(&engine_a, &open, "t8", &body("loser008"), 8)
        .map_err(msg)?;
    assert_eq!(c.names().map_err(msg)?, ["winner09", "loser008"]);
    assert_eq!(b.names().map_err(msg)?, ["second02"]);
    Ok(())
}

#[test]
fn months_clamp_to_the_month_end() {
    let jan31 = 1_706_662_800; // 2024-01-31T01:00:00Z
    assert_eq!(utc(jan31), "2024-01-31T01:00:00Z");
    assert_eq!(utc(add_months(jan31, 1)), "2024-02-29T01:00:00Z");
    assert_eq!(utc(add_months(jan31, 12)), "2025-01-31T01:00:00Z");
    assert_eq!(base36("ffffffffffffffffffffffffffffffff").len(), 12);
}
