//! The fixed label catalogue (spec 6.6).

use serde_json::{Value, json};

/// One label: id, display name, type, level, parent, index, admin only.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Label {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) level: Option<i64>,
    pub(crate) parent: Option<&'static str>,
    pub(crate) index: Option<i64>,
    pub(crate) admin_only: bool,
}

pub(crate) const RESULT_TABLE: &str = "result_table_label";
pub(crate) const SOURCE: &str = "source_label";
pub(crate) const TYPE: &str = "type_label";

const fn rt(
    id: &'static str,
    name: &'static str,
    level: i64,
    parent: Option<&'static str>,
    index: i64,
    admin_only: bool,
) -> Label {
    Label {
        id,
        name,
        kind: RESULT_TABLE,
        level: Some(level),
        parent,
        index: Some(index),
        admin_only,
    }
}

const fn plain(id: &'static str, name: &'static str, kind: &'static str) -> Label {
    Label {
        id,
        name,
        kind,
        level: None,
        parent: None,
        index: None,
        admin_only: false,
    }
}

pub(crate) const LABELS: &[Label] = &[
    rt("applications", "用户体验", 1, None, 1, false),
    rt("services", "服务", 1, None, 2, false),
    rt("hosts", "主机&云平台", 1, None, 3, false),
    rt("data_center", "数据中心", 1, None, 4, false),
    rt("others", "其他", 1, None, 5, false),
    rt("uptimecheck", "服务拨测", 2, Some("applications"), 1, true),
    rt(
        "application_check",
        "业务应用",
        2,
        Some("applications"),
        2,
        false,
    ),
    rt("apm", "APM", 2, Some("applications"), 3, false),
    rt("application", "应用", 2, Some("applications"), 4, false),
    rt("service_module", "服务模块", 2, Some("services"), 1, false),
    rt("component", "组件", 2, Some("services"), 2, false),
    rt("service_process", "进程", 2, Some("services"), 3, false),
    rt("host_process", "进程", 2, Some("hosts"), 1, false),
    rt("os", "操作系统", 2, Some("hosts"), 2, false),
    rt("host_device", "主机设备", 2, Some("hosts"), 3, false),
    rt("kubernetes", "kubernetes", 2, Some("hosts"), 5, false),
    rt(
        "hardware_device",
        "硬件设备",
        2,
        Some("data_center"),
        1,
        false,
    ),
    rt("other_rt", "其他", 2, Some("others"), 2, false),
    plain("bk_data", "蓝鲸计算平台", SOURCE),
    plain("bk_monitor", "蓝鲸监控", SOURCE),
    plain("bk_monitor_collector", "蓝鲸监控采集器", SOURCE),
    plain("custom", "用户自定义", SOURCE),
    plain("event", "内置事件类型", TYPE),
    plain("log", "日志类型", TYPE),
    plain("time_series", "时序数据", TYPE),
];

/// Whether `id` is a label of type `kind`.
pub(crate) fn exists(kind: &str, id: &str) -> bool {
    LABELS.iter().any(|l| l.kind == kind && l.id == id)
}

impl Label {
    pub(crate) fn json(&self) -> Value {
        json!({"label_id": self.id, "label_name": self.name, "label_type": self.kind,
            "level": self.level, "parent_label": self.parent, "index": self.index})
    }
}
