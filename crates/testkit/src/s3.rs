//! An S3 server on loopback for tests and benchmarks: the `s3s` service
//! over a directory (`s3s-fs`), each bucket a subdirectory. Requests must
//! be signed with [`ACCESS_KEY`] and [`SECRET_KEY`].

use anyhow::Context;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub const ACCESS_KEY: &str = "sundial-test";
pub const SECRET_KEY: &str = "sundial-test-secret";
pub const REGION: &str = "us-east-1";

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct S3Server {
    pub addr: SocketAddr,
    pub root: PathBuf,
    requests: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl S3Server {
    /// Serves `root` on a free loopback port, creating `buckets` in it.
    pub fn start(root: &Path, buckets: &[&str]) -> anyhow::Result<Self> {
        Self::start_at(root, buckets, "127.0.0.1:0".parse()?)
    }

    /// Serves `root` at `addr` (a restarted server takes its old port).
    pub fn start_at(root: &Path, buckets: &[&str], addr: SocketAddr) -> anyhow::Result<Self> {
        for b in buckets {
            std::fs::create_dir_all(root.join(b)).context("creating a bucket directory")?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| anyhow::anyhow!("s3s-fs: {e:?}"))?;
        let service = {
            let mut b = S3ServiceBuilder::new(fs);
            b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            b.build()
        };
        let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let counted = requests.clone();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                loop {
                    let socket = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok((socket, _)) => socket,
                            Err(_) => continue,
                        },
                        _ = &mut stopped => break,
                    };
                    counted.fetch_add(1, Ordering::Relaxed);
                    let conn = http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service.clone());
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
            });
        });
        Ok(Self {
            addr,
            root: root.to_owned(),
            requests,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The `AWS_*` variables that point a client at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
