//! A cluster ingester's shards, a compactor's work and a querier's shard
//! copies on `/metrics`: what operators watch while shards move, and what
//! tests wait on.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::Arc;
use sundial_cluster::{Compactor, Ingester, Replicas};

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

#[derive(Debug)]
pub(super) struct CompactorCollector(pub(super) Compactor);

impl Collector for CompactorCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let leader = ConstGauge::new(i64::from(self.0.is_leader()));
        let sample = encoder.encode_descriptor(
            "cluster_compactor_leader",
            "1 while this compactor holds the compactor lease (the one that works)",
            None,
            leader.metric_type(),
        )?;
        leader.encode(sample)?;
        let (rounds, retired, deleted) = self.0.counts();
        let counters = [
            (
                "cluster_compaction_rounds",
                "Compaction rounds this compactor finished",
                rounds,
            ),
            (
                "cluster_blocks_retired",
                "Blocks the shards' owners replaced at this compactor's request",
                retired,
            ),
            (
                "cluster_retired_objects_deleted",
                "Objects of replaced blocks this compactor deleted after the grace period",
                deleted,
            ),
            (
                "cluster_orphaned_objects_deleted",
                "Objects nothing named (uploads never recorded) this compactor deleted",
                self.0.orphans_deleted(),
            ),
        ];
        encode_counters(&mut encoder, &counters)
    }
}

#[derive(Debug)]
pub(super) struct CopiesCollector(pub(super) Arc<Replicas>);

impl Collector for CopiesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (loaded, here, by_owners) = self.0.counts();
        let counters = [
            (
                "cluster_shard_copies_loaded",
                "Shard databases this node copied from their owners' checkpoints",
                loaded,
            ),
            (
                "cluster_shard_reads_here",
                "Query halves over one shard run here, on a copy and the owner's newer points",
                here,
            ),
            (
                "cluster_shard_reads_by_owners",
                "Query halves over one shard its owner ran (the copy could not stand for it)",
                by_owners,
            ),
        ];
        encode_counters(&mut encoder, &counters)
    }
}

/// Counters as (name, help, value).
fn encode_counters(
    encoder: &mut DescriptorEncoder<'_>,
    counters: &[(&str, &str, u64)],
) -> Result<(), std::fmt::Error> {
    for (name, help, value) in counters {
        let counter = ConstCounter::new(*value);
        let sample = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
        counter.encode(sample)?;
    }
    Ok(())
}
