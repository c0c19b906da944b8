//! Starting `sundial serve` on the loop's data directory, watching its log
//! (`SUNDIAL_LOG=info` on stderr) and killing it with SIGKILL.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a start (recovery included) may take before it counts as a
/// refusal.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Log lines the kill placement waits for: the start of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogEvent {
    Flush,
    Compaction,
    Upload,
}

/// A running server.
#[derive(Debug)]
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) addr: SocketAddr,
    /// Flush and compaction starts, as the server logs them.
    pub(crate) events: Receiver<LogEvent>,
    log: Option<JoinHandle<Vec<String>>>,
}

/// What a start came to.
#[derive(Debug)]
pub(crate) enum Started {
    Up(Server),
    /// The server exited or never said it listens; its stderr.
    Refused(String),
}

impl Server {
    /// Starts `bin serve` and waits for its "sundial listening on" line.
    pub(crate) fn start(bin: &Path, config: &Path, data_dir: &Path) -> Result<Started> {
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("SUNDIAL_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (addr_tx, addr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("sundial listening on ") {
                    let _ = addr_tx.send(a.trim().to_owned());
                }
            }
        });
        let (event_tx, events) = mpsc::channel();
        let log = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let event = if line.contains("flush started") {
                    Some(LogEvent::Flush)
                } else if line.contains("compaction started") {
                    Some(LogEvent::Compaction)
                } else if line.contains("upload started") {
                    Some(LogEvent::Upload)
                } else {
                    None
                };
                if let Some(e) = event {
                    let _ = event_tx.send(e);
                }
                lines.push(line);
            }
            lines
        });
        let mut server = Self {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            events,
            log: Some(log),
        };
        match addr_rx.recv_timeout(START_TIMEOUT) {
            Ok(a) => {
                server.addr = a.parse().with_context(|| format!("listen address {a:?}"))?;
                Ok(Started::Up(server))
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                let lines = server.kill()?;
                let tail = lines.len().saturating_sub(30);
                Ok(Started::Refused(lines[tail..].join("\n")))
            }
        }
    }

    /// SIGKILL, then the log lines the server wrote before it died.
    pub(crate) fn kill(&mut self) -> Result<Vec<String>> {
        if let Some(mut c) = self.child.take() {
            // An exited child is not an error here (a refusal to start).
            let _ = c.kill();
            c.wait().context("wait for the server")?;
        }
        match self.log.take() {
            Some(h) => h.join().map_err(|_| anyhow::anyhow!("log reader panicked")),
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Where a kill landed, from the lines the server wrote before it died.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Landing {
    /// A "flush started" line had no "flush finished" after it.
    pub(crate) in_flush: bool,
    pub(crate) in_compaction: bool,
    /// A block upload to the object store was under way.
    pub(crate) in_upload: bool,
    /// Flushes, compactions and uploads the log shows started.
    pub(crate) flushes: u64,
    pub(crate) compactions: u64,
    pub(crate) uploads: u64,
}

pub(crate) fn landing(lines: &[String]) -> Landing {
    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count() as u64;
    let (flushes, compactions) = (count("flush started"), count("compaction started"));
    let uploads = count("upload started");
    Landing {
        in_flush: flushes > count("flush finished"),
        in_compaction: compactions > count("compaction finished"),
        in_upload: uploads > count("upload finished"),
        flushes,
        compactions,
        uploads,
    }
}

/// Error lines and panics in a server log.
pub(crate) fn problems(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains("ERROR") || l.contains("panicked"))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfinished_phase_is_where_the_kill_landed() {
        let lines: Vec<String> = [
            "INFO sundial_storage::phase: flush started dir=/d",
            "INFO sundial_storage::phase: flush finished dir=/d",
            "INFO sundial_storage::phase: compaction started dir=/d",
            "INFO sundial_storage::phase: flush started dir=/d",
        ]
        .map(String::from)
        .into();
        let l = landing(&lines);
        assert!(l.in_flush && l.in_compaction);
        assert_eq!((l.flushes, l.compactions), (2, 1));
        assert!(!landing(&lines[..2]).in_flush);
    }
}
