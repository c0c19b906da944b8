//! Leases with fencing epochs. A lease row names its holder, an epoch and
//! an expiry (PostgreSQL's clock, the one clock every node shares). Taking
//! a lease over, which needs it expired or already the taker's, raises the
//! epoch by one; everything done under a lease checks its epoch in the
//! same transaction, so a holder that was taken over (a paused process, a
//! partitioned node) is refused from that moment on.

use crate::error::{Error, Result};
use crate::meta::Meta;
use std::time::Duration;

/// A granted lease: valid while `epoch` is the row's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub epoch: i64,
}

/// The lease name of a shard's owner.
pub fn shard_lease(shard: u32) -> String {
    format!("shard/{shard}")
}

/// The lease name of the one compactor.
pub fn compactor_lease() -> String {
    "compactor".to_owned()
}

impl Meta {
    /// Takes lease `name` for `holder` for `ttl`, when it is free, expired
    /// or held by `holder` already (a restarted node: its earlier epoch is
    /// fenced off all the same).
    pub async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<Lease> {
        let row = self
            .client
            .query_opt(
                "INSERT INTO leases (name, holder, epoch, expires_at)
                 VALUES ($1, $2, 1, now() + make_interval(secs => $3))
                 ON CONFLICT (name) DO UPDATE
                   SET holder = excluded.holder, epoch = leases.epoch + 1,
                       expires_at = excluded.expires_at
                   WHERE leases.expires_at <= now() OR leases.holder = excluded.holder
                 RETURNING epoch",
                &[&name, &holder, &ttl.as_secs_f64()],
            )
            .await?;
        match row {
            Some(row) => Ok(Lease {
                name: name.to_owned(),
                holder: holder.to_owned(),
                epoch: row.get(0),
            }),
            None => {
                let holder: Option<String> = self
                    .client
                    .query_opt("SELECT holder FROM leases WHERE name = $1", &[&name])
                    .await?
                    .map(|r| r.get(0));
                Err(Error::Held {
                    name: name.to_owned(),
                    holder: holder.unwrap_or_default(),
                })
            }
        }
    }

    /// Extends `lease` by `ttl` from now, while it is still the row's
    /// epoch (also after expiry, if nobody took it over meanwhile).
    pub async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<()> {
        let n = self
            .client
            .execute(
                "UPDATE leases SET expires_at = now() + make_interval(secs => $3)
                 WHERE name = $1 AND epoch = $2",
                &[&lease.name, &lease.epoch, &ttl.as_secs_f64()],
            )
            .await?;
        if n == 1 {
            return Ok(());
        }
        Err(self.fenced(lease).await)
    }

    /// Gives `lease` up: it expires now, and its epoch stays so the next
    /// holder's is higher.
    pub async fn release(&self, lease: &Lease) -> Result<()> {
        self.client
            .execute(
                "UPDATE leases SET expires_at = now() WHERE name = $1 AND epoch = $2",
                &[&lease.name, &lease.epoch],
            )
            .await?;
        Ok(())
    }

    /// The lease's current holder and epoch, if it was ever taken.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<(String, i64)>> {
        Ok(self
            .client
            .query_opt("SELECT holder, epoch FROM leases WHERE name = $1", &[&name])
            .await?
            .map(|r| (r.get(0), r.get(1))))
    }

    async fn fenced(&self, lease: &Lease) -> Error {
        match self.lease_holder(&lease.name).await {
            Ok(current) => Error::Fenced {
                name: lease.name.clone(),
                epoch: lease.epoch,
                current: current.map(|(_, e)| e),
            },
            Err(e) => e,
        }
    }
}

/// Inside a transaction: refuses unless `lease` is still the row's epoch,
/// and holds the row (FOR SHARE) so no takeover commits before this
/// transaction ends.
pub(crate) async fn check_epoch(tx: &tokio_postgres::Transaction<'_>, lease: &Lease) -> Result<()> {
    let current: Option<i64> = tx
        .query_opt(
            "SELECT epoch FROM leases WHERE name = $1 FOR SHARE",
            &[&lease.name],
        )
        .await?
        .map(|r| r.get(0));
    if current == Some(lease.epoch) {
        return Ok(());
    }
    Err(Error::Fenced {
        name: lease.name.clone(),
        epoch: lease.epoch,
        current,
    })
}
