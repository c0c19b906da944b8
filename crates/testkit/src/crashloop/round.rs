//! One round: the workload, the kill, the restart and the check.

use super::meta::Control;
use super::model::{self, Zone};
use super::rng::Rng;
use super::server::{self, LogEvent, Server, Started};
use super::writers::{Api, Writer};
use super::{Options, RoundCtx, Summary, check};
use anyhow::{Result, anyhow};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};
use sundial_model::now_ms;

/// Where the kill goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillAt {
    /// After a random delay.
    Delay,
    /// As soon as the log shows a flush starting (after a random warm-up).
    FlushStart,
    /// As soon as the log shows a compaction starting.
    CompactionStart,
    /// As soon as the log shows a block upload starting (blocks on S3).
    UploadStart,
}

/// Rounds 1, 5, 9... kill at a flush start, 2, 6, 10... at a compaction
/// start, 3, 7, 11... at an upload start when blocks are on S3, the
/// others after a random delay.
fn kill_at(round: u32, s3: bool) -> KillAt {
    match round % 4 {
        1 => KillAt::FlushStart,
        2 => KillAt::CompactionStart,
        3 if s3 => KillAt::UploadStart,
        _ => KillAt::Delay,
    }
}

/// One round's settings.
#[derive(Debug)]
pub(crate) struct Round<'a> {
    pub(crate) opts: &'a Options,
    pub(crate) ctx: RoundCtx,
    pub(crate) config: &'a Path,
    pub(crate) data: &'a Path,
    /// When the run began (ms): no point is older than its retention span
    /// before that.
    pub(crate) started_ms: i64,
}

/// What a round hands to the next: the restarted server (`None` if it
/// refused to start), the writers and the control thread's state.
type Next = (Option<Server>, Vec<Writer>, Control);

/// What the kill left: the workload's threads' state and the server's
/// log up to the kill.
struct Killed {
    writers: Vec<Writer>,
    control: Control,
    lines: Vec<String>,
    /// Seconds after the workload began, and how the moment was chosen.
    at: f64,
    how: String,
}

impl Round<'_> {
    pub(crate) fn run(
        self,
        server: Server,
        writers: Vec<Writer>,
        control: Control,
        summary: &mut Summary,
        out: &mut dyn Write,
    ) -> Result<Next> {
        let killed = self.kill_under_load(server, writers, control)?;
        // Kept beside the data for a failing round.
        let log = self
            .data
            .with_file_name(format!("round-{}.log", self.ctx.round));
        std::fs::write(&log, killed.lines.join("\n"))?;
        let problems = server::problems(&killed.lines);
        let unexpected: Vec<String> = killed
            .writers
            .iter()
            .flat_map(|w| &w.stats.unexpected)
            .chain(&killed.control.stats.unexpected)
            .cloned()
            .collect();
        let head = self.account_kill(&killed, &problems, unexpected.len(), summary);
        let Killed {
            mut writers,
            mut control,
            ..
        } = killed;
        let server = match Server::start(&self.opts.server, self.config, self.data)? {
            Started::Up(s) => s,
            Started::Refused(log) => {
                summary.refusals += 1;
                writeln!(out, "{head}; the server REFUSED TO START:\n{log}")?;
                return Ok((None, writers, control));
            }
        };
        let line = self.check_restarted(&server, &mut writers, &mut control, summary)?;
        writeln!(out, "{head}; restarted; {}", line.text)?;
        for n in &line.notes {
            writeln!(out, "  {n}")?;
        }
        for l in problems.iter().take(5) {
            writeln!(out, "  server log: {l}")?;
        }
        for u in unexpected.iter().take(5) {
            writeln!(out, "  unexpected answer: {u}")?;
        }
        Ok((Some(server), writers, control))
    }

    /// Runs the writers and the control thread, kills the server at this
    /// round's moment, and collects them.
    fn kill_under_load(
        &self,
        mut server: Server,
        writers: Vec<Writer>,
        control: Control,
    ) -> Result<Killed> {
        let ctx = &self.ctx;
        let handles: Vec<_> = writers
            .into_iter()
            .map(|w| {
                let c = ctx.clone();
                std::thread::spawn(move || w.run(&c))
            })
            .collect();
        let control_thread = {
            let c = ctx.clone();
            std::thread::spawn(move || control.run(&c))
        };
        let mut rng = Rng::derive(ctx.seed, ctx.round, 200);
        let began = Instant::now();
        let how = place_kill(
            &server,
            kill_at(ctx.round, self.opts.s3),
            &mut rng,
            self.opts.seconds,
        );
        let lines = server.kill()?;
        let at = began.elapsed().as_secs_f64();
        ctx.stop.set();
        let writers = handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a writer thread panicked")))
            .collect::<Result<Vec<Writer>>>()?;
        let control = control_thread
            .join()
            .map_err(|_| anyhow!("the control thread panicked"))?;
        drop(server);
        Ok(Killed {
            writers,
            control,
            lines,
            at,
            how,
        })
    }

    /// Adds the kill to the summary; the round's first line.
    fn account_kill(
        &self,
        killed: &Killed,
        problems: &[String],
        unexpected: usize,
        summary: &mut Summary,
    ) -> String {
        let landing = server::landing(&killed.lines);
        summary.flushes += landing.flushes;
        summary.compactions += landing.compactions;
        summary.kills_in_flush += u64::from(landing.in_flush);
        summary.kills_in_compaction += u64::from(landing.in_compaction);
        summary.uploads += landing.uploads;
        summary.kills_in_upload += u64::from(landing.in_upload);
        summary.panics += problems.iter().filter(|l| l.contains("panicked")).count() as u64;
        summary.unexpected_answers += unexpected as u64;
        let inside = match (landing.in_flush, landing.in_compaction) {
            (true, true) => "inside a flush and a compaction",
            (true, false) => "inside a flush",
            (false, true) => "inside a compaction",
            (false, false) => "outside flushes and compactions",
        };
        let inside = if landing.in_upload {
            format!("{inside}, inside an upload")
        } else {
            inside.to_owned()
        };
        let (mut requests, mut points, mut deletes, mut unknown) = (0, 0, 0, 0);
        for w in &killed.writers {
            requests += w.stats.acked_requests;
            points += w.stats.acked_points;
            deletes += w.stats.acked_deletes;
            unknown += w.stats.unknown_requests + w.stats.unknown_deletes;
        }
        let c = &killed.control.stats;
        format!(
            "round {}/{}: killed after {:.2}s ({}), {inside}; acked {requests} writes \
             ({points} points), {deletes} deletes, {} group changes, {} compactions; \
             {} requests without answer",
            self.ctx.round,
            self.opts.rounds,
            killed.at,
            killed.how,
            c.acked_changes,
            c.compactions,
            unknown + c.unknown_changes
        )
    }

    /// Reads everything back from the restarted server and checks every
    /// acknowledged point, delete and group change.
    fn check_restarted(
        &self,
        server: &Server,
        writers: &mut [Writer],
        control: &mut Control,
        summary: &mut Summary,
    ) -> Result<Checked> {
        let ctx = &self.ctx;
        let url = format!("http://{}", server.addr);
        let t_begin = now_ms();
        let (mut observed, mut tally) = check::read_all(
            &url,
            &ctx.columns,
            self.started_ms - ctx.retention_ms - 3_600_000,
            t_begin + 3_600_000,
        )?;
        let t_end = now_ms();
        let zone = Zone {
            may_drop_before: t_end - ctx.retention_ms + 1_000,
            prune_before: t_begin - ctx.retention_ms,
        };
        for w in writers.iter_mut() {
            tally.add(w.points.check(&mut observed, zone, &ctx.columns));
        }
        tally.add(model::leftovers(&observed, &ctx.columns));
        let pushed: BTreeSet<String> = writers
            .iter()
            .filter(|w| w.api == Api::Push)
            .flat_map(|w| &w.acked_columns)
            .filter_map(|c| ctx.columns.get(usize::from(*c)))
            .filter_map(|c| c.metric.split_once('.').map(|(_, m)| m.to_owned()))
            .collect();
        let pushed: Vec<String> = pushed.into_iter().collect();
        let meta = control.check(&url, &ctx.push, &pushed)?;
        summary.rounds += 1;
        summary.points_checked += tally.acked_points;
        summary.deletes_checked += tally.deleted_points;
        summary.lost += tally.lost;
        summary.stray += tally.stray;
        summary.groups_checked += control.len() as u64;
        summary.metadata_wrong += meta.lost + meta.stray;
        let keys: usize = writers.iter().map(|w| w.points.len()).sum();
        let text = format!(
            "checked {} points, {} deletes, {} groups ({keys} keys kept): \
             lost {}, stray {}, metadata wrong {}",
            tally.acked_points,
            tally.deleted_points,
            control.len(),
            tally.lost,
            tally.stray,
            meta.lost + meta.stray
        );
        let notes = tally.notes.into_iter().chain(meta.notes).collect();
        Ok(Checked { text, notes })
    }
}

/// The check's line and its notes.
struct Checked {
    text: String,
    notes: Vec<String>,
}

/// Waits for the kill moment; describes it.
fn place_kill(server: &Server, at: KillAt, rng: &mut Rng, seconds: f64) -> String {
    let uniform = |rng: &mut Rng, lo: f64, hi: f64| {
        lo + (hi - lo) * rng.below(1 << 20) as f64 / f64::from(1 << 20)
    };
    let wanted = match at {
        KillAt::Delay => {
            let d = uniform(rng, 0.2, seconds);
            // The deliberate random kill delay.
            std::thread::sleep(Duration::from_secs_f64(d));
            return "random delay".into();
        }
        KillAt::FlushStart => LogEvent::Flush,
        KillAt::CompactionStart => LogEvent::Compaction,
        KillAt::UploadStart => LogEvent::Upload,
    };
    std::thread::sleep(Duration::from_secs_f64(uniform(
        rng,
        0.2,
        (seconds / 2.0).max(0.2),
    )));
    while server.events.try_recv().is_ok() {}
    let deadline = Instant::now() + Duration::from_secs_f64(seconds.max(5.0) * 2.0);
    let (article, name) = match wanted {
        LogEvent::Flush => ("a", "flush"),
        LogEvent::Compaction => ("a", "compaction"),
        LogEvent::Upload => ("an", "upload"),
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match server.events.recv_timeout(left) {
            Ok(e) if e == wanted => return format!("at {article} {name} start"),
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => return format!("no {name} started in time"),
            Err(RecvTimeoutError::Disconnected) => return "the server had exited".into(),
        }
    }
}
