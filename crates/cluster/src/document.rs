//! Documents every node shares (docs/cluster.md, "Shared metadata"): a
//! named body in PostgreSQL replaced whole, each store naming the version
//! it replaces, so two nodes changing it at once cannot lose a change
//! (the loser loads the winner's and applies its change again).

use crate::{Meta, Result};
use std::io;
use sundial_api::shared::SharedDocument;
use tokio::runtime::Handle;

impl Meta {
    /// Document `name` and its version, if it was ever stored.
    pub async fn document(&self, name: &str) -> Result<Option<(i64, Vec<u8>)>> {
        let row = self
            .client
            .query_opt(
                "SELECT version, body FROM documents WHERE name = $1",
                &[&name],
            )
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// The version of document `name` (0 before its first store).
    pub async fn document_version(&self, name: &str) -> Result<i64> {
        let row = self
            .client
            .query_opt("SELECT version FROM documents WHERE name = $1", &[&name])
            .await?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    /// Stores `body` as version `expected + 1` of document `name` if its
    /// version is still `expected`; `false` if another store came first.
    pub async fn store_document(&self, name: &str, expected: i64, body: &[u8]) -> Result<bool> {
        let stored = if expected == 0 {
            self.client
                .execute(
                    "INSERT INTO documents (name, version, body) VALUES ($1, 1, $2)
                     ON CONFLICT (name) DO NOTHING",
                    &[&name, &body],
                )
                .await?
        } else {
            self.client
                .execute(
                    "UPDATE documents SET version = version + 1, body = $3
                     WHERE name = $1 AND version = $2",
                    &[&name, &expected, &body],
                )
                .await?
        };
        Ok(stored == 1)
    }
}

/// One document in PostgreSQL as the APIs' [`SharedDocument`]: its calls
/// wait on the runtime it was made on (callers keep them off the async
/// workers), and make the connection again after PostgreSQL restarted.
#[derive(Debug)]
pub struct PgDocument {
    name: String,
    meta: tokio::sync::Mutex<Meta>,
    runtime: Handle,
}

impl PgDocument {
    /// Document `name` of the metadata at `postgres_url`.
    pub async fn connect(postgres_url: &str, name: &str) -> Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            meta: tokio::sync::Mutex::new(Meta::connect(postgres_url).await?),
            runtime: Handle::current(),
        })
    }

    async fn meta(&self) -> Result<tokio::sync::MutexGuard<'_, Meta>> {
        let mut meta = self.meta.lock().await;
        if meta.is_closed() {
            *meta = meta.reconnect().await?;
        }
        Ok(meta)
    }
}

impl SharedDocument for PgDocument {
    fn load(&self) -> io::Result<Option<(i64, Vec<u8>)>> {
        self.runtime
            .block_on(async { self.meta().await?.document(&self.name).await })
            .map_err(io::Error::other)
    }

    fn version(&self) -> io::Result<i64> {
        self.runtime
            .block_on(async { self.meta().await?.document_version(&self.name).await })
            .map_err(io::Error::other)
    }

    fn store(&self, expected: i64, body: &[u8]) -> io::Result<bool> {
        self.runtime
            .block_on(async {
                self.meta()
                    .await?
                    .store_document(&self.name, expected, body)
                    .await
            })
            .map_err(io::Error::other)
    }
}
