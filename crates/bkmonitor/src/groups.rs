//! The time series group APIs (spec 8.1–8.6).

use super::Api;
use super::esb::{Biz, BkError};
use super::labels::{self, RESULT_TABLE};
use super::model::{DataSource, Dimension, Group, State, View, group_json, metric_infos};
use super::validate::{Detail, FieldError, Params};
use serde_json::{Map, Value, json};
use sundial_model::now_ms;

const CREATE: &str = "metadata.resources.resources.CreateTimeSeriesGroupResource";
const GET: &str = "metadata.resources.resources.GetTimeSeriesGroupResource";
const MODIFY: &str = "metadata.resources.resources.ModifyTimeSeriesGroupResource";
const DELETE: &str = "metadata.resources.resources.DeleteTimeSeriesGroupResource";
const QUERY: &str = "metadata.resources.resources.QueryTimeSeriesGroupResource";
const METRICS: &str = "metadata.resources.resources.GetTimeSeriesMetricsResource";

pub(super) const MAX_ENTRIES: usize = 10_000;
const I32_MIN: i64 = i32::MIN as i64;
const I32_MAX: i64 = i32::MAX as i64;

/// Validation failures of one API name its resource.
pub(super) fn param(resource: &'static str) -> impl Fn(FieldError) -> BkError {
    move |error| BkError::Param { resource, error }
}

/// A dimension as declared: name, description, unit.
type DeclaredTag = (String, String, String);

/// One `metric_info_list` entry (spec 7.4).
#[derive(Debug)]
struct Declared {
    field_name: String,
    tags: Vec<DeclaredTag>,
    description: String,
    unit: String,
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= 255 && !s.chars().any(char::is_control)
}

fn declared_tags(v: &Value, out: &mut Vec<DeclaredTag>) -> Option<()> {
    let items = match v {
        Value::Null => return Some(()),
        Value::String(_) => std::slice::from_ref(v),
        Value::Array(a) => a.as_slice(),
        _ => return None,
    };
    for item in items {
        let (name, description, unit) = match item {
            Value::String(s) => (s.trim().to_owned(), String::new(), String::new()),
            Value::Object(o) => {
                let text = |k: &str| match o.get(k) {
                    None | Some(Value::Null) => Some(String::new()),
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) => None,
                };
                let Some(Value::String(name)) = o.get("field_name") else {
                    return None;
                };
                (name.trim().to_owned(), text("description")?, text("unit")?)
            }
            _ => return None,
        };
        if !name_ok(&name) {
            return None;
        }
        if !out.iter().any(|(n, _, _)| *n == name) {
            out.push((name, description, unit));
        }
    }
    Some(())
}

/// Reads `metric_info_list`; `None` is BAD_METRIC_LIST.
fn declared(list: &[Value]) -> Option<Vec<Declared>> {
    let mut out: Vec<Declared> = Vec::new();
    for entry in list {
        let Value::Object(o) = entry else { return None };
        let Some(Value::String(name)) = o.get("field_name") else {
            return None;
        };
        let field_name = name.trim().to_owned();
        if !name_ok(&field_name) {
            return None;
        }
        let mut tags = Vec::new();
        for key in ["tag_list", "tag"] {
            if let Some(v) = o.get(key) {
                declared_tags(v, &mut tags)?;
            }
        }
        let text = |k: &str| match o.get(k) {
            None | Some(Value::Null) => Some(String::new()),
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => None,
        };
        let (description, unit) = (text("description")?, text("unit")?);
        match out.iter_mut().find(|d| d.field_name == field_name) {
            Some(d) => {
                for t in tags {
                    if !d.tags.iter().any(|(n, _, _)| *n == t.0) {
                        d.tags.push(t);
                    }
                }
            }
            None => out.push(Declared {
                field_name,
                tags,
                description,
                unit,
            }),
        }
    }
    Some(out)
}

/// Merges declared metrics into a group (spec 7.4).
fn declare(g: &mut Group, list: &[Declared]) {
    for d in list {
        let names: Vec<String> = d.tags.iter().map(|(n, _, _)| n.clone()).collect();
        g.merge_metric(&d.field_name, &names, true);
        if let Some(m) = g.metrics.iter_mut().find(|m| m.field_name == d.field_name) {
            if !d.description.is_empty() {
                m.description.clone_from(&d.description);
            }
            if !d.unit.is_empty() {
                m.unit.clone_from(&d.unit);
            }
        }
        for (name, description, unit) in &d.tags {
            let dim = g.dimensions.entry(name.clone()).or_default();
            if dim.description.is_empty() {
                dim.description.clone_from(description);
            }
            if dim.unit.is_empty() {
                dim.unit.clone_from(unit);
            }
        }
    }
}

/// `^[a-z0-9_-]+\.[a-z0-9_]+$`
fn table_id_ok(t: &str) -> bool {
    let Some((db, table)) = t.split_once('.') else {
        return false;
    };
    !db.is_empty()
        && !table.is_empty()
        && db
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && table
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

pub(super) fn create(api: &Api, p: &Params<'_>) -> Result<Value, BkError> {
    let v = param(CREATE);
    let data_id = p.int("bk_data_id", 1, I32_MAX).map_err(&v)?;
    let biz = p.int("bk_biz_id", I32_MIN, I32_MAX).map_err(&v)?;
    let name = p.string("time_series_group_name", 255, false).map_err(&v)?;
    let label = p.string("label", 128, false).map_err(&v)?;
    let operator = p.string("operator", 255, false).map_err(&v)?;
    let metrics = p.opt_list("metric_info_list", MAX_ENTRIES).map_err(&v)?;
    let table_id = table_id_param(p).map_err(&v)?;
    let split = p.opt_bool("is_split_measurement").map_err(&v)?;
    p.opt_object("default_storage_config").map_err(&v)?;
    p.opt_object("additional_options").map_err(&v)?;
    let data_label = p.opt_string("data_label", 128, true).map_err(&v)?;
    let strict = api.config.strict_data_id;
    let view = api.view();
    api.registry.mutate(
        |s: &mut State| {
            if !labels::exists(RESULT_TABLE, &label) {
                return Err(BkError::Biz(Biz::LabelNotFound(label.clone())));
            }
            if s.group_of_data_id(data_id).is_some() {
                return Err(BkError::Biz(Biz::DataIdBound(data_id)));
            }
            if s.groups
                .values()
                .any(|g| !g.is_delete && g.bk_biz_id == biz && g.name == name)
            {
                return Err(BkError::Biz(Biz::NameExists));
            }
            let declared = match metrics {
                Some(list) => declared(list).ok_or(BkError::Biz(Biz::BadMetricList))?,
                None => Vec::new(),
            };
            let now = now_ms();
            if let std::collections::btree_map::Entry::Vacant(slot) = s.sources.entry(data_id) {
                if strict {
                    return Err(BkError::Biz(Biz::DataIdNotFound));
                }
                slot.insert(implicit_source(data_id, biz, &operator, now));
            }
            let table_id = new_table_id(s, table_id.as_deref(), biz, data_id)?;
            let id = s.next_group_id.max(1);
            s.next_group_id = id + 1;
            let mut group = Group {
                id,
                name: name.clone(),
                bk_data_id: data_id,
                bk_biz_id: biz,
                table_id,
                label: label.clone(),
                token: super::token(),
                is_enable: true,
                is_delete: false,
                creator: operator.clone(),
                last_modify_user: operator.clone(),
                create_time_ms: now,
                last_modify_time_ms: now,
                data_label: data_label.clone().unwrap_or_default(),
                is_split_measurement: split.unwrap_or(false),
                metrics: Vec::new(),
                dimensions: Default::default(),
            };
            declare(&mut group, &declared);
            let out = group_json(&group, view);
            s.groups.insert(id, group);
            Ok(out)
        },
        BkError::not_stored,
    )
}

/// The optional `table_id` parameter, lower-cased and checked.
fn table_id_param(p: &Params<'_>) -> Result<Option<String>, FieldError> {
    let Some(t) = p.opt_string("table_id", 255, false)? else {
        return Ok(None);
    };
    let t = t.to_lowercase();
    if table_id_ok(&t) {
        Ok(Some(t))
    } else {
        Err(FieldError {
            param: "table_id",
            detail: Detail::Pattern,
        })
    }
}

/// The table id of a new group: the one asked for, or the default for
/// its business and data id; refused when its prefix is taken, and a
/// platform group (business 0) may not take a business-numbered one.
fn new_table_id(s: &State, asked: Option<&str>, biz: i64, data_id: i64) -> Result<String, BkError> {
    let t = asked.map_or_else(|| default_table_id(biz, data_id), str::to_owned);
    if prefix_taken(s, &t) {
        return Err(BkError::Biz(Biz::TableExists));
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if asked.is_some() && biz == 0 && digits > 0 && t.as_bytes().get(digits) == Some(&b'_') {
        return Err(BkError::Biz(Biz::PlatformTable));
    }
    Ok(t)
}

/// Whether a group, deleted or not, already owns the db prefix of
/// `table_id`: physical metric names are `<db prefix>.<metric>`, so two
/// groups sharing a prefix would share series.
fn prefix_taken(s: &State, table_id: &str) -> bool {
    let prefix = table_id.split_once('.').map_or(table_id, |(p, _)| p);
    s.groups.values().any(|g| g.db_prefix() == prefix)
}

fn default_table_id(biz: i64, data_id: i64) -> String {
    if biz == 0 {
        format!("bkmonitor_time_series_{data_id}.__default__")
    } else {
        format!("{biz}_bkmonitor_time_series_{data_id}.__default__")
    }
}

fn implicit_source(data_id: i64, biz: i64, operator: &str, now: i64) -> DataSource {
    DataSource {
        bk_data_id: data_id,
        data_name: format!("auto_registered_{data_id}"),
        etl_config: "bk_standard_v2_time_series".into(),
        source_label: "custom".into(),
        type_label: "time_series".into(),
        bk_biz_id: biz,
        token: super::token(),
        data_description: String::new(),
        option: Map::new(),
        is_platform_data_id: false,
        space_uid: String::new(),
        space_type_id: "all".into(),
        transfer_cluster_id: "default".into(),
        is_auto: true,
        creator: operator.to_owned(),
        create_time_ms: now,
    }
}

fn active_group(s: &State, id: i64) -> Result<&Group, BkError> {
    s.groups
        .get(&id)
        .filter(|g| !g.is_delete)
        .ok_or(BkError::Biz(Biz::GroupNotFound))
}

pub(super) fn get(api: &Api, p: &Params<'_>) -> Result<Value, BkError> {
    let v = param(GET);
    let id = p
        .int("time_series_group_id", i64::MIN, i64::MAX)
        .map_err(&v)?;
    let with_rt = p.opt_bool("with_result_table_info").map_err(&v)?;
    let view = api.view();
    api.registry.read_fresh(|s| {
        let g = active_group(s, id)?;
        let mut obj = group_json(g, view);
        if !p.shows_tokens {
            hide_token(&mut obj);
        }
        if with_rt == Some(true) {
            let prefix = g.db_prefix();
            obj["shipper_list"] = json!([{"cluster_type": "tsdb", "storage_config":
                {"database": prefix, "metric_prefix": format!("{prefix}.")}}]);
        }
        Ok(json!([obj]))
    })
}

/// One `field_list` entry (spec 8.3).
struct FieldMeta {
    field_name: String,
    tag: String,
    description: Option<String>,
    unit: Option<String>,
    is_disabled: Option<bool>,
}

fn field_list(list: &[Value]) -> Option<Vec<FieldMeta>> {
    list.iter()
        .map(|entry| {
            let Value::Object(o) = entry else { return None };
            let text = |k: &str| match o.get(k) {
                None | Some(Value::Null) => Some(None),
                Some(Value::String(s)) => Some(Some(s.clone())),
                Some(_) => None,
            };
            Some(FieldMeta {
                field_name: text("field_name")?.filter(|n| name_ok(n.trim()))?,
                tag: text("tag")??,
                description: text("description")?,
                unit: text("unit")?,
                is_disabled: match o.get("is_disabled") {
                    None | Some(Value::Null) => None,
                    Some(b) => Some(super::validate::bool_of(b)?),
                },
            })
        })
        .collect()
}

pub(super) fn modify(api: &Api, p: &Params<'_>) -> Result<Value, BkError> {
    let v = param(MODIFY);
    let id = p
        .int("time_series_group_id", i64::MIN, i64::MAX)
        .map_err(&v)?;
    let operator = p.string("operator", 255, false).map_err(&v)?;
    let name = p
        .opt_string("time_series_group_name", 255, false)
        .map_err(&v)?;
    let label = p.opt_string("label", 128, false).map_err(&v)?;
    let fields = p.opt_list("field_list", MAX_ENTRIES).map_err(&v)?;
    let enable = p.opt_bool("is_enable").map_err(&v)?;
    let metrics = p.opt_list("metric_info_list", MAX_ENTRIES).map_err(&v)?;
    p.opt_bool("enable_field_black_list").map_err(&v)?;
    let data_label = p.opt_string("data_label", 128, false).map_err(&v)?;
    let view = api.view();
    api.registry.mutate(
        |s: &mut State| {
            let current = active_group(s, id)?;
            let biz = current.bk_biz_id;
            if let Some(l) = &label
                && !labels::exists(RESULT_TABLE, l)
            {
                return Err(BkError::Biz(Biz::LabelNotFound(l.clone())));
            }
            if let Some(n) = &name
                && s.groups
                    .values()
                    .any(|g| g.id != id && !g.is_delete && g.bk_biz_id == biz && g.name == *n)
            {
                return Err(BkError::Biz(Biz::NameExists));
            }
            let declared = match metrics {
                Some(list) => Some(declared(list).ok_or(BkError::Biz(Biz::BadMetricList))?),
                None => None,
            };
            let fields = match fields {
                Some(list) => Some(field_list(list).ok_or(BkError::Biz(Biz::BadMetricList))?),
                None => None,
            };
            let g = s
                .groups
                .get_mut(&id)
                .ok_or(BkError::Biz(Biz::GroupNotFound))?;
            let mut changed = name.is_some()
                || label.is_some()
                || data_label.is_some()
                || declared.is_some()
                || fields.is_some();
            if let Some(n) = &name {
                g.name = n.clone();
            }
            if let Some(l) = &label {
                g.label = l.clone();
            }
            if let Some(d) = &data_label {
                g.data_label = d.clone();
            }
            if let Some(e) = enable {
                changed |= e != g.is_enable;
                g.is_enable = e;
            }
            if let Some(d) = &declared {
                declare(g, d);
            }
            for f in fields.into_iter().flatten() {
                apply_field(g, f);
            }
            if changed {
                g.last_modify_user = operator.clone();
                g.last_modify_time_ms = now_ms();
            }
            Ok(group_json(g, view))
        },
        BkError::not_stored,
    )
}

/// One `field_list` entry of a modify: a metric's or a dimension's
/// description, unit and (metrics) disabled flag.
fn apply_field(g: &mut Group, f: FieldMeta) {
    let field_name = f.field_name.trim().to_owned();
    match f.tag.as_str() {
        "metric" => {
            g.merge_metric(&field_name, &[], true);
            if let Some(m) = g.metrics.iter_mut().find(|m| m.field_name == field_name) {
                if let Some(d) = f.description {
                    m.description = d;
                }
                if let Some(u) = f.unit {
                    m.unit = u;
                }
                if let Some(b) = f.is_disabled {
                    m.is_disabled = b;
                }
            }
        }
        "dimension" => {
            let dim: &mut Dimension = g.dimensions.entry(field_name).or_default();
            if let Some(d) = f.description {
                dim.description = d;
            }
            if let Some(u) = f.unit {
                dim.unit = u;
            }
        }
        _ => {}
    }
}

pub(super) fn delete(api: &Api, p: &Params<'_>) -> Result<Value, BkError> {
    let v = param(DELETE);
    let id = p
        .int("time_series_group_id", i64::MIN, i64::MAX)
        .map_err(&v)?;
    let operator = p.string("operator", 255, false).map_err(&v)?;
    api.registry.mutate(
        |s: &mut State| {
            let g = s
                .groups
                .get_mut(&id)
                .filter(|g| !g.is_delete)
                .ok_or(BkError::Biz(Biz::GroupNotFound))?;
            g.metrics.clear();
            g.dimensions.clear();
            g.is_delete = true;
            g.last_modify_user = operator.clone();
            g.last_modify_time_ms = now_ms();
            Ok(Value::Null)
        },
        BkError::not_stored,
    )
}

pub(super) fn query(api: &Api, p: &Params<'_>) -> Result<Value, BkError> {
    let v = param(QUERY);
    let page = p.opt_int("page", 1, i64::MAX).map_err(&v)?.unwrap_or(1);
    let page_size = p
        .opt_int("page_size", i64::MIN, i64::MAX)
        .map_err(&v)?
        .unwrap_or(0);
    let label = p.opt_string("label", 128, true).map_err(&v)?;
    let name = p
        .opt_string("time_series_group_name", 255, true)
        .map_err(&v)?;
    let biz = p.opt_int("bk_biz_id", I32_MIN, I32_MAX).map_err(&v)?;
    let view = api.view();
    api.registry.read_fresh(|s| {
        let matches: Vec<&Group> = s
            .groups
            .values()
            .filter(|g| !g.is_delete)
            .filter(|g| label.as_ref().is_none_or(|l| g.label == *l))
            .filter(|g| name.as_ref().is_none_or(|n| g.name == *n))
            .filter(|g| biz.is_none_or(|b| g.bk_biz_id == b))
            .collect();
        // A search never shows tokens: they are credentials for pushing
        // data, and a listing would hand out all of them at once.
        let listed = |g: &&Group| {
            let mut obj = group_json(g, view);
            hide_token(&mut obj);
            obj
        };
        if page_size <= 0 {
            return Ok(Value::Array(matches.iter().map(listed).collect()));
        }
        let size = usize::try_from(page_size).unwrap_or(usize::MAX);
        let skip = usize::try_from(page - 1)
            .unwrap_or(usize::MAX)
            .saturating_mul(size);
        let info: Vec<Value> = matches.iter().skip(skip).take(size).map(listed).collect();
        Ok(json!({"count": matches.len(), "info": info}))
    })
}

/// Takes the push token out of a group or data source object.
pub(super) fn hide_token(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        o.remove("token");
    }
}

pub(super) fn metrics(api: &Api, p: &Params<'_>) -> Result<Value, BkError> {
    let table_id = p.string("table_id", 255, false).map_err(param(METRICS))?;
    let view: View = api.view();
    api.registry.read_fresh(|s| {
        let g = s
            .groups
            .values()
            .find(|g| g.table_id == table_id)
            .ok_or(BkError::Biz(Biz::GroupNotFound))?;
        Ok(json!({"metric_info_list": metric_infos(g, view)}))
    })
}
