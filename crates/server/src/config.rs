//! The server's settings: defaults, then the TOML file, then `SUNDIAL_*`
//! environment variables and flags (clap merges those two).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration file. Every key is optional; see
/// `docs/config.md` for each default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) data_dir: PathBuf,
    pub(crate) listen: SocketAddr,
    /// Serve a non-loopback address although the OpenTSDB API (and `/v1`
    /// without `[baidu] credentials`) takes no credentials.
    pub(crate) allow_unauthenticated: bool,
    /// Seconds in-flight requests get to finish at shutdown.
    pub(crate) shutdown_grace_secs: u64,
    pub(crate) storage: sundial_storage::Config,
    pub(crate) opentsdb: sundial_api::opentsdb::Config,
    pub(crate) baidu: sundial_api::baidu::Config,
    pub(crate) bkmonitor: sundial_api::bk::Config,
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./sundial-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 4242)),
            allow_unauthenticated: false,
            shutdown_grace_secs: 30,
            storage: sundial_storage::Config::default(),
            opentsdb: sundial_api::opentsdb::Config::default(),
            baidu: sundial_api::baidu::Config::default(),
            bkmonitor: sundial_api::bk::Config::default(),
        }
    }
}

impl FileConfig {
    pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))
    }

    /// Checks every section and the listen-address rule.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        self.storage.validate().map_err(anyhow::Error::msg)?;
        self.opentsdb.validate().map_err(anyhow::Error::msg)?;
        self.baidu.validate().map_err(anyhow::Error::msg)?;
        self.bkmonitor.validate().map_err(anyhow::Error::msg)?;
        if !self.listen.ip().is_loopback() && !self.allow_unauthenticated {
            anyhow::bail!(
                "refusing to listen on non-loopback address {}: the OpenTSDB API has no \
                 authentication; pass --allow-unauthenticated (or set \
                 allow_unauthenticated = true) to serve it to the network anyway",
                self.listen
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/config.md must show every key with its real default.
    #[test]
    fn documented_config_matches_the_defaults() -> anyhow::Result<()> {
        let doc = include_str!("../../../docs/config.md");
        let toml_text = doc
            .split("```toml")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .ok_or_else(|| anyhow::anyhow!("no toml block in docs/config.md"))?;
        let documented: FileConfig = toml::from_str(toml_text)?;
        assert_eq!(
            format!("{documented:?}"),
            format!("{:?}", FileConfig::default())
        );
        Ok(())
    }
}
