//! Blocks in object storage, against a real S3 API on loopback (s3s over a
//! directory): the same answers as local blocks across flushes,
//! compactions and reopens; nothing acknowledged lost when the store
//! fails; orphans swept; a data directory tied to its store.

use super::*;
use crate::remote::RemoteStore;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use sundial_testkit::s3::S3Server;

const BUCKET: &str = "sundial";

/// One server for the whole test binary; each test its own prefix.
static SERVER: LazyLock<(S3Server, tempfile::TempDir)> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = S3Server::start(dir.path(), &[BUCKET]).expect("the S3 test server starts");
    (server, dir)
});

static NEXT_PREFIX: AtomicU64 = AtomicU64::new(0);

/// A store on the test server under a prefix no other test uses, wrapped
/// so tests can make it fail.
fn new_store() -> Result<(RemoteStore, Arc<Faulty>)> {
    let (server, _) = &*SERVER;
    let options = server
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let prefix = format!("t{}", NEXT_PREFIX.fetch_add(1, Ordering::Relaxed));
    let url = format!("s3://{BUCKET}/{prefix}");
    let plain = RemoteStore::open(&url, &options, 1 << 20)?;
    let faulty = Arc::new(Faulty {
        inner: plain.object_store(),
        fail_puts: AtomicU64::new(0),
        fail_gets: AtomicU64::new(0),
        gets: AtomicU64::new(0),
        multipart_uploads: AtomicU64::new(0),
        stall_puts: tokio::sync::watch::Sender::new(false),
        stalled: AtomicU64::new(0),
    });
    let store = RemoteStore::with_store(faulty.clone(), ObjectPath::from(prefix), &url, 1 << 20)?;
    Ok((store, faulty))
}

fn on_store(dir: &std::path::Path, store: &RemoteStore) -> Config {
    Config {
        remote: Some(store.database("db")),
        ..quiet(dir)
    }
}

/// Objects under the store's database prefix, as the server keeps them.
fn objects(store: &RemoteStore) -> Result<Vec<String>> {
    let mut keys = store.database("db").list()?;
    keys.sort();
    Ok(keys)
}

fn local_blocks(dir: &std::path::Path) -> usize {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".sdb"))
                .count()
        })
        .unwrap_or(0)
}

/// Points of `metric` at seconds `range` (value = second), noted in
/// `model` as written.
fn noted(metric: &str, range: std::ops::Range<i64>, model: &mut Model) -> Vec<WritePoint> {
    let points: Vec<WritePoint> = range.map(|i| point(metric, i * 1000, i)).collect();
    for p in &points {
        if let ValueInput::Typed(v) = &p.value {
            model.insert((metric.into(), "value".into(), p.timestamp), v.clone());
        }
    }
    points
}

/// Writes `rounds` batches of one host, flushing after each; returns
/// what was written.
fn fill(db: &Db, rounds: i64, model: &mut Model) -> Result<()> {
    for round in 0..rounds {
        let batch: Vec<WritePoint> = (0..100)
            .map(|i| point("a", (i * 3_600_000 + round) % 86_400_000, round * 1000 + i))
            .collect();
        for p in &batch {
            if let ValueInput::Typed(v) = &p.value {
                model.insert(("a".into(), "value".into(), p.timestamp), v.clone());
            }
        }
        write_all(db, batch)?;
        db.flush()?;
    }
    Ok(())
}

/// A database on a fresh store prefix, filled by `rounds` of [`fill`].
struct OnStore {
    dir: tempfile::TempDir,
    store: RemoteStore,
    faults: Arc<Faulty>,
    db: Db,
    model: Model,
}

fn filled_on_store(rounds: i64) -> Result<OnStore> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let (store, faults) = new_store()?;
    let db = Db::open(on_store(dir.path(), &store))?;
    let mut model = Model::new();
    fill(&db, rounds, &mut model)?;
    Ok(OnStore {
        dir,
        store,
        faults,
        db,
        model,
    })
}

#[test]
fn blocks_in_the_store_answer_as_local_ones_across_compaction_and_reopen() -> Result<()> {
    let OnStore {
        dir,
        store,
        db,
        model,
        ..
    } = filled_on_store(4)?;
    assert_eq!(snapshot(&db), model);
    assert_eq!(
        local_blocks(dir.path()),
        0,
        "uploaded blocks leave no local copy"
    );
    assert_eq!(objects(&store)?.len(), db.block_count());
    db.compact(true)?;
    assert_eq!(db.block_count(), 1);
    assert_eq!(snapshot(&db), model);
    db.close();
    drop(db);
    // The replaced blocks go once no reader holds them.
    wait_for(|| objects(&store).is_ok_and(|o| o.len() == 1))?;
    let db = Db::open(on_store(dir.path(), &store))?;
    assert_eq!(snapshot(&db), model);
    db.close();
    Ok(())
}

#[test]
fn a_failed_upload_loses_nothing_and_the_next_flush_succeeds() -> Result<()> {
    let OnStore {
        dir,
        store,
        faults,
        db,
        mut model,
        ..
    } = filled_on_store(1)?;
    faults.fail_puts.store(u64::MAX, Ordering::Relaxed);
    let batch = noted("b", 0..50, &mut model);
    write_all(&db, batch)?;
    assert!(matches!(db.flush(), Err(Error::ObjectStore { .. })));
    // Still readable (blocks already up, and the head).
    assert_eq!(snapshot(&db), model);
    assert_eq!(
        local_blocks(dir.path()),
        0,
        "a failed upload's local file goes"
    );
    // A crash now: the WAL replays what the store never got.
    db.abandon();
    drop(db);
    let db = Db::open(on_store(dir.path(), &store))?;
    assert_eq!(snapshot(&db), model);
    faults.fail_puts.store(0, Ordering::Relaxed);
    db.flush()?;
    db.close();
    drop(db);
    let db = Db::open(on_store(dir.path(), &store))?;
    assert_eq!(db.head_points(), 0, "everything flushed");
    assert_eq!(snapshot(&db), model);
    db.close();
    Ok(())
}

#[test]
fn a_stalled_store_holds_writes_in_the_head_until_it_answers() -> Result<()> {
    let filled = filled_on_store(1)?;
    filled.db.close();
    let (dir, store, faults) = (&filled.dir, &filled.store, &filled.faults);
    let mut model = filled.model.clone();
    let db = Db::open(Config {
        max_head_points: 400,
        ..on_store(dir.path(), store)
    })?;
    let mut next = 0i64;
    let mut batch = |model: &mut Model| {
        next += 100;
        noted("s", next - 100..next, model)
    };
    write_all(&db, batch(&mut model))?;
    faults.stall_puts.send_replace(true);
    let flusher = {
        let db = db.clone();
        std::thread::spawn(move || db.flush())
    };
    wait_for(|| faults.stalled.load(Ordering::SeqCst) > 0)?;
    // The upload hangs: reads answer from the blocks and the head, and
    // writes are taken until the head is full, then refused as busy.
    assert_eq!(snapshot(&db), model);
    let mut refused = None;
    for _ in 0..20 {
        let mut attempt = model.clone();
        match write_all(&db, batch(&mut attempt)) {
            Ok(()) => model = attempt,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(refused, Some(Error::HeadFull { .. })),
        "{refused:?}"
    );
    assert_eq!(snapshot(&db), model, "every acknowledged point readable");
    // The store answers again: the flush finishes and writes resume.
    faults.stall_puts.send_replace(false);
    flusher.join().map_err(|_| Error::Closed)??;
    db.flush()?;
    write_all(&db, batch(&mut model))?;
    assert_eq!(snapshot(&db), model);
    db.close();
    drop(db);
    let db = Db::open(on_store(dir.path(), store))?;
    assert_eq!(snapshot(&db), model, "after a reopen");
    db.close();
    Ok(())
}

#[test]
fn reads_of_cached_chunks_survive_a_failing_store() -> Result<()> {
    let OnStore {
        dir,
        store,
        faults,
        db,
        model,
        ..
    } = filled_on_store(2)?;
    assert_eq!(snapshot(&db), model);
    faults.fail_gets.store(u64::MAX, Ordering::Relaxed);
    assert_eq!(snapshot(&db), model, "served from the chunk caches");
    db.close();
    drop(db);
    // What is not cached cannot be read: opening needs the block indexes.
    assert!(matches!(
        Db::open(on_store(dir.path(), &store)),
        Err(Error::ObjectStore { .. })
    ));
    faults.fail_gets.store(0, Ordering::Relaxed);
    let db = Db::open(on_store(dir.path(), &store))?;
    assert_eq!(snapshot(&db), model);
    db.close();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// The oracle test of `tests.rs` with every block in the store, and
    /// flushes and compactions also started by the background threads.
    #[test]
    fn the_engine_on_a_store_matches_the_model(
        ops in proptest::collection::vec(op(), 1..30),
        scale in prop_oneof![Just(1i64), Just(3_600_000), Just(10_800_000)],
    ) {
        let (store, _) = new_store().map_err(|e| TestCaseError::fail(e.to_string()))?;
        run_model(ops, scale, |dir| Config {
            remote: Some(store.database("db")),
            ..config(dir)
        })?;
    }
}

#[test]
fn orphans_are_swept_and_the_directory_names_its_store() -> Result<()> {
    let OnStore {
        dir,
        store,
        db,
        model,
        ..
    } = filled_on_store(1)?;
    db.close();
    drop(db);
    let stray = "block-0000000099.1.sdb";
    store
        .database("db")
        .upload(stray, bytes::Bytes::from_static(b"cut off"))?;
    assert!(objects(&store)?.iter().any(|k| k == stray));
    let db = Db::open(on_store(dir.path(), &store))?;
    assert!(!objects(&store)?.iter().any(|k| k == stray), "orphan swept");
    assert_eq!(snapshot(&db), model);
    db.close();
    drop(db);
    // Without the store, or with another one, the directory is refused.
    assert!(matches!(
        Db::open(quiet(dir.path())),
        Err(Error::ObjectStoreConfig { .. })
    ));
    let (other, _) = new_store()?;
    assert!(matches!(
        Db::open(on_store(dir.path(), &other)),
        Err(Error::ObjectStoreConfig { .. })
    ));
    Ok(())
}

#[test]
fn a_local_directory_moves_its_blocks_to_the_store() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let db = Db::open(quiet(dir.path()))?;
    let mut model = Model::new();
    fill(&db, 3, &mut model)?;
    let blocks = db.block_count();
    db.close();
    drop(db);
    assert_eq!(local_blocks(dir.path()), blocks);
    let (store, _) = new_store()?;
    let db = Db::open(on_store(dir.path(), &store))?;
    assert_eq!(local_blocks(dir.path()), 0);
    assert_eq!(objects(&store)?.len(), blocks);
    assert_eq!(snapshot(&db), model);
    db.close();
    Ok(())
}

#[test]
fn large_blocks_go_up_in_parts() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let (store, counts) = new_store()?;
    let store = store.with_multipart_bytes(1);
    let db = Db::open(on_store(dir.path(), &store))?;
    let mut model = Model::new();
    fill(&db, 2, &mut model)?;
    let flushed = db.block_count() as u64;
    db.compact(true)?;
    // Every flushed block, then the merged one.
    assert_eq!(
        counts.multipart_uploads.load(Ordering::Relaxed),
        flushed + 1
    );
    db.close();
    drop(db);
    let db = Db::open(on_store(dir.path(), &store))?;
    assert_eq!(snapshot(&db), model);
    db.close();
    Ok(())
}

/// `hosts` series `h<n>` of `points` values each (`n * i` at `i * 10 s`),
/// flushed to one block in the store, and the database reopened so that
/// nothing is cached.
fn hosts_in_one_block(
    dir: &std::path::Path,
    store: &RemoteStore,
    hosts: i64,
    points: i64,
) -> Result<Db> {
    let db = Db::open(on_store(dir, store))?;
    let batch: Vec<WritePoint> = (0..hosts)
        .flat_map(|h| (0..points).map(move |i| point(&format!("h{h}"), i * 10_000, h * i)))
        .collect();
    write_all(&db, batch)?;
    db.flush()?;
    db.close();
    drop(db);
    Db::open(on_store(dir, store))
}

#[test]
fn a_prefetch_fetches_a_batch_of_series_in_a_few_requests() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let (store, faulty) = new_store()?;
    let hosts = 64;
    let db = hosts_in_one_block(dir.path(), &store, hosts, 2000)?;
    let ids: Vec<SeriesId> = (0..hosts)
        .flat_map(|h| series_ids(&db, &format!("h{h}")))
        .map(SeriesId)
        .collect();
    let gets = || faulty.gets.load(Ordering::Relaxed);
    let (before, chunks_before) = (gets(), store.chunk_bytes_read());
    db.read(|view| view.prefetch(&ids, &["value"], Timestamp::MIN, Timestamp::MAX))
        .run();
    let prefetch_gets = gets() - before;
    let after_prefetch = gets();
    let points = db.read(|view| {
        ids.iter()
            .map(|id| view.points(*id, "value", Timestamp::MIN, Timestamp::MAX))
            .collect::<Result<Vec<_>>>()
    })?;
    let chunks = db.read(|view| {
        ids.iter()
            .flat_map(|id| {
                view.layers
                    .blocks
                    .iter()
                    .map(|b| b.chunks(*id, "value").len())
            })
            .sum::<usize>()
    });
    // Every series' values as written, with no request after the prefetch.
    for (h, pts) in points.iter().enumerate() {
        let expected: Vec<i64> = (0..2000).map(|i| h as i64 * i).collect();
        let got: Vec<i64> = pts
            .iter()
            .map(|(_, v)| match v {
                FieldValue::Long(x) => *x,
                other => panic!("unexpected value {other:?}"),
            })
            .collect();
        assert_eq!(got, expected, "series h{h}");
    }
    assert_eq!(
        gets(),
        after_prefetch,
        "reads after the prefetch went to the store"
    );
    assert!(store.chunk_bytes_read() > chunks_before);
    assert!(
        chunks > hosts as usize && prefetch_gets * 8 <= chunks as u64,
        "{prefetch_gets} requests for {chunks} chunks"
    );
    db.close();
    Ok(())
}

#[test]
fn a_file_url_names_a_directory_used_like_a_bucket() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let bucket = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let url = format!("file://{}", bucket.path().display());
    let store = RemoteStore::open(&url, &BTreeMap::new(), 1 << 20)?;
    let db = Db::open(on_store(dir.path(), &store))?;
    let mut model = Model::new();
    fill(&db, 2, &mut model)?;
    assert_eq!(local_blocks(dir.path()), 0);
    assert_eq!(local_blocks(&bucket.path().join("db")), db.block_count());
    db.close();
    drop(db);
    let db = Db::open(on_store(dir.path(), &store))?;
    assert_eq!(snapshot(&db), model);
    db.close();
    Ok(())
}

#[test]
fn a_one_series_read_fetches_its_chunks_not_the_blocks() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
    let (store, _) = new_store()?;
    let hosts = 200;
    let db = hosts_in_one_block(dir.path(), &store, hosts, 500)?;
    let (before, chunks_before) = (store.fetched_bytes(), store.chunk_bytes_read());
    let ids = series_ids(&db, "h7");
    let points = db.read(|view| {
        ids.iter()
            .map(|id| view.points(SeriesId(id), "value", Timestamp::MIN, Timestamp::MAX))
            .collect::<Result<Vec<_>>>()
    })?;
    assert_eq!(points.iter().map(Vec::len).sum::<usize>(), 500);
    let fetched = store.fetched_bytes() - before;
    let chunks = store.chunk_bytes_read() - chunks_before;
    assert!(
        chunks > 0 && fetched <= 2 * chunks,
        "fetched {fetched} bytes for {chunks} bytes of chunks"
    );
    let block_bytes: u64 = objects(&store)?
        .iter()
        .filter_map(|k| fs::metadata(SERVER.1.path().join(BUCKET).join(k_path(&store, k))).ok())
        .map(|m| m.len())
        .sum();
    assert!(
        fetched > 0 && fetched * 20 < block_bytes,
        "fetched {fetched} of {block_bytes} bytes for one series of {hosts}"
    );
    db.close();
    Ok(())
}

/// Where the S3 test server keeps an object of the store's database.
fn k_path(store: &RemoteStore, key: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(store.database("db").object_path(key).as_ref())
}

/// Polls `done` for up to ten seconds (background deletes).
fn wait_for(done: impl Fn() -> bool) -> Result<()> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        if std::time::Instant::now() > until {
            return Err(Error::Closed);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

/// Passes calls through, failing puts or gets while their counters are
/// above zero, and holding puts while `stall_puts` is set.
#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn ObjectStore>,
    fail_puts: AtomicU64,
    fail_gets: AtomicU64,
    /// Requests that read an object (whole or a range).
    gets: AtomicU64,
    multipart_uploads: AtomicU64,
    stall_puts: tokio::sync::watch::Sender<bool>,
    /// Puts waiting at the stall now.
    stalled: AtomicU64,
}

impl Faulty {
    /// Waits while puts are stalled (a store that takes the request and
    /// does not answer).
    async fn gate(&self) {
        let mut open = self.stall_puts.subscribe();
        if *open.borrow_and_update() {
            self.stalled.fetch_add(1, Ordering::SeqCst);
            let _ = open.wait_for(|stalled| !*stalled).await;
            self.stalled.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn check(counter: &AtomicU64, op: &str) -> object_store::Result<()> {
        let fired = counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        match fired {
            true => Err(object_store::Error::Generic {
                store: "faulty",
                source: format!("injected {op} failure").into(),
            }),
            false => Ok(()),
        }
    }
}

impl std::fmt::Display for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        Self::check(&self.fail_puts, "put")?;
        self.gate().await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Self::check(&self.fail_puts, "multipart put")?;
        self.gate().await;
        self.multipart_uploads.fetch_add(1, Ordering::Relaxed);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        Self::check(&self.fail_gets, "get")?;
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
