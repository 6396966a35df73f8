//! Reads verdict events from the datapath's ring buffer and feeds them to the observer.
//!
//! Two tasks, as in Hubble (monitor -> events queue -> observer): the reader drains the ring
//! buffer through `AsyncFd` (await readable, drain every record, copy each out before the next
//! await, clear readiness), decodes each against the ABI mirror and hands it to a bounded queue
//! without ever waiting (a full queue drops the event and counts it). The observer task converts
//! events into flows with the tables of the generation each was produced under (rule and trace ids
//! are only meaningful there, so a policy update never mislabels events in flight), pushes them
//! into the ring and turns queue overflow into `OBSERVER_EVENTS_QUEUE` lost events.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use aya::maps::{MapData, RingBuf};
use serde::Serialize;
use tokio::sync::mpsc;
use vigil_policy::{Cluster, Compiled};
use vigil_proto::flow::{self, LostEventSource};

use crate::{
    abi::Event,
    flows::{self, GenerationIndex},
    observer::Hub,
};

/// Events converted per observer batch.
const OBSERVER_BATCH: usize = 1024;

/// How many generations' tables are kept for labelling late events.
const KEEP_GENERATIONS: usize = 16;

/// The compiled tables of recent generations, by generation number.
#[derive(Debug, Default)]
pub struct Generations {
    by_number: BTreeMap<u32, Arc<GenerationIndex>>,
}

impl Generations {
    /// Indexes and records the tables of `generation`, forgetting the oldest beyond the limit.
    pub fn insert(&mut self, generation: u32, compiled: &Compiled, cluster: &Cluster) {
        self.by_number.insert(
            generation,
            Arc::new(GenerationIndex::new(generation, compiled, cluster)),
        );
        while self.by_number.len() > KEEP_GENERATIONS {
            self.by_number.pop_first();
        }
    }

    /// The index of `generation`, if still kept.
    pub fn get(&self, generation: u32) -> Option<&Arc<GenerationIndex>> {
        self.by_number.get(&generation)
    }

    /// The newest generation's index.
    pub fn latest(&self) -> Option<Arc<GenerationIndex>> {
        self.by_number.last_key_value().map(|(_, i)| i.clone())
    }
}

/// Counters of the event pipeline, shared with the status writer.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records read from the ring buffer.
    pub read: AtomicU64,
    /// Records that did not decode (unknown type/version, short).
    pub decode_errors: AtomicU64,
    /// Flows with verdict FORWARDED.
    pub forwarded: AtomicU64,
    /// Flows with verdict DROPPED.
    pub dropped: AtomicU64,
    /// Flows with verdict AUDIT (allowed, the staged view would deny).
    pub audit: AtomicU64,
    /// Events whose generation's tables were no longer kept (labelled without policy names).
    pub unknown_generation: AtomicU64,
    /// Events dropped because the observer queue was full.
    pub queue_dropped: AtomicU64,
    /// Flows the flow log writer missed (overtaken by the ring writer).
    pub flow_log_lost: AtomicU64,
}

/// Counter values at one moment, for the status file.
#[derive(Debug, Clone, Serialize)]
pub struct CounterSnapshot {
    pub read: u64,
    pub decode_errors: u64,
    pub forwarded: u64,
    pub dropped: u64,
    pub audit: u64,
    pub unknown_generation: u64,
    pub queue_dropped: u64,
    pub flow_log_lost: u64,
}

impl Counters {
    /// Current values.
    pub fn snapshot(&self) -> CounterSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            read: l(&self.read),
            decode_errors: l(&self.decode_errors),
            forwarded: l(&self.forwarded),
            dropped: l(&self.dropped),
            audit: l(&self.audit),
            unknown_generation: l(&self.unknown_generation),
            queue_dropped: l(&self.queue_dropped),
            flow_log_lost: l(&self.flow_log_lost),
        }
    }
}

/// Converts a batch of events into flows and pushes them into the ring, counting verdicts. The
/// whole batch uses one read lock of the generations and one ring lock.
pub fn observe_batch(
    events: &[Event],
    ctx: &flows::Context,
    generations: &RwLock<Generations>,
    counters: &Counters,
    hub: &Hub,
    seq: &mut u64,
) {
    let generations = generations.read().unwrap_or_else(|p| p.into_inner());
    let mut batch = Vec::with_capacity(events.len());
    let mut summaries = Vec::with_capacity(events.len());
    let (mut encoded, mut scratch) = (Vec::with_capacity(4096), Vec::with_capacity(1024));
    let mut last: Option<(u32, Option<&Arc<GenerationIndex>>)> = None;
    for event in events {
        let index = match last {
            Some((g, index)) if g == event.generation => index,
            _ => {
                let index = generations.get(event.generation);
                last = Some((event.generation, index));
                index
            }
        };
        if index.is_none() {
            counters.unknown_generation.fetch_add(1, Ordering::Relaxed);
        }
        *seq += 1;
        encoded.clear();
        let flows::Encoded { unix_ns, summary } = flows::encode_flow(
            event,
            ctx,
            index.map(|i| &**i),
            *seq,
            &mut encoded,
            &mut scratch,
        );
        // The ring keeps this allocation: sized to the flow and its position (appended under
        // the ring's lock), nothing more.
        let mut bytes = Vec::with_capacity(encoded.len() + vigil_proto::raw::POSITION_MAX_LEN);
        bytes.extend_from_slice(&encoded);
        let counter = match flow::Verdict::try_from(summary.verdict) {
            Ok(flow::Verdict::Dropped) => &counters.dropped,
            Ok(flow::Verdict::Audit) => &counters.audit,
            _ => &counters.forwarded,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        summaries.push(summary);
        batch.push((bytes, unix_ns));
    }
    hub.metrics.record(summaries);
    drop(generations);
    hub.push_encoded(batch);
}

/// Reads the ring buffer until the process ends, handing each decoded event to `queue` (bounded:
/// a full queue drops the event and counts it in `queue_dropped`).
pub async fn read_ring(
    ring: RingBuf<MapData>,
    counters: Arc<Counters>,
    queue: mpsc::Sender<Event>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let mut fd =
        crate::sys::async_ring(ring).context("register the ring buffer with the reactor")?;
    loop {
        let mut guard = fd
            .readable_mut()
            .await
            .context("wait for ring buffer events")?;
        let ring = guard.get_inner_mut();
        while let Some(item) = ring.next() {
            counters.read.fetch_add(1, Ordering::Relaxed);
            match Event::decode(&item) {
                Ok(event) => {
                    if queue.try_send(event).is_err() {
                        counters.queue_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(error) => {
                    counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "undecodable ring buffer record");
                }
            }
        }
        guard.clear_ready();
    }
}

/// The observer task: converts queued events into flows until the queue closes, and reports
/// queue overflow as `OBSERVER_EVENTS_QUEUE` lost events.
pub async fn observe(
    mut queue: mpsc::Receiver<Event>,
    ctx: flows::Context,
    generations: Arc<RwLock<Generations>>,
    counters: Arc<Counters>,
    hub: Arc<Hub>,
) {
    let mut events = Vec::with_capacity(OBSERVER_BATCH);
    let (mut seq, mut reported) = (0u64, 0u64);
    while queue.recv_many(&mut events, OBSERVER_BATCH).await > 0 {
        observe_batch(&events, &ctx, &generations, &counters, &hub, &mut seq);
        events.clear();
        let dropped = counters.queue_dropped.load(Ordering::Relaxed);
        if dropped > reported {
            hub.push_lost(LostEventSource::ObserverEventsQueue, dropped - reported);
            reported = dropped;
        }
    }
}
