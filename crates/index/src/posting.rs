//! The series of one tag pair. Most pairs of a high-cardinality key (a
//! host name under one metric) hold one series or a few, where a roaring
//! bitmap costs over a hundred bytes (its container vector and the
//! container's array); a few ids are kept inline instead.

use roaring::RoaringBitmap;
use smallvec::SmallVec;

/// Ids kept inline before a posting becomes a bitmap.
const FEW: usize = 4;

#[derive(Debug, Clone)]
pub enum Posting {
    /// At most [`FEW`] ids, ascending.
    Few(SmallVec<[u32; FEW]>),
    Many(RoaringBitmap),
}

impl Default for Posting {
    fn default() -> Self {
        Self::Few(SmallVec::new())
    }
}

impl Posting {
    /// Adds `id`; false if it was there.
    pub fn insert(&mut self, id: u32) -> bool {
        match self {
            Self::Many(b) => b.insert(id),
            Self::Few(ids) => match ids.binary_search(&id) {
                Ok(_) => false,
                Err(at) if ids.len() < FEW => {
                    ids.insert(at, id);
                    true
                }
                Err(_) => {
                    let mut b: RoaringBitmap = ids.iter().copied().collect();
                    b.insert(id);
                    *self = Self::Many(b);
                    true
                }
            },
        }
    }

    /// Takes `id` out; false if it was not there. A bitmap stays a bitmap
    /// (a pair that once had many series likely gets them again).
    pub fn remove(&mut self, id: u32) -> bool {
        match self {
            Self::Many(b) => b.remove(id),
            Self::Few(ids) => match ids.binary_search(&id) {
                Ok(at) => {
                    ids.remove(at);
                    true
                }
                Err(_) => false,
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Self::Few(ids) => ids.is_empty(),
            Self::Many(b) => b.is_empty(),
        }
    }

    /// The number of series.
    pub fn len(&self) -> u64 {
        match self {
            Self::Few(ids) => ids.len() as u64,
            Self::Many(b) => b.len(),
        }
    }

    /// Whether no series of this posting is in `other`.
    pub fn is_disjoint(&self, other: &RoaringBitmap) -> bool {
        match self {
            Self::Few(ids) => !ids.iter().any(|id| other.contains(*id)),
            Self::Many(b) => b.is_disjoint(other),
        }
    }

    /// Adds this posting's series to `acc`.
    pub fn union_into(&self, acc: &mut RoaringBitmap) {
        match self {
            Self::Few(ids) => acc.extend(ids.iter().copied()),
            Self::Many(b) => *acc |= b,
        }
    }

    pub fn to_bitmap(&self) -> RoaringBitmap {
        match self {
            Self::Few(ids) => ids.iter().copied().collect(),
            Self::Many(b) => b.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// Inserts and removes agree with a set, across the change of form.
        #[test]
        fn a_posting_behaves_as_a_set(
            ops in proptest::collection::vec((any::<bool>(), 0u32..12), 0..60),
            probe in proptest::collection::vec(0u32..12, 0..6),
        ) {
            let (mut posting, mut model) = (Posting::default(), BTreeSet::new());
            let probe: RoaringBitmap = probe.into_iter().collect();
            for (add, id) in ops {
                let changed = if add { posting.insert(id) } else { posting.remove(id) };
                let expected = if add { model.insert(id) } else { model.remove(&id) };
                prop_assert_eq!(changed, expected);
                prop_assert_eq!(posting.len(), model.len() as u64);
                prop_assert_eq!(posting.is_empty(), model.is_empty());
                let ids: Vec<u32> = posting.to_bitmap().iter().collect();
                prop_assert_eq!(&ids, &model.iter().copied().collect::<Vec<_>>());
                prop_assert_eq!(
                    posting.is_disjoint(&probe),
                    !model.iter().any(|id| probe.contains(*id))
                );
                let mut acc: RoaringBitmap = [100].into_iter().collect();
                posting.union_into(&mut acc);
                prop_assert_eq!(acc.len(), model.len() as u64 + 1);
            }
        }
    }
}
