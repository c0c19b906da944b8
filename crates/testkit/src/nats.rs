//! A throwaway NATS server with JetStream (Debian's `nats-server`) on
//! loopback, its store in a temporary directory, for the cluster's WAL
//! tests. `SUNDIAL_NATS` names the binary; `scripts/test` installs the
//! package and sets it.

use anyhow::Context;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `nats-server -js`; stopped and deleted when dropped.
#[derive(Debug)]
pub struct Nats {
    pub port: u16,
    bin: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
}

impl Nats {
    /// Starts the server on a free loopback port and waits until it
    /// reports that it is ready. Fails (never skips) when `SUNDIAL_NATS`
    /// is unset.
    pub fn start() -> anyhow::Result<Self> {
        let bin = PathBuf::from(std::env::var("SUNDIAL_NATS").map_err(|_| {
            anyhow::anyhow!(
                "SUNDIAL_NATS is not set: run ./scripts/test, which installs nats-server"
            )
        })?);
        let dir = tempfile::Builder::new().prefix("sundial-nats").tempdir()?;
        // A free port, released just before the server binds it.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = spawn(&bin, port, &dir)?;
        Ok(Self {
            port,
            bin,
            child,
            dir,
        })
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server the way a crash would (SIGKILL) and starts it
    /// again on the same port and store.
    pub fn crash_and_restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.child = spawn(&self.bin, self.port, &self.dir)?;
        Ok(())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(bin: &PathBuf, port: u16, dir: &tempfile::TempDir) -> anyhow::Result<Child> {
    let mut child = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    crate::wait_for_stderr_line(
        &mut child,
        "Server is ready".into(),
        Duration::from_secs(60),
    )
    .context("nats-server did not report that it is ready")?;
    Ok(child)
}
