//! BlueKing registry modes (docs/api/bkmonitor-metadata.md): registered
//! ESB apps and users, strict data ids, and one binding per data id under
//! concurrent creates.

use super::bk_meta::{CREATE, QUERY};
use crate::bk::{assert_failure, call, ok, seed_request, with_auth};
use crate::harness::TestServer;
use anyhow::Result;
use serde_json::{Value, json};

/// B9–B12: registry mode.
#[test]
fn registered_apps_and_users() -> Result<()> {
    let s = TestServer::spawn_with_config(
        "[bkmonitor]\nesb_apps = { bk_monitor_test = [\"s3cr3t\"] }\n\
         esb_login_exempt_apps = [\"bk_monitor_test\"]\nesb_bk_tokens = { goodtoken = \"alice\" }\n",
    )?;
    let list = |body: Value| call(&s, "metadata_list_label", &body);
    let (status, env) = list(
        json!({"bk_app_code": "bk_monitor_test", "bk_app_secret": "wrong", "bk_username": "admin", "include_admin_only": true}),
    )?;
    assert_eq!(
        assert_failure(status, &env, 1306000)?,
        "APP Secret verification failed, pelase confirm if the APP Secret and APP Code [bk_app_code=bk_monitor_test] match"
    );
    let (status, env) =
        list(json!({"bk_app_code": "foo", "bk_app_secret": "s3cr3t", "include_admin_only": true}))?;
    // Issue 14: an unknown app answers like a wrong secret (spec B10 had
    // its own message, which lets the server's keys be probed for).
    assert_eq!(
        assert_failure(status, &env, 1306000)?,
        "APP Secret verification failed, pelase confirm if the APP Secret and APP Code [bk_app_code=foo] match"
    );
    let (status, env) = list(
        json!({"bk_app_code": "bk_monitor_test", "bk_app_secret": "s3cr3t", "include_admin_only": true}),
    )?;
    assert_eq!(
        assert_failure(status, &env, 1306000)?,
        "User authentication failed, please provide a valid user identity, such as bk_token, bk_username"
    );
    let (status, env) = list(
        json!({"bk_app_code": "bk_monitor_test", "bk_app_secret": "s3cr3t", "bk_token": "nope", "include_admin_only": true}),
    )?;
    assert_eq!(
        assert_failure(status, &env, 1306000)?,
        "User authentication failed, please check if the bk_token is valid"
    );
    for user in [
        json!({"bk_token": "goodtoken"}),
        json!({"bk_username": "admin"}),
    ] {
        let mut body = json!({"bk_app_code": "bk_monitor_test", "bk_app_secret": "s3cr3t", "include_admin_only": true});
        if let (Value::Object(b), Value::Object(u)) = (&mut body, user) {
            b.extend(u);
        }
        let (status, env) = list(body)?;
        assert_eq!((status, env["code"].clone()), (200, json!(200)), "{env}");
    }
    Ok(())
}

/// D7: strict data ids.
#[test]
fn strict_data_ids_need_registration() -> Result<()> {
    let s = TestServer::spawn_with_config("[bkmonitor]\nstrict_data_id = true\n")?;
    assert_eq!(
        assert_failure(200, &call(&s, CREATE, &seed_request())?.1, 500)?,
        "数据源ID不存在，请确认"
    );
    let created = ok(
        &s,
        "metadata_create_data_id",
        json!({"bk_data_id": 123, "data_name": "seed",
        "etl_config": "bk_standard_v2_time_series", "operator": "admin", "source_label": "custom",
        "type_label": "time_series"}),
    )?;
    assert_eq!(created, json!({"bk_data_id": 123}));
    let (status, env) = call(&s, CREATE, &seed_request())?;
    assert_eq!(
        (status, env["data"]["time_series_group_id"].clone()),
        (200, json!(1)),
        "{env}"
    );
    Ok(())
}

/// Concurrent creates for one data id: exactly one wins.
#[test]
fn concurrent_creates_bind_a_data_id_once() -> Result<()> {
    let s = TestServer::spawn()?;
    let results: Vec<Result<i64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = &s;
                scope.spawn(move || -> Result<i64> {
                    let body = with_auth(json!({"bk_data_id": 777, "bk_biz_id": 1,
                        "time_series_group_name": format!("race {i}"), "label": "others", "operator": "admin"}));
                    let (_, env) = call(s, CREATE, &body)?;
                    Ok(env["code"].as_i64().unwrap_or(-1))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("thread panicked")))
            })
            .collect()
    });
    let codes: Vec<i64> = results.into_iter().collect::<Result<_>>()?;
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 500), "{codes:?}");
    let groups = ok(&s, QUERY, json!({}))?;
    assert_eq!(groups.as_array().map(Vec::len), Some(1));
    Ok(())
}
