//! The storage writer: follows every node into the store.
//!
//! One follower per node asks its agent for everything since the last flow stored for that node
//! (its time, minus a margin), so a relay or agent restart leaves no gap while the agent still
//! holds the events. Agents put a position on every flow and lost-event notice (`gaps`): the
//! replayed overlap is skipped, and what the agent's ring evicted before the writer got to it is
//! counted exactly and recorded in the store's `lost_events` table, next to the losses agents
//! report themselves (datapath ring buffer, event queue, a reader overtaken). Followers hand flows
//! to one bounded queue; a full queue makes them wait (counted as backpressure), which in turn
//! makes the agent's ring overtake a slow writer, and that is recorded too. One batcher writes
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
    flow::{Flow, LostEventSource},
    observer::{GetFlowsRequest, GetFlowsResponse, get_flows_response::ResponseTypes},
    relay::NodeState,
    time,
};
use vigil_storage::{AnyStore, LostRow, Store as _};

use crate::{
    gaps::{Step, Tracker},
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

/// What the writer did, for logs, `/metrics` and tests.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Flows handed to the store.
    pub stored: AtomicU64,
    /// Insert calls that succeeded.
    pub batches: AtomicU64,
    /// Insert calls that failed (and were retried).
    pub insert_errors: AtomicU64,
    /// Times a follower waited for room in the queue.
    pub backpressure: AtomicU64,
    /// Events the agents reported lost (`LostEvent` counts), recorded in `lost_events`.
    pub lost: AtomicU64,
    /// Events the agents' rings evicted before the writer read them (gaps between positions),
    /// recorded in `lost_events`.
    pub gaps: AtomicU64,
    /// Replayed entries skipped because they were stored already.
    pub duplicates: AtomicU64,
    /// Flows and lost records waiting in the queue to the batcher.
    pub queued: AtomicU64,
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

    fn count_lost(&self, node: &str, n: u64, source: &str) {
        let total = self.lost.fetch_add(n, Ordering::Relaxed) + n;
        warn!(
            node,
            lost = n,
            total,
            source,
            "storage writer: agent reported lost events"
        );
    }

    fn count_gap(&self, node: &str, n: u64, why: &str) {
        let total = self.gaps.fetch_add(n, Ordering::Relaxed) + n;
        warn!(
            node,
            lost = n,
            total,
            why,
            "storage writer: events evicted by the agent before they were read"
        );
    }
}

/// What followers hand to the batcher.
#[derive(Debug)]
enum Item {
    Flow(Box<Flow>),
    Lost(LostRow),
}

/// A `lost_events` row for `node` at the response's time.
fn lost_row(node: &str, r: &GetFlowsResponse, source: &str, count: u64, detail: &str) -> LostRow {
    let (time, nanos) = r
        .time
        .map_or((0, 0), |t| (t.seconds.max(0) as u32, t.nanos.max(0) as u32));
    LostRow {
        time,
        nanos,
        node: node.to_owned(),
        source: source.to_owned(),
        count,
        detail: detail.to_owned(),
    }
}

/// The `lost_events` row of a gap, if there is one.
fn gap_row(node: &str, r: &GetFlowsResponse, step: Step, first: bool) -> Option<LostRow> {
    if step.gap == 0 {
        return None;
    }
    let why = if step.restarted {
        "evicted from the restarted agent's ring before the storage writer read them"
    } else if first {
        "evicted from the agent's ring before the storage writer first read the node"
    } else {
        "evicted from the agent's ring before the storage writer read them"
    };
    Some(lost_row(
        node,
        r,
        LostEventSource::HubbleRingBuffer.as_str_name(),
        step.gap,
        why,
    ))
}

/// Starts the writer: a follower per node (also for nodes added later) and the batcher.
pub fn start(store: AnyStore, pool: Arc<Pool>, config: WriterConfig) -> Arc<WriterStats> {
    let stats = Arc::new(WriterStats::default());
    let (tx, rx) = mpsc::channel::<Item>(config.queue.max(1));
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

async fn follow(store: AnyStore, node: Arc<Node>, tx: mpsc::Sender<Item>, stats: Arc<WriterStats>) {
    // Read from the store once; then the follower's own place is the truth.
    let mut resumed: Option<Tracker> = None;
    // Flows without positions (agents other than ours) are de-duplicated by time and uuid.
    let mut cursor = Cursor::default();
    let mut first = true;
    let mut backoff = Duration::from_millis(100);
    loop {
        node.connected().await;
        let name = node.name();
        let tracker = match &mut resumed {
            Some(t) => t,
            None => match store.resume_point(&name).await {
                Ok(point) => {
                    // A margin before the last stored flow: the agent's ring is in arrival
                    // order, which may differ from time order by a little.
                    cursor.ns = point.map_or(0, |p| i128::from(p.time_ns));
                    first = point.is_none();
                    resumed.insert(Tracker::resume(point))
                }
                Err(e) => {
                    warn!(node = %name, error = %e, "storage writer: cannot read where to resume");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        let since = (cursor.ns - RESUME_MARGIN_NS).max(0);
        let request = GetFlowsRequest {
            follow: true,
            // From the start of what the agent holds, or from the last flow stored.
            since: Some(time::timestamp(since)),
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
        loop {
            let mut r = match stream.message().await {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(s) => {
                    node.transition(NodeState::NodeUnavailable, s.message());
                    break;
                }
            };
            let mut items = Vec::new();
            // The flow is moved into the queue, not copied.
            let body = r.response_types.take();
            match body {
                Some(ResponseTypes::Flow(f)) => {
                    let fresh = match f.vigil_position {
                        Some(p) => {
                            let step = tracker.step(p, 1);
                            if let Some(row) = gap_row(&name, &r, step, first) {
                                stats.count_gap(&name, row.count, &row.detail);
                                items.push(Item::Lost(row));
                            }
                            let t = r.time.or(f.time).as_ref().map_or(0, time::unix_ns);
                            cursor.ns = cursor.ns.max(t);
                            step.fresh
                        }
                        None => cursor.admit_flow(
                            r.time.or(f.time).as_ref().map_or(0, time::unix_ns),
                            &f.uuid,
                        ),
                    };
                    first = false;
                    if fresh {
                        items.push(Item::Flow(Box::new(f)));
                    } else {
                        stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(ResponseTypes::LostEvents(l)) => {
                    let fresh = match l.vigil_position {
                        Some(p) => {
                            let step = tracker.step(p, l.num_events_lost);
                            if let Some(row) = gap_row(&name, &r, step, first) {
                                stats.count_gap(&name, row.count, &row.detail);
                                items.push(Item::Lost(row));
                            }
                            step.fresh
                        }
                        None => true,
                    };
                    first = false;
                    if fresh {
                        let source = LostEventSource::try_from(l.source)
                            .map_or("UNKNOWN_LOST_EVENT_SOURCE", |s| s.as_str_name());
                        stats.count_lost(&name, l.num_events_lost, source);
                        items.push(Item::Lost(lost_row(
                            &name,
                            &r,
                            source,
                            l.num_events_lost,
                            "reported lost by the agent",
                        )));
                    }
                }
                _ => {}
            }
            for item in items {
                stats.queued.fetch_add(1, Ordering::Relaxed);
                match tx.try_send(item) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(item)) => {
                        stats.count_backpressure(&name);
                        if tx.send(item).await.is_err() {
                            return;
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

async fn batcher(
    store: AnyStore,
    mut rx: mpsc::Receiver<Item>,
    config: WriterConfig,
    stats: Arc<WriterStats>,
) {
    let mut batch = Vec::with_capacity(config.batch_size);
    let mut lost = Vec::new();
    loop {
        let deadline = tokio::time::Instant::now() + config.flush_interval;
        let mut closed = false;
        while batch.len() < config.batch_size {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(item)) => {
                    stats.queued.fetch_sub(1, Ordering::Relaxed);
                    match item {
                        Item::Flow(f) => batch.push(*f),
                        Item::Lost(row) => lost.push(row),
                    }
                }
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        write(&store, &batch, &lost, &stats).await;
        batch.clear();
        lost.clear();
        if closed {
            return;
        }
    }
}

/// Writes one batch of flows and lost records, retrying until the store takes them (the queue
/// holds the rest meanwhile).
async fn write(store: &AnyStore, batch: &[Flow], lost: &[LostRow], stats: &WriterStats) {
    let mut backoff = Duration::from_millis(100);
    let mut flows_done = batch.is_empty();
    let mut lost_done = lost.is_empty();
    while !(flows_done && lost_done) {
        if !flows_done {
            match store.insert(batch).await {
                Ok(n) => {
                    stats.stored.fetch_add(n, Ordering::Relaxed);
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    flows_done = true;
                }
                Err(e) => {
                    stats.insert_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %e, flows = batch.len(), "storage writer: insert failed, retrying");
                }
            }
        }
        if !lost_done {
            match store.insert_lost(lost).await {
                Ok(()) => lost_done = true,
                Err(e) => {
                    stats.insert_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %e, rows = lost.len(), "storage writer: recording lost events failed, retrying");
                }
            }
        }
        if !(flows_done && lost_done) {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
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
