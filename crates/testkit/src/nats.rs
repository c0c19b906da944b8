//! Throwaway NATS servers with JetStream (Debian's `nats-server`) on
//! loopback, their stores in temporary directories, for the cluster's
//! WAL tests: one server, or a cluster of three for replicated (R3)
//! streams. `SUNDIAL_NATS` names the binary; `scripts/test` installs the
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
        let bin = binary()?;
        let dir = tempfile::Builder::new().prefix("sundial-nats").tempdir()?;
        let (port, child) = crate::on_free_port(|port| spawn(&bin, port, &dir))?;
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

fn binary() -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(std::env::var("SUNDIAL_NATS").map_err(
        |_| {
            anyhow::anyhow!(
                "SUNDIAL_NATS is not set: run ./scripts/test, which installs nats-server"
            )
        },
    )?))
}

/// A JetStream cluster of `nats-server`s on loopback; each is stopped and
/// its store deleted when dropped.
#[derive(Debug)]
pub struct NatsCluster {
    bin: PathBuf,
    nodes: Vec<ClusterNode>,
}

#[derive(Debug)]
struct ClusterNode {
    port: u16,
    cluster_port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` servers routed to each other and waits until each
    /// one knows the JetStream metadata leader (streams can be made). A
    /// cluster that does not form (a port taken by another process
    /// between its choice and the server's bind) is started again on new
    /// ports, up to three times.
    pub fn start(size: usize) -> anyhow::Result<Self> {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::start_once(size) {
                Ok(cluster) => return Ok(cluster),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        anyhow::bail!(
            "a {size}-server JetStream cluster did not form in three tries:\n{}",
            failures.join("\n---\n")
        )
    }

    fn start_once(size: usize) -> anyhow::Result<Self> {
        let bin = binary()?;
        // Free ports, all held until each is known, then released for
        // the servers to bind.
        let listeners = (0..size * 2)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()?;
        let ports = listeners
            .iter()
            .map(|l| Ok(l.local_addr()?.port()))
            .collect::<std::io::Result<Vec<u16>>>()?;
        drop(listeners);
        let nodes = (0..size)
            .map(|i| {
                Ok(ClusterNode {
                    port: ports[2 * i],
                    cluster_port: ports[2 * i + 1],
                    child: None,
                    dir: tempfile::Builder::new().prefix("sundial-nats").tempdir()?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut cluster = Self { bin, nodes };
        // Started together: a server waits for a quorum before it can
        // report a metadata leader.
        let mut children = Vec::new();
        for i in 0..size {
            children.push(cluster.spawn(i)?);
        }
        let mut waiting = children.into_iter().enumerate();
        while let Some((i, child)) = waiting.next() {
            match joined(child) {
                Ok(child) => cluster.nodes[i].child = Some(child),
                Err(e) => {
                    // The others are not the cluster's yet: stop them here
                    // (the joined ones go with `cluster`).
                    for (_, mut other) in waiting {
                        let _ = other.kill();
                        let _ = other.wait();
                    }
                    return Err(e);
                }
            }
        }
        Ok(cluster)
    }

    /// Every server's client URL, comma separated.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills server `i` the way a crash would (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes.get_mut(i).and_then(|n| n.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again on its ports and store, and waits until it
    /// rejoined the cluster.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        self.nodes[i].child = Some(joined(self.spawn(i)?)?);
        Ok(())
    }

    fn spawn(&self, i: usize) -> anyhow::Result<Child> {
        let node = &self.nodes[i];
        let routes = self
            .nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.cluster_port))
            .collect::<Vec<_>>()
            .join(",");
        Command::new(&self.bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &node.port.to_string(),
                "-sd",
            ])
            .arg(node.dir.path())
            .args([
                "--server_name",
                &format!("n{i}"),
                "--cluster_name",
                "sundial",
            ])
            .args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", node.cluster_port),
            ])
            .args(["--routes", &routes])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))
    }
}

/// `child` once it knows the JetStream metadata leader: it is in the
/// cluster and streams can be made.
fn joined(mut child: Child) -> anyhow::Result<Child> {
    crate::wait_for_stderr_line(
        &mut child,
        "metadata leader".into(),
        Duration::from_secs(60),
    )
    .context("nats-server did not join the JetStream cluster")?;
    Ok(child)
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

fn spawn(bin: &PathBuf, port: u16, dir: &tempfile::TempDir) -> anyhow::Result<Child> {
    crate::spawn_until_ready(
        Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path()),
        "Server is ready".into(),
    )
}
