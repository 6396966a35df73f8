//! The relay's `observer.Observer`: the same service as an agent's, answered for every node.
//!
//! `GetFlows` without `follow` is a k-way merge of the nodes' answers (each already in time
//! order), with `number` applied overall (the last or first N of all nodes, not N per node).
//! With `follow`, the history part is that same merge; then every node is followed from where
//! its history ended, through a bounded [`SortWindow`], and node status events are interleaved.
//! A node that drops out is re-followed from its cursor when it is back, without duplicates.

use std::{
    collections::{HashMap, HashSet},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinSet};
use tokio_stream::{StreamExt as _, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};
use tracing::{Instrument as _, debug, info_span};
use vigil_proto::{
    mask::FlowMask,
    observer::{
        self, GetFlowsRequest, GetNamespacesRequest, GetNamespacesResponse, GetNodesRequest,
        GetNodesResponse, ServerStatusRequest, ServerStatusResponse,
        get_flows_response::ResponseTypes,
    },
    raw::{self, Response as RawResponse, service::observer_server},
    relay::{NodeState, NodeStatusEvent},
    time::{now_unix_ns, timestamp, unix_ns as unix_ns_of},
};

use crate::{
    merge::{Newest, SortWindow, oldest, unix_ns},
    nodes::{Node, Pool},
};

/// Responses buffered per node stream and per client.
const BUFFER: usize = 4096;

/// How the follow merge reorders.
#[derive(Debug, Clone, Copy)]
pub struct MergeConfig {
    /// Responses the sort window holds at most.
    pub capacity: usize,
    /// How long a response waits for older ones from other nodes.
    pub window: Duration,
}

impl Default for MergeConfig {
    fn default() -> MergeConfig {
        MergeConfig {
            capacity: 65_536,
            window: Duration::from_millis(250),
        }
    }
}

/// The relay's Observer service.
#[derive(Debug, Clone)]
pub struct Service {
    pool: Arc<Pool>,
    merge: MergeConfig,
}

impl Service {
    pub fn new(pool: Arc<Pool>, merge: MergeConfig) -> Service {
        Service { pool, merge }
    }

    pub fn into_server(self) -> observer_server::ObserverServer<Service> {
        observer_server::ObserverServer::new(self)
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(16 << 20)
    }
}

fn status_event(state: NodeState, names: Vec<String>, message: &str) -> RawResponse {
    RawResponse {
        time: Some(timestamp(now_unix_ns())),
        node_name: String::new(),
        body: raw::Body::Other(ResponseTypes::NodeStatus(NodeStatusEvent {
            state_change: state as i32,
            node_names: names,
            message: message.to_owned(),
        })),
    }
}

/// Where a node's stream stands: the newest time delivered and the uuids delivered at it.
#[derive(Debug, Default, Clone)]
pub struct Cursor {
    pub ns: i128,
    pub uuids: HashSet<String>,
}

impl Cursor {
    /// Whether `r` is new (and records it). Flows are told apart by time and uuid (read from
    /// the encoded flow); other responses always pass.
    pub fn admit(&mut self, r: &RawResponse) -> bool {
        if !matches!(r.body, raw::Body::Flow(_)) {
            return true;
        }
        self.admit_flow(unix_ns(r), r.flow_uuid().unwrap_or_default())
    }

    /// Whether a flow at `ns` (Unix nanoseconds) with `uuid` is new to this cursor; admits it.
    pub(crate) fn admit_flow(&mut self, ns: i128, uuid: &str) -> bool {
        if ns < self.ns || (ns == self.ns && self.uuids.contains(uuid)) {
            return false;
        }
        if ns > self.ns {
            self.ns = ns;
            self.uuids.clear();
        }
        self.uuids.insert(uuid.to_owned());
        true
    }
}

/// Streams one node's answer to `request` into `tx` (tagged with the node's index); an error
/// ends the stream with a node status event.
async fn one_node(
    i: usize,
    node: Arc<Node>,
    request: GetFlowsRequest,
    tx: mpsc::Sender<(usize, Result<RawResponse, Status>)>,
) {
    let mut client = node.raw_client();
    let mut stream = match client.get_flows(request).await {
        Ok(s) => s.into_inner(),
        Err(s) => {
            let _ = tx.send((i, Err(s))).await;
            return;
        }
    };
    loop {
        match stream.message().await {
            Ok(Some(r)) => {
                if tx.send((i, Ok(r))).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(s) => {
                let _ = tx.send((i, Err(s))).await;
                return;
            }
        }
    }
}

/// The k-way merge of the nodes' complete answers to a non-follow `request`, sent to `out`.
/// Returns each node's cursor (by name) after its last flow, or `None` if the client left.
async fn history(
    nodes: &[Arc<Node>],
    request: &GetFlowsRequest,
    out: &mpsc::Sender<Result<RawResponse, Status>>,
) -> Option<HashMap<String, Cursor>> {
    let mut tasks = JoinSet::new();
    let mut rxs = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let (tx, rx) = mpsc::channel(BUFFER);
        let mut r = request.clone();
        r.follow = false;
        tasks.spawn(one_node(i, node.clone(), r, tx));
        rxs.push(rx);
    }
    let mut heads: Vec<Option<RawResponse>> = vec![None; nodes.len()];
    let mut open = vec![true; nodes.len()];
    let mut cursors: HashMap<String, Cursor> = HashMap::new();
    let number = request.number as usize;
    let mut last = Newest::new(if request.first { 0 } else { number });
    let buffered = number > 0 && !request.first;
    let mut sent = 0usize;
    loop {
        for i in 0..nodes.len() {
            while heads[i].is_none() && open[i] {
                match rxs[i].recv().await {
                    Some((_, Ok(r))) => heads[i] = Some(r),
                    Some((_, Err(s))) => {
                        open[i] = false;
                        if s.code() == tonic::Code::InvalidArgument {
                            let _ = out.send(Err(s)).await;
                            return None;
                        }
                        let name = nodes[i].name();
                        nodes[i].transition(NodeState::NodeUnavailable, s.message());
                        let e = status_event(NodeState::NodeError, vec![name], s.message());
                        if out.send(Ok(e)).await.is_err() {
                            return None;
                        }
                    }
                    None => open[i] = false,
                }
            }
        }
        let Some(i) = oldest(&heads) else { break };
        let r = heads[i].take().expect("oldest head");
        cursors.entry(nodes[i].name()).or_default().admit(&r);
        if buffered {
            last.push(r);
        } else {
            if out.send(Ok(r)).await.is_err() {
                return None;
            }
            sent += 1;
            if request.first && number > 0 && sent >= number {
                break;
            }
        }
    }
    for r in last.into_vec() {
        if out.send(Ok(r)).await.is_err() {
            return None;
        }
    }
    Some(cursors)
}

/// Follows one node from `cursor` for as long as the client listens, reconnecting after errors.
async fn follow_node(
    i: usize,
    node: Arc<Node>,
    request: GetFlowsRequest,
    mut cursor: Cursor,
    tx: mpsc::Sender<(usize, Result<RawResponse, Status>)>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        node.connected().await;
        let mut r = request.clone();
        r.follow = true;
        r.number = 0;
        r.first = false;
        r.since = Some(timestamp(cursor.ns));
        let mut stream = match node.raw_client().get_flows(r).await {
            Ok(s) => s.into_inner(),
            Err(s) => {
                if s.code() == tonic::Code::InvalidArgument {
                    let _ = tx.send((i, Err(s))).await;
                    return;
                }
                node.transition(NodeState::NodeUnavailable, s.message());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        loop {
            match stream.message().await {
                Ok(Some(r)) => {
                    if cursor.admit(&r) && tx.send((i, Ok(r))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(s) => {
                    node.transition(NodeState::NodeUnavailable, s.message());
                    break;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
    }
}

async fn get_flows_task(
    pool: Arc<Pool>,
    merge: MergeConfig,
    request: GetFlowsRequest,
    out: mpsc::Sender<Result<RawResponse, Status>>,
) {
    let start = now_unix_ns();
    let nodes = pool.nodes();
    let (up, down): (Vec<_>, Vec<_>) = nodes
        .iter()
        .cloned()
        .partition(|n| n.state() == NodeState::NodeConnected);
    let names = |v: &[Arc<Node>]| v.iter().map(|n| n.name()).collect::<Vec<_>>();
    if !up.is_empty()
        && out
            .send(Ok(status_event(NodeState::NodeConnected, names(&up), "")))
            .await
            .is_err()
    {
        return;
    }
    if !down.is_empty()
        && out
            .send(Ok(status_event(
                NodeState::NodeUnavailable,
                names(&down),
                "",
            )))
            .await
            .is_err()
    {
        return;
    }
    let mut events = pool.subscribe();
    // Following without a number or a start time means "from now on", as in Hubble.
    let wants_history = !request.follow || request.number != 0 || request.since.is_some();
    let cursors = if wants_history {
        match history(&up, &request, &out).await {
            Some(c) => c,
            None => return,
        }
    } else {
        HashMap::new()
    };
    if !request.follow {
        return;
    }
    let (tx, mut rx) = mpsc::channel(BUFFER);
    let mut tasks = JoinSet::new();
    let mut followed = 0usize;
    let mut added = pool.watch_added();
    let spawn_new = |tasks: &mut JoinSet<()>, followed: &mut usize| {
        let all = pool.nodes();
        for (i, node) in all.iter().enumerate().skip(*followed) {
            let cursor = cursors.get(&node.name()).cloned().unwrap_or(Cursor {
                ns: if wants_history && node.state() == NodeState::NodeConnected {
                    start
                } else {
                    request.since.as_ref().map_or(start, unix_ns_of)
                },
                uuids: HashSet::new(),
            });
            tasks.spawn(follow_node(
                i,
                node.clone(),
                request.clone(),
                cursor,
                tx.clone(),
            ));
        }
        *followed = all.len();
    };
    spawn_new(&mut tasks, &mut followed);
    let mut window = SortWindow::new(merge.capacity, merge.window.as_nanos() as i128);
    let mut ready = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            item = rx.recv() => match item {
                Some((_, Ok(r))) => window.push(r, &mut ready),
                Some((_, Err(s))) => {
                    let _ = out.send(Err(s)).await;
                    return;
                }
                None => return,
            },
            event = events.recv() => {
                if let Ok(e) = event {
                    ready.push(RawResponse {
                        time: Some(timestamp(now_unix_ns())),
                        node_name: String::new(),
                        body: raw::Body::Other(ResponseTypes::NodeStatus(e)),
                    });
                }
            }
            _ = added.changed() => spawn_new(&mut tasks, &mut followed),
            _ = tick.tick() => window.release(now_unix_ns() - merge.window.as_nanos() as i128, &mut ready),
            () = out.closed() => return,
        }
        for r in ready.drain(..) {
            if out.send(Ok(r)).await.is_err() {
                return;
            }
        }
    }
}

type FlowStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<RawResponse, Status>> + Send + 'static>>;

/// The version string reported to clients.
pub fn version() -> String {
    format!("vigil-relay/{}", env!("CARGO_PKG_VERSION"))
}

#[tonic::async_trait]
impl observer_server::Observer for Service {
    type GetFlowsStream = FlowStream;

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        let peer = request.remote_addr();
        let mut request = request.into_inner();
        // The reader's field mask is applied here, after the merge: the agents send whole flows,
        // since the merge reads each flow's time and uuid.
        let mask =
            FlowMask::of_request(&request).map_err(|e| Status::invalid_argument(e.to_string()))?;
        request.field_mask = None;
        let span = info_span!(
            "get_flows",
            peer = ?peer,
            number = request.number,
            follow = request.follow,
            first = request.first,
            field_mask = mask.is_some(),
        );
        let (tx, rx) = mpsc::channel(BUFFER);
        let (pool, merge) = (self.pool.clone(), self.merge);
        tokio::spawn(
            async move {
                get_flows_task(pool, merge, request, tx).await;
                debug!("stream ended");
            }
            .instrument(span),
        );
        let stream = ReceiverStream::new(rx);
        Ok(Response::new(match mask {
            None => Box::pin(stream),
            Some(m) => Box::pin(stream.map(move |r| r.map(|r| m.response(r)))),
        }))
    }

    async fn get_nodes(
        &self,
        _request: Request<GetNodesRequest>,
    ) -> Result<Response<GetNodesResponse>, Status> {
        let nodes = self
            .pool
            .nodes()
            .iter()
            .map(|n| {
                let s = n.status().filter(|_| n.state() == NodeState::NodeConnected);
                observer::Node {
                    name: n.name(),
                    version: n.version(),
                    address: n.address(),
                    state: n.state() as i32,
                    tls: Some(observer::Tls::default()),
                    uptime_ns: n.uptime_ns(),
                    num_flows: s.as_ref().map_or(0, |s| s.num_flows),
                    max_flows: s.as_ref().map_or(0, |s| s.max_flows),
                    seen_flows: s.as_ref().map_or(0, |s| s.seen_flows),
                }
            })
            .collect();
        Ok(Response::new(GetNodesResponse { nodes }))
    }

    async fn get_namespaces(
        &self,
        _request: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        let mut all = std::collections::BTreeSet::new();
        for n in self.pool.nodes() {
            if n.state() != NodeState::NodeConnected {
                continue;
            }
            if let Ok(r) = n.client().get_namespaces(GetNamespacesRequest {}).await {
                for ns in r.into_inner().namespaces {
                    all.insert((ns.cluster, ns.namespace));
                }
            }
        }
        Ok(Response::new(GetNamespacesResponse {
            namespaces: all
                .into_iter()
                .map(|(cluster, namespace)| observer::Namespace { cluster, namespace })
                .collect(),
        }))
    }

    async fn server_status(
        &self,
        _request: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        let mut r = ServerStatusResponse {
            uptime_ns: self.pool.uptime_ns(),
            version: version(),
            ..ServerStatusResponse::default()
        };
        let (mut connected, mut unavailable) = (0u32, 0u32);
        for n in self.pool.nodes() {
            match (n.state(), n.status()) {
                (NodeState::NodeConnected, Some(s)) => {
                    connected += 1;
                    r.num_flows += s.num_flows;
                    r.max_flows += s.max_flows;
                    r.seen_flows += s.seen_flows;
                    r.flows_rate += s.flows_rate;
                }
                _ => {
                    unavailable += 1;
                    r.unavailable_nodes.push(n.name());
                }
            }
        }
        r.num_connected_nodes = Some(connected);
        r.num_unavailable_nodes = Some(unavailable);
        Ok(Response::new(r))
    }
}

/// Serves the relay on a bound listener until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Service,
) -> Result<(), tonic::transport::Error> {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .trace_fn(|request| info_span!("grpc", path = %request.uri().path()))
        .add_service(service.into_server())
        .serve_with_incoming(incoming)
        .await
}
