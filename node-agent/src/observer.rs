//! The observer: the flow ring shared by the event pipeline (the only writer) and every reader
//! (gRPC `GetFlows` streams, the flow log), and the Hubble-compatible `observer.Observer` service.
//!
//! The writer never waits for a reader: it pushes under a short mutex and bumps a watch channel.
//! Each follower copies entries out from its own cursor, releases the lock, then sends into its
//! client's bounded channel; a client too slow to keep up is overtaken by the writer and told how
//! many flows it missed (`LostEvent{HUBBLE_RING_BUFFER}`). Lost events upstream of the ring
//! (datapath ring buffer full, observer queue full) are ring entries, delivered to every reader.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{Instrument as _, debug, info_span};
use vigil_proto::{
    flow::{self, Flow, LostEvent},
    mask::FlowMask,
    observer::{
        self, GetFlowsRequest, GetNamespacesRequest, GetNamespacesResponse, GetNodesRequest,
        GetNodesResponse, ServerStatusRequest, ServerStatusResponse,
        get_flows_response::ResponseTypes,
    },
    raw::{self, service::observer_server},
    relay,
    time::{now_unix_ns, unix_ns},
    vigil,
};

use crate::{
    events::Generations,
    filter::{FilterError, Query},
    flows,
    metrics::{Gauges, Metrics},
    ring::{self, Cursor, Entry, Ring, StoredFlow, Window},
};

/// Entries a follower copies out of the ring per lock.
const FOLLOW_BATCH: usize = 1024;
/// Responses buffered per gRPC stream before the follower waits for the client.
const CLIENT_BUFFER: usize = 4096;

/// The ring and its bookkeeping.
#[derive(Debug)]
pub struct Hub {
    ring: Mutex<Ring<Arc<Entry>>>,
    ring_flows: AtomicU64,
    seen_flows: AtomicU64,
    notify: watch::Sender<u64>,
    node: String,
    started: Instant,
    /// When this agent started (Unix ns): the stream identity in every flow's position.
    started_unix_ns: u64,
    /// The counters behind `/metrics`.
    pub metrics: Metrics,
}

impl Hub {
    /// An empty hub for `node` holding at most `max_flows` entries.
    pub fn new(node: &str, max_flows: usize) -> Hub {
        Hub {
            ring: Mutex::new(Ring::new(max_flows)),
            ring_flows: AtomicU64::new(0),
            seen_flows: AtomicU64::new(0),
            notify: watch::Sender::new(0),
            node: node.to_owned(),
            started: Instant::now(),
            started_unix_ns: now_unix_ns() as u64,
            metrics: Metrics::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring<Arc<Entry>>> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The position `index` of this agent's stream.
    fn position(&self, index: u64) -> vigil::Position {
        vigil::Position {
            agent_start_ns: self.started_unix_ns,
            index,
        }
    }

    /// Appends entries under one lock; `place` gives each its position in the stream first.
    fn push_entries<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        place: impl Fn(T, vigil::Position) -> Entry,
    ) {
        let mut ring = self.lock();
        let (mut added, mut evicted) = (0u64, 0u64);
        for item in items {
            // The entry's place in this agent's stream: a resuming reader counts what the ring
            // evicted before it could read it from the gap between positions.
            let entry = place(item, self.position(ring.end().weight));
            added += u64::from(matches!(entry, Entry::Flow(_)));
            let weight = entry.weight();
            if let Some(old) = ring.push(Arc::new(entry), weight) {
                evicted += u64::from(matches!(*old, Entry::Flow(_)));
            }
        }
        let next = ring.next_seq();
        drop(ring);
        self.ring_flows.fetch_add(added, Ordering::Relaxed);
        self.ring_flows.fetch_sub(evicted, Ordering::Relaxed);
        self.seen_flows.fetch_add(added, Ordering::Relaxed);
        self.notify.send_replace(next);
    }

    /// Appends flows (one lock, one wake-up for the batch), encoding them first.
    pub fn push_flows(&self, flows: Vec<Flow>) {
        if flows.is_empty() {
            return;
        }
        self.metrics.record_flows(&flows);
        let encoded: Vec<(Vec<u8>, i128)> = flows
            .iter()
            .map(|f| {
                // Room for the position, appended later.
                let mut bytes = Vec::with_capacity(f.encoded_len() + raw::POSITION_MAX_LEN);
                f.encode_raw(&mut bytes);
                (bytes, f.time.as_ref().map_or(0, unix_ns))
            })
            .collect();
        drop(flows);
        self.push_encoded(encoded);
    }

    /// Appends flows already encoded (each without its position, with its Unix time in ns) under
    /// one lock: only their positions are appended under it. The caller has counted them in
    /// [`Hub::metrics`].
    pub fn push_encoded(&self, flows: Vec<(Vec<u8>, i128)>) {
        if flows.is_empty() {
            return;
        }
        self.push_entries(flows, |(mut bytes, unix_ns), position| {
            raw::append_position(&mut bytes, &position);
            Entry::Flow(StoredFlow {
                bytes: bytes.into(),
                unix_ns,
            })
        });
    }

    /// Appends a lost-event notice for `n` events lost at `source`.
    pub fn push_lost(&self, source: flow::LostEventSource, n: u64) {
        if n == 0 {
            return;
        }
        self.metrics.record_lost(source, n);
        let now = now_unix_ns();
        self.push_entries([lost_event(source, n, now)], |event, position| {
            Entry::Lost {
                event: LostEvent {
                    vigil_position: Some(position),
                    ..event
                },
                unix_ns: now,
            }
        });
    }

    /// Every entry held and the cursor after the last.
    pub fn snapshot(&self) -> (Vec<Arc<Entry>>, Cursor) {
        let ring = self.lock();
        (ring.snapshot(), ring.end())
    }

    /// Copies up to `max` entries from `cursor`; returns how many events the reader missed (the
    /// flows overwritten before it read them, and the events of overwritten lost notices).
    pub fn read_from(&self, cursor: &mut Cursor, max: usize, out: &mut Vec<Arc<Entry>>) -> u64 {
        self.lock().read_from(cursor, max, out)
    }

    /// A receiver woken on every push.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// Flows held, capacity, flows seen since start.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.ring_flows.load(Ordering::Relaxed),
            self.lock().capacity() as u64,
            self.seen_flows.load(Ordering::Relaxed),
        )
    }

    /// Nanoseconds since the hub started.
    pub fn uptime_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Gauges for `/metrics`, with the parts the hub knows filled in.
    pub fn gauges(&self) -> Gauges {
        let (ring_flows, ring_capacity, seen_flows) = self.counts();
        Gauges {
            ring_flows,
            ring_capacity,
            seen_flows,
            ..Gauges::default()
        }
    }
}

fn lost_event(source: flow::LostEventSource, n: u64, now: i128) -> LostEvent {
    LostEvent {
        source: source as i32,
        num_events_lost: n,
        cpu: None,
        first: Some(flows::timestamp(now)),
        last: Some(flows::timestamp(now)),
        vigil_position: None,
    }
}

/// The `GetFlowsResponse` of a ring entry (a flow goes out as it was encoded).
pub fn response(entry: &Entry, node: &str) -> raw::Response {
    match entry {
        Entry::Flow(f) => raw::Response::flow(
            f.bytes.clone(),
            Some(flows::timestamp(f.unix_ns)),
            node.to_owned(),
        ),
        Entry::Lost { event, unix_ns } => raw::Response {
            time: Some(flows::timestamp(*unix_ns)),
            node_name: node.to_owned(),
            body: raw::Body::Other(ResponseTypes::LostEvents(*event)),
        },
    }
}

/// A `HUBBLE_RING_BUFFER` notice for a reader that missed `lost` entries, counted in metrics.
/// `from` is the stream index of the first event missed.
pub fn overtaken(hub: &Hub, lost: u64, from: u64) -> Entry {
    hub.metrics
        .record_lost(flow::LostEventSource::HubbleRingBuffer, lost);
    let now = now_unix_ns();
    Entry::Lost {
        event: LostEvent {
            vigil_position: Some(hub.position(from)),
            ..lost_event(flow::LostEventSource::HubbleRingBuffer, lost, now)
        },
        unix_ns: now,
    }
}

/// Maps a filter error to the gRPC status the client should see.
fn status_of(e: FilterError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// The `observer.Observer` service of one agent.
#[derive(Debug, Clone)]
pub struct Service {
    hub: Arc<Hub>,
    generations: Arc<RwLock<Generations>>,
    address: String,
}

impl Service {
    /// Serves `hub`; `address` is what `GetNodes` reports.
    pub fn new(hub: Arc<Hub>, generations: Arc<RwLock<Generations>>, address: String) -> Service {
        Service {
            hub,
            generations,
            address,
        }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> observer_server::ObserverServer<Service> {
        observer_server::ObserverServer::new(self).max_decoding_message_size(4 << 20)
    }
}

type FlowStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<raw::Response, Status>> + Send + 'static>>;

async fn stream_flows(
    hub: Arc<Hub>,
    query: Query,
    request: GetFlowsRequest,
    mask: Option<FlowMask>,
    tx: mpsc::Sender<Result<raw::Response, Status>>,
) {
    // The reader's field mask, when it sent one: only those fields of each flow go out.
    let response = |entry: &Entry, node: &str| {
        let r = response(entry, node);
        match &mask {
            Some(m) => m.response(r),
            None => r,
        }
    };
    let window = Window {
        number: request.number,
        first: request.first,
        since: request.since.as_ref().map(unix_ns),
        until: request.until.as_ref().map(unix_ns),
    };
    let node = hub.node().to_owned();
    let (snapshot, cursor) = hub.snapshot();
    // Following without a number or a start time means "from now on", as in Hubble.
    let history = !request.follow || window.number != 0 || window.since.is_some();
    let mut sent = 0u64;
    if history {
        for entry in ring::select(&snapshot, window, |f| query.matches_stored(f)) {
            if tx.send(Ok(response(&entry, &node))).await.is_err() {
                return;
            }
            sent += 1;
        }
    }
    drop(snapshot);
    if !request.follow {
        debug!(sent, "stream ended");
        return;
    }
    let mut wake = hub.subscribe();
    let (mut cursor, mut batch) = (cursor, Vec::with_capacity(FOLLOW_BATCH));
    loop {
        wake.borrow_and_update();
        let from = cursor.weight;
        let lost = hub.read_from(&mut cursor, FOLLOW_BATCH, &mut batch);
        if lost > 0
            && tx
                .send(Ok(response(&overtaken(&hub, lost, from), &node)))
                .await
                .is_err()
        {
            break;
        }
        if batch.is_empty() {
            tokio::select! {
                changed = wake.changed() => if changed.is_err() { break },
                () = tx.closed() => break,
            }
            continue;
        }
        let mut closed = false;
        for entry in batch.drain(..) {
            if let Entry::Flow(f) = &*entry
                && !query.matches_stored(f)
            {
                continue;
            }
            if tx.send(Ok(response(&entry, &node))).await.is_err() {
                closed = true;
                break;
            }
            sent += 1;
        }
        if closed {
            break;
        }
    }
    debug!(sent, "stream ended");
}

#[tonic::async_trait]
impl observer_server::Observer for Service {
    type GetFlowsStream = FlowStream;

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        let peer = request.remote_addr();
        let request = request.into_inner();
        let query = Query::new(&request.whitelist, &request.blacklist).map_err(status_of)?;
        let mask =
            FlowMask::of_request(&request).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let span = info_span!(
            "get_flows",
            peer = ?peer,
            number = request.number,
            follow = request.follow,
            first = request.first,
            whitelist = request.whitelist.len(),
            blacklist = request.blacklist.len(),
        );
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        tokio::spawn(stream_flows(self.hub.clone(), query, request, mask, tx).instrument(span));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_nodes(
        &self,
        _request: Request<GetNodesRequest>,
    ) -> Result<Response<GetNodesResponse>, Status> {
        let (num_flows, max_flows, seen_flows) = self.hub.counts();
        Ok(Response::new(GetNodesResponse {
            nodes: vec![observer::Node {
                name: self.hub.node().to_owned(),
                version: version(),
                address: self.address.clone(),
                state: relay::NodeState::NodeConnected as i32,
                tls: Some(observer::Tls::default()),
                uptime_ns: self.hub.uptime_ns(),
                num_flows,
                max_flows,
                seen_flows,
            }],
        }))
    }

    async fn get_namespaces(
        &self,
        _request: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        let latest = self
            .generations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .latest();
        let namespaces = latest
            .map(|i| {
                i.namespaces()
                    .iter()
                    .map(|n| observer::Namespace {
                        cluster: String::new(),
                        namespace: n.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(GetNamespacesResponse { namespaces }))
    }

    async fn server_status(
        &self,
        _request: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        let (num_flows, max_flows, seen_flows) = self.hub.counts();
        // Flows per second over the last minute, from the ring's own timestamps.
        let since = now_unix_ns() - 60_000_000_000;
        let (snapshot, _) = self.hub.snapshot();
        let recent = snapshot
            .iter()
            .rev()
            .take_while(|e| e.unix_ns() >= since)
            .filter(|e| matches!(***e, Entry::Flow(_)))
            .count();
        Ok(Response::new(ServerStatusResponse {
            num_flows,
            max_flows,
            seen_flows,
            uptime_ns: self.hub.uptime_ns(),
            num_connected_nodes: Some(1),
            num_unavailable_nodes: Some(0),
            unavailable_nodes: Vec::new(),
            version: version(),
            flows_rate: recent as f64 / 60.0,
        }))
    }
}

/// The version string reported to clients.
pub fn version() -> String {
    format!("vigil-node-agent/{}", env!("CARGO_PKG_VERSION"))
}

/// Serves the observer on an already bound listener until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, service: Service) -> anyhow::Result<()> {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .trace_fn(|request| info_span!("grpc", path = %request.uri().path()))
        .add_service(service.into_server())
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

/// The address a listener is bound to, for the status file.
pub fn local_addr(listener: &tokio::net::TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok()
}

#[cfg(test)]
mod tests;
