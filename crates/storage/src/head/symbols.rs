//! Interned values referred to by a dense u32: every metric, tag key, tag
//! value and field name once per database ([`Symbols`]), and every list of
//! tag keys series carry ([`Shapes`]: the series of a metric mostly carry
//! the same keys, so a series keeps the id of its list and its values
//! instead of each key beside its value: 36 bytes less at ten tags).

use std::hash::{BuildHasher, Hash};

pub(crate) type Symbols = Interned<str>;
pub(crate) type Shapes = Interned<[u32]>;

#[derive(Debug)]
pub(crate) struct Interned<T: ?Sized> {
    ids: hashbrown::HashTable<u32>,
    values: Vec<Box<T>>,
    hasher: foldhash::fast::RandomState,
}

impl<T: ?Sized> Default for Interned<T> {
    fn default() -> Self {
        Self {
            ids: hashbrown::HashTable::new(),
            values: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl<T: ?Sized + Hash + Eq> Interned<T>
where
    for<'a> Box<T>: From<&'a T>,
    for<'a> &'a T: Default,
{
    pub(crate) fn get(&self, value: &T) -> Option<u32> {
        let hash = self.hasher.hash_one(value);
        let values = &self.values;
        self.ids
            .find(hash, |id| {
                values.get(*id as usize).is_some_and(|x| **x == *value)
            })
            .copied()
    }

    pub(crate) fn intern(&mut self, value: &T) -> u32 {
        if let Some(id) = self.get(value) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(value.into());
        let hash = self.hasher.hash_one(value);
        let (values, hasher) = (&self.values, &self.hasher);
        self.ids.insert_unique(hash, id, |i| {
            values.get(*i as usize).map_or(0, |x| hasher.hash_one(&**x))
        });
        id
    }

    /// The value of an id; empty for an id never handed out.
    pub(crate) fn resolve(&self, id: u32) -> &T {
        self.values
            .get(id as usize)
            .map_or_else(Default::default, |x| &**x)
    }
}
