//! Publishing lease events: after every commit (grants, persisted
//! extensions, releases, declines, expiries) and a heartbeat every second.
//!
//! The committer calls [`Publisher::committed`], which numbers the batch
//! and queues it without waiting; the publisher task sends what has queued
//! as one Redis pipeline. Redis is a hint (docs/decisions.md, 9): a message
//! that cannot be sent is counted and dropped, never retried, because its
//! sequence number is gone and peers that notice the gap read the rows from
//! PostgreSQL instead.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use irondhcp_fastpath::unix_now;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use tokio::sync::{mpsc, watch};

use super::stats::SyncStats;
use super::stopped;
use super::wire::{Event, Message};
use crate::plane::LeaseEvents;
use crate::store::{LeaseWrite, WriteOutcome};

/// Messages queued for the publisher task; past it a batch is dropped
/// (peers see the gap).
const QUEUE: usize = 1024;
/// Most messages in one pipeline.
const PIPELINE: usize = 256;
/// How long a connect or a publish may take before Redis counts as away.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// The heartbeat period.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// The committer's side: numbers and queues each committed batch.
pub struct Publisher {
    origin: String,
    epoch: u32,
    /// The last sequence number given out. Held while a message is queued,
    /// so the task can tell "all numbered messages are out" (see
    /// [`PublisherTask::heartbeat_seq`]).
    seq: Mutex<u64>,
    tx: mpsc::Sender<Message>,
    stats: Arc<SyncStats>,
}

/// The task's side.
pub struct PublisherTask {
    publisher: Arc<Publisher>,
    rx: mpsc::Receiver<Message>,
    client: redis::Client,
    channel: String,
    conn: Option<MultiplexedConnection>,
    last_attempt: Option<Instant>,
    /// The last sequence number handed to Redis (or dropped).
    last_out: u64,
}

/// Microseconds since the UNIX epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Publisher {
    pub fn new(
        origin: String,
        epoch: u32,
        client: redis::Client,
        channel: String,
        stats: Arc<SyncStats>,
    ) -> (Arc<Self>, PublisherTask) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let publisher = Arc::new(Self {
            origin,
            epoch,
            seq: Mutex::new(0),
            tx,
            stats,
        });
        let task = PublisherTask {
            publisher: publisher.clone(),
            rx,
            client,
            channel,
            conn: None,
            last_attempt: None,
            last_out: 0,
        };
        (publisher, task)
    }
}

impl LeaseEvents for Publisher {
    fn committed(&self, writes: &[LeaseWrite], outcomes: &[WriteOutcome]) {
        let at = unix_now();
        let events: Vec<Event> = writes
            .iter()
            .zip(outcomes)
            .filter_map(|(w, o)| Event::of(w, *o, at))
            .collect();
        if events.is_empty() {
            return;
        }
        let Ok(mut seq) = self.seq.lock() else {
            return;
        };
        *seq += 1;
        let msg = Message {
            origin: self.origin.clone(),
            epoch: self.epoch,
            seq: *seq,
            sent_us: 0,
            committed_us: now_us(),
            events,
        };
        if self.tx.try_send(msg).is_err() {
            SyncStats::add(&self.stats.publish_failures, 1);
        }
    }
}

impl PublisherTask {
    /// Publishes until `shutdown`.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(PIPELINE);
        loop {
            tokio::select! {
                _ = stopped(&mut shutdown) => return,
                n = self.rx.recv_many(&mut batch, PIPELINE) => {
                    if n == 0 {
                        return;
                    }
                    self.last_out = batch.last().map_or(self.last_out, |m| m.seq);
                    let sent = self.publish(&mut batch).await;
                    let stats = &self.publisher.stats;
                    SyncStats::add(if sent { &stats.published } else { &stats.publish_failures }, n as u64);
                    batch.clear();
                }
                _ = tick.tick() => {
                    let mut hb = vec![Message {
                        origin: self.publisher.origin.clone(),
                        epoch: self.publisher.epoch,
                        seq: self.heartbeat_seq(),
                        sent_us: 0,
                        committed_us: 0,
                        events: Vec::new(),
                    }];
                    if self.publish(&mut hb).await {
                        SyncStats::add(&self.publisher.stats.heartbeats, 1);
                    }
                }
            }
        }
    }

    /// The number a heartbeat carries: every number given out, once none is
    /// waiting in the queue (the ones dropped included, so peers learn of
    /// them); else the last one sent, so a heartbeat never runs ahead of a
    /// message still on its way.
    fn heartbeat_seq(&mut self) -> u64 {
        let Ok(seq) = self.publisher.seq.lock() else {
            return self.last_out;
        };
        if self.rx.is_empty() {
            self.last_out = self.last_out.max(*seq);
        }
        self.last_out
    }

    /// Sends `msgs` as one pipeline; false (and the connection dropped)
    /// when Redis is away.
    async fn publish(&mut self, msgs: &mut [Message]) -> bool {
        let mut pipe = redis::pipe();
        let sent_us = now_us();
        for m in msgs.iter_mut() {
            m.sent_us = sent_us;
            match serde_json::to_vec(m) {
                Ok(body) => {
                    pipe.cmd("PUBLISH").arg(&self.channel).arg(body).ignore();
                }
                Err(e) => tracing::error!(error = %e, "lease event not encoded"),
            }
        }
        let Some(conn) = self.connection().await else {
            return false;
        };
        match pipe.query_async::<()>(conn).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "publishing lease events failed; peers will catch up from the lease store");
                self.conn = None;
                false
            }
        }
    }

    /// The connection, reconnecting at most once a second.
    async fn connection(&mut self) -> Option<&mut MultiplexedConnection> {
        if self.conn.is_none() {
            if self
                .last_attempt
                .is_some_and(|t| t.elapsed() < REDIS_TIMEOUT)
            {
                return None;
            }
            self.last_attempt = Some(Instant::now());
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(REDIS_TIMEOUT))
                .set_response_timeout(Some(REDIS_TIMEOUT));
            match self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot reach Redis to publish");
                    return None;
                }
            }
        }
        self.conn.as_mut()
    }
}
