//! TSUIDs on a cluster node: from the UIDs every node shares
//! (`sundial_api::shared::SharedUids`, docs/cluster.md "UIDs") rather than
//! from tables kept beside one node's series. A name gets its number the
//! first time any node prints a TSUID with it.

use super::{UidKind, format_tsuid, split_tsuid};
use crate::error::OpenTsdbError;
use std::collections::{BTreeSet, HashMap};
use sundial_api::shared::{Assigned, SharedUids};
use sundial_model::{ErrorClass, SeriesKey, Tags};

/// The shared UIDs in one database.
pub(crate) struct SharedTables<'a> {
    pub(crate) shared: &'a dyn SharedUids,
    pub(crate) database: &'a str,
}

fn unreachable(e: std::io::Error) -> OpenTsdbError {
    OpenTsdbError::classified(ErrorClass::Busy, &format!("the cluster's UIDs: {e}; retry"))
}

impl SharedTables<'_> {
    /// The TSUID of each series, `None` where a name is left without a
    /// UID (its kind's numbers are used up).
    pub(crate) fn tsuids(
        &self,
        series: &[(&str, &Tags)],
    ) -> Result<Vec<Option<String>>, OpenTsdbError> {
        let metrics = self.assign(UidKind::Metric, series.iter().map(|(m, _)| *m))?;
        let all_tags = || series.iter().flat_map(|(_, tags)| tags.iter());
        let keys = self.assign(UidKind::TagK, all_tags().map(|(k, _)| k.as_str()))?;
        let values = self.assign(UidKind::TagV, all_tags().map(|(_, v)| v.as_str()))?;
        Ok(series
            .iter()
            .map(|(metric, tags)| {
                let pairs = tags
                    .iter()
                    .map(|(k, v)| Some((*keys.get(k.as_str())?, *values.get(v.as_str())?)))
                    .collect::<Option<Vec<_>>>()?;
                Some(format_tsuid(*metrics.get(metric)?, pairs))
            })
            .collect())
    }

    /// The series each TSUID names; `None` for one that is malformed or
    /// names a UID never given.
    pub(crate) fn resolve(
        &self,
        tsuids: &[String],
    ) -> Result<Vec<Option<SeriesKey>>, OpenTsdbError> {
        let split: Vec<Option<Vec<u32>>> = tsuids.iter().map(|t| split_tsuid(t)).collect();
        let all = || split.iter().flatten();
        let metrics = self.names(UidKind::Metric, all().map(|u| u[0]))?;
        let pairs = || all().flat_map(|u| u[1..].chunks_exact(2));
        let keys = self.names(UidKind::TagK, pairs().map(|p| p[0]))?;
        let values = self.names(UidKind::TagV, pairs().map(|p| p[1]))?;
        Ok(split
            .iter()
            .map(|uids| {
                let uids = uids.as_ref()?;
                let tags = uids[1..]
                    .chunks_exact(2)
                    .map(|p| Some((keys.get(&p[0])?.clone(), values.get(&p[1])?.clone())))
                    .collect::<Option<Vec<_>>>()?;
                Some(SeriesKey::new(metrics.get(&uids[0])?, tags))
            })
            .collect())
    }

    /// Gives `name` the kind's next UID unless it has one.
    pub(crate) fn assign_new(&self, kind: UidKind, name: &str) -> Result<Assigned, OpenTsdbError> {
        self.shared
            .assign_new(self.database, kind as u8, name)
            .map_err(unreachable)
    }

    /// The name and creation time (epoch seconds) of `uid`, if given.
    pub(crate) fn describe(
        &self,
        kind: UidKind,
        uid: u32,
    ) -> Result<Option<(String, i64)>, OpenTsdbError> {
        self.shared
            .describe(self.database, kind as u8, uid)
            .map_err(unreachable)
    }

    /// The UID and creation time of each of `names` of `kind`, numbering
    /// the new ones.
    pub(crate) fn described<'n>(
        &self,
        kind: UidKind,
        names: impl Iterator<Item = &'n str>,
    ) -> Result<HashMap<&'n str, (u32, i64)>, OpenTsdbError> {
        let mut out = HashMap::new();
        for (name, uid) in self.assign(kind, names)? {
            if let Some((_, created)) = self.describe(kind, uid)? {
                out.insert(name, (uid, created));
            }
        }
        Ok(out)
    }

    /// The UIDs of `names` of `kind`, giving new names theirs.
    fn assign<'n>(
        &self,
        kind: UidKind,
        names: impl Iterator<Item = &'n str>,
    ) -> Result<HashMap<&'n str, u32>, OpenTsdbError> {
        let names: BTreeSet<&str> = names.collect();
        let list: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let uids = self
            .shared
            .assign(self.database, kind as u8, &list)
            .map_err(unreachable)?;
        Ok(names
            .into_iter()
            .zip(uids)
            .filter_map(|(n, u)| Some((n, u?)))
            .collect())
    }

    /// The names of `uids` of `kind` that were given.
    fn names(
        &self,
        kind: UidKind,
        uids: impl Iterator<Item = u32>,
    ) -> Result<HashMap<u32, String>, OpenTsdbError> {
        let uids: Vec<u32> = uids.collect::<BTreeSet<_>>().into_iter().collect();
        let names = self
            .shared
            .names(self.database, kind as u8, &uids)
            .map_err(unreachable)?;
        Ok(uids
            .into_iter()
            .zip(names)
            .filter_map(|(u, n)| Some((u, n?)))
            .collect())
    }
}
