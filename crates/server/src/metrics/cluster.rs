//! A cluster ingester's shards on `/metrics`: what operators watch while
//! shards move, and what tests wait on.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use sundial_cluster::Ingester;

#[derive(Debug)]
pub(super) struct ShardsCollector(pub(super) Ingester);

impl Collector for ShardsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let owned = ConstGauge::new(self.0.shards().len() as i64);
        let sample = encoder.encode_descriptor(
            "cluster_shards_owned",
            "Shards this ingester owns and serves now",
            None,
            owned.metric_type(),
        )?;
        owned.encode(sample)
    }
}
