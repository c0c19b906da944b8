//! Listing names in PostgreSQL (`series_names`, docs/cluster.md,
//! "Listing names"): per database and shard, each (metric, tag key, tag
//! value) its series carry and ([`PRESENT`]) each metric with a series.
//! The shards' owners keep their rows; queriers answer listings without a
//! time range from all shards' rows at once, and field listings from
//! `field_kinds`.

use crate::Result;
use crate::manifest::pg_int;
use crate::meta::Meta;
use std::collections::BTreeSet;
use sundial_model::{Kind, Listed, Listing, Names};

/// A name a shard's series carry: (metric, tag key, tag value).
pub(crate) type SeriesName = (String, String, String);

/// The tag key and value of the row saying a metric has a series.
pub(crate) const PRESENT: &str = "";

/// Adds rows ($1 database, $2 shard, $3-$5 the names' columns).
const INSERT_NAMES: &str = "INSERT INTO series_names (database, metric, tag_key, tag_value, shard)
     SELECT $1, m, k, v, $2 FROM unnest($3::text[], $4::text[], $5::text[]) AS t(m, k, v)
     ON CONFLICT DO NOTHING";

// Prefixes: `col >= prefix` lets an ordered index scan start at the
// prefix (byte order: every name starting with it sorts at or after it);
// `starts_with` then decides.

/// `names` as the three columns' arrays.
fn columns(names: &[SeriesName]) -> [Vec<&str>; 3] {
    [
        names.iter().map(|n| n.0.as_str()).collect(),
        names.iter().map(|n| n.1.as_str()).collect(),
        names.iter().map(|n| n.2.as_str()).collect(),
    ]
}

impl Meta {
    /// Records `names` as carried by series of `database` in `shard`.
    pub async fn add_names(&self, database: &str, shard: u32, names: &[SeriesName]) -> Result<()> {
        let [metrics, keys, values] = columns(names);
        self.client
            .execute(
                INSERT_NAMES,
                &[&database, &pg_int(shard), &metrics, &keys, &values],
            )
            .await?;
        Ok(())
    }

    /// Forgets `names` of `database` in `shard` (its last series carrying
    /// each was removed).
    pub async fn remove_names(
        &self,
        database: &str,
        shard: u32,
        names: &[SeriesName],
    ) -> Result<()> {
        let [metrics, keys, values] = columns(names);
        self.client
            .execute(
                "DELETE FROM series_names s
                 USING unnest($3::text[], $4::text[], $5::text[]) AS t(m, k, v)
                 WHERE s.database = $1 AND s.shard = $2 AND s.metric = t.m COLLATE \"C\"
                   AND s.tag_key = t.k COLLATE \"C\" AND s.tag_value = t.v COLLATE \"C\"",
                &[&database, &pg_int(shard), &metrics, &keys, &values],
            )
            .await?;
        Ok(())
    }

    /// Makes the rows of `database` in `shard` exactly `names`, in one
    /// transaction: (rows added, rows removed).
    pub async fn settle_names(
        &mut self,
        database: &str,
        shard: u32,
        names: &[SeriesName],
    ) -> Result<(u64, u64)> {
        let [metrics, keys, values] = columns(names);
        let tx = self.client.transaction().await?;
        let removed = tx
            .execute(
                "DELETE FROM series_names s WHERE s.database = $1 AND s.shard = $2
                 AND NOT EXISTS (SELECT 1 FROM unnest($3::text[], $4::text[], $5::text[]) AS t(m, k, v)
                   WHERE s.metric = t.m COLLATE \"C\" AND s.tag_key = t.k COLLATE \"C\"
                     AND s.tag_value = t.v COLLATE \"C\")",
                &[&database, &pg_int(shard), &metrics, &keys, &values],
            )
            .await?;
        let added = tx
            .execute(
                INSERT_NAMES,
                &[&database, &pg_int(shard), &metrics, &keys, &values],
            )
            .await?;
        tx.commit().await?;
        Ok((added, removed))
    }

    /// Drops the names `shard` records for databases other than
    /// `databases` (those it holds).
    pub async fn keep_names_of(&self, shard: u32, databases: &[String]) -> Result<()> {
        self.client
            .execute(
                "DELETE FROM series_names WHERE shard = $1 AND database <> ALL($2::text[])",
                &[&pg_int(shard), &databases],
            )
            .await?;
        Ok(())
    }

    /// `listing` over `database` from the names of every shard, as the
    /// shards' owners would answer it together; `None` for a listing
    /// these names cannot answer (a time range, series, counts, columns,
    /// one key's values).
    pub async fn list_names(&self, database: &str, listing: &Listing) -> Result<Option<Listed>> {
        if listing.range.is_some() {
            return Ok(None);
        }
        let cap = i64::try_from(listing.max.saturating_add(1)).unwrap_or(i64::MAX);
        let prefix = listing.prefix.as_str();
        let mut listed = Listed::default();
        let metric = match &listing.names {
            Names::Metrics => {
                let rows = self
                    .client
                    .query(
                        "SELECT DISTINCT metric FROM series_names
                         WHERE database = $1 AND tag_key = ''
                           AND metric >= $2 AND starts_with(metric, $2)
                         ORDER BY metric LIMIT $3",
                        &[&database, &prefix, &cap],
                    )
                    .await?;
                listed.names = rows.iter().map(|r| r.get(0)).collect();
                return Ok(Some(listed));
            }
            Names::Fields { metric } => {
                listed.fields = self
                    .fields(database, metric.as_deref(), prefix, cap)
                    .await?;
                metric.as_deref()
            }
            Names::TagKeys { metric } | Names::TagValues { metric } => {
                let column = match listing.names {
                    Names::TagKeys { .. } => "tag_key",
                    _ => "tag_value",
                };
                let sql = format!(
                    "SELECT DISTINCT {column} FROM series_names
                     WHERE database = $1 AND tag_key <> '' AND ($2::text IS NULL OR metric = $2)
                       AND {column} >= $3 AND starts_with({column}, $3)
                     ORDER BY {column} LIMIT $4"
                );
                let metric = metric.as_deref();
                let rows = self
                    .client
                    .query(&sql, &[&database, &metric, &prefix, &cap])
                    .await?;
                listed.names = rows.iter().map(|r| r.get(0)).collect();
                metric
            }
            Names::Tags { metric } => {
                let rows = self
                    .client
                    .query(
                        "SELECT DISTINCT tag_key, tag_value FROM series_names
                         WHERE database = $1 AND metric = $2 AND tag_key <> ''
                         ORDER BY tag_key, tag_value LIMIT $3",
                        &[&database, metric, &cap],
                    )
                    .await?;
                for row in rows {
                    let values: &mut BTreeSet<String> = listed.tags.entry(row.get(0)).or_default();
                    values.insert(row.get(1));
                }
                Some(metric.as_str())
            }
            _ => return Ok(None),
        };
        if let Some(metric) = metric {
            listed.known = self.has_metric(database, metric).await?;
        }
        Ok(Some(listed))
    }

    /// The fields of `metric` (of every metric: the first metric's kind
    /// of each) starting with `prefix`, the first `cap` in order.
    async fn fields(
        &self,
        database: &str,
        metric: Option<&str>,
        prefix: &str,
        cap: i64,
    ) -> Result<std::collections::BTreeMap<String, Kind>> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT ON (field COLLATE \"C\") field, kind FROM field_kinds k
                 WHERE database = $1 AND ($2::text IS NULL OR metric = $2)
                   AND field COLLATE \"C\" >= $3 AND starts_with(field, $3)
                   AND EXISTS (SELECT 1 FROM series_names s WHERE s.database = k.database
                     AND s.metric = k.metric AND s.tag_key = '')
                 ORDER BY field COLLATE \"C\", metric COLLATE \"C\" LIMIT $4",
                &[&database, &metric, &prefix, &cap],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.get(0), crate::kinds::number_kind(r.get(1))?)))
            .collect())
    }

    /// Whether a series of `metric` is in some shard of `database`.
    async fn has_metric(&self, database: &str, metric: &str) -> Result<bool> {
        let row = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM series_names
                 WHERE database = $1 AND metric = $2 AND tag_key = '')",
                &[&database, &metric],
            )
            .await?;
        Ok(row.get(0))
    }
}
