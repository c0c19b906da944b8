//! Progress of a backup or restore: a bar with bytes, rate and ETA on a
//! terminal; one plain line per file copied otherwise (logs, CI).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    /// Bytes moved (not skipped), for the closing rate.
    moved: std::sync::atomic::AtomicU64,
}

impl Progress {
    pub(crate) fn new(total: u64, what: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(what.to_owned());
            bar
        });
        if bar.is_none() {
            println!("{what}: {total} bytes in all");
        }
        Self {
            bar,
            started: Instant::now(),
            moved: Default::default(),
        }
    }

    /// Bytes copied.
    pub(crate) fn advance(&self, bytes: u64) {
        self.moved
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    /// A file the destination already holds.
    pub(crate) fn skip(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    /// A file done.
    pub(crate) fn file(&self, path: &str, bytes: u64) {
        match &self.bar {
            Some(bar) => bar.println(format!("copied {path} ({bytes} bytes)")),
            None => println!("copied {path} ({bytes} bytes)"),
        }
    }

    pub(crate) fn finish(&self, summary: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        let moved = self.moved.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "{summary}; {:.1} MB/s over {secs:.2} s",
            moved as f64 / 1e6 / secs
        );
    }
}
