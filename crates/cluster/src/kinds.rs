//! Field kinds in PostgreSQL (`field_kinds`): the kind of each field of
//! each metric of a database, claimed by the first shard that writes it
//! (docs/cluster.md, "Field kinds").

use crate::Result;
use crate::meta::Meta;
use std::collections::HashMap;
use sundial_model::Kind;

fn kind_number(kind: Kind) -> i16 {
    match kind {
        Kind::Numeric => 0,
        Kind::String => 1,
        Kind::Bytes => 2,
    }
}

pub(crate) fn number_kind(n: i16) -> Option<Kind> {
    match n {
        0 => Some(Kind::Numeric),
        1 => Some(Kind::String),
        2 => Some(Kind::Bytes),
        _ => None,
    }
}

impl Meta {
    /// Claims each of `claims`' (metric, field) for its kind unless it has
    /// one; the kind each has now (the first claim's), by (metric, field).
    pub async fn claim_kinds(
        &self,
        database: &str,
        claims: &[(String, String, Kind)],
    ) -> Result<HashMap<(String, String), Kind>> {
        let metrics: Vec<&str> = claims.iter().map(|c| c.0.as_str()).collect();
        let fields: Vec<&str> = claims.iter().map(|c| c.1.as_str()).collect();
        let kinds: Vec<i16> = claims.iter().map(|c| kind_number(c.2)).collect();
        self.client
            .execute(
                "INSERT INTO field_kinds (database, metric, field, kind)
                 SELECT $1, m, f, k FROM unnest($2::text[], $3::text[], $4::smallint[]) AS t(m, f, k)
                 ON CONFLICT (database, metric, field) DO NOTHING",
                &[&database, &metrics, &fields, &kinds],
            )
            .await?;
        let rows = self
            .client
            .query(
                "SELECT k.metric, k.field, k.kind FROM field_kinds k
                 JOIN unnest($2::text[], $3::text[]) AS t(m, f) ON k.metric = t.m AND k.field = t.f
                 WHERE k.database = $1",
                &[&database, &metrics, &fields],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some(((r.get(0), r.get(1)), number_kind(r.get(2))?)))
            .collect())
    }

    /// Forgets the kinds of `metric`'s fields in `database` (its last
    /// series was removed), as a single node's catalog forgets them.
    pub async fn forget_kinds(&self, database: &str, metric: &str) -> Result<()> {
        self.client
            .execute(
                "DELETE FROM field_kinds WHERE database = $1 AND metric = $2",
                &[&database, &metric],
            )
            .await?;
        Ok(())
    }
}
