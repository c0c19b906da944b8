//! Field kinds across shards (docs/cluster.md, "Field kinds"). A single
//! node fixes a field's kind with its first accepted write, in its one
//! catalog; a cluster's series of one metric live in many shards, each
//! with a database of its own. So the first time a frame brings a field
//! to a shard's database, the owner claims the kind in PostgreSQL
//! (`field_kinds`): the first shard to claim it sets it for every shard.
//! The frame's points of such fields are then typed as that kind says
//! (OpenTSDB's `"42"` stays text in a String field) or refused as a single
//! node refuses them, before the frame is logged, so a replay applies the
//! very same points. Fields the shard's database knows are checked by it,
//! as before; without PostgreSQL (or when it does not answer within two
//! seconds) a shard falls back on its own kinds.

use super::Ingester;
use crate::frame::ShardBatch;
use std::collections::HashMap;
use sundial_model::{Kind, PointError, ValueInput};
use sundial_storage::Db;
use tracing::warn;

/// How long a write waits for PostgreSQL's kinds before it goes on with
/// the shard's own.
const CLAIM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl Ingester {
    /// Types `batch`'s points of fields new to `db` by the cluster's
    /// kinds; the points refused, with why, which the batch now vetoes.
    pub(super) async fn settle_kinds(
        &self,
        db: &Db,
        batch: &mut ShardBatch,
    ) -> Vec<(usize, PointError)> {
        let claims = new_fields(db, batch);
        if claims.is_empty() {
            return Vec::new();
        }
        // Bounded: a PostgreSQL that does not answer (dropped packets)
        // must not hold the shard's writes.
        // The connection's lock is taken first: waiting for another
        // call (a checkpoint's) is not PostgreSQL failing to answer.
        let claimed = match self.meta().await {
            Ok(meta) => {
                let claim = meta.claim_kinds(&batch.database, &claims);
                match tokio::time::timeout(CLAIM_TIMEOUT, claim).await {
                    Ok(claimed) => claimed,
                    Err(_) => Err(crate::Error::Internal(format!(
                        "PostgreSQL did not answer within {CLAIM_TIMEOUT:?}"
                    ))),
                }
            }
            Err(e) => Err(e),
        };
        let kinds = match claimed {
            Ok(kinds) => kinds,
            Err(e) => {
                warn!(error = %e, "cannot read the cluster's field kinds; the shard's own kinds apply");
                return Vec::new();
            }
        };
        let vetoed = &mut batch.rules.vetoed;
        vetoed.resize(batch.points.len().max(vetoed.len()), false);
        let mut refused = Vec::new();
        for (i, p) in batch.points.iter_mut().enumerate() {
            let key = (p.series.metric.to_string(), p.field.to_string());
            let Some(&kind) = kinds.get(&key) else {
                continue;
            };
            if vetoed[i] {
                continue;
            }
            match p.value.clone().resolve(Some(kind)) {
                Ok(v) => p.value = ValueInput::Typed(v),
                Err(e) => {
                    vetoed[i] = true;
                    refused.push((i, e));
                }
            }
        }
        refused
    }
}

/// The (metric, field)s of `batch` that `db` has no kind for, each with
/// the kind its first point that can be stored would fix.
fn new_fields(db: &Db, batch: &ShardBatch) -> Vec<(String, String, Kind)> {
    let mut seen: HashMap<(&str, &str), bool> = HashMap::new();
    let mut claims = Vec::new();
    // Points of one field come in runs: a known one skips the map.
    let mut last_known: Option<(&str, &str)> = None;
    db.read(|snap| {
        for (i, p) in batch.points.iter().enumerate() {
            let key = (p.series.metric.as_str(), p.field.as_str());
            if last_known == Some(key) {
                continue;
            }
            let claimed = *seen
                .entry(key)
                .or_insert_with(|| snap.kind(key.0, key.1).is_some());
            if claimed {
                last_known = Some(key);
                continue;
            }
            if batch.rules.vetoed.get(i).copied().unwrap_or(false) {
                continue;
            }
            if let Ok(v) = p.value.clone().resolve(None) {
                claims.push((key.0.to_owned(), key.1.to_owned(), v.kind()));
                seen.insert(key, true);
            }
        }
    });
    claims
}
