//! A real Prometheus (Debian's `prometheus` package) scraping a server on
//! loopback, and its HTTP API to read back what it scraped.
//! `SUNDIAL_PROMETHEUS` names the executable; `scripts/test` installs it
//! and sets it.

use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

/// A running Prometheus; killed when dropped.
#[derive(Debug)]
pub struct Prometheus {
    pub addr: SocketAddr,
    child: Child,
}

/// What Prometheus scrapes: one target every `interval`.
#[derive(Debug, Clone)]
pub struct Scrape<'a> {
    pub target: SocketAddr,
    pub interval: Duration,
    /// `(username, password)` for the target's Basic auth.
    pub basic_auth: Option<(&'a str, &'a str)>,
}

impl Prometheus {
    /// Starts `$SUNDIAL_PROMETHEUS` with its data and config in `dir`.
    /// Fails (never skips) when the variable is unset: run the suite
    /// through `scripts/test`.
    pub fn start(dir: &Path, scrape: &Scrape<'_>) -> anyhow::Result<Self> {
        let exe = std::env::var("SUNDIAL_PROMETHEUS").map_err(|_| {
            anyhow::anyhow!(
                "SUNDIAL_PROMETHEUS is not set: run ./scripts/test, which installs prometheus"
            )
        })?;
        let mut config = format!(
            "global:\n  scrape_interval: {ms}ms\n  scrape_timeout: {ms}ms\n\
             scrape_configs:\n  - job_name: sundial\n    static_configs:\n      - targets: ['{target}']\n",
            ms = scrape.interval.as_millis(),
            target = scrape.target,
        );
        if let Some((user, password)) = scrape.basic_auth {
            config.push_str(&format!(
                "    basic_auth:\n      username: '{user}'\n      password: '{password}'\n"
            ));
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        // Prometheus takes an address, not a listener.
        let (port, child) = crate::on_free_port(|port| {
            crate::spawn_until_ready(
                Command::new(&exe)
                    .arg(format!("--config.file={}", config_path.display()))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        dir.join("tsdb").display()
                    ))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}")),
                "Server is ready to receive web requests".into(),
            )
        })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Ok(Self { addr, child })
    }

    /// The value of an instant query that yields one sample, `None` when it
    /// yields none (the series was not scraped yet).
    pub fn value(&self, query: &str) -> anyhow::Result<Option<f64>> {
        let url = format!("http://{}/api/v1/query", self.addr);
        let text = ureq::get(&url)
            .query("query", query)
            .call()
            .with_context(|| format!("prometheus query {query}"))?
            .into_string()?;
        let body: serde_json::Value = serde_json::from_str(&text)?;
        let results = body["data"]["result"]
            .as_array()
            .with_context(|| format!("no result for {query}: {body}"))?;
        match results.as_slice() {
            [] => Ok(None),
            [one] => {
                let text = one["value"][1]
                    .as_str()
                    .with_context(|| format!("no value in {one}"))?;
                Ok(Some(text.parse()?))
            }
            more => bail!("{query} yields {} series: {body}", more.len()),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
