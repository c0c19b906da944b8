//! The series of one tag pair. Most pairs of a high-cardinality key (a
//! host name under one metric) hold one series or a few, where a roaring
//! bitmap costs over a hundred bytes (its container vector and the
//! container's array); a few ids are kept inline instead, in 16 bytes (a
//! tag-value map entry is its name and this).

use roaring::RoaringBitmap;

/// Ids kept inline before a posting becomes a bitmap: as many as fit
/// beside the count in the 16 bytes the boxed bitmap takes with its tag.
const FEW: usize = 3;

#[derive(Debug, Clone)]
pub enum Posting {
    /// The first `len` ids, ascending.
    Few {
        len: u8,
        ids: [u32; FEW],
    },
    Many(Box<RoaringBitmap>),
}

// A million host names under one metric are a million postings.
const _: () = assert!(std::mem::size_of::<Posting>() <= 16);

impl Default for Posting {
    fn default() -> Self {
        Self::Few {
            len: 0,
            ids: [0; FEW],
        }
    }
}

impl Posting {
    /// Adds `id`; false if it was there.
    pub fn insert(&mut self, id: u32) -> bool {
        match self {
            Self::Many(b) => add_id(b, id),
            Self::Few { len, ids } => {
                let n = usize::from(*len);
                let Some(held) = ids.get_mut(..n) else {
                    return false;
                };
                match held.binary_search(&id) {
                    Ok(_) => false,
                    Err(at) if n < FEW => {
                        if let Some(tail) = ids.get_mut(at..=n) {
                            tail.rotate_right(1);
                            if let Some(first) = tail.first_mut() {
                                *first = id;
                            }
                        }
                        *len += 1;
                        true
                    }
                    Err(_) => {
                        let mut b: RoaringBitmap = held.iter().copied().collect();
                        b.insert(id);
                        *self = Self::Many(Box::new(b));
                        true
                    }
                }
            }
        }
    }

    /// Takes `id` out; false if it was not there. A bitmap stays a bitmap
    /// (a pair that once had many series likely gets them again).
    pub fn remove(&mut self, id: u32) -> bool {
        match self {
            Self::Many(b) => b.remove(id),
            Self::Few { len, ids } => {
                let n = usize::from(*len);
                match ids.get(..n).map(|held| held.binary_search(&id)) {
                    Some(Ok(at)) => {
                        if let Some(tail) = ids.get_mut(at..n) {
                            tail.rotate_left(1);
                        }
                        *len -= 1;
                        true
                    }
                    _ => false,
                }
            }
        }
    }

    /// The inline ids (none for a bitmap).
    fn few(&self) -> &[u32] {
        match self {
            Self::Few { len, ids } => ids.get(..usize::from(*len)).unwrap_or_default(),
            Self::Many(_) => &[],
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Self::Few { len, .. } => *len == 0,
            Self::Many(b) => b.is_empty(),
        }
    }

    /// The number of series.
    pub fn len(&self) -> u64 {
        match self {
            Self::Few { len, .. } => u64::from(*len),
            Self::Many(b) => b.len(),
        }
    }

    /// Whether no series of this posting is in `other`.
    pub fn is_disjoint(&self, other: &RoaringBitmap) -> bool {
        match self {
            Self::Few { .. } => !self.few().iter().any(|id| other.contains(*id)),
            Self::Many(b) => b.is_disjoint(other),
        }
    }

    /// Adds this posting's series to `acc`.
    pub fn union_into(&self, acc: &mut RoaringBitmap) {
        match self {
            Self::Few { .. } => acc.extend(self.few().iter().copied()),
            Self::Many(b) => *acc |= &**b,
        }
    }

    pub fn to_bitmap(&self) -> RoaringBitmap {
        match self {
            Self::Few { .. } => self.few().iter().copied().collect(),
            Self::Many(b) => (**b).clone(),
        }
    }
}

/// Adds `id` to a bitmap; false if it was there. New series get ever
/// larger ids, so an id usually goes at the end, which `push` finds
/// without searching the containers.
pub(crate) fn add_id(b: &mut RoaringBitmap, id: u32) -> bool {
    b.push(id) || b.insert(id)
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
