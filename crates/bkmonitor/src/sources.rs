//! Data sources and labels (spec 8.7–8.9).

use super::Api;
use super::esb::{Biz, BkError};
use super::groups::{MAX_ENTRIES, param};
use super::labels::{self, LABELS, SOURCE, TYPE};
use super::model::{DataSource, State, visible};
use super::validate::Params;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use sundial_model::now_ms;

const CREATE: &str = "metadata.resources.resources.CreateDataIDResource";
const GET: &str = "metadata.resources.resources.QueryDataSourceResource";
const LABEL: &str = "metadata.resources.resources.LabelResource";

/// Automatically allocated data ids start here and may not pass the max.
const FIRST_AUTO_ID: i64 = 1_500_000;
const LAST_AUTO_ID: i64 = 2_097_151;

pub(super) fn create_data_id(api: &Api, p: &Params<'_>) -> Result<Value, BkError> {
    let v = param(CREATE);
    let biz = p
        .opt_int("bk_biz_id", i64::from(i32::MIN), i64::from(i32::MAX))
        .map_err(&v)?;
    let data_name = p.string("data_name", 128, false).map_err(&v)?;
    let etl_config = p.string("etl_config", 255, false).map_err(&v)?;
    let operator = p.string("operator", 255, false).map_err(&v)?;
    let explicit = p
        .opt_int("bk_data_id", 1, i64::from(i32::MAX))
        .map_err(&v)?;
    p.opt_int("mq_cluster", i64::MIN, i64::MAX).map_err(&v)?;
    p.opt_object("mq_config").map_err(&v)?;
    let description = p.opt_string("data_description", 4096, true).map_err(&v)?;
    p.opt_bool("is_custom_source").map_err(&v)?;
    let source_label = p.string("source_label", 128, false).map_err(&v)?;
    let type_label = p.string("type_label", 128, false).map_err(&v)?;
    let option = p.opt_object("option").map_err(&v)?.cloned();
    p.opt_string("custom_label", 255, true).map_err(&v)?;
    let cluster = p.opt_string("transfer_cluster_id", 255, true).map_err(&v)?;
    let space_uid = p.opt_string("space_uid", 255, true).map_err(&v)?;
    p.opt_list("authorized_spaces", MAX_ENTRIES).map_err(&v)?;
    let platform = p.opt_bool("is_platform_data_id").map_err(&v)?;
    let space_type = p.opt_string("space_type_id", 255, true).map_err(&v)?;
    api.registry.mutate(
        |s: &mut State| {
            if !labels::exists(SOURCE, &source_label) || !labels::exists(TYPE, &type_label) {
                return Err(BkError::Biz(Biz::DsLabel(
                    source_label.clone(),
                    type_label.clone(),
                )));
            }
            if s.sources.values().any(|d| d.data_name == data_name) {
                return Err(BkError::Biz(Biz::DsNameExists(data_name.clone())));
            }
            let id = match explicit {
                Some(id) if s.sources.contains_key(&id) => {
                    return Err(BkError::Biz(Biz::DsIdExists(id)));
                }
                Some(id) => id,
                None => {
                    let next = s
                        .sources
                        .keys()
                        .next_back()
                        .map_or(FIRST_AUTO_ID, |m| (m + 1).max(FIRST_AUTO_ID));
                    if next > LAST_AUTO_ID {
                        return Err(BkError::Biz(Biz::DsIdExhausted));
                    }
                    next
                }
            };
            s.sources.insert(
                id,
                DataSource {
                    bk_data_id: id,
                    data_name: data_name.clone(),
                    etl_config: etl_config.clone(),
                    source_label: source_label.clone(),
                    type_label: type_label.clone(),
                    bk_biz_id: biz.unwrap_or(0),
                    token: super::token(),
                    data_description: description.clone().unwrap_or_default(),
                    option: option.clone().unwrap_or_default(),
                    is_platform_data_id: platform.unwrap_or(false),
                    space_uid: space_uid.clone().unwrap_or_default(),
                    space_type_id: space_type.clone().unwrap_or_else(|| "all".into()),
                    transfer_cluster_id: cluster.clone().unwrap_or_else(|| "default".into()),
                    is_auto: false,
                    creator: operator.clone(),
                    create_time_ms: now_ms(),
                },
            );
            Ok(json!({"bk_data_id": id}))
        },
        BkError::not_stored,
    )
}

pub(super) fn get_data_id(api: &Api, p: &Params<'_>) -> Result<Value, BkError> {
    let v = param(GET);
    let id = p.opt_int("bk_data_id", i64::MIN, i64::MAX).map_err(&v)?;
    let name = p.opt_string("data_name", 128, false).map_err(&v)?;
    let with_rt = p.opt_bool("with_rt_info").map_err(&v)?.unwrap_or(true);
    let view = api.view();
    api.registry.read_fresh(|s| {
        let source = match (id, &name) {
            (Some(id), _) => s.sources.get(&id),
            (None, Some(n)) => s.sources.values().find(|d| d.data_name == *n),
            (None, None) => return Err(BkError::Biz(Biz::DsParamMissing)),
        }
        .ok_or(BkError::Biz(Biz::DsNotFound))?;
        let mut out = json!({
            "bk_data_id": source.bk_data_id, "data_id": source.bk_data_id,
            "bk_tenant_id": "system", "data_name": source.data_name,
            "etl_config": source.etl_config, "option": source.option,
            "type_label": source.type_label, "source_label": source.source_label,
            "token": source.token, "transfer_cluster_id": source.transfer_cluster_id,
            "mq_config": {}, "is_platform_data_id": source.is_platform_data_id,
            "space_type_id": source.space_type_id, "space_uid": source.space_uid,
            "bk_biz_id": source.bk_biz_id,
        });
        if !p.shows_tokens {
            super::groups::hide_token(&mut out);
        }
        if with_rt {
            let tables: Vec<Value> = s
                .groups
                .values()
                .filter(|g| g.bk_data_id == source.bk_data_id && !g.is_delete)
                .map(|g| {
                    let field = |name: &str, kind: &str, tag: &str, desc: &str, unit: &str| {
                        json!({"field_name": name, "type": kind, "tag": tag, "description": desc,
                            "unit": unit, "is_disabled": false})
                    };
                    let mut fields = vec![
                        field("time", "timestamp", "timestamp", "", ""),
                        field("target", "string", "dimension", "", ""),
                    ];
                    let mut metrics: Vec<_> = visible(g, view).collect();
                    metrics.sort_by(|a, b| a.field_name.cmp(&b.field_name));
                    for m in metrics {
                        let mut f =
                            field(&m.field_name, "float", "metric", &m.description, &m.unit);
                        f["is_disabled"] = json!(m.is_disabled);
                        fields.push(f);
                    }
                    let mut dims: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
                    for m in visible(g, view) {
                        for t in &m.tags {
                            let d = g.dimensions.get(t);
                            dims.insert(
                                t,
                                d.map_or(("", ""), |d| (d.description.as_str(), d.unit.as_str())),
                            );
                        }
                    }
                    for (name, (desc, unit)) in dims {
                        fields.push(field(name, "string", "dimension", desc, unit));
                    }
                    json!({"bk_biz_id": g.bk_biz_id, "bk_tenant_id": "system",
                        "result_table": g.table_id, "schema_type": "free",
                        "option": {"is_split_measurement": g.is_split_measurement},
                        "shipper_list": [], "field_list": fields})
                })
                .collect();
            out["result_table_list"] = Value::Array(tables);
        }
        Ok(out)
    })
}

pub(super) fn list_label(p: &Params<'_>) -> Result<Value, BkError> {
    let v = param(LABEL);
    let admin = p.bool("include_admin_only").map_err(&v)?;
    let kind = p.opt_string("label_type", 128, true).map_err(&v)?;
    let level = p.opt_int("level", i64::MIN, i64::MAX).map_err(&v)?;
    p.opt_bool("is_plain_text").map_err(&v)?;
    let mut out: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for l in LABELS {
        if (!admin && l.admin_only)
            || kind.as_deref().is_some_and(|k| k != l.kind)
            || level.is_some_and(|want| l.level != Some(want))
        {
            continue;
        }
        out.entry(l.kind).or_default().push(l);
    }
    let mut data = Map::new();
    for (kind, mut list) in out {
        list.sort_by(|a, b| a.id.cmp(b.id));
        data.insert(kind.into(), list.iter().map(|l| l.json()).collect());
    }
    Ok(Value::Object(data))
}
