//! `/api/search/lookup` on a cluster node: the series come from the
//! shards' owners (a series listing, merged by the querier), the names'
//! existence from tag listings, and the TSUIDs from the UIDs every node
//! shares (docs/cluster.md, "UIDs").

use super::{Lookup, found_json, matching_series, unresolved};
use crate::Api;
use crate::error::OpenTsdbError;
use crate::query::query_error;
use serde_json::Value;
use sundial_model::{Listed, Listing, Names};

/// The first `l.limit` series found, and how many there are.
pub(super) fn lookup(
    api: &Api,
    l: &Lookup,
    any_metric: bool,
) -> Result<(Vec<Value>, usize), OpenTsdbError> {
    let budget = api.query_budget();
    let list = |names: Names, prefix: &str, max: usize| -> Result<Listed, OpenTsdbError> {
        let listing = Listing {
            names,
            prefix: prefix.to_owned(),
            range: None,
            max,
        };
        api.reads
            .listing(&api.db, &listing, &budget)
            .map_err(query_error)
    };
    let metric = if any_metric { None } else { l.metric.clone() };
    if let Some(m) = &metric {
        let keys = list(
            Names::TagKeys {
                metric: Some(m.clone()),
            },
            "",
            0,
        )?;
        if !keys.known {
            return Err(unresolved());
        }
    }
    // As a single node's UID tables do: every name asked for was written
    // somewhere (the first name with a prefix is the prefix itself).
    for (k, v) in &l.pairs {
        let seen = |names: Names, name: &str| -> Result<bool, OpenTsdbError> {
            Ok(name == "*" || list(names, name, 0)?.names.contains(name))
        };
        if !seen(Names::TagKeys { metric: None }, k)?
            || !seen(Names::TagValues { metric: None }, v)?
        {
            return Err(unresolved());
        }
    }
    let found = matching_series(api, l, any_metric)?;
    let total = found.len();
    let shown: Vec<_> = found.into_iter().take(l.limit).collect();
    let tsuids = match api.shared_tables() {
        Ok(Some(shared)) => {
            let series: Vec<_> = shown.iter().map(|k| (k.metric.as_str(), &k.tags)).collect();
            shared.tsuids(&series)?
        }
        _ => vec![None; shown.len()],
    };
    Ok((
        shown
            .into_iter()
            .zip(tsuids)
            .map(|(k, t)| found_json(k, t))
            .collect(),
        total,
    ))
}
