//! Metric, field and tag listings (spec 8).

use super::error::BaiduError;
use super::{Api, json_ok, param, path_segment, time};
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::{Map, Value, json};
use sundial_api::access::Action;
use sundial_model::{Kind, Timestamp};

/// `GET /v1/metric`: metrics with at least one stored point.
pub(super) async fn metrics(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
    let db = api.database(&req.into_parts().0, Action::Read)?;
    let _slot = api.limits.query_slot().await?;
    let max = api.limits.config.max_result_rows;
    let names = super::run_blocking(move || {
        let names: Vec<String> = db.read(|v| {
            v.metrics_in(0, Timestamp::MAX)
                .into_iter()
                .map(str::to_owned)
                .collect()
        });
        within(names, max)
    })
    .await?;
    Ok(json_ok(&json!({ "metrics": names })))
}

/// `GET /v1/metric/{metric}/field`.
pub(super) async fn fields(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
    let parts = req.into_parts().0;
    let db = api.database(&parts, Action::Read)?;
    let metric = path_segment(&parts, 3)?;
    let _slot = api.limits.query_slot().await?;
    let fields = db.read(|v| {
        v.has_metric(&metric).then(|| {
            v.fields(&metric)
                .into_iter()
                .map(|(f, k)| {
                    let kind = match k {
                        Kind::Numeric => "Number",
                        Kind::String => "String",
                        Kind::Bytes => "Bytes",
                    };
                    (f.to_owned(), json!({ "type": kind }))
                })
                .collect::<Map<String, Value>>()
        })
    });
    let fields =
        fields.ok_or_else(|| BaiduError::not_found(format!("metric {metric} does not exist")))?;
    Ok(json_ok(&json!({ "fields": fields })))
}

/// `GET /v1/metric/{metric}/tag?start=&end=`: tags of series with data in
/// the range.
pub(super) async fn tags(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
    let parts = req.into_parts().0;
    let db = api.database(&parts, Action::Read)?;
    let metric = path_segment(&parts, 3)?;
    let bound = |name: &str, default: Timestamp| -> Result<Timestamp, BaiduError> {
        match param(&parts, name) {
            None => Ok(default),
            Some(text) => match text.trim().parse::<u64>() {
                Ok(n) => time::from_digits(n, name),
                Err(_) => Err(BaiduError::invalid(format!(
                    "{name} must be an integer timestamp, got {text:?}"
                ))),
            },
        }
    };
    let start = bound("start", 0)?;
    let end = bound("end", Timestamp::MAX)?;
    let _slot = api.limits.query_slot().await?;
    let max = api.limits.config.max_result_rows;
    let tags = super::run_blocking(move || {
        let mut listed = 0usize;
        let tags = db.read(|v| -> Result<Option<Map<String, Value>>, BaiduError> {
            if !v.has_metric(&metric) {
                return Ok(None);
            }
            let mut out = Map::new();
            for k in v.tag_keys_in(&metric, start, end) {
                let values = v.tag_values_in(&metric, k, start, end);
                listed += values.len();
                if listed > max {
                    return Err(too_many(max));
                }
                out.insert(k.to_owned(), json!(values));
            }
            Ok(Some(out))
        })?;
        tags.ok_or_else(|| BaiduError::not_found(format!("metric {metric} does not exist")))
    })
    .await?;
    Ok(json_ok(&json!({ "tags": tags })))
}

fn too_many(max: usize) -> BaiduError {
    BaiduError::invalid(format!(
        "the listing holds more than {max} names (limits.max_result_rows); narrow the time range"
    ))
}

/// A listing of at most `max` names.
fn within(names: Vec<String>, max: usize) -> Result<Vec<String>, BaiduError> {
    if names.len() > max {
        return Err(too_many(max));
    }
    Ok(names)
}
