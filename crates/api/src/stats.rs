//! Server statistics an API can list (OpenTSDB's `/api/stats` and telnet
//! `stats`): the server installs the source, which reads the same
//! counters as `/metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;

/// One statistic: a metric, its value now and its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    pub metric: String,
    pub value: f64,
    pub tags: BTreeMap<String, String>,
}

/// Reads the statistics at the moment of a request.
#[derive(Clone)]
pub struct StatsSource(Arc<dyn Fn() -> Vec<Stat> + Send + Sync>);

impl StatsSource {
    pub fn new(read: impl Fn() -> Vec<Stat> + Send + Sync + 'static) -> Self {
        Self(Arc::new(read))
    }

    pub fn read(&self) -> Vec<Stat> {
        (self.0)()
    }
}

impl std::fmt::Debug for StatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatsSource")
    }
}
