//! The writer threads: one per write API, each owning its own series, so
//! every key sees one request at a time. A writer sends batches of points
//! (new, late, future, old enough for retention, overwrites) and now and
//! then deletes a time range of one of its series, until the round stops
//! or the server dies under a request.

mod wire;

use super::RoundCtx;
use super::http::{self, Reply};
use super::model::{ColumnId, Outcome, Point, Points, value_of};
use super::rng::Rng;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};

/// The write API a writer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// OpenTSDB `POST /api/put` (with `?sync` every other request).
    Put,
    /// OpenTSDB telnet `put` lines, acknowledged by a following `version`.
    Telnet,
    /// Baidu `POST /v1/datapoint`, two fields per series.
    V1,
    /// BlueKing `POST /v2/push/` into the loop's group, two metrics.
    Push,
}

/// A writer's counts for one round.
#[derive(Debug, Default, Clone)]
pub(crate) struct RoundStats {
    pub(crate) acked_requests: u64,
    pub(crate) acked_points: u64,
    pub(crate) unknown_requests: u64,
    pub(crate) acked_deletes: u64,
    pub(crate) unknown_deletes: u64,
    /// Error answers while the server ran (not the kill).
    pub(crate) unexpected: Vec<String>,
}

/// One writer and the keys it owns.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) api: Api,
    /// Writer number in values (see `value_of`).
    pub(crate) id: u8,
    /// Its series, each with its columns (fields or metrics).
    pub(crate) series: Vec<Vec<ColumnId>>,
    pub(crate) points: Points,
    /// Columns that ever had an acknowledged write.
    pub(crate) acked_columns: BTreeSet<ColumnId>,
    pub(crate) stats: RoundStats,
    seq: u64,
}

/// How one request went.
enum Sent {
    Acked,
    /// Answered with an error: the server runs, the effect is unknown.
    Refused(String),
    /// No answer: the server is gone.
    Broken,
}

impl Writer {
    pub(crate) fn new(api: Api, id: u8, series: Vec<Vec<ColumnId>>) -> Self {
        Self {
            api,
            id,
            series,
            points: Points::default(),
            acked_columns: BTreeSet::new(),
            stats: RoundStats::default(),
            seq: 0,
        }
    }

    /// Writes until the round stops or a request breaks; returns itself
    /// with the round's outcomes recorded.
    pub(crate) fn run(mut self, ctx: &RoundCtx) -> Self {
        self.stats = RoundStats::default();
        self.seq = 0;
        let mut rng = Rng::derive(ctx.seed, ctx.round, u32::from(self.id));
        let agent = http::agent();
        let mut telnet = None;
        while !ctx.stop.is_set() {
            let sent = if rng.percent(3) {
                self.delete(ctx, &agent, &mut rng)
            } else {
                let batch = self.batch(ctx, &mut rng);
                let sent = match self.api {
                    Api::Telnet => wire::telnet(ctx, &mut telnet, &batch),
                    _ => self.post(ctx, &agent, &batch, &mut rng),
                };
                let outcome = match sent {
                    Sent::Acked => {
                        self.stats.acked_requests += 1;
                        self.stats.acked_points += batch.len() as u64;
                        self.acked_columns.extend(batch.iter().map(|p| p.col));
                        Outcome::Acked
                    }
                    _ => {
                        self.stats.unknown_requests += 1;
                        Outcome::Unknown
                    }
                };
                self.points.write(&batch, outcome);
                sent
            };
            match sent {
                Sent::Acked => {}
                Sent::Refused(e) => {
                    if self.stats.unexpected.len() < 5 {
                        self.stats.unexpected.push(e);
                    }
                }
                Sent::Broken => break,
            }
        }
        self
    }

    /// 1–100 points with distinct keys: mostly around now, some in later
    /// partitions, some late (closed partitions), some near or past the
    /// retention cutoff, some overwriting known keys. Timestamps sit on a
    /// 10 ms grid, so fresh points also land on known keys now and then.
    fn batch(&mut self, ctx: &RoundCtx, rng: &mut Rng) -> Vec<Point> {
        let n = 1 + rng.below(100);
        let now = sundial_model::now_ms();
        let r = ctx.retention_ms;
        let mut keys = HashSet::new();
        let mut out = Vec::new();
        for _ in 0..n {
            let Some(cols) = rng.pick(&self.series) else {
                break;
            };
            let Some(&col) = rng.pick(cols) else { break };
            let ts = match rng.below(100) {
                0..55 => now + rng.range(-3_000, 500),
                55..65 => now + rng.range(1_000, 120_000),
                65..80 => now - rng.range(60_000, r - 30_000),
                80..85 => now - rng.range(r - 20_000, r + 60_000),
                _ => self.points.some_ts(col, rng).unwrap_or(now),
            };
            let ts = ts - ts.rem_euclid(10);
            if keys.insert((col, ts)) {
                self.seq += 1;
                out.push(Point {
                    col,
                    ts,
                    value: value_of(ctx.round, self.id, self.seq),
                });
            }
        }
        out
    }

    fn post(&self, ctx: &RoundCtx, agent: &ureq::Agent, batch: &[Point], rng: &mut Rng) -> Sent {
        let cols = &ctx.columns;
        let (path, body) = match self.api {
            Api::Put => {
                let path = if rng.percent(50) {
                    "/api/put?sync"
                } else {
                    "/api/put"
                };
                (path, wire::put_body(cols, batch))
            }
            Api::V1 => ("/v1/datapoint", wire::v1_body(cols, batch)),
            _ => ("/v2/push/", wire::push_body(cols, batch, &ctx.push)),
        };
        let reply = http::request(agent, "POST", &ctx.url(path), Some(&body.to_string()));
        let acked = match (&reply, self.api) {
            (Reply::Broken(_), _) => return Sent::Broken,
            (Reply::Answered { status, body }, Api::Push) => {
                *status == 200
                    && serde_json::from_str::<Value>(body)
                        .is_ok_and(|v| v["result"] == json!("true"))
            }
            (Reply::Answered { status, .. }, _) => *status == 204,
        };
        if acked {
            Sent::Acked
        } else {
            Sent::Refused(format!("{path}: {}", reply.summary()))
        }
    }

    /// Deletes up to 10 s around a known key of one series (one field or
    /// metric, or the whole series) with OpenTSDB's `/api/delete_data`.
    fn delete(&mut self, ctx: &RoundCtx, agent: &ureq::Agent, rng: &mut Rng) -> Sent {
        let Some(cols) = rng.pick(&self.series).cloned() else {
            return Sent::Acked;
        };
        let Some(&first) = rng.pick(&cols) else {
            return Sent::Acked;
        };
        // Push columns are separate metrics; /v1 columns fields of one.
        let (hit, fields) = match self.api {
            Api::Push => (vec![first], None),
            Api::V1 if rng.percent(50) => (vec![first], Some(vec![first])),
            _ => (cols.clone(), None),
        };
        let Some(center) = self.points.some_ts(first, rng) else {
            return Sent::Acked;
        };
        let half = rng.range(0, 5_000);
        let (start, end) = (center - half, center + half);
        let body = wire::delete_body(&ctx.columns, first, fields.as_deref(), start, end);
        let reply = http::request(
            agent,
            "POST",
            &ctx.url("/api/delete_data"),
            Some(&body.to_string()),
        );
        let (outcome, sent) = match &reply {
            Reply::Broken(_) => (Outcome::Unknown, Sent::Broken),
            Reply::Answered { status: 200, .. } => (Outcome::Acked, Sent::Acked),
            Reply::Answered { .. } => (
                Outcome::Unknown,
                Sent::Refused(format!("/api/delete_data: {}", reply.summary())),
            ),
        };
        match outcome {
            Outcome::Acked => self.stats.acked_deletes += 1,
            Outcome::Unknown => self.stats.unknown_deletes += 1,
        }
        self.points.delete(&hit, start, end, outcome);
        sent
    }
}
