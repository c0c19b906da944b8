//! Where a backup reads from: a stopped server's data directory, a
//! snapshot directory, or a running server's snapshot over HTTP.

use super::listing::{self, Entry, Item};
use anyhow::{Context, bail};
use base64::Engine as _;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use sundial_storage::RemoteStore;

pub(crate) enum Source {
    /// A directory with a data directory's layout, read in place.
    Dir {
        root: PathBuf,
        store: Option<RemoteStore>,
        items: Vec<Item>,
        /// Held while reading a data directory: no server starts on it.
        _lock: Option<std::fs::File>,
    },
    /// A snapshot the running server at `base` took for this backup; it
    /// is dropped again when the backup ends.
    Server {
        base: String,
        authorization: Option<String>,
        snapshot: String,
        entries: Vec<Entry>,
    },
}

impl Source {
    /// A stopped server's data directory (refused while a server holds
    /// it), or with `snapshot` one of its snapshots (safe at any time).
    pub(crate) fn dir(
        data_dir: &Path,
        snapshot: Option<&str>,
        store: Option<RemoteStore>,
    ) -> anyhow::Result<Self> {
        let (root, lock) = match snapshot {
            Some(name) => {
                let root = data_dir
                    .join(sundial_storage::snapshots::SNAPSHOTS_DIR)
                    .join(name);
                if !root.join("snapshot.json").exists() {
                    bail!("{} has no snapshot {name}", data_dir.display());
                }
                (root, None)
            }
            None => {
                let path = data_dir.join("LOCK");
                let lock = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                if lock.try_lock().is_err() {
                    bail!(
                        "a server is running on {}: back it up with --url http://<server>, or \
                         from one of its snapshots with --snapshot NAME",
                        data_dir.display()
                    );
                }
                (data_dir.to_owned(), Some(lock))
            }
        };
        let items = listing::list(&root)?;
        Ok(Self::Dir {
            root,
            store,
            items,
            _lock: lock,
        })
    }

    /// Has the server at `base` take a snapshot named `snapshot` and lists
    /// it. `credentials` is `ID:SECRET` of a key with admin on `*`.
    pub(crate) fn server(
        base: &str,
        credentials: Option<&str>,
        snapshot: &str,
    ) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let authorization = credentials.map(|c| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(c)
            )
        });
        let mut source = Self::Server {
            base,
            authorization,
            snapshot: snapshot.to_owned(),
            entries: Vec::new(),
        };
        let body = serde_json::json!({ "name": snapshot }).to_string();
        source
            .request("POST", "/admin/snapshots")?
            .set("Content-Type", "application/json")
            .send_string(&body)
            .map_err(http_error)?;
        let listed = source
            .request("GET", &format!("/admin/snapshots/{snapshot}/files"))?
            .call()
            .map_err(http_error)?
            .into_string()?;
        let listed: serde_json::Value = serde_json::from_str(&listed)?;
        let entries: Vec<Entry> = serde_json::from_value(listed["files"].clone())
            .context("the server's snapshot listing is not one this version reads")?;
        if let Self::Server { entries: e, .. } = &mut source {
            *e = entries;
        }
        Ok(source)
    }

    fn request(&self, method: &str, path: &str) -> anyhow::Result<ureq::Request> {
        let Self::Server {
            base,
            authorization,
            ..
        } = self
        else {
            bail!("not a server source");
        };
        let mut request = ureq::request(method, &format!("{base}{path}"));
        if let Some(a) = authorization {
            request = request.set("Authorization", a);
        }
        Ok(request)
    }

    /// What the backup holds, in order.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        match self {
            Self::Dir { items, .. } => items.iter().map(|i| i.entry.clone()).collect(),
            Self::Server { entries, .. } => entries.clone(),
        }
    }

    /// `len` bytes from `at` of the file at `index` of [`Source::entries`].
    pub(crate) fn read(&self, index: usize, at: u64, len: usize) -> anyhow::Result<Vec<u8>> {
        match self {
            Self::Dir { items, store, .. } => {
                let item = items.get(index).context("no such file")?;
                listing::read(&item.origin, store.as_ref(), at, len)
            }
            Self::Server {
                entries, snapshot, ..
            } => {
                let entry = entries.get(index).context("no such file")?;
                let path = percent_encoding::utf8_percent_encode(
                    &entry.path,
                    percent_encoding::NON_ALPHANUMERIC,
                );
                let response = self
                    .request(
                        "GET",
                        &format!(
                            "/admin/snapshots/{snapshot}/file?path={path}&offset={at}&len={len}"
                        ),
                    )?
                    .call()
                    .map_err(http_error)?;
                let mut bytes = Vec::with_capacity(len);
                std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes)?;
                anyhow::ensure!(
                    bytes.len() == len,
                    "{}: the server sent {} bytes of {len}",
                    entry.path,
                    bytes.len()
                );
                Ok(bytes)
            }
        }
    }

    /// Where the backup came from, for its manifest.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Dir { root, .. } => root.display().to_string(),
            Self::Server { base, snapshot, .. } => format!("{base} snapshot {snapshot}"),
        }
    }

    /// Drops the snapshot taken for the backup.
    pub(crate) fn finish(&self) -> anyhow::Result<()> {
        if let Self::Server { snapshot, .. } = self {
            self.request("DELETE", &format!("/admin/snapshots/{snapshot}"))?
                .call()
                .map_err(http_error)?;
        }
        Ok(())
    }
}

/// A failed request, with the server's error body when it sent one.
fn http_error(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, response) => {
            let body = response.into_string().unwrap_or_default();
            anyhow::anyhow!("the server answered {code}: {body}")
        }
        e => anyhow::anyhow!(e),
    }
}
