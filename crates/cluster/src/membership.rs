//! Which nodes are alive, and who owns each shard now. A node renews its
//! row in `nodes` while it runs; routers read the shard owners (live
//! shard leases joined with their holders' addresses) to forward writes.

use crate::error::Result;
use crate::lease::Lease;
use crate::meta::Meta;
use std::time::Duration;

/// The role a node runs as (`sundial serve --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    All,
    Router,
    Ingester,
    Querier,
    Compactor,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::All,
        Role::Router,
        Role::Ingester,
        Role::Querier,
        Role::Compactor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Router => "router",
            Role::Ingester => "ingester",
            Role::Querier => "querier",
            Role::Compactor => "compactor",
        }
    }

    /// Whether nodes of this role own shards.
    pub fn ingests(self) -> bool {
        matches!(self, Role::All | Role::Ingester)
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?}: one of all, router, ingester, querier, compactor")
            })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A live node as the metadata store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub node_id: String,
    pub role: String,
    pub advertise: String,
}

/// The current owner of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardOwner {
    pub shard: u32,
    pub node_id: String,
    pub advertise: String,
    pub epoch: i64,
}

impl Meta {
    /// Says `node` is alive for `ttl` from now (PostgreSQL's clock).
    pub async fn heartbeat(&self, node: &Node, ttl: Duration) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO nodes (node_id, role, advertise, expires_at)
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4))
                 ON CONFLICT (node_id) DO UPDATE
                   SET role = excluded.role, advertise = excluded.advertise,
                       expires_at = excluded.expires_at",
                &[
                    &node.node_id,
                    &node.role,
                    &node.advertise,
                    &ttl.as_secs_f64(),
                ],
            )
            .await?;
        Ok(())
    }

    /// The nodes whose heartbeat has not expired, among `roles`, by id.
    pub async fn live_nodes(&self, roles: &[Role]) -> Result<Vec<Node>> {
        let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
        let rows = self
            .client
            .query(
                "SELECT node_id, role, advertise FROM nodes
                 WHERE role = ANY($1) AND expires_at > now() ORDER BY node_id",
                &[&names],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Node {
                node_id: r.get(0),
                role: r.get(1),
                advertise: r.get(2),
            })
            .collect())
    }

    /// Removes `node_id` from the live nodes now (a clean shutdown), so
    /// its shards move without waiting for the heartbeat to expire.
    pub async fn leave(&self, node_id: &str) -> Result<()> {
        self.client
            .execute("DELETE FROM nodes WHERE node_id = $1", &[&node_id])
            .await?;
        Ok(())
    }

    /// Every shard whose lease is live, with its holder's address.
    pub async fn shard_owners(&self) -> Result<Vec<ShardOwner>> {
        let rows = self
            .client
            .query(
                "SELECT substr(l.name, 7)::integer, l.holder, n.advertise, l.epoch
                 FROM leases l JOIN nodes n ON n.node_id = l.holder
                 WHERE l.name LIKE 'shard/%' AND l.expires_at > now()
                 ORDER BY 1",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ShardOwner {
                shard: r.get::<_, i32>(0).unsigned_abs(),
                node_id: r.get(1),
                advertise: r.get(2),
                epoch: r.get(3),
            })
            .collect())
    }

    /// Extends every lease of `leases` whose epoch is still the row's, in
    /// one statement; gives back the names of those extended.
    pub async fn renew_all(&self, leases: &[&Lease], ttl: Duration) -> Result<Vec<String>> {
        let names: Vec<&str> = leases.iter().map(|l| l.name.as_str()).collect();
        let epochs: Vec<i64> = leases.iter().map(|l| l.epoch).collect();
        let rows = self
            .client
            .query(
                "UPDATE leases SET expires_at = now() + make_interval(secs => $3)
                 FROM unnest($1::text[], $2::bigint[]) AS mine(name, epoch)
                 WHERE leases.name = mine.name AND leases.epoch = mine.epoch
                 RETURNING leases.name",
                &[&names, &epochs, &ttl.as_secs_f64()],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
