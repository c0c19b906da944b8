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
        let gauges = [
            (
                "cluster_shards_owned",
                "Shards this ingester owns and serves now",
                self.0.shards().len(),
            ),
            (
                "cluster_shards_unconfirmed",
                "Owned shards whose lease PostgreSQL has not confirmed lately (it cannot be reached)",
                self.0.unconfirmed().len(),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            let sample = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(sample)?;
        }
        Ok(())
    }
}
