//! The crash loop (issue 14, point 5): one data directory, N rounds. Each
//! round starts `sundial serve` with tiny flush, segment and partition
//! sizes, a one-second maintenance pass and a short retention; writes
//! unique values through `/api/put`, telnet `put`, `/v1/datapoint` and
//! BlueKing `/v2/push/` while deleting ranges, changing BlueKing groups and
//! forcing compactions; SIGKILLs the server (after a random delay, or as
//! soon as its log shows a flush or a compaction starting); restarts it
//! and checks every key the writers ever touched against a model of what
//! was acknowledged (see `model`), every group against the acknowledged
//! metadata changes, and that nothing else is stored.
//!
//! Values name their write (round, writer, sequence), so a lost, stale or
//! stray point is reported with its origin. The seed fixes every choice
//! (values, timestamps relative to now, operations, kill delays), not the
//! interleaving of the threads.

mod check;
mod http;
mod meta;
mod model;
mod rng;
mod round;
mod server;
mod writers;

use crate::s3::S3Server;
use anyhow::{Context, Result, bail};
use model::{Column, ReadApi};
use server::{Server, Started};
use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use sundial_model::now_ms;
use writers::{Api, Writer};

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `sundial` binary.
    pub server: PathBuf,
    /// Kills (each followed by a restart and a check).
    pub rounds: u32,
    /// Longest random delay before a kill, in seconds.
    pub seconds: f64,
    pub seed: u64,
    /// Where the data directory and config go (default: a new directory
    /// under the system's temporary directory); must not hold a `data`
    /// directory yet.
    pub work_dir: Option<PathBuf>,
    /// `storage.retention_secs` of the server (at least 120).
    pub retention_secs: u64,
    /// `storage.fsync` of the server: with `buffered` an acknowledged write
    /// is in the OS's hands, which a process kill does not lose either.
    pub buffered: bool,
    /// Keep the work directory after a clean run too.
    pub keep: bool,
    /// Blocks in object storage: an S3 server (s3s, in this process) on
    /// loopback for the run.
    pub s3: bool,
}

impl Options {
    /// Defaults: kills within 10 s, a seed from the clock, 240 s retention.
    pub fn new(server: PathBuf, rounds: u32) -> Self {
        Self {
            server,
            rounds,
            seconds: 10.0,
            seed: u64::try_from(now_ms()).unwrap_or_default(),
            work_dir: None,
            retention_secs: 240,
            buffered: false,
            keep: false,
            s3: false,
        }
    }
}

/// Totals of a run.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub seed: u64,
    pub work_dir: PathBuf,
    /// Rounds whose kill was followed by a successful restart and check.
    pub rounds: u32,
    /// Acknowledged points compared after restarts (a point once per check).
    pub points_checked: u64,
    /// Acknowledged deletes compared after restarts.
    pub deletes_checked: u64,
    pub lost: u64,
    pub stray: u64,
    /// BlueKing groups compared after restarts.
    pub groups_checked: u64,
    /// Groups or discovered metrics not as acknowledged, or never created.
    pub metadata_wrong: u64,
    pub refusals: u64,
    pub kills_in_flush: u64,
    pub kills_in_compaction: u64,
    /// Kills while a block upload to S3 was under way, and uploads seen.
    pub kills_in_upload: u64,
    pub uploads: u64,
    /// Flushes and compactions the server logs show started.
    pub flushes: u64,
    pub compactions: u64,
    /// Panics in the server logs.
    pub panics: u64,
    /// Error answers while the server ran (not caused by a kill).
    pub unexpected_answers: u64,
    /// Wall time of the rounds.
    pub elapsed_secs: u64,
}

impl Summary {
    /// Lost and stray points, wrong metadata, refusals to start, panics.
    pub fn faults(&self) -> u64 {
        self.lost + self.stray + self.metadata_wrong + self.refusals + self.panics
    }

    /// True when every check passed and something was checked.
    pub fn is_clean(&self) -> bool {
        self.faults() == 0 && self.points_checked > 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "crash loop summary (seed {}):", self.seed)?;
        writeln!(f, "  rounds                     {}", self.rounds)?;
        writeln!(f, "  acknowledged points checked {}", self.points_checked)?;
        writeln!(f, "  acknowledged deletes checked {}", self.deletes_checked)?;
        writeln!(f, "  groups checked             {}", self.groups_checked)?;
        writeln!(f, "  lost points                {}", self.lost)?;
        writeln!(f, "  stray points               {}", self.stray)?;
        writeln!(f, "  metadata wrong             {}", self.metadata_wrong)?;
        writeln!(f, "  refusals to start          {}", self.refusals)?;
        writeln!(f, "  kills inside flush         {}", self.kills_in_flush)?;
        writeln!(
            f,
            "  kills inside compaction    {}",
            self.kills_in_compaction
        )?;
        writeln!(
            f,
            "  flushes / compactions seen {} / {}",
            self.flushes, self.compactions
        )?;
        writeln!(
            f,
            "  kills inside upload        {} (of {} uploads seen)",
            self.kills_in_upload, self.uploads
        )?;
        writeln!(f, "  server panics              {}", self.panics)?;
        writeln!(
            f,
            "  unexpected error answers   {}",
            self.unexpected_answers
        )?;
        write!(f, "  elapsed                    {} s", self.elapsed_secs)
    }
}

/// Where `/v2/push/` writes: the group the loop created.
#[derive(Debug, Clone)]
pub(crate) struct PushTarget {
    pub(crate) data_id: i64,
    pub(crate) group_id: i64,
    pub(crate) token: String,
    /// The group's db prefix: physical metric names are `<prefix>.<metric>`.
    pub(crate) prefix: String,
}

/// Tells the threads of a round to stop; waits on it double as their pace.
#[derive(Debug, Default)]
pub(crate) struct Stop {
    stopped: Mutex<bool>,
    changed: Condvar,
}

impl Stop {
    pub(crate) fn set(&self) {
        if let Ok(mut s) = self.stopped.lock() {
            *s = true;
        }
        self.changed.notify_all();
    }

    pub(crate) fn is_set(&self) -> bool {
        self.stopped.lock().map_or(true, |s| *s)
    }

    /// Waits up to `d`; true once stopped.
    pub(crate) fn wait(&self, d: Duration) -> bool {
        let Ok(s) = self.stopped.lock() else {
            return true;
        };
        self.changed
            .wait_timeout_while(s, d, |stopped| !*stopped)
            .map_or(true, |(s, _)| *s)
    }
}

/// What every thread of a round needs.
#[derive(Debug, Clone)]
pub(crate) struct RoundCtx {
    pub(crate) addr: SocketAddr,
    pub(crate) base_url: String,
    pub(crate) round: u32,
    pub(crate) seed: u64,
    pub(crate) retention_ms: i64,
    pub(crate) columns: Arc<Vec<Column>>,
    pub(crate) push: Arc<PushTarget>,
    pub(crate) stop: Arc<Stop>,
}

impl RoundCtx {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

/// Series per writer.
const SERIES: usize = 4;

/// What one writer writes: its API, its `w` tag, its metrics and fields.
struct Layout {
    api: Api,
    name: &'static str,
    metrics: &'static [&'static str],
    fields: &'static [&'static str],
    read: ReadApi,
}

const LAYOUT: [Layout; 4] = [
    Layout {
        api: Api::Put,
        name: "put",
        metrics: &["crashloop.put"],
        fields: &["value"],
        read: ReadApi::OpenTsdb,
    },
    Layout {
        api: Api::Telnet,
        name: "telnet",
        metrics: &["crashloop.telnet"],
        fields: &["value"],
        read: ReadApi::OpenTsdb,
    },
    Layout {
        api: Api::V1,
        name: "v1",
        metrics: &["crashloop_v1"],
        fields: &["f1", "f2"],
        read: ReadApi::V1,
    },
    // Physical names are `<group prefix>.<metric>`.
    Layout {
        api: Api::Push,
        name: "push",
        metrics: &["crashloop_a", "crashloop_b"],
        fields: &["value"],
        read: ReadApi::V1,
    },
];

/// The writers and the table of their columns.
fn writers(prefix: &str) -> (Vec<Writer>, Vec<Column>) {
    let mut columns = Vec::new();
    let mut writers = Vec::new();
    for (i, l) in LAYOUT.iter().enumerate() {
        let mut series = Vec::new();
        for s in 0..SERIES {
            let mut cols = Vec::new();
            for m in l.metrics {
                for f in l.fields {
                    cols.push(columns.len() as model::ColumnId);
                    columns.push(Column {
                        metric: match l.api {
                            Api::Push => format!("{prefix}.{m}"),
                            _ => (*m).to_owned(),
                        },
                        field: (*f).to_owned(),
                        tags: vec![("s".into(), s.to_string()), ("w".into(), l.name.into())],
                        read: l.read,
                    });
                }
            }
            series.push(cols);
        }
        writers.push(Writer::new(l.api, i as u8 + 1, series));
    }
    (writers, columns)
}

/// The server's configuration: everything small and frequent, so flushes,
/// partition flushes, compactions and retention all run within seconds.
fn config_text(retention_secs: u64, buffered: bool) -> String {
    let fsync = if buffered { "buffered" } else { "always" };
    format!(
        "[storage]\n\
         partition_secs = 60\n\
         partition_grace_secs = 5\n\
         wal_segment_bytes = 16384\n\
         flush_wal_bytes = 131072\n\
         maintenance_interval_secs = 1\n\
         compaction_min_blocks = 2\n\
         compaction_settle_secs = 5\n\
         retention_secs = {retention_secs}\n\
         fsync = \"{fsync}\"\n"
    )
}

/// The loop's first line.
fn banner(opts: &Options, data: &Path) -> String {
    format!(
        "crash loop: seed {}, {} rounds, kills within {}s, retention {}s, fsync {}, blocks {}, data in {}",
        opts.seed,
        opts.rounds,
        opts.seconds,
        opts.retention_secs,
        if opts.buffered { "buffered" } else { "always" },
        if opts.s3 { "on S3" } else { "local" },
        data.display()
    )
}

/// The `[storage]` settings that put the blocks on `s3` (appended to the
/// table [`config_text`] ends with).
fn s3_config(s3: &S3Server) -> String {
    format!(
        "object_store = \"s3://crashloop/blocks\"\n\
         object_store_options = {{ aws_endpoint_url = \"{}\", aws_access_key_id = \"{}\", \
         aws_secret_access_key = \"{}\", aws_region = \"{}\", aws_allow_http = \"true\" }}\n",
        s3.endpoint(),
        crate::s3::ACCESS_KEY,
        crate::s3::SECRET_KEY,
        crate::s3::REGION
    )
}

/// The loop's work directory with its config, and the S3 server its
/// blocks go to when asked: (work, data, config, s3).
type Prepared = (PathBuf, PathBuf, PathBuf, Option<S3Server>);

fn prepare_work_dir(opts: &Options) -> Result<Prepared> {
    let work = opts.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "sundial-crashloop-{}-{}",
            opts.seed,
            std::process::id()
        ))
    });
    let data = work.join("data");
    if data.exists() {
        bail!(
            "{} exists: the loop needs a fresh data directory",
            data.display()
        );
    }
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let config = work.join("sundial.toml");
    let mut text = config_text(opts.retention_secs, opts.buffered);
    let s3 = if opts.s3 {
        let s3 = S3Server::start(&work.join("s3"), &["crashloop"])?;
        text.push_str(&s3_config(&s3));
        Some(s3)
    } else {
        None
    };
    std::fs::write(&config, text)?;
    Ok((work, data, config, s3))
}

/// Runs the loop, printing a line per round to `out`; stops at the first
/// round that finds a fault. The work directory is removed after a clean
/// run unless `keep`.
pub fn run(opts: &Options, out: &mut dyn Write) -> Result<Summary> {
    if opts.rounds == 0 || opts.seconds < 0.3 || opts.retention_secs < 120 {
        bail!("need rounds >= 1, seconds >= 0.3 and retention_secs >= 120");
    }
    let (work, data, config, _s3) = prepare_work_dir(opts)?;
    let mut summary = Summary {
        seed: opts.seed,
        work_dir: work.clone(),
        ..Summary::default()
    };
    writeln!(out, "{}", banner(opts, &data))?;
    let started_ms = now_ms();
    let began = std::time::Instant::now();
    let mut server = match Server::start(&opts.server, &config, &data)? {
        Started::Up(s) => s,
        Started::Refused(log) => {
            summary.refusals += 1;
            writeln!(out, "the first start failed:\n{log}")?;
            return Ok(summary);
        }
    };
    let (mut control, push) = meta::Control::new(&format!("http://{}", server.addr))?;
    let (mut writers, columns) = writers(&push.prefix);
    let columns = Arc::new(columns);
    let push = Arc::new(push);
    for round in 1..=opts.rounds {
        let ctx = RoundCtx {
            addr: server.addr,
            base_url: format!("http://{}", server.addr),
            round,
            seed: opts.seed,
            retention_ms: i64::try_from(opts.retention_secs * 1000).unwrap_or(i64::MAX),
            columns: columns.clone(),
            push: push.clone(),
            stop: Arc::new(Stop::default()),
        };
        let r = round::Round {
            opts,
            ctx,
            config: &config,
            data: &data,
            started_ms,
        };
        let next;
        (next, writers, control) = r
            .run(server, writers, control, &mut summary, out)
            .with_context(|| {
                format!(
                    "round {round} (seed {}, data in {})",
                    opts.seed,
                    work.display()
                )
            })?;
        summary.elapsed_secs = began.elapsed().as_secs();
        match next {
            Some(s) => server = s,
            None => return Ok(summary),
        }
        if summary.faults() > 0 {
            writeln!(
                out,
                "stopping: round {round} found a fault (data kept in {})",
                work.display()
            )?;
            return Ok(summary);
        }
    }
    drop(server);
    if !opts.keep && summary.is_clean() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(summary)
}
