//! The metadata of BlueKing custom time series (spec 6): data sources,
//! groups with their metric and dimension registries (kept durable by
//! `registry.rs`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

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
