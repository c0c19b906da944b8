//! The router's first step: a write's points split by the shard their
//! series belongs to, each point remembering its place in the request so
//! the owners' per-point answers can be put back in request order.

use crate::shard::shard_of;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use sundial_model::{SeriesKey, WritePoint};

/// The points of one shard, in request order, with their request indices.
#[derive(Debug, Clone, Default)]
pub struct ShardPoints {
    pub indices: Vec<usize>,
    pub points: Vec<WritePoint>,
}

/// Splits `points` by shard among `shards`. A series' shard is computed
/// once per request: adapters share one key among a series' points.
pub fn split_by_shard(points: Vec<WritePoint>, shards: u32) -> BTreeMap<u32, ShardPoints> {
    // By address: every point moves into `out`, so no key is freed and
    // no address reused while the loop runs.
    let mut shard_of_key: HashMap<*const SeriesKey, u32> = HashMap::new();
    let mut out: BTreeMap<u32, ShardPoints> = BTreeMap::new();
    for (index, point) in points.into_iter().enumerate() {
        let shard = *shard_of_key
            .entry(Arc::as_ptr(&point.series))
            .or_insert_with(|| shard_of(&point.series, shards));
        let part = out.entry(shard).or_default();
        part.indices.push(index);
        part.points.push(point);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sundial_model::{FieldValue, ValueInput};

    #[test]
    fn every_point_goes_to_its_series_shard_in_request_order() {
        let keys: Vec<Arc<SeriesKey>> = (0..50)
            .map(|h| {
                Arc::new(SeriesKey::new(
                    "cpu",
                    vec![("host".to_owned(), format!("h{h}"))],
                ))
            })
            .collect();
        // Two keys of one series that are not the same allocation still
        // land together.
        let twin = Arc::new((*keys[7]).clone());
        let points: Vec<WritePoint> = (0..1000)
            .map(|i| WritePoint {
                series: if i == 999 {
                    twin.clone()
                } else {
                    keys[i % 50].clone()
                },
                field: "value".into(),
                timestamp: i as i64,
                value: ValueInput::Typed(FieldValue::Long(i as i64)),
            })
            .collect();
        let split = split_by_shard(points, 8);
        let mut seen = Vec::new();
        for (shard, part) in &split {
            assert_eq!(part.indices.len(), part.points.len());
            assert!(part.indices.windows(2).all(|w| w[0] < w[1]), "order kept");
            for (i, p) in part.indices.iter().zip(&part.points) {
                assert_eq!(shard_of(&p.series, 8), *shard);
                assert_eq!(p.timestamp, *i as i64, "index names the point");
            }
            seen.extend(part.indices.iter().copied());
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert!(split.len() > 1, "50 series over 8 shards use several");
        assert!(split_by_shard(Vec::new(), 8).is_empty());
    }
}
