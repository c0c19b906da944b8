//! Series identity: a metric plus its full, sorted tag set.

use std::fmt;

/// A tag key or value, or a field name. Most are short enough (24 bytes)
/// to sit inline: a point that misses an adapter's key cache has its key
/// built, and a heap string per name cost more than the rest of a write.
pub type Name = compact_str::CompactString;

/// Tag pairs sorted by key; keys are unique.
pub type Tags = Vec<(Name, Name)>;

/// A series: the metric and the complete tag set. Two keys with different
/// tag sets are different series even when one is a subset of the other.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct SeriesKey {
    pub metric: Name,
    /// Sorted by tag key, unique keys.
    pub tags: Tags,
}

impl SeriesKey {
    /// Builds a key, sorting the tags by key. Later duplicates of a key
    /// replace earlier ones.
    pub fn new(metric: impl Into<Name>, tags: Vec<(String, String)>) -> Self {
        let tags = tags.into_iter().map(|(k, v)| (k.into(), v.into()));
        Self::from_names(metric, tags.collect())
    }

    /// [`SeriesKey::new`] from names already converted.
    pub fn from_names(metric: impl Into<Name>, mut tags: Tags) -> Self {
        // Most callers (the put checks, the head, the WAL) pass keys sorted
        // and unique already: one pass proves it.
        if !tags.is_sorted_by(|a, b| a.0 < b.0) {
            tags.sort_by(|a, b| a.0.cmp(&b.0));
            tags.dedup_by(|later, earlier| {
                if later.0 == earlier.0 {
                    std::mem::swap(&mut earlier.1, &mut later.1);
                    true
                } else {
                    false
                }
            });
        }
        Self {
            metric: metric.into(),
            tags,
        }
    }

    /// The value of tag `key`, if the series has it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .and_then(|i| self.tags.get(i))
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{{", self.metric)?;
        for (i, (k, v)) in self.tags.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_sorted_and_last_duplicate_wins() {
        let key = SeriesKey::new(
            "m",
            vec![
                ("host".into(), "a".into()),
                ("dc".into(), "x".into()),
                ("host".into(), "b".into()),
            ],
        );
        assert_eq!(
            key.tags,
            vec![("dc".into(), "x".into()), ("host".into(), "b".into())]
        );
        assert_eq!(key.tag("host"), Some("b"));
        assert_eq!(key.tag("nope"), None);
        assert_eq!(key.to_string(), "m{dc=x,host=b}");
        // In order but repeated: still one pair per key, the last.
        let key = SeriesKey::from_names(
            "m",
            vec![("dc".into(), "x".into()), ("dc".into(), "y".into())],
        );
        assert_eq!(key.tags, vec![("dc".into(), "y".into())]);
    }
}
