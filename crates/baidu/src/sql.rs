//! `/v1/row` and `GET /v1/datapoint?sql=` (spec 10): SQL over the
//! resolved database, on the `sundial-sql` engine; on a cluster node over
//! the shards' owners.

use super::error::BaiduError;
use super::{Api, param};
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine as _;
use serde::ser::{Serialize, SerializeMap, Serializer};
use sundial_api::access::Action;
use sundial_sql::{Output, Value};
use sundial_storage::Db;

/// `GET /v1/row?sql=`.
pub(super) async fn get(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
    let parts = req.into_parts().0;
    let db = api.database(&parts, Action::Read).await?;
    let sql = param(&parts, "sql")
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| BaiduError::missing("sql"))?;
    run(&api, &db, &sql).await
}

/// `PUT /v1/row?sql` with the statement in the body; a non-empty `sql`
/// parameter wins.
pub(super) async fn put(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
    let (parts, body) = req.into_parts();
    let db = api.database(&parts, Action::Read).await?;
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
    let out = match api.reads.remote_reads() {
        None => sundial_sql::run(db, sql, opts).await,
        Some(remote) => sundial_sql::run_remote(remote.clone(), db.name(), sql, opts).await,
    }
    .map_err(|e| BaiduError::classified(e.class(), &e))?;
    // Sized for rows of a few short values, so the buffer seldom grows.
    let mut body = Vec::with_capacity(64 + out.len() * 16 * out.columns.len().max(1));
    sundial_api::json::write_into(&mut body, &Body(&out)).map_err(|e| BaiduError::internal(&e))?;
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

/// `{"columns": [{"name"}], "rows": [[...]]}`, written straight from the
/// result's columns (no JSON tree, and no row of owned values, first).
struct Body<'a>(&'a Output);

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        let columns: Vec<Column<'_>> = self.0.columns.iter().map(|name| Column { name }).collect();
        map.serialize_entry("columns", &columns)?;
        map.serialize_entry("rows", &Rows(self.0))?;
        map.end()
    }
}

#[derive(serde::Serialize)]
struct Column<'a> {
    name: &'a str,
}

struct Rows<'a>(&'a Output);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.rows().map(Row))
    }
}

struct Row<'a>(sundial_sql::Row<'a>);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.values().map(Json))
    }
}

/// Values as in query results (spec 10.3): Bytes as base64, a double
/// that is not finite as null.
struct Json<'a>(Value<'a>);

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => serializer.serialize_unit(),
            Value::Long(i) => serializer.serialize_i64(i),
            Value::Double(d) if d.is_finite() => serializer.serialize_f64(d),
            Value::Double(_) => serializer.serialize_unit(),
            Value::Text(s) => serializer.serialize_str(s),
            Value::Bytes(b) => {
                serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
            Value::Bool(b) => serializer.serialize_bool(b),
        }
    }
}
