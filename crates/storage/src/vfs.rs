//! The one seam every file the server writes goes through (WAL segments,
//! blocks, the catalog, marks and metadata files), so tests can inject the
//! failures real disks produce: EIO on the Nth write, short writes, failed
//! fsyncs, a full disk. Reads use `std::fs` directly: they are what must
//! keep working while writes fail.

use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Writes files, through injected faults when a test set some.
#[derive(Debug, Clone, Default)]
pub struct Vfs {
    faults: Option<Arc<Faults>>,
}

/// A file opened for writing through a [`Vfs`].
#[derive(Debug)]
pub struct VfsFile {
    file: File,
    path: PathBuf,
    faults: Option<Arc<Faults>>,
}

impl Vfs {
    /// Writes through `faults`.
    pub fn with_faults(faults: Arc<Faults>) -> Self {
        Self {
            faults: Some(faults),
        }
    }

    fn check(&self, op: Op, path: &Path) -> io::Result<()> {
        match &self.faults {
            Some(f) => f.check(op, path),
            None => Ok(()),
        }
    }

    /// Creates a new file to append to; fails if it exists.
    pub fn create_new(&self, path: &Path) -> io::Result<VfsFile> {
        self.open_new(path, true)
    }

    /// Creates a new file written at given offsets ([`VfsFile::write_all_at`];
    /// a file opened to append ignores them); fails if it exists.
    pub fn create_new_positioned(&self, path: &Path) -> io::Result<VfsFile> {
        self.open_new(path, false)
    }

    fn open_new(&self, path: &Path, append: bool) -> io::Result<VfsFile> {
        self.check(Op::Create, path)?;
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .append(append)
            .open(path)?;
        Ok(self.wrap(file, path))
    }

    /// Creates or truncates a file.
    pub fn create(&self, path: &Path) -> io::Result<VfsFile> {
        self.check(Op::Create, path)?;
        Ok(self.wrap(File::create(path)?, path))
    }

    /// Opens a file to append to, creating it when missing.
    pub fn open_append(&self, path: &Path) -> io::Result<VfsFile> {
        self.check(Op::Create, path)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(path)?;
        Ok(self.wrap(file, path))
    }

    fn wrap(&self, file: File, path: &Path) -> VfsFile {
        VfsFile {
            file,
            path: path.to_owned(),
            faults: self.faults.clone(),
        }
    }

    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Op::Rename, to)?;
        std::fs::rename(from, to)
    }

    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove, path)?;
        std::fs::remove_file(path)
    }

    pub fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove, path)?;
        std::fs::remove_dir_all(path)
    }

    pub fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Create, path)?;
        std::fs::create_dir_all(path)
    }

    /// Makes a rename or file creation in `dir` durable.
    pub fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::Sync, dir)?;
        File::open(dir)?.sync_all()
    }

    /// Replaces `path` by `bytes` atomically and durably: written aside,
    /// synced, renamed over, directory synced. A crash leaves the old
    /// content or the new, never a mix.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let mut file = self.create(&tmp)?;
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        if let Err(e) = written {
            drop(file);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        self.rename(&tmp, path)?;
        match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => self.sync_dir(dir),
            _ => Ok(()),
        }
    }
}

impl VfsFile {
    pub fn sync_data(&self) -> io::Result<()> {
        self.check(Op::Sync)?;
        self.file.sync_data()
    }

    pub fn sync_all(&self) -> io::Result<()> {
        self.check(Op::Sync)?;
        self.file.sync_all()
    }

    /// Cuts the file to `len` bytes (to take back a failed append).
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        self.check(Op::Truncate)?;
        self.file.set_len(len)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes all of `buf` at `offset`, through the faults as [`Write`]
    /// does.
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let Some(faults) = &self.faults else {
            return self.file.write_all_at(buf, offset);
        };
        // Part of the bytes may reach the file before the error.
        let allowed = faults.on_write(&self.path, buf.len())?;
        let (kept, lost) = buf.split_at(allowed.min(buf.len()));
        self.file.write_all_at(kept, offset)?;
        if lost.is_empty() {
            Ok(())
        } else {
            Err(faults.short_write_error())
        }
    }

    /// The underlying file, for reads.
    pub fn file(&self) -> &File {
        &self.file
    }

    fn check(&self, op: Op) -> io::Result<()> {
        match &self.faults {
            Some(f) => f.check(op, &self.path),
            None => Ok(()),
        }
    }
}

impl Write for VfsFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(faults) = &self.faults else {
            return self.file.write(buf);
        };
        match faults.on_write(&self.path, buf.len()) {
            Ok(n) if n == buf.len() => self.file.write(buf),
            // Part of the bytes reach the file, then the error.
            Ok(n) => {
                let kept = buf.get(..n).unwrap_or_default();
                self.file.write_all(kept)?;
                Err(faults.short_write_error())
            }
            Err(e) => Err(e),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The operations faults can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Write,
    Sync,
    Truncate,
    Rename,
    Remove,
}

/// How an injected fault fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// EIO.
    Io,
    /// ENOSPC.
    NoSpace,
    /// A write stores its first `keep` bytes, then fails with EIO.
    ShortWrite { keep: usize },
}

/// One injected failure: the `nth` (from 0) matching operation on a path
/// containing `path_contains` fails as `kind`, and so do the `times - 1`
/// after it (`u64::MAX`: every one from then on).
#[derive(Debug, Clone)]
pub struct Rule {
    pub op: Op,
    pub path_contains: String,
    pub nth: u64,
    pub times: u64,
    pub kind: FaultKind,
    seen: u64,
}

impl Rule {
    pub fn new(op: Op, path_contains: &str, nth: u64, times: u64, kind: FaultKind) -> Self {
        Self {
            op,
            path_contains: path_contains.to_owned(),
            nth,
            times,
            kind,
            seen: 0,
        }
    }
}

/// Injected failures, changeable while the engine runs.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    rules: Vec<Rule>,
    /// Bytes that may still be written before the disk is full.
    space: Option<u64>,
    /// Faults injected so far.
    injected: u64,
    last_kind: Option<FaultKind>,
}

fn error_of(kind: FaultKind) -> io::Error {
    match kind {
        FaultKind::NoSpace => io::Error::from_raw_os_error(libc::ENOSPC),
        FaultKind::Io | FaultKind::ShortWrite { .. } => io::Error::from_raw_os_error(libc::EIO),
    }
}

impl Faults {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    pub fn add(&self, rule: Rule) {
        self.state.lock().rules.push(rule);
    }

    /// A disk with `bytes` free: writes past them store what fits and
    /// fail with ENOSPC. `None`: unlimited.
    pub fn set_space(&self, bytes: Option<u64>) {
        self.state.lock().space = bytes;
    }

    /// Removes every rule and the space limit.
    pub fn clear(&self) {
        let mut s = self.state.lock();
        s.rules.clear();
        s.space = None;
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.state.lock().injected
    }

    fn check(&self, op: Op, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        match s.fire(op, path) {
            Some(kind) => Err(error_of(kind)),
            None => Ok(()),
        }
    }

    /// How many of `len` bytes a write may store; `Err` for none.
    fn on_write(&self, path: &Path, len: usize) -> io::Result<usize> {
        let mut s = self.state.lock();
        let allowed = match s.fire(Op::Write, path) {
            Some(FaultKind::ShortWrite { keep }) => keep.min(len),
            Some(kind) => return Err(error_of(kind)),
            None => len,
        };
        let Some(space) = s.space else {
            return Ok(allowed);
        };
        let fits = usize::try_from(space).unwrap_or(usize::MAX).min(allowed);
        s.space = Some(space - fits as u64);
        if fits < allowed {
            s.injected += 1;
            s.last_kind = Some(FaultKind::NoSpace);
            if fits == 0 {
                return Err(error_of(FaultKind::NoSpace));
            }
        }
        Ok(fits)
    }

    fn short_write_error(&self) -> io::Error {
        error_of(self.state.lock().last_kind.unwrap_or(FaultKind::Io))
    }
}

impl FaultState {
    fn fire(&mut self, op: Op, path: &Path) -> Option<FaultKind> {
        let text = path.to_string_lossy();
        let mut fired = None;
        for r in &mut self.rules {
            if r.op != op || !text.contains(r.path_contains.as_str()) {
                continue;
            }
            let n = r.seen;
            r.seen = r.seen.saturating_add(1);
            if fired.is_none() && n >= r.nth && n - r.nth < r.times {
                fired = Some(r.kind);
            }
        }
        if let Some(kind) = fired {
            self.injected += 1;
            self.last_kind = Some(kind);
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_fire_as_configured() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let faults = Faults::new();
        let vfs = Vfs::with_faults(faults.clone());
        faults.add(Rule::new(Op::Write, "a.log", 1, 1, FaultKind::Io));
        let path = dir.path().join("a.log");
        let mut f = vfs.create_new(&path)?;
        f.write_all(b"one")?;
        assert!(f.write_all(b"two").is_err());
        f.write_all(b"three")?;
        assert_eq!(std::fs::read(&path)?, b"onethree");
        faults.add(Rule::new(
            Op::Write,
            "a.log",
            0,
            1,
            FaultKind::ShortWrite { keep: 2 },
        ));
        assert!(f.write_all(b"four").is_err());
        assert_eq!(std::fs::read(&path)?, b"onethreefo");
        faults.clear();
        faults.set_space(Some(3));
        let e = f.write_all(b"12345").err().map(|e| e.raw_os_error());
        assert_eq!(e, Some(Some(libc::ENOSPC)));
        assert_eq!(std::fs::read(&path)?, b"onethreefo123");
        faults.set_space(None);
        faults.add(Rule::new(Op::Sync, "", 0, u64::MAX, FaultKind::Io));
        assert!(f.sync_data().is_err() && f.sync_all().is_err());
        assert_eq!(faults.injected(), 5);
        Ok(())
    }

    #[test]
    fn positioned_writes_fail_as_appends_do() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let faults = Faults::new();
        let vfs = Vfs::with_faults(faults.clone());
        let path = dir.path().join("b.log");
        let f = vfs.create_new_positioned(&path)?;
        f.write_all_at(b"........", 0)?;
        f.write_all_at(b"ab", 2)?;
        faults.add(Rule::new(Op::Write, "b.log", 0, 1, FaultKind::Io));
        assert!(f.write_all_at(b"xx", 0).is_err());
        faults.add(Rule::new(
            Op::Write,
            "b.log",
            0,
            1,
            FaultKind::ShortWrite { keep: 1 },
        ));
        assert!(f.write_all_at(b"cd", 5).is_err());
        assert_eq!(std::fs::read(&path)?, b"..ab.c..");
        faults.clear();
        faults.set_space(Some(2));
        let e = f.write_all_at(b"1234", 8).err().map(|e| e.raw_os_error());
        assert_eq!(e, Some(Some(libc::ENOSPC)));
        assert_eq!(std::fs::read(&path)?, b"..ab.c..12");
        assert_eq!(faults.injected(), 3);
        Ok(())
    }

    #[test]
    fn atomic_writes_leave_old_or_new() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("meta.json");
        let faults = Faults::new();
        let vfs = Vfs::with_faults(faults.clone());
        vfs.write_atomic(&path, b"old")?;
        faults.add(Rule::new(Op::Sync, "meta", 0, 1, FaultKind::Io));
        assert!(vfs.write_atomic(&path, b"new").is_err());
        assert_eq!(std::fs::read(&path)?, b"old");
        assert!(!dir.path().join("meta.json.tmp").exists());
        vfs.write_atomic(&path, b"new")?;
        assert_eq!(std::fs::read(&path)?, b"new");
        Ok(())
    }
}
