//! `/v1/row` and `GET /v1/datapoint?sql=` (spec 10): SQL over the
//! resolved database, on the `sundial-sql` engine.

use super::error::BaiduError;
use super::{Api, param};
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};
use sundial_api::access::Action;
use sundial_sql::Cell;
use sundial_storage::Db;

/// `GET /v1/row?sql=`.
pub(super) async fn get(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
    let parts = req.into_parts().0;
    let db = api.database(&parts, Action::Read)?;
    let sql = param(&parts, "sql")
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| BaiduError::missing("sql"))?;
    run(&api, &db, &sql).await
}

/// `PUT /v1/row?sql` with the statement in the body; a non-empty `sql`
/// parameter wins.
pub(super) async fn put(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
    let (parts, body) = req.into_parts();
    let db = api.database(&parts, Action::Read)?;
    let from_param = param(&parts, "sql").filter(|s| !s.trim().is_empty());
    let sql = match from_param {
        Some(s) => s,
        None => {
            let bytes =
                sundial_api::body::read(&parts.headers, body, api.config.max_body_bytes).await?;
            String::from_utf8(bytes.to_vec())
                .map_err(|_| BaiduError::invalid("the SQL statement is not UTF-8"))?
        }
    };
    if sql.trim().is_empty() {
        return Err(BaiduError::missing("sql"));
    }
    run(&api, &db, &sql).await
}

/// Runs `sql` and renders `{columns, rows}`.
pub(super) async fn run(api: &Api, db: &Db, sql: &str) -> Result<Response, BaiduError> {
    let _slot = api.limits.query_slot().await?;
    let opts = sundial_sql::Options {
        max_rows: api.limits.config.max_result_rows,
        max_scan_points: api.max_query_points(),
        timeout: api.query_timeout(),
        memory_bytes: api.config.sql_memory_bytes,
        bucket_width: width,
    };
    let out = sundial_sql::run(db, sql, opts)
        .await
        .map_err(|e| BaiduError::classified(e.class(), &e))?;
    let columns: Vec<Value> = out.columns.iter().map(|c| json!({"name": c})).collect();
    let rows: Vec<Value> = out
        .rows
        .into_iter()
        .map(|row| Value::Array(row.into_iter().map(value).collect()))
        .collect();
    let body = serde_json::to_vec(&json!({"columns": columns, "rows": rows}))
        .map_err(|e| BaiduError::internal(&e))?;
    let mut response = super::json_bytes(body);
    response
        .extensions_mut()
        .insert(sundial_api::Scanned(out.scanned_points as u64));
    Ok(response)
}

/// `time_bucket` widths: non-calendar durations (spec 6.3).
fn width(text: &str) -> Result<i64, String> {
    super::time::fixed_span(text, "time_bucket width", 1).map_err(|e| e.message)
}

/// Values as in query results (spec 10.3): Bytes as base64.
fn value(c: Cell) -> Value {
    match c {
        Cell::Null => Value::Null,
        Cell::Long(i) => i.into(),
        Cell::Double(d) => serde_json::Number::from_f64(d).map_or(Value::Null, Value::Number),
        Cell::Text(s) => s.into(),
        Cell::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b).into(),
        Cell::Bool(b) => b.into(),
    }
}
