//! The connection to the metadata store and its schema migrations.

use crate::error::{Error, Result};
use tokio_postgres::{Client, NoTls};
use tracing::{info, warn};

/// The migrations, in order; version N is the N-th. Applied ones are
/// never edited: a change is a new file.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_metadata.sql"),
    include_str!("../migrations/0002_nodes.sql"),
    include_str!("../migrations/0003_checkpoints.sql"),
    include_str!("../migrations/0004_retired.sql"),
    include_str!("../migrations/0005_documents.sql"),
    include_str!("../migrations/0006_uids.sql"),
    include_str!("../migrations/0007_checkpoint_times.sql"),
    include_str!("../migrations/0008_field_kinds.sql"),
    include_str!("../migrations/0009_series_names.sql"),
    include_str!("../migrations/0010_series_names_by_shard.sql"),
];

/// Any fixed number: the advisory lock that lets one node at a time
/// migrate when several start together.
const MIGRATION_LOCK: i64 = 0x5d1a_1000;

/// One connection to the metadata store.
#[derive(Debug)]
pub struct Meta {
    pub(crate) client: Client,
    url: String,
}

impl Meta {
    /// Connects to `url` (`postgres://user@host:port/db`) and brings the
    /// schema up to this binary's version.
    pub async fn connect(url: &str) -> Result<Self> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                warn!(error = %e, "metadata store connection ended");
            }
        });
        let mut meta = Self {
            client,
            url: url.to_owned(),
        };
        meta.migrate().await?;
        Ok(meta)
    }

    /// Whether the connection has ended (PostgreSQL restarted, or was
    /// unreachable long enough): every call fails until [`Meta::reconnect`].
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// A new connection to the same store.
    pub async fn reconnect(&self) -> Result<Self> {
        Self::connect(&self.url).await
    }

    /// The schema version in the store.
    pub async fn schema_version(&self) -> Result<i32> {
        let row = self
            .client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM sundial_migrations",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn migrate(&mut self) -> Result<()> {
        let tx = self.client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS sundial_migrations (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
        let found: i32 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM sundial_migrations",
                &[],
            )
            .await?
            .get(0);
        let known = MIGRATIONS.len() as i32;
        if found > known {
            return Err(Error::SchemaTooNew { found, known });
        }
        for (version, sql) in (1..).zip(MIGRATIONS).skip(found as usize) {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO sundial_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await?;
            info!(version, "metadata schema migrated");
        }
        tx.commit().await?;
        Ok(())
    }
}
