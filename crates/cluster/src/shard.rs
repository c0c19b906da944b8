//! Series to shard: a fixed number of shards (`cluster.shards`), each
//! series in the one its canonical key hashes to. The hash is CRC-32 of
//! the metric and the sorted tags, so every node, version and restart
//! agrees without asking anyone.

use sundial_model::SeriesKey;

/// The shard of `key` among `shards` (at least 1).
pub fn shard_of(key: &SeriesKey, shards: u32) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key.metric.as_bytes());
    for (k, v) in key.tags.iter() {
        // Separators no name contains, so ("a", "bc") and ("ab", "c")
        // hash apart.
        h.update(b"\0");
        h.update(k.as_bytes());
        h.update(b"\x01");
        h.update(v.as_bytes());
    }
    h.finalize() % shards.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(metric: &str, tags: &[(&str, &str)]) -> SeriesKey {
        SeriesKey::new(
            metric,
            tags.iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        )
    }

    #[test]
    fn tag_order_does_not_move_a_series() {
        let a = key("cpu", &[("host", "a"), ("dc", "x")]);
        let b = key("cpu", &[("dc", "x"), ("host", "a")]);
        assert_eq!(shard_of(&a, 64), shard_of(&b, 64));
    }

    #[test]
    fn pinned_values_keep_routing_stable_across_versions() {
        // Changing the hash moves every series to another shard: these
        // values (Python's zlib.crc32 of the same bytes) must never change.
        assert_eq!(
            shard_of(&key("cpu", &[("host", "a")]), 1 << 31),
            995_117_566
        );
        assert_eq!(shard_of(&key("cpu", &[("host", "a")]), 64), 62);
        assert_eq!(shard_of(&key("cpu", &[("host", "a"), ("dc", "x")]), 64), 26);
        assert_eq!(shard_of(&key("cpu", &[]), 0), 0);
    }

    #[test]
    fn series_spread_over_all_shards() {
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            let k = key("cpu", &[("host", &format!("h{i}"))]);
            counts[shard_of(&k, 16) as usize] += 1;
        }
        // 1000 expected per shard.
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }
}
