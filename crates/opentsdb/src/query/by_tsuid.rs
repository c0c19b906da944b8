//! The UID side of `/api/query` (spec 9.3, 9.13): sub-queries naming
//! series by TSUID, `showTSUIDs`, and metrics known only by UID.

use super::super::Api;
use super::super::error::OpenTsdbError;
use super::super::uids::{NOT_ON_CLUSTER, UidKind, Uids, split_tsuid};
use super::{Request, query_error};
use sundial_api::reads::Reads;
use sundial_model::{Query, SeriesResult};
use sundial_query::Budget;
use sundial_storage::Db;

/// A cluster node keeps no UID tables: a request naming series by TSUID
/// or asking for them is refused rather than answered without them.
pub(super) fn refuse_on_cluster(request: &Request) -> Result<(), OpenTsdbError> {
    if request.show_tsuids || request.tsuids.iter().any(Option::is_some) {
        return Err(OpenTsdbError::not_implemented(NOT_ON_CLUSTER));
    }
    Ok(())
}

/// Turns each TSUID sub-query into its metric and exact series. One that
/// names no known series is left with an empty metric and answers nothing.
pub(super) fn resolve(db: &Db, uids: &Uids, request: &mut Request) -> Result<(), OpenTsdbError> {
    for (q, list) in request.queries.iter_mut().zip(&request.tsuids) {
        let Some(list) = list else { continue };
        for t in list {
            if split_tsuid(t).is_none() {
                return Err(OpenTsdbError::bad_request(format!("Invalid TSUID: {t}")));
            }
        }
        let keys = db.read(|mut view| {
            uids.catch_up(&mut view);
            uids.with(&view, |t| {
                list.iter()
                    .filter_map(|id| t.resolve(id))
                    .collect::<Vec<_>>()
            })
        });
        let Some(first) = keys.first() else {
            q.metric.clear();
            continue;
        };
        if keys.iter().any(|k| k.metric != first.metric) {
            return Err(OpenTsdbError::bad_request(
                "All TSUIDs must belong to the same metric",
            ));
        }
        q.metric.clone_from(&first.metric);
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
pub(super) fn of_results(api: &Api, results: &[Vec<SeriesResult>]) -> Vec<Vec<String>> {
    api.db.read(|mut view| {
        api.uids.catch_up(&mut view);
        api.uids.with(&view, |t| {
            results
                .iter()
                .flatten()
                .map(|r| {
                    let mut list: Vec<String> = r
                        .series
                        .iter()
                        .filter_map(|tags| t.tsuid(&r.metric, tags))
                        .collect();
                    list.sort_unstable();
                    list
                })
                .collect()
        })
    })
}
