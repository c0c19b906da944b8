//! Where the BlueKing metadata lives: a file on a single node, a document
//! every node shares on a cluster node (PostgreSQL, through
//! `sundial_api::shared`). Mutations run one at a time per node on a copy
//! that replaces the state only once it is stored; on a shared document a
//! mutation that lost the race to another node runs again on that node's
//! state, so no change is lost.

use crate::model::State;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_api::shared::SharedDocument;
use sundial_storage::vfs::Vfs;
use tracing::warn;

const FILE: &str = "bkmonitor-metadata.json";

/// How far behind the shared document the write path's lookups may be
/// (the metadata API's reads are never behind).
const SHARED_STALENESS: Duration = Duration::from_secs(1);

/// Times a mutation is tried against other nodes' changes.
const ATTEMPTS: usize = 16;

#[derive(Debug)]
enum Backend {
    File(PathBuf),
    Shared {
        doc: Arc<dyn SharedDocument>,
        /// The stored version the state in memory is.
        version: Mutex<i64>,
        /// When the stored version was last compared with it.
        checked: Mutex<Instant>,
    },
}

/// The state and where it is kept.
#[derive(Debug)]
pub(crate) struct Registry {
    backend: Backend,
    state: RwLock<State>,
    writer: Mutex<()>,
    /// db prefix → group id, rebuilt with every change of the state.
    prefixes: RwLock<HashMap<String, i64>>,
    /// When `last_seen` updates were last written.
    seen_persisted_ms: Mutex<i64>,
}

impl Registry {
    /// The metadata in `dir`'s file (a single node).
    pub(crate) fn open(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join(FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => parse(&bytes, &path.display().to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => empty(),
            Err(e) => return Err(e),
        };
        Ok(Self::with(Backend::File(path), state))
    }

    /// The metadata in `doc`, which every node of a cluster shares.
    pub(crate) fn open_shared(doc: Arc<dyn SharedDocument>) -> std::io::Result<Self> {
        let (version, state) = load(&*doc)?;
        let backend = Backend::Shared {
            doc,
            version: Mutex::new(version),
            checked: Mutex::new(Instant::now()),
        };
        Ok(Self::with(backend, state))
    }

    fn with(backend: Backend, state: State) -> Self {
        Self {
            backend,
            prefixes: RwLock::new(index(&state)),
            state: RwLock::new(state),
            writer: Mutex::new(()),
            seen_persisted_ms: Mutex::new(0),
        }
    }

    /// `f` over the state; a shared one at most a second behind (what the
    /// write path's group lookups use).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        self.refresh(SHARED_STALENESS);
        f(&self.state.read())
    }

    /// `f` over the state as stored now: the metadata API's reads, which
    /// see a change made through any node.
    pub(crate) fn read_fresh<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        self.refresh(Duration::ZERO);
        f(&self.state.read())
    }

    /// The group whose db prefix this is.
    pub(crate) fn group_by_prefix(&self, prefix: &str) -> Option<i64> {
        self.refresh(SHARED_STALENESS);
        self.prefixes.read().get(prefix).copied()
    }

    pub(crate) fn has_groups(&self) -> bool {
        self.refresh(SHARED_STALENESS);
        !self.prefixes.read().is_empty()
    }

    /// Runs `f` on a copy of the state; a success is stored and then
    /// becomes the state. `E` is the caller's error. On a shared document
    /// `f` runs again on the newer state when another node stored first.
    pub(crate) fn mutate<R, E>(
        &self,
        mut f: impl FnMut(&mut State) -> Result<R, E>,
        io_error: impl Fn(std::io::Error) -> E,
    ) -> Result<R, E> {
        let _one = self.writer.lock();
        match &self.backend {
            Backend::File(path) => {
                let mut copy = self.state.read().clone();
                let out = f(&mut copy)?;
                persist(path, &copy).map_err(io_error)?;
                *self.prefixes.write() = index(&copy);
                *self.state.write() = copy;
                Ok(out)
            }
            Backend::Shared { doc, version, .. } => {
                for _ in 0..ATTEMPTS {
                    let expected = *version.lock();
                    let mut copy = self.state.read().clone();
                    let out = f(&mut copy)?;
                    let body = serde_json::to_vec(&copy).map_err(|e| io_error(e.into()))?;
                    if blocking(|| doc.store(expected, &body)).map_err(&io_error)? {
                        self.install(expected + 1, copy);
                        return Ok(out);
                    }
                    // Another node changed it first: this change again, on
                    // top of theirs.
                    let (stored, state) = load(&**doc).map_err(&io_error)?;
                    self.install(stored, state);
                }
                Err(io_error(std::io::Error::other(
                    "the shared metadata kept changing under this change; retry",
                )))
            }
        }
    }

    /// Records data seen for a group's metrics (spec 9.6): new metrics and
    /// tags are made durable before returning; `last_seen` alone is written
    /// at most once a minute.
    pub(crate) fn discover(
        &self,
        group_id: i64,
        seen: &[(String, Vec<String>)],
        now_ms: i64,
    ) -> std::io::Result<()> {
        let novel = self.read(|s| {
            // A group deleted meanwhile keeps its registry empty.
            let Some(g) = s.groups.get(&group_id).filter(|g| !g.is_delete) else {
                return false;
            };
            seen.iter().any(|(field, tags)| {
                g.metrics
                    .iter()
                    .find(|m| m.field_name == *field)
                    .is_none_or(|m| tags.iter().any(|t| t != "target" && !m.tags.contains(t)))
            })
        });
        let touch = |s: &mut State| {
            if let Some(g) = s.groups.get_mut(&group_id).filter(|g| !g.is_delete) {
                for (field, tags) in seen {
                    g.merge_metric(field, tags, false);
                    if let Some(m) = g.metrics.iter_mut().find(|m| m.field_name == *field) {
                        m.last_seen_ms = Some(now_ms);
                    }
                }
            }
        };
        let due = {
            let mut last = self.seen_persisted_ms.lock();
            let due = novel || now_ms.saturating_sub(*last) >= 60_000;
            if due {
                *last = now_ms;
            }
            due
        };
        if due {
            return self.mutate(
                |s| {
                    touch(s);
                    Ok(())
                },
                |e| e,
            );
        }
        let _one = self.writer.lock();
        touch(&mut self.state.write());
        Ok(())
    }

    /// Takes the stored state when another node changed it, at most
    /// `max_age` after the last look; a failed look keeps the state held.
    fn refresh(&self, max_age: Duration) {
        let Backend::Shared {
            doc,
            version,
            checked,
        } = &self.backend
        else {
            return;
        };
        {
            let mut at = checked.lock();
            if !max_age.is_zero() && at.elapsed() < max_age {
                return;
            }
            *at = Instant::now();
        }
        let held = *version.lock();
        let newer = blocking(|| match doc.version()? {
            stored if stored == held => Ok(None),
            _ => load(&**doc).map(Some),
        });
        match newer {
            Ok(Some((stored, state))) => self.install(stored, state),
            Ok(None) => {}
            Err(e) => {
                warn!(error = %e, "cannot read the shared BlueKing metadata; using what this node holds")
            }
        }
    }

    /// Makes `state`, stored as `stored`, the state, unless a newer one is
    /// held already.
    fn install(&self, stored: i64, state: State) {
        let Backend::Shared { version, .. } = &self.backend else {
            return;
        };
        let mut held = version.lock();
        if stored <= *held {
            return;
        }
        *self.prefixes.write() = index(&state);
        *self.state.write() = state;
        *held = stored;
    }
}

/// The stored version and state of `doc` (an empty state before the
/// first store).
fn load(doc: &dyn SharedDocument) -> std::io::Result<(i64, State)> {
    match blocking(|| doc.load())? {
        Some((version, body)) => Ok((version, parse(&body, "the shared BlueKing metadata")?)),
        None => Ok((0, empty())),
    }
}

fn parse(bytes: &[u8], source: &str) -> std::io::Result<State> {
    serde_json::from_slice(bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{source}: {e}")))
}

fn empty() -> State {
    State {
        next_group_id: 1,
        ..State::default()
    }
}

fn persist(path: &Path, state: &State) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(state)?;
    Vfs::default().write_atomic(path, &bytes)
}

/// Runs a call to the shared store where blocking is allowed: an async
/// worker of a multi-threaded runtime hands its other tasks off first.
fn blocking<T>(f: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn index(state: &State) -> HashMap<String, i64> {
    state
        .groups
        .values()
        .map(|g| (g.db_prefix().to_owned(), g.id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DataSource;

    fn source(id: i64) -> DataSource {
        DataSource {
            bk_data_id: id,
            data_name: format!("source {id}"),
            etl_config: String::new(),
            source_label: String::new(),
            type_label: String::new(),
            bk_biz_id: 1,
            token: String::new(),
            data_description: String::new(),
            option: serde_json::Map::new(),
            is_platform_data_id: false,
            space_uid: String::new(),
            space_type_id: String::new(),
            transfer_cluster_id: String::new(),
            is_auto: false,
            creator: String::new(),
            create_time_ms: 0,
        }
    }

    fn add(registry: &Registry, id: i64) -> std::io::Result<()> {
        registry.mutate(
            |s| {
                s.sources.insert(id, source(id));
                Ok(())
            },
            |e| e,
        )
    }

    fn ids(registry: &Registry) -> Vec<i64> {
        registry.read_fresh(|s| s.sources.keys().copied().collect())
    }

    #[test]
    fn nodes_sharing_a_document_see_and_keep_each_others_changes() -> std::io::Result<()> {
        let doc: Arc<dyn SharedDocument> = Arc::new(sundial_api::shared::MemoryDocument::default());
        let a = Registry::open_shared(doc.clone())?;
        let b = Registry::open_shared(doc.clone())?;
        add(&a, 10)?;
        assert_eq!(ids(&b), [10]);
        // Both change it from the state they hold: b's store loses the
        // race to a's and is made again on top of it.
        add(&a, 20)?;
        add(&b, 30)?;
        assert_eq!(ids(&a), [10, 20, 30]);
        assert_eq!(ids(&b), [10, 20, 30]);
        assert_eq!(doc.version()?, 3);
        // A third node starts from the stored state.
        assert_eq!(ids(&Registry::open_shared(doc)?), [10, 20, 30]);
        Ok(())
    }
}
