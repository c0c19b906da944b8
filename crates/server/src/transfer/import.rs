//! `sundial import`: reads a file in one of the formats, groups its points
//! by series into batches and posts each batch to `/api/import` while the
//! next one is read. Batches end on record boundaries; the input offset
//! up to which every batch is acknowledged is kept in a progress file, so
//! `--resume` starts there (points sent twice overwrite themselves).

use super::batcher::Batcher;
use super::format;
use super::{Format, ServerArgs, http_error, state};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[arg(long, value_enum)]
    format: Format,
    /// The file to read; `-` (the default) reads standard input.
    #[arg(default_value = "-")]
    input: String,
    /// Points per request.
    #[arg(long, default_value_t = 100_000)]
    batch_points: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 2)]
    parallel: usize,
    /// Start where an earlier import of the same file stopped (from its
    /// `<FILE>.sundial-import` progress file).
    #[arg(long)]
    resume: bool,
    /// Unit of InfluxDB line protocol timestamps.
    #[arg(long, value_enum, default_value = "ns")]
    precision: Precision,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Precision {
    Ns,
    Us,
    Ms,
    S,
}

impl Precision {
    pub(crate) fn nanos(self) -> i64 {
        match self {
            Self::Ns => 1,
            Self::Us => 1_000,
            Self::Ms => 1_000_000,
            Self::S => 1_000_000_000,
        }
    }
}

pub(crate) fn run(args: ImportArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch_points > 0, "--batch-points must be positive");
    anyhow::ensure!(args.parallel > 0, "--parallel must be positive");
    let (mut input, size, progress_file, start) = open_input(&args)?;
    let options = format::ReadOptions {
        offset: start.bytes,
        csv_header: csv_header(&args, start.bytes)?,
        influx_unit_ns: args.precision.nanos(),
        json_buffer: 8 << 20,
        split_bytes: 1 << 20,
    };
    let acks = Arc::new(Mutex::new(Acks::new(start, progress_file.clone())));
    let (tx, rx) = sync_channel::<Batch>(args.parallel);
    let rx = Arc::new(Mutex::new(rx));
    let senders: Vec<_> = (0..args.parallel)
        .map(|_| {
            let (server, rx, acks) = (args.server.clone(), rx.clone(), acks.clone());
            std::thread::spawn(move || send_all(&server, &rx, &acks))
        })
        .collect();
    // Only the senders hold the receiver: if they all stop, sends fail.
    drop(rx);
    let bar = bar(size, acks.clone());
    let mut batcher = Batcher::new(args.batch_points, tx, acks.clone(), bar.clone());
    let read = format::read(args.format, &mut input, &options, &mut batcher);
    let flushed = read.and_then(|()| batcher.flush());
    drop(batcher);
    for s in senders {
        let _ = s.join();
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let acks = acks
        .lock()
        .map_err(|_| anyhow::anyhow!("a sender panicked"))?;
    let secs = acks.started.elapsed().as_secs_f64().max(1e-6);
    let sent = acks.progress.points - acks.resumed_points;
    let summary = format!(
        "imported {sent} points in {secs:.2} s ({:.0} points/s); {} refused",
        sent as f64 / secs,
        acks.failed
    );
    if let Some(e) = &acks.error {
        eprintln!("{summary}");
        bail!("{e}; rerun with --resume to continue");
    }
    flushed?;
    if let Some(path) = &progress_file {
        state::remove(path)?;
    }
    println!("{summary}");
    if acks.failed > 0 {
        bail!("the server refused {} points", acks.failed);
    }
    Ok(())
}

type Input = (
    Box<dyn BufRead>,
    Option<u64>,
    Option<PathBuf>,
    state::Progress,
);

fn open_input(args: &ImportArgs) -> anyhow::Result<Input> {
    if args.input == "-" {
        anyhow::ensure!(!args.resume, "--resume needs a file, not standard input");
        let stdin: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 20, std::io::stdin()));
        return Ok((stdin, None, None, state::Progress::default()));
    }
    let path = PathBuf::from(&args.input);
    let mut file =
        std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    let progress_file = state::path_for(&path, "import");
    let start = if args.resume {
        state::load(&progress_file)?.unwrap_or_default()
    } else {
        state::Progress::default()
    };
    file.seek(SeekFrom::Start(start.bytes))?;
    if start.bytes > 0 {
        eprintln!(
            "resuming at byte {} ({} points imported before)",
            start.bytes, start.points
        );
    }
    let reader: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 20, file));
    Ok((reader, Some(size), Some(progress_file), start))
}

/// A resumed CSV import reads its header from the start of the file.
fn csv_header(args: &ImportArgs, offset: u64) -> anyhow::Result<Option<String>> {
    if args.format != Format::Csv || offset == 0 {
        return Ok(None);
    }
    let file = std::fs::File::open(&args.input)?;
    let mut header = String::new();
    BufReader::new(file).take(1 << 20).read_line(&mut header)?;
    Ok(Some(header.trim_end().to_owned()))
}

fn bar(size: Option<u64>, acks: Arc<Mutex<Acks>>) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(size, indicatif::ProgressDrawTarget::stderr());
    let template = if size.is_some() {
        "[{bar:30}] {bytes}/{total_bytes} {msg} ETA {eta}"
    } else {
        "{spinner} {bytes} {msg}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    if let Ok(a) = acks.lock() {
        bar.set_position(a.progress.bytes);
    }
    Some(bar)
}

/// One request's worth of points, ready to send.
pub(crate) struct Batch {
    pub(crate) seq: u64,
    /// Input offset just after its last record.
    pub(crate) end: u64,
    pub(crate) points: u64,
    pub(crate) body: Vec<u8>,
}

/// The acknowledged prefix of the input, and what went wrong.
pub(crate) struct Acks {
    pub(crate) progress: state::Progress,
    pub(crate) resumed_points: u64,
    /// The next batch whose acknowledgement moves the prefix.
    pub(crate) next: u64,
    pub(crate) done: BTreeMap<u64, (u64, u64)>,
    pub(crate) failed: u64,
    pub(crate) error: Option<String>,
    pub(crate) progress_file: Option<PathBuf>,
    pub(crate) saved: Instant,
    pub(crate) started: Instant,
}

impl Acks {
    fn new(progress: state::Progress, progress_file: Option<PathBuf>) -> Self {
        Self {
            resumed_points: progress.points,
            progress,
            next: 0,
            done: BTreeMap::new(),
            failed: 0,
            error: None,
            progress_file,
            saved: Instant::now(),
            started: Instant::now(),
        }
    }

    fn acknowledge(&mut self, batch: &Batch) {
        self.done.insert(batch.seq, (batch.end, batch.points));
        while let Some((end, points)) = self.done.remove(&self.next) {
            self.progress.bytes = end;
            self.progress.points += points;
            self.next += 1;
        }
        // At most once a second: a resumed import resends the rest.
        if let Some(path) = &self.progress_file
            && self.saved.elapsed() > Duration::from_secs(1)
        {
            self.saved = Instant::now();
            if let Err(e) = state::save(path, &self.progress) {
                self.error.get_or_insert(format!("{e:#}"));
            }
        }
    }

    fn save_now(&mut self) {
        if let Some(path) = &self.progress_file
            && let Err(e) = state::save(path, &self.progress)
        {
            eprintln!("cannot save the import's progress: {e:#}");
        }
    }
}

/// How many times a request is tried while the server is busy or away.
const TRIES: u32 = 8;

fn send_all(server: &ServerArgs, rx: &Mutex<Receiver<Batch>>, acks: &Mutex<Acks>) {
    loop {
        let batch = match rx.lock() {
            Ok(rx) => match rx.recv() {
                Ok(b) => b,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let result = send(server, &batch);
        let Ok(mut a) = acks.lock() else { return };
        match result {
            Ok(failed) => {
                a.failed += failed;
                a.acknowledge(&batch);
            }
            Err(e) => {
                a.error.get_or_insert(format!("{e:#}"));
                a.save_now();
                return;
            }
        }
    }
}

/// Posts one batch, retrying while the server is busy or unreachable;
/// the points it refused.
fn send(server: &ServerArgs, batch: &Batch) -> anyhow::Result<u64> {
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=TRIES {
        let response = server
            .request("POST", "/api/import", &[])
            .set("Content-Type", "application/x-ndjson")
            .send_bytes(&batch.body);
        match response {
            Ok(_) => return Ok(0),
            Err(ureq::Error::Status(400, r)) => {
                let text = r.into_string().unwrap_or_default();
                let body: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("the server answered 400: {text}"))?;
                let Some(failed) = body["failed"].as_u64() else {
                    bail!("the server answered 400: {text}");
                };
                for e in body["errors"].as_array().into_iter().flatten().take(5) {
                    eprintln!("refused: {e}");
                }
                return Ok(failed);
            }
            Err(ureq::Error::Status(429 | 503, _)) | Err(ureq::Error::Transport(_))
                if attempt < TRIES =>
            {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(http_error(e)),
        }
    }
    bail!("the server stayed busy")
}
