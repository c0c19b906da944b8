//! The UID side of `/api/query` (spec 9.3, 9.13): sub-queries naming
//! series by TSUID, `showTSUIDs`, and metrics known only by UID.

use super::super::Api;
use super::super::error::OpenTsdbError;
use super::super::uids::{UidKind, Uids, split_tsuid};
use super::{Request, query_error};
use sundial_api::reads::Reads;
use sundial_model::{Query, SeriesKey, SeriesResult, Tags};
use sundial_query::Budget;
use sundial_storage::Db;

/// Turns each TSUID sub-query into its metric and exact series. One that
/// names no known series is left with an empty metric and answers nothing.
pub(super) fn resolve(api: &Api, request: &mut Request) -> Result<(), OpenTsdbError> {
    let shared = api.shared_tables();
    if request.show_tsuids {
        // A cluster node without the shared UIDs cannot print them.
        shared.as_ref().map_err(Clone::clone)?;
    }
    for (q, list) in request.queries.iter_mut().zip(&request.tsuids) {
        let Some(list) = list else { continue };
        for t in list {
            if split_tsuid(t).is_none() {
                return Err(OpenTsdbError::bad_request(format!("Invalid TSUID: {t}")));
            }
        }
        let keys: Vec<SeriesKey> = match shared.as_ref().map_err(Clone::clone)? {
            Some(shared) => shared.resolve(list)?.into_iter().flatten().collect(),
            None => api.db.read(|mut view| {
                api.uids.catch_up(&mut view);
                api.uids.with(&view, |t| {
                    list.iter()
                        .filter_map(|id| t.resolve(id))
                        .collect::<Vec<_>>()
                })
            }),
        };
        let Some(first) = keys.first() else {
            q.metric.clear();
            continue;
        };
        if keys.iter().any(|k| k.metric != first.metric) {
            return Err(OpenTsdbError::bad_request(
                "All TSUIDs must belong to the same metric",
            ));
        }
        q.metric = first.metric.to_string();
        q.only_series = Some(keys.into_iter().map(|k| k.tags).collect());
    }
    Ok(())
}

/// Runs one sub-query; a metric that has a UID but no series yet answers
/// nothing rather than "no such name" (spec 15.1).
pub(crate) fn execute(
    (db, reads): (&Db, &Reads),
    uids: &Uids,
    q: &Query,
    budget: &Budget,
) -> Result<Vec<SeriesResult>, OpenTsdbError> {
    if q.metric.is_empty() {
        return Ok(Vec::new());
    }
    match reads.opentsdb(db, q, budget) {
        Err(sundial_query::Error::UnknownMetric { metric }) => {
            let known = db.read(|mut view| {
                uids.catch_up(&mut view);
                uids.with(&view, |t| t.uid(UidKind::Metric, &metric).is_some())
            });
            if known {
                Ok(Vec::new())
            } else {
                Err(query_error(sundial_query::Error::UnknownMetric { metric }))
            }
        }
        other => other.map_err(query_error),
    }
}

/// Per result in output order, the sorted TSUIDs of its series.
pub(super) fn of_results(
    api: &Api,
    results: &[Vec<SeriesResult>],
) -> Result<Vec<Vec<String>>, OpenTsdbError> {
    let results: Vec<&SeriesResult> = results.iter().flatten().collect();
    let sorted = |mut list: Vec<String>| {
        list.sort_unstable();
        list
    };
    if let Some(shared) = api.shared_tables()? {
        let series: Vec<(&str, &Tags)> = results
            .iter()
            .flat_map(|r| r.series.iter().map(|tags| (r.metric.as_str(), tags)))
            .collect();
        let mut tsuids = shared.tsuids(&series)?.into_iter();
        return Ok(results
            .iter()
            .map(|r| sorted(tsuids.by_ref().take(r.series.len()).flatten().collect()))
            .collect());
    }
    Ok(api.db.read(|mut view| {
        api.uids.catch_up(&mut view);
        api.uids.with(&view, |t| {
            results
                .iter()
                .map(|r| {
                    sorted(
                        r.series
                            .iter()
                            .filter_map(|tags| t.tsuid(&r.metric, tags))
                            .collect(),
                    )
                })
                .collect()
        })
    }))
}
