//! A fake agent for tests and benchmarks: an `observer.Observer` serving a fixed, time-ordered
//! list of flows (all of them, or the last/first N; `follow` then waits forever). No filters.
//! Like a real agent, it holds its flows encoded and sends them as they are. Also the real relay
//! service over such agents, on a free port.

use std::{net::SocketAddr, pin::Pin, sync::Arc};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use vigil_proto::{
    flow::Flow,
    observer::{
        self, GetFlowsRequest, GetFlowsResponse, GetNamespacesRequest, GetNamespacesResponse,
        GetNodesRequest, GetNodesResponse, ServerStatusRequest, ServerStatusResponse,
        get_flows_response::ResponseTypes,
    },
    raw::{Response as RawResponse, service::observer_server},
    relay::NodeState,
};

use crate::{
    nodes::{Pool, Source},
    service::{MergeConfig, Service, serve},
};

/// A fake agent named `node` holding `flows`.
#[derive(Debug, Clone)]
pub struct FakeAgent {
    node: String,
    flows: Arc<Vec<RawResponse>>,
}

impl FakeAgent {
    pub fn new(node: &str, flows: Vec<Flow>) -> FakeAgent {
        let flows = flows
            .into_iter()
            .map(|f| {
                RawResponse::from(GetFlowsResponse {
                    time: f.time,
                    node_name: node.to_owned(),
                    response_types: Some(ResponseTypes::Flow(f)),
                })
            })
            .collect();
        FakeAgent {
            node: node.to_owned(),
            flows: Arc::new(flows),
        }
    }

    /// Serves on a free local port; returns the address and a handle that stops the server
    /// (connections included) when dropped.
    pub async fn spawn(self) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(observer_server::ObserverServer::new(self))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        (addr, stop)
    }
}

/// The relay's service (default merge settings) on a free local port, following the agents at
/// `agents`: its address and node pool.
pub async fn relay(agents: Vec<String>) -> (SocketAddr, Arc<Pool>) {
    let pool = Pool::start(Source::Agents(agents));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(serve(
        listener,
        Service::new(pool.clone(), MergeConfig::default()),
    ));
    (addr, pool)
}

/// A fake agent per `(node, flows)` and a [`relay`] over them: the relay's address and each
/// agent's stop handle.
pub async fn agents_and_relay(
    nodes: Vec<(String, Vec<Flow>)>,
) -> (SocketAddr, Vec<tokio::sync::oneshot::Sender<()>>) {
    let mut addrs = Vec::new();
    let mut stops = Vec::new();
    for (node, flows) in nodes {
        let (addr, stop) = FakeAgent::new(&node, flows).spawn().await;
        addrs.push(addr.to_string());
        stops.push(stop);
    }
    (relay(addrs).await.0, stops)
}

type FlowStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<RawResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl observer_server::Observer for FakeAgent {
    type GetFlowsStream = FlowStream;

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        let r = request.into_inner();
        let since = r
            .since
            .as_ref()
            .map_or(i128::MIN, vigil_proto::time::unix_ns);
        let flows = self.flows.clone();
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(async move {
            let held: Vec<&RawResponse> = flows.iter().filter(|f| f.unix_ns() >= since).collect();
            let n = r.number as usize;
            let chosen: &[&RawResponse] = match (n, r.first) {
                (0, _) => &held,
                (n, true) => &held[..n.min(held.len())],
                (n, false) => &held[held.len().saturating_sub(n)..],
            };
            for f in chosen {
                if tx.send(Ok((*f).clone())).await.is_err() {
                    return;
                }
            }
            if r.follow {
                tx.closed().await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_nodes(
        &self,
        _request: Request<GetNodesRequest>,
    ) -> Result<Response<GetNodesResponse>, Status> {
        Ok(Response::new(GetNodesResponse {
            nodes: vec![observer::Node {
                name: self.node.clone(),
                version: "fake".into(),
                state: NodeState::NodeConnected as i32,
                num_flows: self.flows.len() as u64,
                max_flows: self.flows.len() as u64,
                seen_flows: self.flows.len() as u64,
                ..observer::Node::default()
            }],
        }))
    }

    async fn get_namespaces(
        &self,
        _request: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        Ok(Response::new(GetNamespacesResponse::default()))
    }

    async fn server_status(
        &self,
        _request: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        let n = self.flows.len() as u64;
        Ok(Response::new(ServerStatusResponse {
            num_flows: n,
            max_flows: n,
            seen_flows: n,
            num_connected_nodes: Some(1),
            num_unavailable_nodes: Some(0),
            ..ServerStatusResponse::default()
        }))
    }
}
