//! Shared test support: seeded stores, a relay over fake agents, a ui-server, HTTP and
//! WebSocket clients.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use serde_json::Value;
use vigil_proto::flow::{Endpoint, Flow, Verdict};
use vigil_storage::{
    LostRow, Store as _,
    testing::{sample_flow, unique_name},
};
use vigil_ui_server::{Config, api::Inner};

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(unique_name("vigil-ui"));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    /// `sqlite://DIR/flows.db`.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.0.join("flows.db").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub use vigil_storage::testing::TempClickHouse;

/// Realistic flows: two nodes; clients in `ops` calling `shop/web` (port 80, allowed by
/// `NetworkPolicy/shop/allow-web`) or SSH (port 22, every third flow, dropped by
/// `GlobalNetworkPolicy/deny-ssh`); every fifth also hit by the staged
/// `StagedNetworkPolicy/shop/lockdown` (AUDIT when allowed); every fourth (i % 4 == 1) goes to a
/// Deployment pod `shop/api-5f6d8b-kq7wn` instead; every tenth (i % 10 == 7) comes from the world
/// (203.0.113.x); i % 8 == 3 are replies. Two flows share each timestamp, so pages must break
/// ties by uuid. Four flows per second from `base`.
pub fn seeded_flows(base: i64, n: u64) -> Vec<Flow> {
    (0..n)
        .map(|i| {
            let node = if i % 2 == 0 { "node-1" } else { "node-2" };
            let mut f = sample_flow(
                node,
                base + (i / 4) as i64,
                ((i / 2) % 2) as i32 * 1000,
                &format!("flow-{i:05}"),
                i,
            );
            if i % 4 == 1 {
                let dst = f.destination.as_mut().unwrap();
                dst.pod_name = "api-5f6d8b-kq7wn".into();
                dst.labels = vec![];
                dst.identity = 2001;
            }
            if i % 10 == 7 {
                f.source = Some(Endpoint {
                    identity: 2,
                    labels: vec!["reserved:world".into()],
                    ..Endpoint::default()
                });
                f.ip.as_mut().unwrap().source = format!("203.0.113.{}", i % 5);
            }
            if i % 8 == 3 {
                f.is_reply = Some(true);
            }
            f
        })
        .collect()
}

/// Inserts `flows` (a third of them twice: duplicates must fold) and the recorded losses of
/// [`SEEDED_LOST`] (twice as well).
pub async fn seed(url: &str, flows: &[Flow]) {
    let store = vigil_storage::open(url).await.unwrap();
    for chunk in flows.chunks(250) {
        store.insert(chunk).await.unwrap();
    }
    store.insert(&flows[..flows.len() / 3]).await.unwrap();
    let base = flows
        .first()
        .and_then(|f| f.time.as_ref())
        .map_or(0, |t| t.seconds as u32);
    let lost: Vec<LostRow> = SEEDED_LOST
        .iter()
        .enumerate()
        .map(|(i, (node, source, count))| LostRow {
            time: base + i as u32,
            nanos: 0,
            node: (*node).into(),
            source: (*source).into(),
            count: *count,
            detail: "seeded".into(),
        })
        .collect();
    store.insert_lost(&lost).await.unwrap();
    store.insert_lost(&lost).await.unwrap();
}

/// The `lost_events` rows [`seed`] writes: node, source, count.
pub const SEEDED_LOST: [(&str, &str, u64); 3] = [
    ("node-1", "HUBBLE_RING_BUFFER", 40),
    ("node-1", "PERF_EVENT_RING_BUFFER", 2),
    ("node-2", "HUBBLE_RING_BUFFER", 5),
];

pub fn verdict(f: &Flow) -> Verdict {
    Verdict::try_from(f.verdict).unwrap()
}

/// The policy files of a state directory: what the seeded flows hit, a policy nothing hits, a
/// file that does not parse.
pub fn write_policies(state: &std::path::Path) {
    let dir = state.join("policies");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("01-deny-ssh.yaml"),
        "apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-ssh}
spec:
  order: 10
  selector: all()
  ingress:
  - action: Deny
    protocol: TCP
    destination: {ports: [22]}
",
    )
    .unwrap();
    std::fs::write(
        dir.join("02-shop.yaml"),
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-web, namespace: shop}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: 80, protocol: TCP}]
---
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: lockdown, namespace: shop}
spec:
  selector: all()
  ingress:
  - action: Deny
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: idle, namespace: shop}
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [cluster]
",
    )
    .unwrap();
    std::fs::write(dir.join("03-broken.yaml"), "kind: NetworkPolicy\nspec: [").unwrap();
}

/// A running ui-server.
pub struct Ui {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

/// Starts a ui-server with `config` (listen address chosen here).
pub async fn ui(config: Config) -> Ui {
    let token = config.token.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Inner::new(config);
    tokio::spawn(vigil_ui_server::serve(listener, state));
    Ui { addr, token }
}

/// A config for `store` and `relay`, web files in `web`.
pub fn config(store: &str, relay: &str, web: &std::path::Path) -> Config {
    Config {
        relay: relay.to_owned(),
        store: store.to_owned(),
        web: web.to_owned(),
        ..Config::default()
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Ui {
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> Reply {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            content_type,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// GET with this server's token.
    pub async fn get(&self, path: &str) -> Reply {
        let token = self.token.clone();
        self.request("GET", path, None, token.as_deref()).await
    }

    /// GET that must answer 200 with JSON.
    pub async fn ok(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        assert!(
            r.content_type.starts_with("application/json"),
            "GET {path}: {}",
            r.content_type
        );
        r.json()
    }

    /// Every flow of a history query, page by page (`limit` per page): the uuids in order.
    pub async fn all_pages(&self, query: &str, limit: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let mut path = format!("/api/v1/flows?limit={limit}");
            if !query.is_empty() {
                path.push('&');
                path.push_str(query);
            }
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.ok(&path).await;
            let flows = page["flows"].as_array().unwrap().clone();
            assert!(flows.len() <= limit);
            out.extend(flows);
            match page["next"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
        panic!("more than 10,000 pages");
    }

    /// A WebSocket client of `/api/v1/stream?{query}`.
    pub async fn stream(&self, query: &str) -> Ws {
        let url = format!("ws://{}/api/v1/stream?{query}", self.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Ws { ws }
    }
}

/// A live-stream client.
pub struct Ws {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    /// The next text frame as JSON (None when closed or after `wait`).
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        use tokio_stream::StreamExt as _;
        loop {
            match tokio::time::timeout(wait, self.ws.next()).await {
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                    return Some(serde_json::from_str(&t).unwrap());
                }
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))) | Ok(None) => {
                    return None;
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Err(_) => return None,
            }
        }
    }
}

/// A relay (the real service) over in-process agents, each holding `flows` of its node.
pub async fn relay(
    agents: Vec<(String, Vec<Flow>)>,
) -> (String, Vec<tokio::sync::oneshot::Sender<()>>) {
    let (addr, stops) = vigil_relay::fake::agents_and_relay(agents).await;
    (addr.to_string(), stops)
}

/// A loopback address nothing listens on.
pub async fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap().to_string();
    drop(l);
    a
}
