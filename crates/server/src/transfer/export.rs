//! `sundial export`: metric by metric from `/api/export`, each series line
//! written out in the chosen format as it arrives. With `--output`, the
//! metrics finished and the bytes they fill are kept in a progress file:
//! `--resume` cuts the file back to that length and goes on with the
//! next metric.

use super::format::Writer;
use super::import::Precision;
use super::{Format, Line, ServerArgs, http_error, state};
use anyhow::Context;
use std::io::{BufRead, BufReader, IsTerminal, Seek, Write};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[arg(long, value_enum)]
    format: Format,
    /// Write here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Only these metrics (repeatable) [default: every metric].
    #[arg(long)]
    metric: Vec<String>,
    /// Points from this time on: OpenTSDB's forms (ms or s since the
    /// epoch, `2026/12/01-00:00:00`, `7d-ago`).
    #[arg(long)]
    start: Option<String>,
    /// Points up to this time, the same forms.
    #[arg(long)]
    end: Option<String>,
    /// Go on from where an earlier export to the same --output stopped.
    #[arg(long)]
    resume: bool,
    /// Unit of InfluxDB line protocol timestamps.
    #[arg(long, value_enum, default_value = "ns")]
    precision: Precision,
}

pub(crate) fn run(args: ExportArgs) -> anyhow::Result<()> {
    let range: Vec<(&str, &str)> = [("start", &args.start), ("end", &args.end)]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect();
    let metrics = if args.metric.is_empty() {
        let text = args
            .server
            .request("GET", "/api/export/metrics", &range)
            .call()
            .map_err(http_error)?
            .into_string()?;
        serde_json::from_str::<Vec<String>>(&text).context("the metric list")?
    } else {
        args.metric.clone()
    };
    let (out, progress_file, mut progress) = open_output(&args)?;
    let fresh = progress.bytes == 0;
    let mut writer = Writer::new(args.format, out, args.precision.nanos());
    if fresh {
        writer.start()?;
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(metrics.len() as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} metrics {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let started = Instant::now();
    let resumed_points = progress.points;
    for metric in &metrics {
        if progress.metrics_done.contains(metric) {
            continue;
        }
        let mut query = range.clone();
        query.push(("metric", metric));
        let response = args
            .server
            .request("GET", "/api/export", &query)
            .call()
            .map_err(http_error)?;
        let mut lines = BufReader::with_capacity(1 << 20, response.into_reader());
        let mut text = String::new();
        loop {
            text.clear();
            if lines.read_line(&mut text)? == 0 {
                break;
            }
            let line: Line = serde_json::from_str(&text).context("a line of /api/export")?;
            progress.points += writer.line(&line)?;
            if let Some(bar) = &bar {
                bar.set_message(format!("{metric}: {} points", progress.points));
            }
        }
        writer.flush()?;
        progress.metrics_done.push(metric.clone());
        if let Some(path) = &progress_file {
            let file = writer_file(&mut writer)?;
            file.sync_data()?;
            progress.bytes = file.stream_position()?;
            state::save(path, &progress)?;
        }
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some(path) = &progress_file {
        state::remove(path)?;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    let points = progress.points - resumed_points;
    eprintln!(
        "exported {points} points of {} metrics in {secs:.2} s ({:.0} points/s)",
        metrics.len(),
        points as f64 / secs
    );
    let losses = writer.losses;
    if losses.renamed > 0 {
        eprintln!(
            "{} points of fields other than `value` were written as <metric>.<field> ({:?} has no fields)",
            losses.renamed, args.format
        );
    }
    if losses.skipped_text > 0 {
        eprintln!(
            "{} text points were left out ({:?} holds numbers only)",
            losses.skipped_text, args.format
        );
    }
    Ok(())
}

/// Standard output, or the --output file (cut back to the finished
/// metrics when resuming) with its progress file.
type Output = (Box<dyn WriteSeek>, Option<PathBuf>, state::Progress);

pub(crate) trait WriteSeek: Write + Send {
    fn file(&mut self) -> Option<&mut std::fs::File>;
}

impl WriteSeek for std::io::BufWriter<std::fs::File> {
    fn file(&mut self) -> Option<&mut std::fs::File> {
        self.flush().ok()?;
        Some(self.get_mut())
    }
}

impl WriteSeek for std::io::BufWriter<std::io::Stdout> {
    fn file(&mut self) -> Option<&mut std::fs::File> {
        None
    }
}

fn writer_file(writer: &mut Writer<Box<dyn WriteSeek>>) -> anyhow::Result<&mut std::fs::File> {
    writer
        .inner_mut()
        .file()
        .context("flushing the output file")
}

fn open_output(args: &ExportArgs) -> anyhow::Result<Output> {
    let Some(path) = &args.output else {
        anyhow::ensure!(!args.resume, "--resume needs --output");
        return Ok((
            Box::new(std::io::BufWriter::new(std::io::stdout())),
            None,
            state::Progress::default(),
        ));
    };
    let progress_file = state::path_for(path, "export");
    let progress = if args.resume {
        state::load(&progress_file)?.unwrap_or_default()
    } else {
        state::Progress::default()
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(!args.resume)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.set_len(progress.bytes)?;
    file.seek(std::io::SeekFrom::Start(progress.bytes))?;
    if progress.bytes > 0 {
        eprintln!(
            "resuming after {} metrics ({} points exported before)",
            progress.metrics_done.len(),
            progress.points
        );
    }
    Ok((
        Box::new(std::io::BufWriter::with_capacity(1 << 20, file)),
        Some(progress_file),
        progress,
    ))
}
