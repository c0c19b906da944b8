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
    pub(crate) auth: sundial_api::access::Config,
    pub(crate) limits: sundial_api::limits::Config,
    pub(crate) http: HttpConfig,
    pub(crate) tls: TlsConfig,
    pub(crate) log: LogConfig,
    pub(crate) storage: sundial_storage::Config,
    pub(crate) opentsdb: sundial_opentsdb::Config,
    pub(crate) baidu: sundial_baidu::Config,
    pub(crate) bkmonitor: sundial_bkmonitor::Config,
    /// Absent: one node (the embedded default).
    pub(crate) cluster: Option<crate::cluster::ClusterConfig>,
}

/// Connections, timeouts and browser rules of the listener (`[http]`;
/// the telnet protocol shares the port and the connection cap).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HttpConfig {
    /// Open connections (HTTP and telnet); more are answered 503 and closed.
    pub(crate) max_connections: usize,
    /// Time a client has to send a request's headers; also how long an
    /// idle keep-alive connection stays open.
    pub(crate) header_timeout_secs: u64,
    /// Time a client has to send a request's whole body.
    pub(crate) body_timeout_secs: u64,
    /// A telnet connection silent this long is closed.
    pub(crate) telnet_idle_timeout_secs: u64,
    /// Origins whose pages may call the API (and get CORS headers);
    /// `"*"` for every origin.
    pub(crate) cors_allow_origins: Vec<String>,
    /// Host names served without credentials besides IP addresses and
    /// localhost: `"metrics.example.com"`, `".example.com"` (a domain and
    /// its subdomains) or `"*"`.
    pub(crate) allowed_hosts: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout_secs: 60,
            body_timeout_secs: 120,
            telnet_idle_timeout_secs: 600,
            cors_allow_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// Logging (`[log]`; the format is a flag, `--log-format`, as it applies
/// before the file is read).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct LogConfig {
    /// Requests at least this slow (milliseconds) are logged at warn
    /// level with their statement and points scanned; 0 turns it off.
    pub(crate) slow_query_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            slow_query_ms: 1000,
        }
    }
}

/// TLS on the listener (`[tls]`): both paths, PEM, or neither.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct TlsConfig {
    /// Certificate chain, leaf first.
    pub(crate) cert: Option<PathBuf>,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub(crate) key: Option<PathBuf>,
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./sundial-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 4242)),
            allow_unauthenticated: false,
            shutdown_grace_secs: 30,
            auth: sundial_api::access::Config::default(),
            limits: sundial_api::limits::Config::default(),
            http: HttpConfig::default(),
            tls: TlsConfig::default(),
            log: LogConfig::default(),
            storage: sundial_storage::Config::default(),
            opentsdb: sundial_opentsdb::Config::default(),
            baidu: sundial_baidu::Config::default(),
            bkmonitor: sundial_bkmonitor::Config::default(),
            cluster: None,
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

    /// Checks every section (the listen-address rule needs the keys:
    /// [`FileConfig::check_exposure`]).
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        self.access_store()?;
        if self.http.max_connections == 0
            || self.http.header_timeout_secs == 0
            || self.http.body_timeout_secs == 0
            || self.http.telnet_idle_timeout_secs == 0
        {
            anyhow::bail!("http: max_connections and the timeouts must be positive");
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            anyhow::bail!("tls: set both cert and key, or neither");
        }
        self.limits.validate().map_err(anyhow::Error::msg)?;
        self.storage.validate().map_err(anyhow::Error::msg)?;
        self.opentsdb.validate().map_err(anyhow::Error::msg)?;
        self.baidu.validate().map_err(anyhow::Error::msg)?;
        self.bkmonitor.validate().map_err(anyhow::Error::msg)?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        Ok(())
    }

    /// The listen-address rule, over every key `store` holds (those made
    /// through `/admin/keys` included): a server reachable from the
    /// network needs keys, or the operator's word that it may go without.
    pub(crate) fn check_exposure(&self, store: &sundial_api::access::Store) -> anyhow::Result<()> {
        if !self.listen.ip().is_loopback() && !store.is_enabled() && !self.allow_unauthenticated {
            anyhow::bail!(
                "refusing to listen on non-loopback address {} without access keys: configure \
                 [auth] credentials (or make some through /admin/keys on loopback), or pass \
                 --allow-unauthenticated (or set allow_unauthenticated = true) to serve it to the \
                 network anyway",
                self.listen
            );
        }
        Ok(())
    }

    /// The one key store: `[auth] credentials`, plus the keys of the older
    /// `[baidu] credentials` and `[bkmonitor] esb_apps` lists.
    pub(crate) fn access_store(&self) -> anyhow::Result<sundial_api::access::Store> {
        use sundial_api::access::{Action, GrantConfig};
        let baidu = self.baidu.credentials.iter().map(|c| c.to_key());
        let bk = self.bkmonitor.esb_apps.iter().map(|(code, secrets)| {
            let grants = GrantConfig::from([(
                sundial_storage::DEFAULT_DATABASE.to_owned(),
                vec![Action::Read, Action::Write, Action::Admin],
            )]);
            (code.clone(), secrets.clone(), grants)
        });
        sundial_api::access::Store::new(&self.auth, baidu.chain(bk))
            .map_err(|e| anyhow::anyhow!("auth: {e}"))
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

    /// Keys made through `/admin/keys` count for the listen-address rule,
    /// as the configuration's do.
    #[test]
    fn keys_made_at_run_time_let_a_server_face_the_network() -> anyhow::Result<()> {
        use sundial_api::access::{Action, KeyChange, ManagedKey};
        let config = FileConfig {
            listen: "0.0.0.0:4242".parse()?,
            ..FileConfig::default()
        };
        let doc = std::sync::Arc::new(sundial_api::shared::MemoryDocument::default());
        let store = config.access_store()?.with_book(doc, false)?;
        assert!(config.check_exposure(&store).is_err(), "no key at all");
        let root = ManagedKey {
            secret_access_key: "s".into(),
            grants: [("*".to_owned(), vec![Action::Admin])].into(),
        };
        let made = store.change(&KeyChange::Put {
            id: "root".into(),
            key: root,
        });
        made.map_err(|e| anyhow::anyhow!("{e}"))?;
        config.check_exposure(&store)?;
        Ok(())
    }
}
