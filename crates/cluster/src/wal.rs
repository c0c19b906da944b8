//! The ingesters' write-ahead log on NATS JetStream (docs/cluster.md): one
//! stream per shard (`<stream>_<shard>`, subject `<prefix>.<shard>`; one
//! replicated group each, so shards do not queue behind one leader), file
//! storage, replicated as configured (three in production). A batch
//! counts as written only once JetStream acknowledged storing it; the
//! sequence it got in its shard's stream is its WAL position, which a
//! flush records in the manifest (`Meta::commit_flush`), so an ingester
//! that takes a shard over replays exactly what comes after it. A batch
//! id sent as `Nats-Msg-Id` makes a retried append land once.

use crate::frame::{self, ShardBatch};
use crate::{Error, Result};
use async_nats::jetstream::{self, consumer, message::PublishMessage, stream};
use bytes::Bytes;
use futures::StreamExt;
use std::collections::HashMap;

/// How the WAL's stream is made.
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// Streams are named `<stream>_<shard>`.
    pub stream: String,
    /// Subjects are `<prefix>.<shard>`.
    pub subject_prefix: String,
    /// JetStream replicas: 1 for one server, 3 for an R3 cluster.
    pub replicas: usize,
    /// How long JetStream remembers a batch id for deduplication.
    pub duplicate_window: std::time::Duration,
    /// How long a request (an append's acknowledgement included) may
    /// wait before it fails; while a lost server's streams elect new
    /// leaders, requests fail until they have.
    pub request_timeout: std::time::Duration,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            stream: "SUNDIAL_WAL".into(),
            subject_prefix: "sundial.wal".into(),
            replicas: 1,
            duplicate_window: std::time::Duration::from_secs(120),
            request_timeout: std::time::Duration::from_secs(5),
        }
    }
}

/// One batch read back: its WAL position and what was appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalEntry {
    pub position: u64,
    pub payload: Bytes,
}

/// A connection to the WAL's streams.
#[derive(Debug)]
pub struct JetStreamWal {
    js: jetstream::Context,
    config: WalConfig,
    /// Each shard's stream once looked up or created.
    streams: tokio::sync::Mutex<HashMap<u32, stream::Stream>>,
}

impl JetStreamWal {
    /// Connects to `url`; a shard's stream is created on its first use
    /// (an existing one is used as it is).
    /// `url` may list several servers of one NATS cluster, comma
    /// separated: any one that answers will do.
    pub async fn connect(url: &str, config: &WalConfig) -> Result<Self> {
        let servers: Vec<&str> = url.split(',').map(str::trim).collect();
        let client = async_nats::connect(servers).await.map_err(nats)?;
        let mut js = jetstream::new(client);
        js.set_timeout(config.request_timeout);
        Ok(Self {
            js,
            config: config.clone(),
            streams: Default::default(),
        })
    }

    fn subject(&self, shard: u32) -> String {
        format!("{}.{shard}", self.config.subject_prefix)
    }

    async fn stream(&self, shard: u32) -> Result<stream::Stream> {
        let mut streams = self.streams.lock().await;
        if let Some(s) = streams.get(&shard) {
            return Ok(s.clone());
        }
        let created = self
            .js
            .get_or_create_stream(stream::Config {
                name: format!("{}_{shard}", self.config.stream),
                subjects: vec![self.subject(shard)],
                storage: stream::StorageType::File,
                num_replicas: self.config.replicas,
                duplicate_window: self.config.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(nats)?;
        streams.insert(shard, created.clone());
        Ok(created)
    }

    /// The server leading `shard`'s stream (its replicated group), once
    /// one is elected.
    pub async fn leader(&self, shard: u32) -> Result<Option<String>> {
        let mut stream = self.stream(shard).await?;
        let info = stream.info().await.map_err(nats)?;
        Ok(info.cluster.as_ref().and_then(|c| c.leader.clone()))
    }

    /// The position of the last entry of `shard`'s log (0 before any;
    /// a purge keeps it).
    pub async fn last_position(&self, shard: u32) -> Result<u64> {
        let mut stream = self.stream(shard).await?;
        let info = stream.info().await.map_err(nats)?;
        Ok(info.state.last_sequence)
    }

    /// Appends one batch to `shard`'s log and waits until JetStream has
    /// stored it; its position. Appending the same `batch_id` again
    /// within the duplicate window stores nothing and gives the first
    /// append's position.
    pub async fn append(&self, shard: u32, batch_id: &str, payload: Bytes) -> Result<u64> {
        self.publish(shard, batch_id, payload, None).await
    }

    /// Publishes to `shard`'s stream; with `after`, only if the stream's
    /// last position is that one (JetStream checks it as it stores).
    async fn publish(
        &self,
        shard: u32,
        batch_id: &str,
        payload: Bytes,
        after: Option<u64>,
    ) -> Result<u64> {
        // The stream exists before the first publish to its subject.
        self.stream(shard).await?;
        let mut message = PublishMessage::build()
            .payload(payload)
            .message_id(batch_id);
        if let Some(after) = after {
            message = message.expected_last_sequence(after);
        }
        let ack = self
            .js
            .send_publish(self.subject(shard), message)
            .await
            .map_err(nats)?
            .await
            .map_err(|e| match e.kind() {
                jetstream::context::PublishErrorKind::WrongLastSequence => {
                    Error::LogMoved { shard }
                }
                _ => nats(e),
            })?;
        Ok(ack.sequence)
    }

    /// Appends a frame only while the shard's log ends at `after`, the
    /// last position its owner wrote or fenced: once another owner fenced
    /// the log ([`JetStreamWal::fence`]), every append of the previous
    /// owner fails with [`Error::LogMoved`], whatever its clock says of
    /// its lease. Its position.
    pub async fn append_frame_after(&self, batch: &ShardBatch, after: u64) -> Result<u64> {
        let id = format!("{:032x}", batch.id);
        let bytes = Bytes::from(frame::encode(batch));
        self.publish(batch.shard, &id, bytes, Some(after)).await
    }

    /// Claims `shard`'s log for the owner of lease `epoch`: appends an
    /// empty frame, so appends expecting an earlier end (the previous
    /// owner's) fail from here on. Its position: the new owner replays
    /// everything before it.
    pub async fn fence(&self, shard: u32, epoch: i64, id: u128) -> Result<u64> {
        self.append_frame(&ShardBatch::marker(shard, epoch, id))
            .await
    }

    /// The last frame of `shard`'s log with its position, when the log
    /// holds any (a purge keeps none of what it covered).
    pub async fn last_frame(&self, shard: u32) -> Result<Option<(u64, ShardBatch)>> {
        let stream = self.stream(shard).await?;
        let last = match stream
            .get_last_raw_message_by_subject(self.subject(shard).as_str())
            .await
        {
            Ok(m) => m,
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                return Ok(None);
            }
            Err(e) => return Err(nats(e)),
        };
        match frame::decode(&last.payload) {
            Ok(batch) => Ok(Some((last.sequence, batch))),
            Err(error) => Err(Error::DamagedWal {
                shard,
                position: last.sequence,
                error,
            }),
        }
    }

    /// Every batch of `shard` after position `after`, in order: what an
    /// ingester replays on top of the shard's flushed blocks.
    pub async fn replay(&self, shard: u32, after: u64) -> Result<Vec<WalEntry>> {
        let subject = self.subject(shard);
        let stream = self.stream(shard).await?;
        // The last position now bounds the read: an ordered consumer
        // would otherwise wait for batches still to come.
        let last = match stream
            .get_last_raw_message_by_subject(subject.as_str())
            .await
        {
            Ok(m) => m.sequence,
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(nats(e)),
        };
        if last <= after {
            return Ok(Vec::new());
        }
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subject,
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                ..Default::default()
            })
            .await
            .map_err(nats)?;
        let mut messages = consumer.messages().await.map_err(nats)?;
        let mut out = Vec::new();
        while let Some(message) = messages.next().await {
            let message = message.map_err(nats)?;
            let position = message.info().map_err(Error::Wal)?.stream_sequence;
            out.push(WalEntry {
                position,
                payload: message.payload.clone(),
            });
            if position >= last {
                break;
            }
        }
        Ok(out)
    }

    /// Appends a frame to its shard's log (the batch id is the message
    /// id, so a resent frame is logged once); its position.
    pub async fn append_frame(&self, batch: &ShardBatch) -> Result<u64> {
        let id = format!("{:032x}", batch.id);
        let bytes = Bytes::from(frame::encode(batch));
        self.append(batch.shard, &id, bytes).await
    }

    /// The frames of `shard` after position `after`, with their
    /// positions. A damaged entry stops the replay with an error naming
    /// its position: skipping it would lose acknowledged points.
    pub async fn replay_frames(&self, shard: u32, after: u64) -> Result<Vec<(u64, ShardBatch)>> {
        self.replay(shard, after)
            .await?
            .into_iter()
            .map(|e| match frame::decode(&e.payload) {
                Ok(batch) => Ok((e.position, batch)),
                Err(error) => Err(Error::DamagedWal {
                    shard,
                    position: e.position,
                    error,
                }),
            })
            .collect()
    }

    /// Drops `shard`'s batches up to and including `upto`: they are in
    /// flushed blocks the manifest lists.
    pub async fn truncate(&self, shard: u32, upto: u64) -> Result<()> {
        self.stream(shard)
            .await?
            .purge()
            // JetStream keeps the message at this sequence and later ones.
            .sequence(upto + 1)
            .await
            .map_err(nats)?;
        Ok(())
    }
}

fn nats(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Wal(Box::new(e))
}
