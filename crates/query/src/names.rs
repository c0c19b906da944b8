//! OpenTSDB's aggregator names (`/api/aggregators`, the `aggregator`
//! field of a query) and the aggregators they stand for.

use sundial_model::Aggregator;

/// The OpenTSDB name of an aggregator.
pub fn aggregator_name(a: Aggregator) -> &'static str {
    match a {
        Aggregator::None => "none",
        Aggregator::Sum => "sum",
        Aggregator::ZimSum => "zimsum",
        Aggregator::Avg => "avg",
        Aggregator::Min => "min",
        Aggregator::Max => "max",
        Aggregator::MimMin => "mimmin",
        Aggregator::MimMax => "mimmax",
        Aggregator::Dev => "dev",
        Aggregator::Count => "count",
        Aggregator::First => "first",
        Aggregator::Last => "last",
        Aggregator::Median => "median",
        Aggregator::Mult => "mult",
        Aggregator::Diff => "diff",
        Aggregator::SquareSum => "squareSum",
        Aggregator::PfSum => "pfsum",
        Aggregator::Percentile {
            per_mille,
            estimator,
        } => PERCENTILES
            .iter()
            .find(|(_, p, e)| *p == per_mille && *e == estimator)
            .map_or("p50", |(n, _, _)| *n),
    }
}

/// Every aggregator by name (OpenTSDB's list, `/api/aggregators`).
pub fn aggregator_by_name(name: &str) -> Option<Aggregator> {
    let simple = [
        Aggregator::None,
        Aggregator::Sum,
        Aggregator::ZimSum,
        Aggregator::Avg,
        Aggregator::Min,
        Aggregator::Max,
        Aggregator::MimMin,
        Aggregator::MimMax,
        Aggregator::Dev,
        Aggregator::Count,
        Aggregator::First,
        Aggregator::Last,
        Aggregator::Median,
        Aggregator::Mult,
        Aggregator::Diff,
        Aggregator::SquareSum,
        Aggregator::PfSum,
    ];
    simple
        .into_iter()
        .find(|a| aggregator_name(*a) == name)
        .or_else(|| {
            PERCENTILES
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, per_mille, estimator)| Aggregator::Percentile {
                    per_mille: *per_mille,
                    estimator: *estimator,
                })
        })
}

/// All aggregator names, sorted.
pub fn aggregator_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = [
        "none",
        "sum",
        "zimsum",
        "avg",
        "min",
        "max",
        "mimmin",
        "mimmax",
        "dev",
        "count",
        "first",
        "last",
        "median",
        "mult",
        "diff",
        "squareSum",
        "pfsum",
    ]
    .into_iter()
    .chain(PERCENTILES.iter().map(|(n, _, _)| *n))
    .collect();
    names.sort_unstable();
    names
}

const PERCENTILES: [(&str, u16, sundial_model::Estimator); 18] = {
    use sundial_model::Estimator::{Legacy, R3, R7};
    [
        ("p50", 500, Legacy),
        ("p75", 750, Legacy),
        ("p90", 900, Legacy),
        ("p95", 950, Legacy),
        ("p99", 990, Legacy),
        ("p999", 999, Legacy),
        ("ep50r3", 500, R3),
        ("ep75r3", 750, R3),
        ("ep90r3", 900, R3),
        ("ep95r3", 950, R3),
        ("ep99r3", 990, R3),
        ("ep999r3", 999, R3),
        ("ep50r7", 500, R7),
        ("ep75r7", 750, R7),
        ("ep90r7", 900, R7),
        ("ep95r7", 950, R7),
        ("ep99r7", 990, R7),
        ("ep999r7", 999, R7),
    ]
};
