//! `/api/uid/tsmeta` on a cluster node: the series from the owners (a
//! series listing), their TSUIDs and each name's UID and creation time
//! from the UIDs every node shares (docs/cluster.md, "UIDs").

use super::ts_json;
use crate::Api;
use crate::error::OpenTsdbError;
use crate::query::query_error;
use crate::uids::UidKind;
use crate::uids::shared::SharedTables;
use serde_json::Value;
use sundial_model::{Listing, Names, SeriesKey, TagMatch};

/// The meta object of the series `tsuid` names, if it was written.
pub(super) fn by_tsuid(
    api: &Api,
    shared: &SharedTables<'_>,
    tsuid: String,
) -> Result<Option<Value>, OpenTsdbError> {
    let Some(key) = shared.resolve(&[tsuid])?.into_iter().flatten().next() else {
        return Ok(None);
    };
    let exactly = key
        .tags
        .iter()
        .map(|(k, v)| TagMatch::Eq {
            key: k.to_string(),
            value: v.to_string(),
        })
        .collect();
    let found = series(api, &key.metric, exactly, usize::MAX)?;
    if !found.contains(&key) {
        return Ok(None);
    }
    Ok(objects(shared, &[key])?.into_iter().next())
}

/// The meta objects of `metric`'s series that `predicates` select, in
/// tag order; more than `limits.max_result_rows` is refused.
pub(super) fn by_series(
    api: &Api,
    shared: &SharedTables<'_>,
    metric: String,
    predicates: Vec<TagMatch>,
) -> Result<Vec<Value>, OpenTsdbError> {
    let max = api.limits.config.max_result_rows;
    let keys = series(api, &metric, predicates, max)?;
    if keys.len() > max {
        return Err(OpenTsdbError::bad_request(format!(
            "more than {max} series match; at most {max} are listed (limits.max_result_rows)"
        )));
    }
    objects(shared, &keys)
}

/// The keys of `metric`'s series that `tags` select (at most `max + 1`);
/// a metric never written is an error, as on a single node.
fn series(
    api: &Api,
    metric: &str,
    tags: Vec<TagMatch>,
    max: usize,
) -> Result<Vec<SeriesKey>, OpenTsdbError> {
    let listing = Listing {
        names: Names::Series {
            metric: Some(metric.to_owned()),
            tags,
            any_values: Vec::new(),
        },
        prefix: String::new(),
        range: None,
        max,
    };
    let listed = api
        .reads
        .listing(&api.db, &listing, &api.query_budget())
        .map_err(query_error)?;
    if !listed.known {
        return Err(OpenTsdbError::missing(format!(
            "No such name for 'metrics': '{metric}'"
        )));
    }
    Ok(listed.series)
}

/// Each series' meta object, its names numbered where they were not.
fn objects(shared: &SharedTables<'_>, keys: &[SeriesKey]) -> Result<Vec<Value>, OpenTsdbError> {
    let series: Vec<_> = keys.iter().map(|k| (k.metric.as_str(), &k.tags)).collect();
    let tsuids = shared.tsuids(&series)?;
    let tags = || keys.iter().flat_map(|k| k.tags.iter());
    let metrics = shared.described(UidKind::Metric, keys.iter().map(|k| k.metric.as_str()))?;
    let tag_keys = shared.described(UidKind::TagK, tags().map(|(k, _)| k.as_str()))?;
    let tag_values = shared.described(UidKind::TagV, tags().map(|(_, v)| v.as_str()))?;
    Ok(keys
        .iter()
        .zip(tsuids)
        .filter_map(|(key, tsuid)| {
            ts_json(key, tsuid?, |kind, name| {
                let of_kind = match kind {
                    UidKind::Metric => &metrics,
                    UidKind::TagK => &tag_keys,
                    UidKind::TagV => &tag_values,
                };
                of_kind.get(name).copied()
            })
        })
        .collect())
}
