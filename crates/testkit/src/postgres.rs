//! A throwaway PostgreSQL (Debian's `postgresql-15`) on loopback, in a
//! temporary directory, for the cluster's metadata tests.
//! `SUNDIAL_POSTGRES_BIN` names the directory of `initdb` and `postgres`;
//! PostgreSQL refuses to run as root, so under root it runs as the user
//! `SUNDIAL_POSTGRES_USER` names. `scripts/test` installs the package,
//! creates that user and sets both.

use anyhow::{Context, bail};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running PostgreSQL; stopped and deleted when dropped.
#[derive(Debug)]
pub struct Postgres {
    pub port: u16,
    child: Child,
    bin: PathBuf,
    user: RunAs,
    dir: tempfile::TempDir,
}

/// The database role the server is created with (trusted on loopback).
pub const ROLE: &str = "sundial";

impl Postgres {
    /// initdb into a temporary directory, then starts the server on a
    /// free loopback port and waits until it accepts connections. Fails
    /// (never skips) when `SUNDIAL_POSTGRES_BIN` is unset.
    pub fn start() -> anyhow::Result<Self> {
        let bin = PathBuf::from(std::env::var("SUNDIAL_POSTGRES_BIN").map_err(|_| {
            anyhow::anyhow!(
                "SUNDIAL_POSTGRES_BIN is not set: run ./scripts/test, which installs postgresql-15"
            )
        })?);
        let user = RunAs::from_env()?;
        let dir = tempfile::Builder::new().prefix("sundial-pg").tempdir()?;
        user.own(dir.path())?;
        let data = dir.path().join("data");
        let status = user
            .command(&bin.join("initdb"))
            .args([
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "-U",
                ROLE,
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot run initdb")?;
        if !status.success() {
            bail!("initdb failed: {status}");
        }
        let (port, child) = crate::on_free_port(|port| spawn(&bin, &user, dir.path(), port))?;
        Ok(Self {
            port,
            child,
            bin,
            user,
            dir,
        })
    }

    /// Starts the server again on its data and port after [`Postgres::kill`]
    /// (crash recovery included), waiting until it accepts connections.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.child = spawn(&self.bin, &self.user, self.dir.path(), self.port)?;
        Ok(())
    }

    /// A connection URL for database `postgres` as [`ROLE`].
    pub fn url(&self) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server the way a crash would (SIGKILL), for restart tests.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `postgres` on `dir/data` at `port`, once it accepts connections.
fn spawn(bin: &Path, user: &RunAs, dir: &Path, port: u16) -> anyhow::Result<Child> {
    crate::spawn_until_ready(
        user.command(&bin.join("postgres"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ]),
        "database system is ready to accept connections".into(),
    )
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whom the server runs as: this process' user, or under root the user
/// `SUNDIAL_POSTGRES_USER` names.
#[derive(Debug)]
enum RunAs {
    Me,
    User { uid: u32, gid: u32 },
}

impl RunAs {
    fn from_env() -> anyhow::Result<Self> {
        if id(&["-u"])? != 0 {
            return Ok(Self::Me);
        }
        let name = std::env::var("SUNDIAL_POSTGRES_USER").map_err(|_| {
            anyhow::anyhow!(
                "running as root and SUNDIAL_POSTGRES_USER is not set: run ./scripts/test, \
                 which creates a user for PostgreSQL"
            )
        })?;
        Ok(Self::User {
            uid: id(&["-u", &name])?,
            gid: id(&["-g", &name])?,
        })
    }

    fn own(&self, dir: &Path) -> anyhow::Result<()> {
        if let Self::User { uid, gid } = self {
            std::os::unix::fs::chown(dir, Some(*uid), Some(*gid))
                .with_context(|| format!("cannot give {} to the PostgreSQL user", dir.display()))?;
        }
        Ok(())
    }

    fn command(&self, exe: &Path) -> Command {
        let mut c = Command::new(exe);
        if let Self::User { uid, gid } = self {
            c.uid(*uid).gid(*gid);
        }
        c
    }
}

/// `id ARGS`: a user or group id.
fn id(args: &[&str]) -> anyhow::Result<u32> {
    let out = Command::new("id")
        .args(args)
        .output()
        .context("cannot run id")?;
    if !out.status.success() {
        bail!(
            "id {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}
