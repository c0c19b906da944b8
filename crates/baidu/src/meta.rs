//! Metric, field and tag listings (spec 8).

use super::error::BaiduError;
use super::{Api, json_ok, param, path_segment, time};
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::{Map, Value, json};
use sundial_api::access::Action;
use sundial_model::{Kind, Listed, Listing, Names, Timestamp};
use sundial_query::Budget;

/// `GET /v1/metric`: metrics with at least one stored point.
pub(super) async fn metrics(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
    let db = api.database(&req.into_parts().0, Action::Read).await?;
    let listed = list(&api, db, Names::Metrics, Some((0, Timestamp::MAX))).await?;
    let names = within(listed.names.into_iter().collect(), api.max_listed())?;
    Ok(json_ok(&json!({ "metrics": names })))
}

/// `GET /v1/metric/{metric}/field`.
pub(super) async fn fields(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
    let parts = req.into_parts().0;
    let db = api.database(&parts, Action::Read).await?;
    let metric = path_segment(&parts, 3)?;
    let names = Names::Fields {
        metric: Some(metric.clone()),
    };
    let listed = list(&api, db, names, None).await?;
    if !listed.known {
        return Err(BaiduError::not_found(format!(
            "metric {metric} does not exist"
        )));
    }
    if listed.fields.len() > api.max_listed() {
        return Err(too_many(api.max_listed()));
    }
    let fields: Map<String, Value> = listed
        .fields
        .into_iter()
        .map(|(f, k)| {
            let kind = match k {
                Kind::Numeric => "Number",
                Kind::String => "String",
                Kind::Bytes => "Bytes",
            };
            (f, json!({ "type": kind }))
        })
        .collect();
    Ok(json_ok(&json!({ "fields": fields })))
}

/// `GET /v1/metric/{metric}/tag?start=&end=`: tags of series with data in
/// the range.
pub(super) async fn tags(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
    let parts = req.into_parts().0;
    let db = api.database(&parts, Action::Read).await?;
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
    let range = (bound("start", 0)?, bound("end", Timestamp::MAX)?);
    let names = Names::Tags {
        metric: metric.clone(),
    };
    let listed = list(&api, db, names, Some(range)).await?;
    if !listed.known {
        return Err(BaiduError::not_found(format!(
            "metric {metric} does not exist"
        )));
    }
    if listed.count() > api.max_listed() {
        return Err(too_many(api.max_listed()));
    }
    Ok(json_ok(&json!({ "tags": listed.tags })))
}

/// One listing through the node's reads (this node's database, or the
/// cluster's shards), in a query slot.
async fn list(
    api: &Api,
    db: sundial_storage::Db,
    names: Names,
    range: Option<(Timestamp, Timestamp)>,
) -> Result<Listed, BaiduError> {
    let _slot = api.limits.query_slot().await?;
    let listing = Listing {
        names,
        prefix: String::new(),
        range,
        max: api.max_listed(),
    };
    let (reads, timeout) = (api.reads.clone(), api.query_timeout());
    super::run_blocking(move || {
        let budget = Budget::new(timeout, usize::MAX);
        Ok(reads.listing(&db, &listing, &budget)?)
    })
    .await
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
