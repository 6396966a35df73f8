//! The storage writer: follows every node into the store.
//!
//! One follower per node asks its agent for everything since the last flow stored for that node
//! (`since` = the store's last time on the first connect, then the follower's own cursor), so a
//! relay or agent restart leaves no gap while the agent still holds the events; the overlap is
//! harmless because the store ignores uuids it has. Followers hand flows to one bounded queue; a
//! full queue makes them wait (counted as backpressure), which in turn makes the agent's ring
//! overtake a slow writer and report the gap as a lost event (counted). One batcher writes
//! batches sized by count or time and retries a failed batch with backoff.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::mpsc;
use tracing::{Instrument as _, info, info_span, warn};
use vigil_proto::{
    flow::Flow,
    observer::{GetFlowsRequest, get_flows_response::ResponseTypes},
    relay::NodeState,
};
use vigil_storage::{AnyStore, Store as _};

use crate::{
    nodes::{Node, Pool},
    service::Cursor,
};

/// How far before the last stored flow a resumed follower starts (ns).
const RESUME_MARGIN_NS: i128 = 2_000_000_000;

/// Batching and memory bounds of the writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Flows per insert at most.
    pub batch_size: usize,
    /// A partial batch is written after this long.
    pub flush_interval: Duration,
    /// Flows queued between the followers and the batcher at most.
    pub queue: usize,
}

impl Default for WriterConfig {
    fn default() -> WriterConfig {
        WriterConfig {
            batch_size: 5_000,
            flush_interval: Duration::from_millis(500),
            queue: 65_536,
        }
    }
}

/// What the writer did, for logs and tests.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Flows handed to the store (duplicates included).
    pub stored: AtomicU64,
    /// Insert calls that succeeded.
    pub batches: AtomicU64,
    /// Insert calls that failed (and were retried).
    pub insert_errors: AtomicU64,
    /// Times a follower waited for room in the queue.
    pub backpressure: AtomicU64,
    /// Flows the agents reported lost to this writer (`LostEvent` counts).
    pub lost: AtomicU64,
}

impl WriterStats {
    fn count_backpressure(&self, node: &str) {
        let n = self.backpressure.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            warn!(
                node,
                waits = n,
                "storage writer: queue full, follower waiting (backpressure)"
            );
        }
    }

    fn count_lost(&self, node: &str, n: u64, source: i32) {
        let total = self.lost.fetch_add(n, Ordering::Relaxed) + n;
        warn!(
            node,
            lost = n,
            total,
            source,
            "storage writer: agent reported lost events"
        );
    }
}

/// Starts the writer: a follower per node (also for nodes added later) and the batcher.
pub fn start(store: AnyStore, pool: Arc<Pool>, config: WriterConfig) -> Arc<WriterStats> {
    let stats = Arc::new(WriterStats::default());
    let (tx, rx) = mpsc::channel::<Flow>(config.queue.max(1));
    tokio::spawn(
        batcher(store.clone(), rx, config, stats.clone()).instrument(info_span!("writer")),
    );
    let (p, s) = (pool.clone(), stats.clone());
    tokio::spawn(async move {
        let mut added = p.watch_added();
        let mut followed = 0usize;
        loop {
            let nodes = p.nodes();
            for node in nodes.iter().skip(followed) {
                let span = info_span!("writer_follow", node = %node.name());
                tokio::spawn(
                    follow(store.clone(), node.clone(), tx.clone(), s.clone()).instrument(span),
                );
            }
            followed = nodes.len();
            if added.changed().await.is_err() {
                return;
            }
        }
    });
    stats
}

async fn follow(store: AnyStore, node: Arc<Node>, tx: mpsc::Sender<Flow>, stats: Arc<WriterStats>) {
    let mut cursor: Option<Cursor> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        node.connected().await;
        let name = node.name();
        let since = match &cursor {
            Some(c) => c.ns,
            None => match store.last_time(&name).await {
                Ok(t) => {
                    // A margin before the last stored flow: the agent's ring is in arrival
                    // order, which may differ from time order by a little; the store ignores
                    // what it already has.
                    let c = Cursor {
                        ns: t.map_or(0, |t| (i128::from(t) - RESUME_MARGIN_NS).max(0)),
                        ..Cursor::default()
                    };
                    let ns = c.ns;
                    cursor = Some(c);
                    ns
                }
                Err(e) => {
                    warn!(node = %name, error = %e, "storage writer: cannot read the last stored time");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        let request = GetFlowsRequest {
            follow: true,
            // From the start of what the agent holds, or from the last flow stored.
            since: Some(prost_types::Timestamp {
                seconds: since.div_euclid(1_000_000_000) as i64,
                nanos: since.rem_euclid(1_000_000_000) as i32,
            }),
            ..GetFlowsRequest::default()
        };
        let mut stream = match node.client().get_flows(request).await {
            Ok(s) => s.into_inner(),
            Err(s) => {
                node.transition(NodeState::NodeUnavailable, s.message());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        info!(node = %name, since_ns = since, "storage writer: following");
        backoff = Duration::from_millis(100);
        let c = cursor.get_or_insert_with(Cursor::default);
        loop {
            match stream.message().await {
                Ok(Some(r)) => match r.response_types {
                    Some(ResponseTypes::Flow(ref f)) => {
                        if !c.admit(&r) {
                            continue;
                        }
                        let f = f.clone();
                        match tx.try_send(f) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(f)) => {
                                stats.count_backpressure(&name);
                                if tx.send(f).await.is_err() {
                                    return;
                                }
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                    Some(ResponseTypes::LostEvents(l)) => {
                        stats.count_lost(&name, l.num_events_lost, l.source);
                    }
                    _ => {}
                },
                Ok(None) => break,
                Err(s) => {
                    node.transition(NodeState::NodeUnavailable, s.message());
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

async fn batcher(
    store: AnyStore,
    mut rx: mpsc::Receiver<Flow>,
    config: WriterConfig,
    stats: Arc<WriterStats>,
) {
    let mut batch = Vec::with_capacity(config.batch_size);
    loop {
        let deadline = tokio::time::Instant::now() + config.flush_interval;
        while batch.len() < config.batch_size {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(f)) => batch.push(f),
                Ok(None) => {
                    write(&store, &batch, &stats).await;
                    return;
                }
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            write(&store, &batch, &stats).await;
            batch.clear();
        }
    }
}

/// Writes one batch, retrying until the store takes it (the queue holds the rest meanwhile).
async fn write(store: &AnyStore, batch: &[Flow], stats: &WriterStats) {
    if batch.is_empty() {
        return;
    }
    let mut backoff = Duration::from_millis(100);
    loop {
        match store.insert(batch).await {
            Ok(n) => {
                stats.stored.fetch_add(n, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                stats.insert_errors.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, flows = batch.len(), "storage writer: insert failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Applies retention every `interval`, logging what it removed.
pub fn start_retention(
    store: AnyStore,
    max_age: Option<Duration>,
    max_rows: Option<u64>,
    interval: Duration,
) -> Arc<AtomicU64> {
    let removed = Arc::new(AtomicU64::new(0));
    if max_age.is_none() && max_rows.is_none() {
        return removed;
    }
    let total = removed.clone();
    tokio::spawn(
        async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                match store.retention(max_age, max_rows).await {
                    Ok(r) => {
                        let t = total.fetch_add(r.flows, Ordering::Relaxed) + r.flows;
                        if r.flows > 0 || r.policy_hits > 0 {
                            info!(
                                flows = r.flows,
                                policy_hits = r.policy_hits,
                                total_flows = t,
                                "retention removed rows"
                            );
                        }
                    }
                    Err(e) => warn!(error = %e, "retention failed"),
                }
            }
        }
        .instrument(info_span!("retention")),
    );
    removed
}
