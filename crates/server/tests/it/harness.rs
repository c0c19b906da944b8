//! Starting and stopping the real server, and small HTTP/telnet clients.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The path of a real client that `scripts/test` installs (`var` names
/// it). Missing is a failure: a client test never passes without its
/// client.
pub(crate) fn installed_client(var: &str) -> Result<String> {
    std::env::var(var).map_err(|_| {
        anyhow!("{var} is not set: run ./scripts/test, which installs the real clients")
    })
}

/// A running `sundial serve` on 127.0.0.1 with its own data directory.
pub(crate) struct TestServer {
    child: Option<Child>,
    pub(crate) addr: SocketAddr,
    _tmp: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A fresh server on a fresh directory.
    pub(crate) fn spawn() -> Result<Self> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("data");
        let mut s = Self::spawn_with(&dir, &[])?;
        s._tmp = Some(tmp);
        Ok(s)
    }

    /// A fresh server whose configuration file holds `toml`.
    pub(crate) fn spawn_with_config(toml: &str) -> Result<Self> {
        let tmp = tempfile::tempdir()?;
        let config = tmp.path().join("sundial.toml");
        std::fs::write(&config, toml)?;
        let config = config.to_string_lossy().into_owned();
        let mut s = Self::spawn_with(&tmp.path().join("data"), &["--config", &config])?;
        s._tmp = Some(tmp);
        Ok(s)
    }

    /// A server on `data_dir` with extra `serve` arguments.
    pub(crate) fn spawn_with(data_dir: &Path, extra: &[&str]) -> Result<Self> {
        Self::spawn_logging_to(data_dir, extra, Stdio::inherit())
    }

    /// A server on `data_dir` whose log (warnings and up) goes to `log`.
    pub(crate) fn spawn_logging_to(data_dir: &Path, extra: &[&str], log: Stdio) -> Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sundial"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(extra)
            .env("SUNDIAL_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("start sundial")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("sundial listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse()?,
            Err(_) => {
                let _ = child.kill();
                bail!("server did not report its address")
            }
        };
        Ok(Self {
            child: Some(child),
            addr,
            _tmp: None,
        })
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a request; returns the status and the body text.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String)> {
        let req = ureq::request(method, &self.url(path)).timeout(Duration::from_secs(60));
        let res = match body {
            Some(b) => req.send_string(b),
            None => req.call(),
        };
        response(res)
    }

    /// Sends a request with extra headers and a raw body; keeps the
    /// headers the Baidu API tests look at.
    pub(crate) fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply> {
        let mut req = ureq::request(method, &self.url(path)).timeout(Duration::from_secs(60));
        for (name, value) in headers {
            req = req.set(name, value);
        }
        let res = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let r = match res {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e.into()),
        };
        let status = r.status();
        let request_id = r.header("x-bce-request-id").map(str::to_owned);
        let content_type = r.header("content-type").map(str::to_owned);
        Ok(Reply {
            status,
            request_id,
            content_type,
            body: r.into_string()?,
        })
    }

    pub(crate) fn post(&self, path: &str, body: &str) -> Result<(u16, String)> {
        self.request("POST", path, Some(body))
    }

    pub(crate) fn get(&self, path: &str) -> Result<(u16, String)> {
        self.request("GET", path, None)
    }

    /// GET that must answer 200 with JSON.
    pub(crate) fn get_json(&self, path: &str) -> Result<Value> {
        let (status, body) = self.get(path)?;
        if status != 200 {
            bail!("GET {path} answered {status}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// Opens a telnet-protocol connection.
    pub(crate) fn telnet(&self) -> Result<Telnet> {
        let stream = TcpStream::connect(self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        Ok(Telnet { stream })
    }

    /// `kill -9`: no chance to flush anything.
    pub(crate) fn kill9(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub(crate) fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let mut c = self.child.take().ok_or_else(|| anyhow!("not running"))?;
        // SAFETY: sending a signal to our own child process by pid.
        let rc = unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        if rc != 0 {
            bail!("kill failed");
        }
        Ok(c.wait()?)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// A response with the headers the Baidu API tests check.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) request_id: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) body: String,
}

pub(crate) fn response(res: Result<ureq::Response, ureq::Error>) -> Result<(u16, String)> {
    match res {
        Ok(r) => {
            let status = r.status();
            Ok((status, r.into_string()?))
        }
        Err(ureq::Error::Status(status, r)) => Ok((status, r.into_string()?)),
        Err(e) => Err(e.into()),
    }
}

/// A telnet-protocol client.
pub(crate) struct Telnet {
    stream: TcpStream,
}

impl Telnet {
    pub(crate) fn send(&mut self, text: &str) -> Result<()> {
        self.stream.write_all(text.as_bytes())?;
        Ok(())
    }

    /// Everything the server writes until it has been quiet for a second.
    pub(crate) fn read_available(&mut self) -> Result<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(String::from_utf8(out)?)
    }
}

/// One put element as JSON text.
pub(crate) fn point(metric: &str, ts: i64, value: Value, tags: &[(&str, &str)]) -> Value {
    let tags: serde_json::Map<String, Value> = tags
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect();
    serde_json::json!({"metric": metric, "timestamp": ts, "value": value, "tags": tags})
}

/// Parses a body as JSON.
pub(crate) fn json(body: &str) -> Result<Value> {
    serde_json::from_str(body).with_context(|| format!("not JSON: {body}"))
}

/// An HTTP Basic `Authorization` value: access key id and secret.
pub(crate) fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    format!("Basic {token}")
}
