//! The importer's batches: points grouped by series until a batch holds
//! `--batch-points`, cut only where a record ends, rendered as
//! `/api/import` lines and handed to the senders.

use super::import::{Acks, Batch};
use crate::transfer::Val;
use crate::transfer::format::{KeyRef, Sink};
use anyhow::bail;
use serde::{Serialize, Serializer};
use std::collections::HashMap;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};

/// Points grouped by series until a batch is full.
pub(crate) struct Batcher {
    limit: usize,
    points: usize,
    series: Vec<Columns>,
    index: HashMap<String, usize>,
    key: String,
    /// The series of the last point: files list a series' points
    /// together, and comparing names costs less than building and hashing
    /// the key.
    last: Option<usize>,
    seq: u64,
    tx: Option<SyncSender<Batch>>,
    acks: Arc<Mutex<Acks>>,
    bar: Option<indicatif::ProgressBar>,
    last_offset: u64,
}

struct Columns {
    metric: String,
    tags: Vec<(String, String)>,
    field: String,
    timestamps: Vec<i64>,
    values: Vec<Val>,
}

impl Batcher {
    pub(crate) fn new(
        limit: usize,
        tx: SyncSender<Batch>,
        acks: Arc<Mutex<Acks>>,
        bar: Option<indicatif::ProgressBar>,
    ) -> Self {
        Self {
            limit,
            points: 0,
            series: Vec::new(),
            index: HashMap::new(),
            key: String::new(),
            last: None,
            seq: 0,
            tx: Some(tx),
            acks,
            bar,
            last_offset: 0,
        }
    }

    pub(crate) fn flush(&mut self) -> anyhow::Result<()> {
        if self.points == 0 {
            return Ok(());
        }
        let mut body = Vec::with_capacity(self.points * 24);
        for s in &self.series {
            serde_json::to_writer(&mut body, &Wire(s))?;
            body.push(b'\n');
        }
        let batch = Batch {
            seq: self.seq,
            end: self.last_offset,
            points: self.points as u64,
            body,
        };
        self.seq += 1;
        self.series.clear();
        self.index.clear();
        self.last = None;
        self.points = 0;
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(batch).is_ok());
        if !sent {
            bail!("the importer's senders stopped");
        }
        Ok(())
    }
}

impl Sink for Batcher {
    fn point(&mut self, key: &KeyRef<'_>, timestamp: i64, value: Val) -> anyhow::Result<()> {
        if let Some(s) = self.last.and_then(|i| self.series.get_mut(i))
            && s.is(key)
        {
            s.timestamps.push(timestamp);
            s.values.push(value);
            self.points += 1;
            return Ok(());
        }
        self.key.clear();
        self.key.push_str(key.metric);
        for (k, v) in key.tags {
            self.key.extend(['\0', '\x01']);
            self.key.push_str(k);
            self.key.push('\x02');
            self.key.push_str(v);
        }
        self.key.push('\0');
        self.key.push_str(key.field);
        let i = match self.index.get(self.key.as_str()) {
            Some(i) => *i,
            None => {
                self.series.push(Columns {
                    metric: key.metric.to_owned(),
                    tags: key
                        .tags
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                    field: key.field.to_owned(),
                    timestamps: Vec::new(),
                    values: Vec::new(),
                });
                self.index.insert(self.key.clone(), self.series.len() - 1);
                self.series.len() - 1
            }
        };
        if let Some(s) = self.series.get_mut(i) {
            s.timestamps.push(timestamp);
            s.values.push(value);
        }
        self.last = Some(i);
        self.points += 1;
        Ok(())
    }

    fn boundary(&mut self, offset: u64) -> anyhow::Result<()> {
        self.last_offset = offset;
        if self.points < self.limit {
            return Ok(());
        }
        if let Ok(a) = self.acks.lock() {
            if let Some(e) = &a.error {
                bail!("{e}");
            }
            if let Some(bar) = &self.bar {
                bar.set_position(a.progress.bytes);
                let secs = a.started.elapsed().as_secs_f64().max(1e-6);
                let sent = a.progress.points - a.resumed_points;
                bar.set_message(format!("{sent} points, {:.0}/s", sent as f64 / secs));
            }
        }
        self.flush()
    }
}

impl Columns {
    fn is(&self, key: &KeyRef<'_>) -> bool {
        self.metric == key.metric
            && self.field == key.field
            && self.tags.len() == key.tags.len()
            && self
                .tags
                .iter()
                .zip(key.tags)
                .all(|((k, v), (k2, v2))| k == k2 && v == v2)
    }
}

/// A batch's series as an `/api/import` line.
struct Wire<'a>(&'a Columns);

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let c = self.0;
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("metric", &c.metric)?;
        m.serialize_entry("tags", &Tags(&c.tags))?;
        m.serialize_entry("field", &c.field)?;
        m.serialize_entry("timestamps", &c.timestamps)?;
        m.serialize_entry("values", &c.values)?;
        m.end()
    }
}

struct Tags<'a>(&'a [(String, String)]);

impl Serialize for Tags<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}
