//! The relay's Observer, as a client: node list, server status, live flows, and a background
//! watch that counts lost events per node and source for `/api/v1/nodes` and `/status`.
//!
//! Every call has a deadline; a relay that does not answer becomes [`ApiError::Relay`] naming its
//! address (502). The channel connects lazily, so the server starts without a relay.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tonic::transport::{Channel, Endpoint};
use vigil_proto::{
    flow::{FlowFilter, LostEventSource},
    observer::{
        GetFlowsRequest, GetFlowsResponse, GetNodesRequest, Node, ServerStatusRequest,
        ServerStatusResponse, get_flows_response::ResponseTypes, observer_client::ObserverClient,
    },
};

use crate::error::ApiError;

/// Deadline of unary calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// A client of the relay at one address.
#[derive(Debug, Clone)]
pub struct Relay {
    address: String,
    channel: Channel,
}

impl Relay {
    /// A lazily connecting client of `address` (`HOST:PORT` or a URL).
    pub fn new(address: &str) -> Relay {
        let uri = if address.contains("://") {
            address.to_owned()
        } else {
            format!("http://{address}")
        };
        let endpoint = Endpoint::from_shared(uri)
            .unwrap_or_else(|_| Endpoint::from_static("http://0.0.0.0:1"))
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        Relay {
            address: address.to_owned(),
            channel: endpoint.connect_lazy(),
        }
    }

    /// The address given.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn client(&self) -> ObserverClient<Channel> {
        ObserverClient::new(self.channel.clone()).max_decoding_message_size(16 << 20)
    }

    /// Maps a failed call: a refused filter is the client's (400), the rest the relay's (502).
    pub fn error(&self, s: &tonic::Status) -> ApiError {
        if s.code() == tonic::Code::InvalidArgument {
            ApiError::BadRequest(format!("the relay refused the filter: {}", s.message()))
        } else {
            ApiError::Relay {
                address: self.address.clone(),
                message: if s.message().is_empty() {
                    format!("{:?}", s.code())
                } else {
                    s.message().to_owned()
                },
            }
        }
    }

    fn timeout(&self) -> ApiError {
        ApiError::Relay {
            address: self.address.clone(),
            message: format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
        }
    }

    /// `GetNodes`.
    pub async fn nodes(&self) -> Result<Vec<Node>, ApiError> {
        let mut c = self.client();
        match tokio::time::timeout(CALL_TIMEOUT, c.get_nodes(GetNodesRequest {})).await {
            Ok(Ok(r)) => Ok(r.into_inner().nodes),
            Ok(Err(s)) => Err(self.error(&s)),
            Err(_) => Err(self.timeout()),
        }
    }

    /// `ServerStatus`.
    pub async fn status(&self) -> Result<ServerStatusResponse, ApiError> {
        let mut c = self.client();
        match tokio::time::timeout(CALL_TIMEOUT, c.server_status(ServerStatusRequest {})).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(self.error(&s)),
            Err(_) => Err(self.timeout()),
        }
    }

    /// `GetFlows` following live flows (from now on) that pass `whitelist`.
    pub async fn follow(
        &self,
        whitelist: Vec<FlowFilter>,
    ) -> Result<tonic::Streaming<GetFlowsResponse>, ApiError> {
        let mut c = self.client();
        let request = GetFlowsRequest {
            follow: true,
            whitelist,
            ..GetFlowsRequest::default()
        };
        match tokio::time::timeout(CALL_TIMEOUT, c.get_flows(request)).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(self.error(&s)),
            Err(_) => Err(self.timeout()),
        }
    }
}

/// The name of a lost-event source.
pub fn source_name(source: i32) -> String {
    LostEventSource::try_from(source)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_else(|_| format!("SOURCE_{source}"))
}

/// Lost events seen on the relay since this server started, by node and source.
#[derive(Debug, Default)]
pub struct LostCounts {
    by_node: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

impl LostCounts {
    fn add(&self, node: &str, source: String, n: u64) {
        let mut m = self.by_node.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(node.to_owned())
            .or_default()
            .entry(source)
            .or_default() += n;
    }

    /// One node's counts by source.
    pub fn node(&self, node: &str) -> BTreeMap<String, u64> {
        let m = self.by_node.lock().unwrap_or_else(|p| p.into_inner());
        m.get(node).cloned().unwrap_or_default()
    }

    /// Every node's counts summed by source.
    pub fn total(&self) -> BTreeMap<String, u64> {
        let m = self.by_node.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = BTreeMap::new();
        for sources in m.values() {
            for (s, n) in sources {
                *out.entry(s.clone()).or_default() += n;
            }
        }
        out
    }
}

/// Follows the relay for as long as the server runs with a filter no flow passes (a uuid no
/// flow has), so only lost-event notices and node status come back, and counts the notices.
pub fn watch_lost(relay: Relay, counts: Arc<LostCounts>) {
    tokio::spawn(async move {
        let nothing = FlowFilter {
            uuid: vec!["vigil-ui-server: no flow has this uuid".into()],
            ..FlowFilter::default()
        };
        let mut backoff = Duration::from_millis(200);
        loop {
            let started = Instant::now();
            match relay.follow(vec![nothing.clone()]).await {
                Ok(mut stream) => {
                    while let Ok(Some(r)) = stream.message().await {
                        if let Some(ResponseTypes::LostEvents(l)) = &r.response_types {
                            counts.add(&r.node_name, source_name(l.source), l.num_events_lost);
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "lost-event watch: relay not reachable"),
            }
            if started.elapsed() > Duration::from_secs(10) {
                backoff = Duration::from_millis(200);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
}

/// The flow rate of each node, measured between two polls of `GetNodes`.
#[derive(Debug, Default)]
pub struct Rates {
    samples: Mutex<BTreeMap<String, (u64, Instant, f64)>>,
}

impl Rates {
    /// Records `seen` flows for `node` now; returns flows per second since the previous sample
    /// at least 500 ms old (the last rate measured when this poll comes sooner).
    pub fn observe(&self, node: &str, seen: u64) -> f64 {
        let now = Instant::now();
        let mut m = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(node) {
            Some((prev, at, rate)) => {
                let dt = now.duration_since(*at).as_secs_f64();
                if dt >= 0.5 {
                    *rate = seen.saturating_sub(*prev) as f64 / dt;
                    *prev = seen;
                    *at = now;
                }
                *rate
            }
            None => {
                m.insert(node.to_owned(), (seen, now, 0.0));
                0.0
            }
        }
    }
}
