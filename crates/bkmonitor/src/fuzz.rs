//! Fuzz entry points of the BlueKing adapter (run by `fuzz/`, replayed by
//! `cargo test` through the test below). None may panic.

use super::config::Config;
use super::validate::Params;
use super::{Api, esb, groups, ingest};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use std::sync::OnceLock;
use sundial_api::access::{Action, GrantConfig, Store};
use sundial_storage::{Db, FsyncPolicy};

/// The data id and token of the group `/v2/push/` inputs report to (the
/// spec's group 2 of section 12 E, token `<T2>` spelled `T2`).
const DATA_ID: i64 = 125;
const TOKEN: &str = "T2";

/// ESB parameters and authentication: the first line is the query
/// string, then `Name: value` header lines up to a blank line, then the
/// body. Authenticated in open mode and against the apps of spec B9–B12.
pub fn esb(data: &[u8]) {
    let (query, rest) = sundial_api::fuzz::split_line(data);
    let (headers, body) = headers(rest);
    let Ok(params) = esb::collect_params(&query, body) else {
        return;
    };
    let open = Store::default();
    let _ = esb::authenticate(&Config::default(), &open, &headers, &params);
    let strict = Config {
        esb_apps: [("bk_monitor_test".into(), vec!["s3cr3t".into()])].into(),
        esb_login_exempt_apps: vec!["bk_monitor_test".into()],
        esb_bk_tokens: [("goodtoken".into(), "alice".into())].into(),
        ..Config::default()
    };
    let grants = GrantConfig::from([("default".to_owned(), vec![Action::Read, Action::Write])]);
    let app = (
        "bk_monitor_test".to_owned(),
        vec!["s3cr3t".to_owned()],
        grants,
    );
    let Ok(keys) = Store::new(&sundial_api::access::Config::default(), [app]) else {
        return;
    };
    let _ = esb::authenticate(&strict, &keys, &headers, &params);
}

/// `POST /v2/push/`: the body, checked against a registry holding one
/// enabled group (data id 125, token `T2`); nothing is stored.
pub fn push(data: &[u8]) {
    if let Some(api) = api() {
        let _ = ingest::check_push(api, data);
    }
}

/// Header lines up to a blank line (ones `http` refuses are skipped),
/// and the bytes after it.
fn headers(data: &[u8]) -> (HeaderMap, &[u8]) {
    let mut headers = HeaderMap::new();
    let mut rest = data;
    loop {
        let (line, tail) = sundial_api::fuzz::split_line(rest);
        if line.is_empty() {
            return (headers, tail);
        }
        rest = tail;
        if let Some((name, value)) = line.split_once(':')
            && let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.trim().as_bytes()),
                HeaderValue::from_str(value.trim()),
            )
        {
            headers.append(name, value);
        }
    }
}

/// The adapter of [`push`], made once per process in a scratch
/// directory.
fn api() -> Option<&'static Api> {
    static API: OnceLock<Option<Api>> = OnceLock::new();
    API.get_or_init(|| {
        let dir = sundial_storage::fuzz::scratch_dir().join("bk");
        let _ = std::fs::remove_dir_all(&dir);
        let db = Db::open(sundial_storage::Config {
            data_dir: dir.join("db"),
            fsync: FsyncPolicy::Buffered,
            ..sundial_storage::Config::default()
        })
        .ok()?;
        let api = Api::new(
            db,
            Config::default(),
            &dir,
            1 << 20,
            16,
            std::sync::Arc::new(Store::default()),
            sundial_api::limits::Limits::default(),
        )
        .ok()?;
        let create: Map<String, Value> = match json!({
            "bk_data_id": DATA_ID, "bk_biz_id": 2, "time_series_group_name": "fuzz",
            "label": "application", "operator": "admin",
            "metric_info_list": [{"field_name": "cpu_load", "tag_list": [
                {"field_name": "module"}]}]})
        {
            Value::Object(map) => map,
            _ => return None,
        };
        let params = Params {
            map: &create,
            shows_tokens: true,
        };
        groups::create(&api, &params).ok()?;
        api.registry
            .mutate(
                |state| {
                    for group in state.groups.values_mut() {
                        group.token = TOKEN.into();
                    }
                    Ok::<(), std::io::Error>(())
                },
                |e| e,
            )
            .ok()?;
        Some(api)
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    #[test]
    fn corpus_and_regressions_replay() {
        sundial_codec::fuzz::replay("bk_esb", super::esb);
        sundial_codec::fuzz::replay("bk_push", super::push);
    }
}
