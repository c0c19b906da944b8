use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn key(metric: &str, tags: &[(u8, u8)]) -> SeriesKey {
    let tags = tags
        .iter()
        .map(|(k, v)| (format!("k{k}"), format!("v{v}")))
        .collect();
    SeriesKey::new(metric, tags)
}

proptest! {
    /// Keys whose tag keys, values or metric differ only in where a name
    /// stands (a value under another key, a key set shared by other
    /// series) each find their own series, and come back as written.
    #[test]
    fn series_keys_find_their_ids_and_read_back(
        defined in proptest::collection::vec(
            (0u8..2, proptest::collection::vec((0u8..4, 0u8..4), 0..4)),
            1..40,
        ),
        probes in proptest::collection::vec(
            (0u8..2, proptest::collection::vec((0u8..4, 0u8..4), 0..4)),
            0..40,
        ),
    ) {
        let mut head = Head::default();
        let mut ids: BTreeMap<SeriesKey, SeriesId> = BTreeMap::new();
        for (m, tags) in &defined {
            let k = key(&format!("m{m}"), tags);
            let next = SeriesId(ids.len() as u32);
            let id = *ids.entry(k.clone()).or_insert(next);
            // Defining an id again with its key is a no-op.
            prop_assert!(head.define(id, k));
        }
        for (k, id) in &ids {
            prop_assert_eq!(head.lookup(k), Some(*id));
            prop_assert_eq!(head.key(*id), Some(k.clone()));
        }
        for (m, tags) in &probes {
            let k = key(&format!("m{m}"), tags);
            prop_assert_eq!(head.lookup(&k), ids.get(&k).copied(), "{:?}", k);
        }
        // Another key under a defined id is refused.
        let other = key("elsewhere", &[]);
        prop_assert!(!head.define(SeriesId(0), other));
    }
}
