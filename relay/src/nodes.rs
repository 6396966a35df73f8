//! The agents behind the relay: one gRPC channel per node, a health loop per node (reconnect with
//! backoff, `ServerStatus` polled while connected), and node status events for every change.
//!
//! Nodes come from `--agents` (named after what the agent reports) or from a state directory's
//! `status/NAME.json` files (re-read, so an agent restarted on a new port is followed).

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use tokio::sync::{broadcast, watch};
use tonic::transport::{Channel, Endpoint};
use tracing::{Instrument as _, info, info_span, warn};
use vigil_proto::{
    observer::{
        GetNodesRequest, ServerStatusRequest, ServerStatusResponse, observer_client::ObserverClient,
    },
    relay::{NodeState, NodeStatusEvent},
};

/// How often a connected node's status is polled.
const POLL: Duration = Duration::from_millis(500);
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One agent.
#[derive(Debug)]
pub struct Node {
    /// A stable key: the node name (state directory) or the address given (`--agents`).
    key: String,
    name: RwLock<String>,
    address: RwLock<String>,
    channel: RwLock<Channel>,
    state: watch::Sender<NodeState>,
    status: Mutex<Option<ServerStatusResponse>>,
    version: RwLock<String>,
    connected_at: Mutex<Option<Instant>>,
    events: broadcast::Sender<NodeStatusEvent>,
}

fn channel(address: &str) -> Channel {
    let uri = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    Endpoint::from_shared(uri)
        .unwrap_or_else(|_| Endpoint::from_static("http://0.0.0.0:1"))
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect_lazy()
}

impl Node {
    fn new(
        key: &str,
        name: &str,
        address: &str,
        events: broadcast::Sender<NodeStatusEvent>,
    ) -> Node {
        Node {
            key: key.to_owned(),
            name: RwLock::new(name.to_owned()),
            address: RwLock::new(address.to_owned()),
            channel: RwLock::new(channel(address)),
            state: watch::Sender::new(NodeState::UnknownNodeState),
            status: Mutex::new(None),
            version: RwLock::new(String::new()),
            connected_at: Mutex::new(None),
            events,
        }
    }

    /// The node's name (the agent's own once it answered).
    pub fn name(&self) -> String {
        self.name.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The agent's address.
    pub fn address(&self) -> String {
        self.address
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A client on the node's channel.
    pub fn client(&self) -> ObserverClient<Channel> {
        let ch = self
            .channel
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        ObserverClient::new(ch).max_decoding_message_size(16 << 20)
    }

    /// A client whose `GetFlows` keeps flows encoded (what the merge passes on to clients).
    pub fn raw_client(
        &self,
    ) -> vigil_proto::raw::service::observer_client::ObserverClient<Channel> {
        let ch = self
            .channel
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        vigil_proto::raw::service::observer_client::ObserverClient::new(ch)
            .max_decoding_message_size(16 << 20)
    }

    /// The current state.
    pub fn state(&self) -> NodeState {
        *self.state.borrow()
    }

    /// Waits until the node is connected.
    pub async fn connected(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| *s == NodeState::NodeConnected).await;
    }

    /// The last status the node reported while connected.
    pub fn status(&self) -> Option<ServerStatusResponse> {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The agent's version string.
    pub fn version(&self) -> String {
        self.version
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Nanoseconds since the node connected.
    pub fn uptime_ns(&self) -> u64 {
        self.connected_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map_or(0, |t| t.elapsed().as_nanos() as u64)
    }

    fn set_address(&self, address: &str) {
        let mut a = self.address.write().unwrap_or_else(|p| p.into_inner());
        if *a != address {
            info!(node = %self.key, from = %a, to = %address, "agent address changed");
            *a = address.to_owned();
            *self.channel.write().unwrap_or_else(|p| p.into_inner()) = channel(address);
        }
    }

    /// Records a state change and tells every listener; a repeated state is not an event.
    pub fn transition(&self, state: NodeState, message: &str) {
        let changed = self.state.send_if_modified(|s| {
            if *s == state {
                false
            } else {
                *s = state;
                true
            }
        });
        if !changed {
            return;
        }
        if state == NodeState::NodeConnected {
            *self.connected_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            info!(node = %self.name(), "node connected");
        } else {
            *self.connected_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
            warn!(node = %self.name(), state = state.as_str_name(), message, "node unavailable");
        }
        let _ = self.events.send(NodeStatusEvent {
            state_change: state as i32,
            node_names: vec![self.name()],
            message: message.to_owned(),
        });
    }
}

/// Where the node list comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Fixed addresses.
    Agents(Vec<String>),
    /// `DIR/status/*.json`, re-read every second.
    State(PathBuf),
}

/// Every node, and the broadcast of node status events.
#[derive(Debug)]
pub struct Pool {
    nodes: RwLock<Vec<Arc<Node>>>,
    events: broadcast::Sender<NodeStatusEvent>,
    added: watch::Sender<usize>,
    started: Instant,
}

impl Pool {
    /// Starts watching the nodes of `source` (spawns the health loops).
    pub fn start(source: Source) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            nodes: RwLock::new(Vec::new()),
            events: broadcast::channel(1024).0,
            added: watch::Sender::new(0),
            started: Instant::now(),
        });
        match source {
            Source::Agents(addresses) => {
                for a in addresses {
                    pool.add(&a, &a, &a);
                }
            }
            Source::State(dir) => {
                let p = pool.clone();
                tokio::spawn(async move {
                    loop {
                        for (name, address) in scan(&dir) {
                            p.add(&name, &name, &address);
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                });
            }
        }
        pool
    }

    fn add(self: &Arc<Self>, key: &str, name: &str, address: &str) {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = nodes.iter().find(|n| n.key == key) {
            n.set_address(address);
            return;
        }
        let node = Arc::new(Node::new(key, name, address, self.events.clone()));
        nodes.push(node.clone());
        let len = nodes.len();
        drop(nodes);
        self.added.send_replace(len);
        let span = info_span!("agent", node = %key);
        tokio::spawn(health(node).instrument(span));
    }

    /// Every node known so far.
    pub fn nodes(&self) -> Vec<Arc<Node>> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Node status events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeStatusEvent> {
        self.events.subscribe()
    }

    /// Notified with the node count whenever a node is added.
    pub fn watch_added(&self) -> watch::Receiver<usize> {
        self.added.subscribe()
    }

    /// Nanoseconds since the relay started.
    pub fn uptime_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }
}

/// `(name, observer address)` of every status file that names one.
fn scan(dir: &std::path::Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir.join("status")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let Ok(text) = std::fs::read(&path) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
            continue;
        };
        if let Some(addr) = v["observer"].as_str() {
            out.push((name.to_owned(), addr.to_owned()));
        }
    }
    out.sort();
    out
}

/// Connects, learns the node's name and version, then polls its status; on failure marks it
/// unavailable and retries with backoff.
async fn health(node: Arc<Node>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut client = node.client();
        let polled = tokio::time::timeout(Duration::from_secs(3), async {
            if node.state() != NodeState::NodeConnected {
                let nodes = client
                    .get_nodes(GetNodesRequest {})
                    .await?
                    .into_inner()
                    .nodes;
                if let Some(n) = nodes.first() {
                    if !n.name.is_empty() {
                        *node.name.write().unwrap_or_else(|p| p.into_inner()) = n.name.clone();
                    }
                    *node.version.write().unwrap_or_else(|p| p.into_inner()) = n.version.clone();
                }
            }
            client.server_status(ServerStatusRequest {}).await
        })
        .await;
        match polled {
            Ok(Ok(status)) => {
                *node.status.lock().unwrap_or_else(|p| p.into_inner()) = Some(status.into_inner());
                node.transition(NodeState::NodeConnected, "");
                backoff = BACKOFF_MIN;
                tokio::time::sleep(POLL).await;
            }
            Ok(Err(status)) => {
                node.transition(NodeState::NodeUnavailable, status.message());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(_) => {
                node.transition(NodeState::NodeUnavailable, "status request timed out");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}
