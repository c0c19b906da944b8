//! The ESB gateway side of the metadata APIs (spec 3, 4): where parameters
//! come from, app and user authentication, the response envelope and the
//! error codes.

use super::config::Config;
use super::validate::FieldError;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sundial_api::access::{Identity, Store};

/// Every way a metadata request fails, in the order they are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BkError {
    /// Unknown API or method (HTTP 404).
    Route,
    /// Gateway-level failure: auth, malformed body (code 1306000).
    Gateway(String),
    /// `X-Bkapi-Authorization` is not a JSON object (code 1306406).
    HeaderAuth,
    /// Parameter validation (code 3300002).
    Param {
        resource: &'static str,
        error: FieldError,
    },
    /// Business rule (code 500).
    Biz(Biz),
    /// Anything unexpected (code 1306000).
    Internal,
    /// The metadata could not be stored (its file, or a cluster's
    /// PostgreSQL): code 1306000, saying so; nothing changed.
    NotStored,
    /// A body over the server's limit (HTTP 413).
    TooLarge(usize),
}

/// Business messages (spec 7.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Biz {
    LabelNotFound(String),
    DataIdBound(i64),
    NameExists,
    DataIdNotFound,
    TableExists,
    PlatformTable,
    GroupNotFound,
    BadMetricList,
    DsNotFound,
    DsParamMissing,
    DsNameExists(String),
    DsIdExists(i64),
    DsLabel(String, String),
    DsIdExhausted,
}

impl Biz {
    fn text(&self, en: bool) -> String {
        use Biz::*;
        match (self, en) {
            (LabelNotFound(l), false) => format!("标签[{l}]不存在，请确认后重试"),
            (LabelNotFound(l), true) => {
                format!("Label [{l}] does not exist, please check and retry")
            }
            (DataIdBound(id), false) => {
                format!("数据源[{id}]已经被其他自定义组注册使用，请更换数据源")
            }
            (DataIdBound(id), true) => format!(
                "Data source [{id}] is already used by another custom group, please use another data source"
            ),
            (NameExists, false) => "自定义组名称已存在，请确认后重试".into(),
            (NameExists, true) => "Custom group name already exists, please check and retry".into(),
            (DataIdNotFound, false) => "数据源ID不存在，请确认".into(),
            (DataIdNotFound, true) => "Data source ID does not exist, please check".into(),
            (TableExists, false) => "结果表ID在租户下已经存在，请确认".into(),
            (TableExists, true) => "Result table ID already exists, please check".into(),
            (PlatformTable, false) => "全业务结果表不可以数字及下划线开头，请确认后重试".into(),
            (PlatformTable, true) => {
                "A platform-wide result table ID must not start with digits and an underscore"
                    .into()
            }
            (GroupNotFound, false) => "自定义时序分组不存在，请确认后重试".into(),
            (GroupNotFound, true) => {
                "Custom time series group does not exist, please check and retry".into()
            }
            (BadMetricList, false) => "自定义时序列表配置有误，请确认后重试".into(),
            (BadMetricList, true) => {
                "Custom time series metric list is invalid, please check and retry".into()
            }
            (DsNotFound, false) => "数据源不存在，请确认后重试".into(),
            (DsNotFound, true) => "Data source does not exist, please check and retry".into(),
            (DsParamMissing, false) => "找不到请求参数，请确认后重试".into(),
            (DsParamMissing, true) => "Request parameters not found, please check and retry".into(),
            (DsNameExists(n), false) => format!("数据源名称[{n}]已经存在，请确认后重试"),
            (DsNameExists(n), true) => {
                format!("Data source name [{n}] already exists, please check and retry")
            }
            (DsIdExists(id), false) => format!("数据源ID[{id}]已经存在，请确认后重试"),
            (DsIdExists(id), true) => {
                format!("Data source ID [{id}] already exists, please check and retry")
            }
            (DsLabel(s, t), false) => format!("标签[{s} | {t}]不存在，请确认后重试"),
            (DsLabel(s, t), true) => {
                format!("Label [{s} | {t}] does not exist, please check and retry")
            }
            (DsIdExhausted, false) => "数据源ID生成异常，请联系管理员协助处理".into(),
            (DsIdExhausted, true) => {
                "Data source ID allocation failed, please contact the administrator".into()
            }
        }
    }
}

impl BkError {
    /// HTTP status, envelope code and message.
    fn parts(&self, en: bool) -> (StatusCode, i64, String) {
        match self {
            BkError::Route => (
                StatusCode::NOT_FOUND,
                1306404,
                "Not found, component class not found".into(),
            ),
            BkError::Gateway(m) => (StatusCode::OK, 1306000, m.clone()),
            BkError::HeaderAuth => (
                StatusCode::OK,
                1306406,
                "Parameters error, request header X-Bkapi-Authorization is not a valid JSON format string"
                    .into(),
            ),
            BkError::Param { resource, error } => {
                let detail = error.detail.text(en);
                let text = if en {
                    format!(
                        "Resource[{resource}] request parameters are invalid: ({}) {detail}",
                        error.param
                    )
                } else {
                    format!("Resource[{resource}] 请求参数格式错误：({}) {detail}", error.param)
                };
                (StatusCode::OK, 3300002, text)
            }
            BkError::Biz(b) => (StatusCode::OK, 500, b.text(en)),
            BkError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                1306000,
                format!("Request body is larger than {limit} bytes"),
            ),
            BkError::Internal => (
                StatusCode::OK,
                1306000,
                "Component error, please contact the component developer to handle it.".into(),
            ),
            BkError::NotStored => (
                StatusCode::OK,
                1306000,
                "Component error: the metadata store cannot be written now; nothing was \
                 changed, retry later."
                    .into(),
            ),
        }
    }
}

impl BkError {
    /// A failed store of the metadata, logged with its cause.
    pub(crate) fn not_stored(e: std::io::Error) -> Self {
        tracing::error!(error = %e, "cannot store the BlueKing metadata");
        Self::NotStored
    }
}

/// The envelope of spec 3.3, with the request id also as a header.
pub(crate) fn envelope(result: Result<Value, BkError>, request_id: &str, en: bool) -> Response {
    let (status, body) = match result {
        Ok(data) => (
            StatusCode::OK,
            json!({"result": true, "code": 200, "message": "OK", "data": data,
                "request_id": request_id}),
        ),
        Err(e) => {
            let (status, code, message) = e.parts(en);
            (
                status,
                json!({"result": false, "code": code, "message": message, "data": null,
                    "request_id": request_id}),
            )
        }
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Ok(v) = request_id.parse() {
        response.headers_mut().insert("X-Bkapi-Request-Id", v);
    }
    response
}

/// Merges the query string and the body (spec 3.2): the body wins.
pub(crate) fn collect_params(query: &str, body: &[u8]) -> Result<Map<String, Value>, BkError> {
    let mut params: Map<String, Value> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    let text = body.trim_ascii_start();
    let malformed = || {
        BkError::Gateway("Request JSON string is wrong in format, which cannot be analyzed.".into())
    };
    match text.first() {
        None => {}
        Some(b'{') => match serde_json::from_slice::<Value>(text) {
            Ok(Value::Object(o)) => params.extend(o),
            _ => return Err(malformed()),
        },
        Some(b'[') => return Err(malformed()),
        Some(_) => params.extend(
            form_urlencoded::parse(text)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))),
        ),
    }
    Ok(params)
}

/// The auth values (spec 4.1).
#[derive(Debug, Default)]
struct Credentials {
    app_code: String,
    app_secret: String,
    bk_token: String,
    username: String,
}

fn credentials(headers: &HeaderMap, params: &Map<String, Value>) -> Result<Credentials, BkError> {
    let header_obj;
    let source: &Map<String, Value> = match headers.get("X-Bkapi-Authorization") {
        Some(raw) => {
            let parsed = raw
                .to_str()
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(t).ok());
            match parsed {
                Some(Value::Object(o)) => {
                    header_obj = o;
                    &header_obj
                }
                _ => return Err(BkError::HeaderAuth),
            }
        }
        None => params,
    };
    let get = |key: &str, alias: Option<&str>| -> String {
        let text = |k: &str| match source.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        text(key)
            .or_else(|| alias.and_then(text))
            .unwrap_or_default()
    };
    Ok(Credentials {
        app_code: get("bk_app_code", Some("app_code")),
        app_secret: get("bk_app_secret", Some("app_secret")),
        bk_token: get("bk_token", None),
        username: get("bk_username", Some("username")),
    })
}

/// App then user authentication (spec 4.2, 4.3): the user name and the
/// caller. Apps are the server's access keys (an app code is an access
/// key id, its secret the key's secret); `[bkmonitor] esb_apps` adds keys
/// with every grant on the `default` database. Without any key every
/// non-empty code and secret pass (the seed's placeholders work).
pub(crate) fn authenticate(
    config: &Config,
    store: &Store,
    headers: &HeaderMap,
    params: &Map<String, Value>,
) -> Result<(String, Identity), BkError> {
    let c = credentials(headers, params)?;
    let fail = |m: String| Err(BkError::Gateway(m));
    if c.app_secret.is_empty() {
        return fail(
            "Signature [bk_signature] and APP Secret [bk_app_secret] cannot be empty at the same time"
                .into(),
        );
    }
    if c.app_code.is_empty() {
        return fail("APP Code [bk_app_code] cannot be empty".into());
    }
    if let Some(open) = store.anonymous() {
        return Ok((c.username, open));
    }
    // An unknown app and a wrong secret answer alike, so keys of the
    // store cannot be probed for through this API (spec A3 had its own
    // message for unknown apps).
    let Some(identity) = store.check_secret(&c.app_code, &c.app_secret) else {
        return fail(format!(
            "APP Secret verification failed, pelase confirm if the APP Secret and APP Code [bk_app_code={}] match",
            c.app_code
        ));
    };
    // Users are checked once the operator configured how (spec 4.3).
    if config.esb_bk_tokens.is_empty() && config.esb_login_exempt_apps.is_empty() {
        return Ok((c.username, identity));
    }
    if !c.bk_token.is_empty() {
        return match config.esb_bk_tokens.get(&c.bk_token) {
            Some(user) => Ok((user.clone(), identity)),
            None => {
                fail("User authentication failed, please check if the bk_token is valid".into())
            }
        };
    }
    if !c.username.is_empty() && config.esb_login_exempt_apps.contains(&c.app_code) {
        return Ok((c.username, identity));
    }
    fail(
        "User authentication failed, please provide a valid user identity, such as bk_token, bk_username"
            .into(),
    )
}
