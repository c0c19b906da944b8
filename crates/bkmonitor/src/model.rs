//! The metadata of BlueKing custom time series (spec 6): data sources,
//! groups with their metric and dimension registries, and the durable
//! snapshot they live in.

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use sundial_storage::vfs::Vfs;

/// A data source (spec 6.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DataSource {
    pub(crate) bk_data_id: i64,
    pub(crate) data_name: String,
    pub(crate) etl_config: String,
    pub(crate) source_label: String,
    pub(crate) type_label: String,
    pub(crate) bk_biz_id: i64,
    pub(crate) token: String,
    pub(crate) data_description: String,
    pub(crate) option: Map<String, Value>,
    pub(crate) is_platform_data_id: bool,
    pub(crate) space_uid: String,
    pub(crate) space_type_id: String,
    pub(crate) transfer_cluster_id: String,
    /// Registered implicitly by a group create.
    pub(crate) is_auto: bool,
    pub(crate) creator: String,
    pub(crate) create_time_ms: i64,
}

/// A metric of a group (spec 6.4).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MetricRecord {
    pub(crate) field_name: String,
    /// In attach order; never holds `target` (appended on output).
    pub(crate) tags: Vec<String>,
    pub(crate) declared: bool,
    pub(crate) last_seen_ms: Option<i64>,
    pub(crate) description: String,
    pub(crate) unit: String,
    pub(crate) is_disabled: bool,
}

/// Group-wide metadata of a dimension.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Dimension {
    pub(crate) description: String,
    pub(crate) unit: String,
}

/// A custom time series group (spec 6.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Group {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) bk_data_id: i64,
    pub(crate) bk_biz_id: i64,
    pub(crate) table_id: String,
    pub(crate) label: String,
    pub(crate) token: String,
    pub(crate) is_enable: bool,
    pub(crate) is_delete: bool,
    pub(crate) creator: String,
    pub(crate) last_modify_user: String,
    pub(crate) create_time_ms: i64,
    pub(crate) last_modify_time_ms: i64,
    pub(crate) data_label: String,
    pub(crate) is_split_measurement: bool,
    pub(crate) metrics: Vec<MetricRecord>,
    pub(crate) dimensions: BTreeMap<String, Dimension>,
}

impl Group {
    /// `table_id` up to its first `.`: the prefix of physical metric names.
    pub(crate) fn db_prefix(&self) -> &str {
        self.table_id
            .split_once('.')
            .map_or(self.table_id.as_str(), |(p, _)| p)
    }

    pub(crate) fn active(&self) -> bool {
        self.is_enable && !self.is_delete
    }

    /// Adds a metric if missing and appends missing tags; returns whether
    /// anything changed.
    pub(crate) fn merge_metric(&mut self, field: &str, tags: &[String], declared: bool) -> bool {
        let (record, mut changed) = match self.metrics.iter().position(|m| m.field_name == field) {
            Some(i) => (&mut self.metrics[i], false),
            None => {
                self.metrics.push(MetricRecord {
                    field_name: field.to_owned(),
                    tags: Vec::new(),
                    declared,
                    last_seen_ms: None,
                    description: String::new(),
                    unit: String::new(),
                    is_disabled: false,
                });
                let last = self.metrics.len() - 1;
                (&mut self.metrics[last], true)
            }
        };
        if declared && !record.declared {
            record.declared = true;
            changed = true;
        }
        for t in tags {
            if t != "target" && !record.tags.contains(t) {
                record.tags.push(t.clone());
                changed = true;
            }
        }
        changed
    }
}

/// Everything the metadata APIs store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) next_group_id: i64,
    pub(crate) groups: BTreeMap<i64, Group>,
    pub(crate) sources: BTreeMap<i64, DataSource>,
}

impl State {
    /// The group bound to a data id, deleted ones included (a binding is
    /// forever).
    pub(crate) fn group_of_data_id(&self, data_id: i64) -> Option<&Group> {
        self.groups.values().find(|g| g.bk_data_id == data_id)
    }
}

/// Rendering settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    pub(crate) now_ms: i64,
    pub(crate) expire_ms: i64,
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (spec 3.7).
pub(crate) fn format_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// The metric info objects of a group's visible metrics (spec 7.2).
pub(crate) fn metric_infos(g: &Group, view: View) -> Vec<Value> {
    let prefix = g.db_prefix();
    visible(g, view)
        .map(|m| {
            let tags: Vec<Value> = m
                .tags
                .iter()
                .map(String::as_str)
                .chain(["target"])
                .map(|t| {
                    let d = g.dimensions.get(t).cloned().unwrap_or_default();
                    json!({"field_name": t, "description": d.description, "unit": d.unit,
                        "type": "string"})
                })
                .collect();
            json!({"field_name": m.field_name, "metric_display_name": "",
                "description": m.description, "unit": m.unit, "type": "double",
                "table_id": format!("{prefix}.{}", m.field_name), "is_disabled": m.is_disabled,
                "tag_list": tags})
        })
        .collect()
}

/// Declared metrics, and discovered ones seen within the expiry window.
pub(crate) fn visible(g: &Group, view: View) -> impl Iterator<Item = &MetricRecord> {
    g.metrics.iter().filter(move |m| {
        m.declared
            || m.last_seen_ms
                .is_some_and(|t| view.now_ms.saturating_sub(t) <= view.expire_ms)
    })
}

/// The group object (spec 7.1).
pub(crate) fn group_json(g: &Group, view: View) -> Value {
    json!({
        "time_series_group_id": g.id,
        "bk_tenant_id": "system",
        "time_series_group_name": g.name,
        "bk_data_id": g.bk_data_id,
        "bk_biz_id": g.bk_biz_id,
        "table_id": g.table_id,
        "label": g.label,
        "token": g.token,
        "is_enable": g.is_enable,
        "creator": g.creator,
        "create_time": format_time(g.create_time_ms),
        "last_modify_user": g.last_modify_user,
        "last_modify_time": format_time(g.last_modify_time_ms),
        "data_label": g.data_label,
        "metric_group_dimensions": [],
        "metric_info_list": metric_infos(g, view),
    })
}

/// The state and the file it is kept in. Mutations run one at a time on a
/// copy that replaces the state only once it is on disk.
#[derive(Debug)]
pub(crate) struct Registry {
    path: PathBuf,
    state: RwLock<State>,
    writer: Mutex<()>,
    /// db prefix → group id, rebuilt with every mutation.
    prefixes: RwLock<HashMap<String, i64>>,
    /// When `last_seen` updates were last written.
    seen_persisted_ms: Mutex<i64>,
}

const FILE: &str = "bkmonitor-metadata.json";

impl Registry {
    pub(crate) fn open(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join(FILE);
        let state: State = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                next_group_id: 1,
                ..State::default()
            },
            Err(e) => return Err(e),
        };
        let prefixes = index(&state);
        Ok(Self {
            path,
            state: RwLock::new(state),
            writer: Mutex::new(()),
            prefixes: RwLock::new(prefixes),
            seen_persisted_ms: Mutex::new(0),
        })
    }

    pub(crate) fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.read())
    }

    /// The group whose db prefix this is.
    pub(crate) fn group_by_prefix(&self, prefix: &str) -> Option<i64> {
        self.prefixes.read().get(prefix).copied()
    }

    pub(crate) fn has_groups(&self) -> bool {
        !self.prefixes.read().is_empty()
    }

    /// Runs `f` on a copy of the state; a success is written to disk and
    /// then becomes the state. `E` is the caller's error.
    pub(crate) fn mutate<R, E>(
        &self,
        f: impl FnOnce(&mut State) -> Result<R, E>,
        io_error: impl FnOnce(std::io::Error) -> E,
    ) -> Result<R, E> {
        let _one = self.writer.lock();
        let mut copy = self.state.read().clone();
        let out = f(&mut copy)?;
        self.persist(&copy).map_err(io_error)?;
        *self.prefixes.write() = index(&copy);
        *self.state.write() = copy;
        Ok(out)
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
        if novel {
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
        let mut last = self.seen_persisted_ms.lock();
        if now_ms.saturating_sub(*last) >= 60_000 {
            *last = now_ms;
            let copy = self.state.read().clone();
            self.persist(&copy)?;
        }
        Ok(())
    }

    fn persist(&self, state: &State) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(state)?;
        Vfs::default().write_atomic(&self.path, &bytes)
    }
}

fn index(state: &State) -> HashMap<String, i64> {
    state
        .groups
        .values()
        .map(|g| (g.db_prefix().to_owned(), g.id))
        .collect()
}
