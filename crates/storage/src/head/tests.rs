use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Metric, tag keys and values from one pool of names, so a name may
/// stand in any place.
fn key(metric: u8, tags: &[(u8, u8)]) -> SeriesKey {
    let tags = tags
        .iter()
        .map(|(k, v)| (format!("n{k}"), format!("n{v}")))
        .collect();
    SeriesKey::new(format!("n{metric}"), tags)
}

proptest! {
    /// Keys whose tag keys, values or metric differ only in where a name
    /// stands (a value under another key, a key set shared by other
    /// series) each find their own series, and come back as written.
    #[test]
    fn series_keys_find_their_ids_and_read_back(
        defined in proptest::collection::vec(
            (0u8..3, proptest::collection::vec((0u8..4, 0u8..4), 0..4)),
            1..40,
        ),
        probes in proptest::collection::vec(
            (0u8..3, proptest::collection::vec((0u8..4, 0u8..4), 0..4)),
            0..40,
        ),
    ) {
        let mut head = Head::default();
        let mut ids: BTreeMap<SeriesKey, SeriesId> = BTreeMap::new();
        for (m, tags) in &defined {
            let k = key(*m, tags);
            let next = SeriesId(ids.len() as u32);
            let id = *ids.entry(k.clone()).or_insert(next);
            // Defining an id again with its key is a no-op.
            prop_assert!(head.define(id, &k));
        }
        for (k, id) in &ids {
            prop_assert_eq!(head.lookup(k), Some(*id));
            prop_assert_eq!(head.key(*id), Some(k.clone()));
        }
        for (m, tags) in &probes {
            let k = key(*m, tags);
            prop_assert_eq!(head.lookup(&k), ids.get(&k).copied(), "{:?}", k);
        }
        // Another key under a defined id is refused.
        let other = key(9, &[]);
        prop_assert!(!head.define(SeriesId(0), &other));
    }
}

/// A stored key matches only a key with the same names in the same
/// places: lookups compare names, as the hash of a key's names may collide.
#[test]
fn a_stored_key_matches_only_its_own_names() {
    let mut head = Head::default();
    let named = |m: &str, tags: &[(&str, &str)]| {
        let tags = tags.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        SeriesKey::new(m.to_string(), tags.collect())
    };
    let stored = named("m", &[("a", "bc"), ("d", "e")]);
    assert!(head.define(SeriesId(0), &stored));
    let syms = sym_key(&head.series, SeriesId(0)).expect("defined");
    let names = head.names();
    assert!(names.same(syms, &stored));
    let others = [
        named("m", &[("ab", "c"), ("d", "e")]),
        named("m", &[("a", "b"), ("cd", "e")]),
        named("m", &[("a", "bc")]),
        named("m", &[("a", "bc"), ("d", "e"), ("f", "g")]),
        named("ma", &[("a", "bc"), ("d", "e")]),
        named("m", &[("a", "bc"), ("d", "f")]),
    ];
    for other in &others {
        assert!(!names.same(syms, other), "{other:?}");
        assert_eq!(head.lookup(other), None, "{other:?}");
    }
}

/// Keys with more tags than a key keeps inline find their series too.
#[test]
fn keys_past_the_inline_tag_count_find_their_ids() {
    let mut head = Head::default();
    let many: Vec<(u8, u8)> = (0..30).map(|i| (i, i % 7)).collect();
    let (a, b) = (key(0, &many), key(0, &many[1..]));
    assert!(head.define(SeriesId(0), &a));
    assert!(head.define(SeriesId(1), &b));
    assert_eq!(head.lookup(&a), Some(SeriesId(0)));
    assert_eq!(head.lookup(&b), Some(SeriesId(1)));
    assert_eq!(head.key(SeriesId(0)), Some(a));
    assert_eq!(head.lookup(&key(0, &many[2..])), None);
}
