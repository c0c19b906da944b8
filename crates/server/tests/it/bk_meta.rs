//! The BlueKing metadata APIs (seed 000, docs/api/bkmonitor-metadata.md 12):
//! vectors A–E run in order on one server, then again after a restart;
//! the strict-auth and strict-data-id vectors on their own servers.

use crate::bk::{
    BASE, assert_failure, call, fails, is_time, metric_names, ok, seed_request, send, table_id,
    tag_names, with_auth,
};
use crate::harness::{TestServer, json};
use anyhow::Result;
use serde_json::{Value, json};

pub(crate) const CREATE: &str = "metadata_create_time_series_group";
const GET: &str = "metadata_get_time_series_group";
const MODIFY: &str = "metadata_modify_time_series_group";
const DELETE: &str = "metadata_delete_time_series_group";
pub(crate) const QUERY: &str = "metadata_query_time_series_group";
const METRICS: &str = "metadata_get_time_series_metrics";
const RESOURCE: &str =
    "Resource[metadata.resources.resources.CreateTimeSeriesGroupResource] 请求参数格式错误：";

#[test]
fn vectors_a_to_e_then_restart() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let mut s = TestServer::spawn_with(&dir, &[])?;
    let (group1, token2) = a_create(&s)?;
    b_gateway(&s)?;
    c_groups(&s)?;
    d_sources(&s)?;
    crate::bk_ingest::e_vectors(&s, &token2)?;
    crate::bk_ingest::telnet_binds_like_put(&s)?;
    // E20: the same answers after a crash.
    let group1_now = ok(&s, GET, json!({"time_series_group_id": 1}))?;
    let metrics_now = ok(&s, METRICS, json!({"table_id": table_id(2, 125)}))?;
    s.kill9()?;
    let s = TestServer::spawn_with(&dir, &[])?;
    assert_eq!(ok(&s, GET, json!({"time_series_group_id": 1}))?, group1_now);
    assert_eq!(group1_now[0]["token"], group1["token"]);
    assert_eq!(
        ok(&s, METRICS, json!({"table_id": table_id(2, 125)}))?,
        metrics_now
    );
    Ok(())
}

/// A1–A17; returns group 1's object and group 2's token.
fn a_create(s: &TestServer) -> Result<(Value, String)> {
    // A1: the seed's example, verbatim.
    let (status, env) = call(s, CREATE, &seed_request())?;
    assert_eq!((status, env["code"].clone()), (200, json!(200)), "{env}");
    let g1 = env["data"].clone();
    let seed = seed_request();
    for key in ["bk_data_id", "bk_biz_id", "time_series_group_name", "label"] {
        assert_eq!(g1[key], seed[key], "{key}");
    }
    assert_eq!(g1["time_series_group_id"], json!(1));
    assert_eq!(g1["table_id"], json!(table_id(123, 123)));
    assert_eq!(
        (g1["creator"].clone(), g1["last_modify_user"].clone()),
        (json!("system"), json!("system"))
    );
    assert_eq!(
        (g1["is_enable"].clone(), g1["bk_tenant_id"].clone()),
        (json!(true), json!("system"))
    );
    assert!(is_time(&g1["create_time"]) && g1["create_time"] == g1["last_modify_time"]);
    assert_eq!(g1["token"].as_str().map(str::len), Some(32));
    assert_eq!(
        (
            g1["data_label"].clone(),
            g1["metric_group_dimensions"].clone()
        ),
        (json!(""), json!([]))
    );
    let declared: Vec<&str> = seed["metric_info_list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["field_name"].as_str())
        .collect();
    assert_eq!(metric_names(&g1["metric_info_list"]), declared);
    for (m, name) in g1["metric_info_list"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(&declared)
    {
        assert_eq!(
            m,
            &json!({"field_name": name, "metric_display_name": "", "description": "", "unit": "",
                "type": "double", "table_id": format!("123_bkmonitor_time_series_123.{name}"),
                "is_disabled": false, "tag_list": [
                    {"field_name": "dimension_name", "description": "", "unit": "", "type": "string"},
                    {"field_name": "target", "description": "", "unit": "", "type": "string"}]})
        );
    }
    // A2, A3.
    let msg = assert_failure(200, &call(s, CREATE, &seed_request())?.1, 500)?;
    assert_eq!(msg, "数据源[123]已经被其他自定义组注册使用，请更换数据源");
    let mut other = seed_request();
    other["bk_data_id"] = json!(124);
    assert_eq!(
        assert_failure(200, &call(s, CREATE, &other)?.1, 500)?,
        "自定义组名称已存在，请确认后重试"
    );
    // A4.
    let g2 = ok(
        s,
        CREATE,
        json!({"bk_data_id": 125, "bk_biz_id": 2,
            "time_series_group_name": "Customized time series group name", "label": "os",
            "operator": "admin", "metric_info_list": [
                {"field_name": "disk_usage", "tag": ["mount_point", "device"]},
                {"field_name": "io_wait", "tag_list": [{"field_name": "device", "description": "block device"}]}]}),
    )?;
    assert_eq!(g2["time_series_group_id"], json!(2));
    assert_eq!(g2["table_id"], json!(table_id(2, 125)));
    assert_eq!(g2["creator"], json!("admin"));
    let list = &g2["metric_info_list"];
    assert_eq!(metric_names(list), ["disk_usage", "io_wait"]);
    assert_eq!(
        list[0]["table_id"],
        json!("2_bkmonitor_time_series_125.disk_usage")
    );
    assert_eq!(
        tag_names(list, "disk_usage"),
        ["mount_point", "device", "target"]
    );
    assert_eq!(list[0]["tag_list"][1]["description"], json!("block device"));
    assert_eq!(tag_names(list, "io_wait"), ["device", "target"]);
    assert_eq!(list[1]["tag_list"][0]["description"], json!("block device"));
    let token2 = g2["token"].as_str().unwrap_or_default().to_owned();
    // A5, A6.
    let g3 = ok(
        s,
        CREATE,
        json!({"bk_data_id": 126, "bk_biz_id": 0,
        "time_series_group_name": "platform ts", "label": "others", "operator": "admin"}),
    )?;
    assert_eq!(
        (g3["time_series_group_id"].clone(), g3["table_id"].clone()),
        (json!(3), json!(table_id(0, 126)))
    );
    assert_eq!(g3["metric_info_list"], json!([]));
    let g4 = ok(
        s,
        CREATE,
        json!({"bk_data_id": "127", "bk_biz_id": "-4220",
        "time_series_group_name": "space ts", "label": "apm", "operator": "admin"}),
    )?;
    assert_eq!(
        (
            g4["time_series_group_id"].clone(),
            g4["bk_data_id"].clone(),
            g4["bk_biz_id"].clone()
        ),
        (json!(4), json!(127), json!(-4220))
    );
    assert_eq!(g4["table_id"], json!(table_id(-4220, 127)));
    // A7–A16: validation in table order, Chinese by default.
    let mut a7 = seed_request();
    a7.as_object_mut().map(|o| o.remove("bk_data_id"));
    assert_eq!(
        assert_failure(200, &call(s, CREATE, &a7)?.1, 3300002)?,
        format!("{RESOURCE}(bk_data_id) 该字段是必填项。")
    );
    let mut a8 = seed_request();
    a8["bk_data_id"] = json!(200);
    a8.as_object_mut().map(|o| o.remove("operator"));
    assert!(
        assert_failure(200, &call(s, CREATE, &a8)?.1, 3300002)?
            .ends_with("(operator) 该字段是必填项。")
    );
    assert!(fails(s, CREATE, json!({}), 3300002)?.ends_with("(bk_data_id) 该字段是必填项。"));
    let tmp = |changes: Value| {
        let mut b = seed_request();
        b["time_series_group_name"] = json!("tmp");
        if let (Value::Object(b), Value::Object(c)) = (&mut b, changes) {
            b.extend(c);
        }
        b
    };
    for (changes, code, message) in [
        (
            json!({"bk_data_id": 201, "time_series_group_name": "   "}),
            3300002,
            format!("{RESOURCE}(time_series_group_name) 该字段不能为空。"),
        ),
        (
            json!({"bk_data_id": "abc"}),
            3300002,
            format!("{RESOURCE}(bk_data_id) 请填写合法的整数值。"),
        ),
        (
            json!({"bk_data_id": 0}),
            3300002,
            format!("{RESOURCE}(bk_data_id) 请确保该值大于或者等于 1。"),
        ),
        (
            json!({"bk_data_id": 202, "label": "application_x"}),
            500,
            "标签[application_x]不存在，请确认后重试".into(),
        ),
        (
            json!({"bk_data_id": 203, "metric_info_list": "oops"}),
            3300002,
            format!("{RESOURCE}(metric_info_list) 期望为一个包含物件的列表，得到的类型是“str”。"),
        ),
        (
            json!({"bk_data_id": 204, "metric_info_list": [{"tag_list": ["a"]}]}),
            500,
            "自定义时序列表配置有误，请确认后重试".into(),
        ),
    ] {
        let (status, env) = call(s, CREATE, &tmp(changes.clone()))?;
        assert_eq!(assert_failure(status, &env, code)?, message, "{changes}");
    }
    let (status, text) = send(
        s,
        "POST",
        &format!("{BASE}/{CREATE}/"),
        &[("Blueking-Language", "en")],
        &a8.to_string(),
    )?;
    assert_eq!(
        assert_failure(status, &json(&text)?, 3300002)?,
        "Resource[metadata.resources.resources.CreateTimeSeriesGroupResource] request parameters are invalid: (operator) This field is required."
    );
    // A17: failures consumed no id.
    let g5 = ok(
        s,
        CREATE,
        json!({"bk_data_id": 128, "bk_biz_id": 123,
        "time_series_group_name": "other", "label": "others", "operator": "admin"}),
    )?;
    assert_eq!(g5["time_series_group_id"], json!(5));
    Ok((g1, token2))
}

/// B1–B8 in open mode.
fn b_gateway(s: &TestServer) -> Result<()> {
    let body = |drop: &str| {
        let mut b = with_auth(json!({"bk_data_id": 300, "bk_biz_id": 0,
            "time_series_group_name": "b", "label": "others", "operator": "admin"}));
        b.as_object_mut().map(|o| o.remove(drop));
        b
    };
    let (status, env) = call(s, CREATE, &body("bk_app_code"))?;
    assert_eq!(
        assert_failure(status, &env, 1306000)?,
        "APP Code [bk_app_code] cannot be empty"
    );
    let b2 =
        "Signature [bk_signature] and APP Secret [bk_app_secret] cannot be empty at the same time";
    let (status, env) = call(s, CREATE, &body("bk_app_secret"))?;
    assert_eq!(assert_failure(status, &env, 1306000)?, b2);
    let get = |query: &str, header: &str| -> Result<(u16, Value)> {
        let (status, text) = send(
            s,
            "GET",
            &format!("{BASE}/{GET}/?{query}"),
            &[("X-Bkapi-Authorization", header)],
            "",
        )?;
        Ok((status, json(&text)?))
    };
    let (status, env) = get(
        "time_series_group_id=2",
        r#"{"bk_app_code": "xxx", "bk_app_secret": "xxxxx", "bk_username": "admin"}"#,
    )?;
    assert_eq!(status, 200, "{env}");
    assert_eq!(env["data"][0]["time_series_group_id"], json!(2));
    let (status, env) = get(
        "time_series_group_id=2&bk_app_code=xxx&bk_app_secret=xxxxx",
        r#"{"bk_app_code": "xxx"}"#,
    )?;
    assert_eq!(assert_failure(status, &env, 1306000)?, b2);
    let (status, env) = get("time_series_group_id=2", "not-json")?;
    assert_eq!(
        assert_failure(status, &env, 1306406)?,
        "Parameters error, request header X-Bkapi-Authorization is not a valid JSON format string"
    );
    let (status, text) = s.post(
        &format!("{BASE}/{QUERY}/?bk_app_code=xxx&bk_app_secret=xxxxx&bk_username=admin"),
        &json!({"bk_biz_id": 2}).to_string(),
    )?;
    let env = json(&text)?;
    assert_eq!(status, 200);
    let ids: Vec<Value> = env["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| g["time_series_group_id"].clone())
        .collect();
    assert_eq!(ids, [json!(2)]);
    let (status, text) = s.post(&format!("{BASE}/{CREATE}/"), r#"{"bk_app_code": "#)?;
    assert_eq!(
        assert_failure(status, &json(&text)?, 1306000)?,
        "Request JSON string is wrong in format, which cannot be analyzed."
    );
    for (method, api) in [("GET", CREATE), ("POST", "metadata_no_such_api")] {
        let (status, text) = send(s, method, &format!("{BASE}/{api}/"), &[], "{}")?;
        assert_eq!(
            assert_failure(status, &json(&text)?, 1306404)?,
            "Not found, component class not found"
        );
    }
    Ok(())
}

/// C1–C14.
fn c_groups(s: &TestServer) -> Result<()> {
    let g1 = ok(s, GET, json!({"time_series_group_id": 1}))?;
    assert_eq!(g1.as_array().map(Vec::len), Some(1));
    assert_eq!(
        fails(s, GET, json!({"time_series_group_id": 999}), 500)?,
        "自定义时序分组不存在，请确认后重试"
    );
    let (status, text) = s.get(&format!(
        "{BASE}/{GET}/?bk_app_code=xxx&bk_app_secret=xxxxx&time_series_group_id=abc"
    ))?;
    assert_eq!(
        assert_failure(status, &json(&text)?, 3300002)?,
        "Resource[metadata.resources.resources.GetTimeSeriesGroupResource] 请求参数格式错误：(time_series_group_id) 请填写合法的整数值。"
    );
    // C4.
    let m = ok(
        s,
        MODIFY,
        json!({"time_series_group_id": 1, "operator": "alice",
        "time_series_group_name": "renamed", "is_enable": "false"}),
    )?;
    assert_eq!(
        (m["time_series_group_name"].clone(), m["is_enable"].clone()),
        (json!("renamed"), json!(false))
    );
    assert_eq!(
        (m["last_modify_user"].clone(), m["creator"].clone()),
        (json!("alice"), json!("system"))
    );
    assert_eq!(m["metric_info_list"], g1[0]["metric_info_list"]);
    assert_eq!(
        fails(
            s,
            MODIFY,
            json!({"time_series_group_id": 1, "operator": "alice", "label": "nope"}),
            500
        )?,
        "标签[nope]不存在，请确认后重试"
    );
    assert_eq!(
        fails(
            s,
            MODIFY,
            json!({"time_series_group_id": 1, "operator": "alice", "time_series_group_name": "other"}),
            500
        )?,
        "自定义组名称已存在，请确认后重试"
    );
    // C7.
    let m = ok(
        s,
        MODIFY,
        json!({"time_series_group_id": 2, "operator": "admin",
        "metric_info_list": [{"field_name": "disk_usage", "tag_list": ["fs_type"]}],
        "field_list": [
            {"field_name": "disk_usage", "field_type": "float", "tag": "metric", "description": "Disk usage", "unit": "percent"},
            {"field_name": "mount_point", "field_type": "string", "tag": "dimension", "description": "Mount point"}]}),
    )?;
    let list = &m["metric_info_list"];
    assert_eq!(
        (list[0]["description"].clone(), list[0]["unit"].clone()),
        (json!("Disk usage"), json!("percent"))
    );
    assert_eq!(
        tag_names(list, "disk_usage"),
        ["mount_point", "device", "fs_type", "target"]
    );
    assert_eq!(list[0]["tag_list"][0]["description"], json!("Mount point"));
    assert_eq!(tag_names(list, "io_wait"), ["device", "target"]);
    // C8–C11.
    let ids = |data: &Value| -> Vec<i64> {
        data.as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["time_series_group_id"].as_i64())
            .collect()
    };
    assert_eq!(ids(&ok(s, QUERY, json!({"bk_biz_id": 123}))?), [1, 5]);
    for (page, want) in [(1, vec![1, 2]), (3, vec![5]), (4, vec![])] {
        let data = ok(s, QUERY, json!({"page": page, "page_size": 2}))?;
        assert_eq!(
            (data["count"].clone(), ids(&data["info"])),
            (json!(5), want)
        );
    }
    assert!(
        fails(s, QUERY, json!({"page": 0}), 3300002)?
            .ends_with("(page) 请确保该值大于或者等于 1。")
    );
    assert_eq!(
        ids(&ok(
            s,
            QUERY,
            json!({"label": "os", "time_series_group_name": "Customized time series group name"})
        )?),
        [2]
    );
    // C12–C14.
    assert_eq!(
        ok(
            s,
            DELETE,
            json!({"time_series_group_id": 5, "operator": "admin"})
        )?,
        Value::Null
    );
    for (api, body) in [
        (
            DELETE,
            json!({"time_series_group_id": 5, "operator": "admin"}),
        ),
        (GET, json!({"time_series_group_id": 5})),
    ] {
        assert_eq!(
            fails(s, api, body, 500)?,
            "自定义时序分组不存在，请确认后重试"
        );
    }
    assert_eq!(
        fails(
            s,
            CREATE,
            json!({"bk_data_id": 128, "bk_biz_id": 123, "time_series_group_name": "other", "label": "others", "operator": "admin"}),
            500
        )?,
        "数据源[128]已经被其他自定义组注册使用，请更换数据源"
    );
    assert_eq!(
        ok(s, METRICS, json!({"table_id": table_id(123, 128)}))?,
        json!({"metric_info_list": []})
    );
    assert_eq!(
        fails(s, METRICS, json!({"table_id": "nope.__default__"}), 500)?,
        "自定义时序分组不存在，请确认后重试"
    );
    Ok(())
}

/// D1–D6, D8.
fn d_sources(s: &TestServer) -> Result<()> {
    let ds = json!({"data_name": "my_ts", "etl_config": "bk_standard_v2_time_series",
        "operator": "admin", "source_label": "custom", "type_label": "time_series"});
    assert_eq!(
        ok(s, "metadata_create_data_id", ds.clone())?,
        json!({"bk_data_id": 1_500_000})
    );
    assert_eq!(
        fails(s, "metadata_create_data_id", ds.clone(), 500)?,
        "数据源名称[my_ts]已经存在，请确认后重试"
    );
    let mut bad = ds.clone();
    bad["data_name"] = json!("x2");
    bad["source_label"] = json!("nope");
    assert_eq!(
        fails(s, "metadata_create_data_id", bad, 500)?,
        "标签[nope | time_series]不存在，请确认后重试"
    );
    let got = ok(
        s,
        "metadata_get_data_id",
        json!({"bk_data_id": 1_500_000, "with_rt_info": false}),
    )?;
    for (k, v) in [
        ("bk_data_id", json!(1_500_000)),
        ("data_id", json!(1_500_000)),
        ("data_name", json!("my_ts")),
        ("type_label", json!("time_series")),
        ("source_label", json!("custom")),
    ] {
        assert_eq!(got[k], v, "{k}");
    }
    assert_eq!(got["token"].as_str().map(str::len), Some(32));
    assert!(got.get("result_table_list").is_none());
    let got = ok(s, "metadata_get_data_id", json!({"bk_data_id": 125}))?;
    assert_eq!(
        (got["data_name"].clone(), got["bk_biz_id"].clone()),
        (json!("auto_registered_125"), json!(2))
    );
    assert_eq!(
        got["result_table_list"][0]["result_table"],
        json!(table_id(2, 125))
    );
    assert_eq!(
        fails(s, "metadata_get_data_id", json!({}), 500)?,
        "找不到请求参数，请确认后重试"
    );
    assert_eq!(
        fails(s, "metadata_get_data_id", json!({"bk_data_id": 42}), 500)?,
        "数据源不存在，请确认后重试"
    );
    // D8.
    let labels = ok(
        s,
        "metadata_list_label",
        json!({"include_admin_only": false, "label_type": "result_table_label", "level": 1}),
    )?;
    let ids: Vec<&str> = labels["result_table_label"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["label_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["applications", "data_center", "hosts", "others", "services"]
    );
    assert_eq!(
        labels["result_table_label"][2],
        json!({"label_id": "hosts", "label_name": "主机&云平台", "label_type": "result_table_label", "level": 1, "parent_label": null, "index": 3})
    );
    let level2 = |admin: bool| -> Result<Vec<String>> {
        let data = ok(
            s,
            "metadata_list_label",
            json!({"include_admin_only": admin, "level": 2, "label_type": "result_table_label"}),
        )?;
        Ok(data["result_table_label"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["label_id"].as_str().map(str::to_owned))
            .collect())
    };
    assert!(!level2(false)?.contains(&"uptimecheck".to_owned()));
    assert!(level2(true)?.contains(&"uptimecheck".to_owned()));
    Ok(())
}
