//! Interned names: every metric, tag key, tag value and field name is kept
//! once per database and referred to by a dense u32.

use std::hash::BuildHasher;

#[derive(Debug, Default)]
pub(crate) struct Symbols {
    ids: hashbrown::HashTable<u32>,
    strings: Vec<Box<str>>,
    hasher: foldhash::fast::RandomState,
}

impl Symbols {
    pub(crate) fn get(&self, s: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(s);
        let strings = &self.strings;
        self.ids
            .find(hash, |id| {
                strings.get(*id as usize).is_some_and(|x| &**x == s)
            })
            .copied()
    }

    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.into());
        let hash = self.hasher.hash_one(s);
        let (strings, hasher) = (&self.strings, &self.hasher);
        self.ids.insert_unique(hash, id, |i| {
            strings
                .get(*i as usize)
                .map_or(0, |x| hasher.hash_one(&**x))
        });
        id
    }

    /// The name of a symbol; empty for an id never handed out.
    pub(crate) fn resolve(&self, id: u32) -> &str {
        self.strings.get(id as usize).map_or("", |s| s)
    }
}
