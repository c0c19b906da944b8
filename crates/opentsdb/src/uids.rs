//! OpenTSDB UIDs and TSUIDs (spec 2): per kind (metric, tag key, tag
//! value) a number in first-seen order, never reused.
//!
//! Series ids are persistent and dense in creation order, and a new name
//! always arrives with a new series, so the first-seen order is re-derived
//! by walking series in id order: the metric, then each tag key and value
//! in key order. A log (`opentsdb-uids.log`, one JSON array per line) keeps
//! what that walk cannot recover: names assigned through `/api/uid/assign`
//! and names whose series were deleted.

pub(crate) mod shared;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use sundial_model::{SeriesKey, Tags};
use sundial_storage::vfs::{Vfs, VfsFile};
use sundial_storage::{SeriesId, Snapshot};

/// UID width in bytes: hex strings of six digits.
const WIDTH_BYTES: u32 = 3;
const MAX_UID: u32 = (1 << (8 * WIDTH_BYTES)) - 1;

/// The three UID namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UidKind {
    Metric,
    TagK,
    TagV,
}

impl UidKind {
    pub(crate) const ALL: [UidKind; 3] = [UidKind::Metric, UidKind::TagK, UidKind::TagV];

    /// Name in requests and `<type>_errors` (`metric`, `tagk`, `tagv`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            UidKind::Metric => "metric",
            UidKind::TagK => "tagk",
            UidKind::TagV => "tagv",
        }
    }

    /// Name in the exhaustion message (`metrics`, `tagk`, `tagv`).
    fn plural(self) -> &'static str {
        match self {
            UidKind::Metric => "metrics",
            other => other.name(),
        }
    }

    pub(crate) fn parse(s: &str) -> Option<UidKind> {
        UidKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s) || k.plural().eq_ignore_ascii_case(s))
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a cluster node without the shared UIDs refuses what needs them.
pub(crate) const NOT_ON_CLUSTER: &str = "TSUIDs need the cluster's shared UIDs, which this \
     node does not reach: ask by metric and tags (docs/cluster.md, \"UIDs\")";

/// Why a name of `kind` got no UID.
pub(crate) fn exhausted(kind: UidKind) -> String {
    format!(
        "All Unique IDs for {} on {WIDTH_BYTES} bytes are already assigned!",
        kind.plural()
    )
}

/// A TSUID: the metric's UID, then each tag's key and value UIDs in the
/// order of the key UIDs.
pub(crate) fn format_tsuid(metric: u32, mut pairs: Vec<(u32, u32)>) -> String {
    pairs.sort_unstable();
    let mut out = hex(metric);
    for (k, v) in pairs {
        out.push_str(&hex(k));
        out.push_str(&hex(v));
    }
    out
}

/// UID as printed: upper-case hex, two digits per byte.
pub(crate) fn hex(uid: u32) -> String {
    format!("{uid:06X}")
}

#[derive(Debug, Default)]
struct Table {
    by_name: HashMap<String, u32>,
    /// Name and first-seen epoch seconds, at `uid - 1`.
    names: Vec<(String, i64)>,
}

/// Every assigned UID, kept in sync with the series of one database.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    kinds: [Table; 3],
    /// Series below this id have had their names assigned.
    synced: u32,
    /// Lines not yet appended to the log.
    pending: Vec<String>,
}

impl Tables {
    pub(crate) fn uid(&self, kind: UidKind, name: &str) -> Option<u32> {
        self.kinds[kind.index()].by_name.get(name).copied()
    }

    /// Name and first-seen epoch seconds of a UID.
    pub(crate) fn name(&self, kind: UidKind, uid: u32) -> Option<(&str, i64)> {
        let i = usize::try_from(uid.checked_sub(1)?).ok()?;
        let (name, created) = self.kinds[kind.index()].names.get(i)?;
        Some((name, *created))
    }

    /// Names of a kind, in UID order.
    pub(crate) fn names(&self, kind: UidKind) -> impl Iterator<Item = &str> {
        self.kinds[kind.index()]
            .names
            .iter()
            .map(|(n, _)| n.as_str())
    }

    /// The TSUID of a series: metric UID, then tag key and value UIDs
    /// ordered by tag key UID.
    pub(crate) fn tsuid(&self, metric: &str, tags: &Tags) -> Option<String> {
        let mut pairs = Vec::with_capacity(tags.len());
        for (k, v) in tags {
            pairs.push((self.uid(UidKind::TagK, k)?, self.uid(UidKind::TagV, v)?));
        }
        Some(format_tsuid(self.uid(UidKind::Metric, metric)?, pairs))
    }

    /// Reads a TSUID back into names; `None` if malformed or naming an
    /// unknown UID.
    pub(crate) fn resolve(&self, tsuid: &str) -> Option<SeriesKey> {
        let uids = split_tsuid(tsuid)?;
        let (metric, _) = self.name(UidKind::Metric, uids[0])?;
        let mut tags = Vec::with_capacity(uids.len() / 2);
        for pair in uids[1..].chunks_exact(2) {
            let (k, _) = self.name(UidKind::TagK, pair[0])?;
            let (v, _) = self.name(UidKind::TagV, pair[1])?;
            tags.push((k.to_owned(), v.to_owned()));
        }
        Some(SeriesKey::new(metric, tags))
    }

    /// Assigns `name` if new; its UID either way.
    fn assign(&mut self, kind: UidKind, name: &str, now_secs: i64) -> Result<u32, String> {
        if let Some(uid) = self.uid(kind, name) {
            return Ok(uid);
        }
        let table = &mut self.kinds[kind.index()];
        let uid = u32::try_from(table.names.len() + 1).unwrap_or(u32::MAX);
        if uid > MAX_UID {
            return Err(exhausted(kind));
        }
        table.by_name.insert(name.to_owned(), uid);
        table.names.push((name.to_owned(), now_secs));
        self.pending
            .push(serde_json::json!([kind.name(), name, now_secs]).to_string());
        Ok(uid)
    }

    /// Takes back the UID [`Tables::assign`] has just given a new name of
    /// `kind` (an explicit assignment whose log append failed).
    fn forget_last(&mut self, kind: UidKind) {
        let table = &mut self.kinds[kind.index()];
        if let Some((name, _)) = table.names.pop() {
            table.by_name.remove(&name);
        }
        self.pending.pop();
    }

    /// Assigns the names of series created since the last call.
    fn catch_up(&mut self, view: &Snapshot<'_>, now_secs: i64) {
        let count = view.id_bound();
        self.catch_up_to(view, count, now_secs);
    }

    /// Assigns the names of series below id `upto`.
    fn catch_up_to(&mut self, view: &Snapshot<'_>, upto: u32, now_secs: i64) {
        while self.synced < upto {
            if let Some(key) = view.key(SeriesId(self.synced)) {
                // Exhaustion leaves the series without a TSUID; it is
                // reported where a client asks for a UID.
                let _ = self.assign(UidKind::Metric, &key.metric, now_secs);
                for (k, v) in &key.tags {
                    let _ = self.assign(UidKind::TagK, k, now_secs);
                    let _ = self.assign(UidKind::TagV, v, now_secs);
                }
            }
            self.synced += 1;
        }
    }
}

/// Splits a TSUID into UIDs: the metric, then key/value pairs.
pub(crate) fn split_tsuid(tsuid: &str) -> Option<Vec<u32>> {
    let digits = 2 * WIDTH_BYTES as usize;
    if tsuid.is_empty()
        || !tsuid.len().is_multiple_of(digits)
        || (tsuid.len() / digits).is_multiple_of(2)
    {
        return None;
    }
    if !tsuid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..tsuid.len() / digits)
        .map(|i| u32::from_str_radix(tsuid.get(i * digits..(i + 1) * digits)?, 16).ok())
        .collect()
}

/// The UID tables of the default database and their log.
#[derive(Debug)]
pub(crate) struct Uids {
    path: PathBuf,
    state: Mutex<(Tables, Option<Log>)>,
}

/// The open log and its length up to the last complete line: a failed
/// append is cut back to it, so no partial line hides later ones.
#[derive(Debug)]
struct Log {
    file: VfsFile,
    len: u64,
    /// A failed append is not cut back yet: nothing is appended until it is.
    uncut: bool,
}

impl Uids {
    /// Loads the log in `dir`; a torn last line (a crash mid-append) is cut
    /// off, since the walk over series recovers such names anyway.
    pub(crate) fn open(vfs: &Vfs, dir: &Path) -> io::Result<Self> {
        let path = dir.join("opentsdb-uids.log");
        let mut tables = Tables::default();
        let text = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut good = 0;
        for line in text.split_inclusive(|b| *b == b'\n') {
            let parsed: Option<(UidKind, String, i64)> = line
                .strip_suffix(b"\n")
                .and_then(|l| serde_json::from_slice::<(String, String, i64)>(l).ok())
                .and_then(|(k, n, t)| Some((UidKind::parse(&k)?, n, t)));
            let Some((kind, name, created)) = parsed else {
                tracing::warn!(path = %path.display(), offset = good, "UID log: damaged tail cut off");
                break;
            };
            let _ = tables.assign(kind, &name, created);
            good += line.len();
        }
        tables.pending.clear();
        let file = vfs.open_append(&path)?;
        let len = u64::try_from(good).unwrap_or(0);
        if good < text.len() {
            file.set_len(len)?;
        }
        Ok(Self {
            path,
            state: Mutex::new((
                tables,
                Some(Log {
                    file,
                    len,
                    uncut: false,
                }),
            )),
        })
    }

    /// Assigns UIDs to every series `view` has that the tables have not
    /// seen, letting writers in between batches (after a restart that is
    /// every series).
    pub(crate) fn catch_up(&self, view: &mut Snapshot<'_>) {
        const BATCH: u32 = 4096;
        loop {
            let count = view.id_bound();
            let mut state = self.state.lock();
            if state.0.synced >= count {
                self.append(&mut state, false);
                return;
            }
            let upto = state.0.synced.saturating_add(BATCH).min(count);
            state.0.catch_up_to(view, upto, now_secs());
            self.append(&mut state, false);
            drop(state);
            view.yield_to_writers();
        }
    }

    /// Runs `f` on tables caught up with every series of `view`.
    pub(crate) fn with<R>(&self, view: &Snapshot<'_>, f: impl FnOnce(&Tables) -> R) -> R {
        let mut state = self.state.lock();
        state.0.catch_up(view, now_secs());
        self.append(&mut state, false);
        f(&state.0)
    }

    /// Assigns `name` explicitly (`/api/uid/assign`), durably: an existing
    /// name is an error carrying its UID.
    ///
    /// Call [`Uids::with`] first: names of series created since are
    /// assigned after this one.
    pub(crate) fn assign(&self, kind: UidKind, name: &str) -> Result<u32, AssignError> {
        let mut state = self.state.lock();
        if let Some(uid) = state.0.uid(kind, name) {
            self.append(&mut state, false);
            return Err(AssignError::Exists(uid));
        }
        let uid = state
            .0
            .assign(kind, name, now_secs())
            .map_err(AssignError::Exhausted)?;
        if !self.append(&mut state, true) {
            // Refused, so not kept: a retry must not find it "existing".
            state.0.forget_last(kind);
            return Err(AssignError::Io);
        }
        Ok(uid)
    }

    /// Writes pending lines; `sync` makes them durable. A failed write is
    /// logged and retried with the next call (the lines stay pending).
    fn append(&self, state: &mut (Tables, Option<Log>), sync: bool) -> bool {
        let (tables, log) = state;
        if tables.pending.is_empty() {
            return true;
        }
        let Some(log) = log else { return false };
        if log.uncut && !self.cut_back(log) {
            return false;
        }
        let mut text = tables.pending.join("\n");
        text.push('\n');
        let result = log
            .file
            .write_all(text.as_bytes())
            .and_then(|()| if sync { log.file.sync_data() } else { Ok(()) });
        match result {
            Ok(()) => {
                log.len += text.len() as u64;
                tables.pending.clear();
                true
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "UID log append failed");
                log.uncut = true;
                self.cut_back(log);
                false
            }
        }
    }

    /// Cuts a failed append back to the last complete line.
    fn cut_back(&self, log: &mut Log) -> bool {
        match log.file.set_len(log.len) {
            Ok(()) => {
                log.uncut = false;
                true
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot cut a failed UID log append back yet");
                false
            }
        }
    }
}

/// Why `/api/uid/assign` refused a name.
#[derive(Debug)]
pub(crate) enum AssignError {
    Exists(u32),
    Exhausted(String),
    Io,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsuids_follow_first_seen_order() -> Result<(), String> {
        let mut t = Tables::default();
        for (kind, name) in [
            (UidKind::Metric, "sys.cpu.user"),
            (UidKind::TagK, "dc"),
            (UidKind::TagV, "lga"),
            (UidKind::TagK, "host"),
            (UidKind::TagV, "web01"),
        ] {
            t.assign(kind, name, 0)?;
        }
        let tags = vec![("dc".into(), "lga".into()), ("host".into(), "web01".into())];
        let tsuid = t.tsuid("sys.cpu.user", &tags).ok_or("no tsuid")?;
        assert_eq!(tsuid, "000001000001000001000002000002");
        assert_eq!(
            t.resolve(&tsuid),
            Some(SeriesKey::from_names("sys.cpu.user", tags))
        );
        assert_eq!(split_tsuid("00000100000"), None);
        assert_eq!(split_tsuid("000001000001"), None);
        assert_eq!(split_tsuid("00000G"), None);
        Ok(())
    }

    /// Issue 14, point 6 (metadata): a failed append to the UID log is
    /// refused and cut back, so the log still reads to its end and the
    /// names written once the disk behaves are all there after a restart.
    #[test]
    fn a_failed_uid_append_is_cut_back() -> Result<(), String> {
        use sundial_storage::vfs::{FaultKind, Faults, Op, Rule};
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let faults = Faults::new();
        let vfs = Vfs::with_faults(faults.clone());
        let uids = Uids::open(&vfs, dir.path()).map_err(|e| e.to_string())?;
        let ok = |r: Result<u32, AssignError>| r.map_err(|e| format!("{e:?}"));
        let first = ok(uids.assign(UidKind::Metric, "before.fault"))?;
        let log = dir.path().join("opentsdb-uids.log");
        let good_len = std::fs::metadata(&log).map_err(|e| e.to_string())?.len();
        for kind in [FaultKind::ShortWrite { keep: 3 }, FaultKind::NoSpace] {
            faults.add(Rule::new(Op::Write, "opentsdb-uids", 0, 1, kind));
            assert!(matches!(
                uids.assign(UidKind::TagK, &format!("during.{kind:?}")),
                Err(AssignError::Io)
            ));
            // Nothing of the failed append stays in the file.
            let len = std::fs::metadata(&log).map_err(|e| e.to_string())?.len();
            assert_eq!(len, good_len, "{kind:?}");
        }
        // A retry is a new assignment, not "exists": the first tag key UID.
        let retried = ok(uids.assign(UidKind::TagK, "during.NoSpace"))?;
        assert_eq!(retried, 1);
        let after = ok(uids.assign(UidKind::TagV, "after.fault"))?;
        drop(uids);
        let reopened = Uids::open(&Vfs::default(), dir.path()).map_err(|e| e.to_string())?;
        let state = reopened.state.lock();
        assert_eq!(state.0.uid(UidKind::Metric, "before.fault"), Some(first));
        assert_eq!(state.0.uid(UidKind::TagV, "after.fault"), Some(after));
        // A refused name was not kept, in memory or on disk.
        let refused = "during.ShortWrite { keep: 3 }";
        assert_eq!(state.0.uid(UidKind::TagK, refused), None);
        assert_eq!(state.0.uid(UidKind::TagK, "during.NoSpace"), Some(retried));
        Ok(())
    }
}
