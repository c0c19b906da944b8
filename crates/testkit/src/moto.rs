//! moto's standalone S3 server (`moto_server`, from PyPI's `moto[server]`)
//! on a loopback port: a second, independent S3 implementation the
//! object-store tests run against. `SUNDIAL_MOTO` names the executable;
//! `scripts/test` installs it and sets it.

use anyhow::Context;
use std::net::SocketAddr;
use std::process::{Child, Command};

/// A running moto server; killed when dropped. It accepts any credentials.
#[derive(Debug)]
pub struct MotoServer {
    pub addr: SocketAddr,
    child: Child,
}

impl MotoServer {
    /// Starts `$SUNDIAL_MOTO` and creates `buckets`. Fails (never skips)
    /// when the variable is unset: run the suite through `scripts/test`.
    pub fn start(buckets: &[&str]) -> anyhow::Result<Self> {
        let exe = std::env::var("SUNDIAL_MOTO").map_err(|_| {
            anyhow::anyhow!(
                "SUNDIAL_MOTO is not set: run ./scripts/test, which installs moto[server]"
            )
        })?;
        // moto takes a port, not a listener.
        let (port, child) = crate::on_free_port(|port| {
            crate::spawn_until_ready(
                Command::new(&exe).args(["-H", "127.0.0.1", "-p", &port.to_string()]),
                format!("Running on http://127.0.0.1:{port}"),
            )
        })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = Self { addr, child };
        for bucket in buckets {
            ureq::put(&format!("{}/{bucket}", server.endpoint()))
                .call()
                .with_context(|| format!("cannot create bucket {bucket} on moto"))?;
        }
        Ok(server)
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `AWS_*` variables that point a client at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "moto".into()),
            ("AWS_SECRET_ACCESS_KEY", "moto".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
