//! Per-series halves that an owner and a querier reading blocks compute
//! alike (docs/cluster.md, "The querier"), so both answer in one form.

use sundial_model::StatsQuery;
use sundial_model::series_query::RowValues;
use sundial_query::Budget;
use sundial_query::Latest;
use sundial_query::series_query::SeriesHalf;
use sundial_query::stats::{GroupedStats, grouped_by};
use sundial_storage::Db;

/// Newest points as one-row halves of a single field.
pub(crate) fn newest_half(found: impl IntoIterator<Item = Latest>) -> SeriesHalf {
    let mut half = SeriesHalf {
        kinds: vec![None],
        ..SeriesHalf::default()
    };
    for (key, t, v) in found {
        half.series
            .push((key, vec![(t, RowValues::from_vec(vec![Some(v)]))]));
    }
    half
}

/// SQL's statistics per group and bucket over `db`, and the stored points
/// they read.
pub(crate) fn counted_stats(
    db: &Db,
    query: &StatsQuery,
    budget: &Budget,
) -> sundial_query::Result<(GroupedStats, u64)> {
    let before = budget.left();
    let groups = grouped_by(db, query, budget)?;
    Ok((groups, before.saturating_sub(budget.left()) as u64))
}
