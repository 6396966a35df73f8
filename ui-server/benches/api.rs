//! ui-server benchmarks: `cargo bench -p vigil-ui-server --bench api`.
//!
//! 1. `/api/v1/flows` latency (p50, p99 over repeated requests) of filtered pages over a store of
//!    `VIGIL_BENCH_FLOWS` flows (default 1,000,000; `10000000` for the 10-million run), SQLite
//!    and, when a server answers on 127.0.0.1:8123, ClickHouse. Flows are spread over the last
//!    24 hours, 20 namespaces of 50 client pods each, 4 server workloads, two nodes, a third
//!    dropped, a fifth hit by a staged policy. Requests go through real HTTP to an in-process
//!    ui-server (keep-alive connection). `VIGIL_BENCH_DB=PATH` keeps the SQLite file and reuses it
//!    when it already holds that many flows (seeding 10M takes minutes). Each page is requested
//!    `VIGIL_BENCH_ROUNDS` times (default 200) or for `VIGIL_BENCH_QUERY_SECONDS` (default 30),
//!    whichever ends first.
//!    `VIGIL_BENCH_FLOWS=0` skips this part.
//! 2. WebSocket delivery: flows through the real relay service from in-process agents to 1 and
//!    to 4 WebSocket clients reading as fast as they can (`VIGIL_BENCH_WS_FLOWS`, default
//!    200,000 per run, offered at `VIGIL_BENCH_WS_RATE` flows/s, default 50,000): flows/s
//!    delivered per client, and what each client was told it lost.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use tokio_stream::StreamExt as _;
use vigil_proto::flow::{Endpoint, Flow};
use vigil_storage::{Store as _, testing::sample_flow};
use vigil_ui_server::{Config, api::Inner};

const DAY: i64 = 86_400;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Flow `i` of `n` spread over the day before `end`.
fn flow(i: u64, n: u64, end: i64) -> Flow {
    let ns_in_day = (i as i128 * DAY as i128 * 1_000_000_000 / n as i128) as i64;
    let t = end - DAY + ns_in_day / 1_000_000_000;
    let node = if i.is_multiple_of(2) {
        "node-1"
    } else {
        "node-2"
    };
    let mut f = sample_flow(
        node,
        t,
        (ns_in_day % 1_000_000_000) as i32,
        &format!("bench-{i:010}"),
        i,
    );
    let ns = format!("ns-{}", (i / 7) % 20);
    f.source = Some(Endpoint {
        identity: 10_000 + ((i / 7) % 1000) as u32,
        namespace: ns.clone(),
        labels: vec![format!("k8s:app=client-{}", (i / 7) % 50)],
        pod_name: format!("client-{}-{:05}", (i / 7) % 50, (i / 140) % 1000),
        ..Endpoint::default()
    });
    let dst = f.destination.as_mut().unwrap();
    dst.pod_name = ["web", "api", "db", "cache"][(i % 4) as usize].into();
    dst.namespace = if i % 4 == 2 {
        "payments".into()
    } else {
        "shop".into()
    };
    f
}

async fn seed_sqlite(path: &str, n: u64, end: i64) -> i64 {
    let url = format!("sqlite://{path}");
    let store = vigil_storage::open(&url).await.expect("open sqlite");
    let have = store.counts().await.expect("counts").flows;
    if have == n {
        println!("sqlite: reusing {path} ({n} flows)");
        let r = store
            .query("SELECT max(time) FROM flows")
            .await
            .expect("max time");
        return r.rows[0][0].as_i64().unwrap() + 1;
    }
    assert_eq!(have, 0, "{path} holds {have} flows, not {n}: remove it");
    seed(&store, n, end, "sqlite").await;
    end
}

async fn seed(store: &impl vigil_storage::Store, n: u64, end: i64, name: &str) {
    let started = Instant::now();
    let batch = 10_000;
    let mut i = 0;
    while i < n {
        let flows: Vec<Flow> = (i..(i + batch).min(n)).map(|j| flow(j, n, end)).collect();
        store.insert(&flows).await.expect("insert");
        i += batch;
    }
    println!(
        "{name}: seeded {n} flows in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A keep-alive HTTP/1.1 client of one server.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
}

impl Client {
    async fn new(addr: SocketAddr) -> Client {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        Client { sender, addr }
    }

    async fn get(&mut self, path: &str) -> (u16, Bytes) {
        self.sender.ready().await.unwrap();
        let req = hyper::Request::get(path)
            .header("host", self.addr.to_string())
            .body(Empty::new())
            .unwrap();
        let res = self.sender.send_request(req).await.unwrap();
        let status = res.status().as_u16();
        (status, res.into_body().collect().await.unwrap().to_bytes())
    }
}

async fn ui(config: Config) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(vigil_ui_server::serve(listener, Inner::new(config)));
    addr
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// The pages measured: what a dashboard user asks for.
fn queries(n: u64, end: i64) -> Vec<(&'static str, String)> {
    // A pod of flow n/2 (about 7 flows in 20,000 have it).
    let i = n / 2;
    let pod = format!(
        "ns-{}/client-{}-{:05}",
        (i / 7) % 20,
        (i / 7) % 50,
        (i / 140) % 1000
    );
    let hour_ago = vigil_ui_server::convert::rfc3339(end - 3600, 0);
    vec![
        ("newest page, no filter", String::new()),
        ("verdict=DROPPED", "verdict=DROPPED".into()),
        (
            "namespace + verdict",
            "namespace=ns-3&verdict=DROPPED".into(),
        ),
        ("to_pod + port", "to_pod=shop/api&port=80".into()),
        (
            "policy (staged decider)",
            "policy=StagedNetworkPolicy/shop/lockdown".into(),
        ),
        ("free text q", "q=client-7-".into()),
        ("node, last hour", format!("node=node-2&since={hour_ago}")),
        ("one client pod (rare)", format!("from_pod={pod}")),
        // The worst case: nothing matches, every flow of the range is read.
        ("no match (whole range read)", "from_pod=ns-3/nobody".into()),
    ]
}

async fn latency(name: &str, addr: SocketAddr, n: u64, end: i64, rounds: usize) {
    let mut c = Client::new(addr).await;
    println!(
        "{name}: GET /api/v1/flows?limit=100&..., up to {rounds} requests each (after 3 warm-up)"
    );
    println!(
        "  {:<28} {:>9} {:>9} {:>9} {:>6} {:>9}",
        "page", "p50 ms", "p99 ms", "max ms", "flows", "requests"
    );
    for (label, q) in queries(n, end) {
        let path = format!("/api/v1/flows?limit=100&{q}");
        let mut flows = 0;
        for _ in 0..3 {
            let (status, body) = c.get(&path).await;
            assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            flows = v["flows"].as_array().unwrap().len();
        }
        let mut ms = Vec::with_capacity(rounds);
        let budget = Instant::now();
        for _ in 0..rounds {
            if budget.elapsed() > Duration::from_secs(env("VIGIL_BENCH_QUERY_SECONDS", 30)) {
                break;
            }
            let t = Instant::now();
            let (status, _) = c.get(&path).await;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(status, 200);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "  {label:<28} {:>9.2} {:>9.2} {:>9.2} {flows:>6} {:>9}",
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            ms[ms.len() - 1],
            ms.len()
        );
    }
    // Deep paging: ten pages of DROPPED, following the cursor.
    let t = Instant::now();
    let mut cursor = String::new();
    for _ in 0..10 {
        let (_, body) = c
            .get(&format!("/api/v1/flows?limit=100&verdict=DROPPED{cursor}"))
            .await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        cursor = format!("&cursor={}", v["next"].as_str().unwrap());
    }
    println!(
        "  10 pages of DROPPED following the cursor: {:.1} ms in all",
        t.elapsed().as_secs_f64() * 1e3
    );
}

async fn websocket(total: u64, rate: u64, clients: usize) {
    // Flows stamped just ahead: the relay's live follow passes each once its time comes, so the
    // whole set is released within about a second and the pipeline is the limit.
    let start = now() + 3;
    let per_node = total / 2;
    // Offered at `rate` flows/s in all: the relay releases each flow once its time comes.
    let span_ns = total as i128 * 1_000_000_000 / rate as i128;
    let agent_flows = |node: &str, offset: i32| -> Vec<Flow> {
        (0..per_node)
            .map(|i| {
                let ns = (i as i128 * span_ns / per_node as i128) as i64;
                let mut f = flow(i, per_node, start + DAY);
                f.time = Some(prost_types::Timestamp {
                    seconds: start + ns / 1_000_000_000,
                    nanos: (ns % 1_000_000_000) as i32 + offset,
                });
                f.node_name = node.into();
                f.uuid = format!("{node}-{i}");
                f
            })
            .collect()
    };
    let (relay, stops) = vigil_relay::fake::agents_and_relay(vec![
        ("node-1".into(), agent_flows("node-1", 0)),
        ("node-2".into(), agent_flows("node-2", 1)),
    ])
    .await;
    let relay = relay.to_string();
    let addr = ui(Config {
        relay: relay.clone(),
        store: "sqlite:///nonexistent".into(),
        // The in-process agents ignore filters: the lost-event watch would receive every flow,
        // which real agents never send it.
        watch_lost: false,
        ..Config::default()
    })
    .await;
    let mut c = Client::new(addr).await;
    loop {
        let (_, body) = c.get("/api/v1/nodes").await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let up = v["nodes"].as_array().map_or(0, |n| {
            n.iter().filter(|n| n["state"] == "NODE_CONNECTED").count()
        });
        if up == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let url = format!("ws://{addr}/api/v1/stream");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let (mut flows, mut lost) = (0u64, 0u64);
            let mut first: Option<Instant> = None;
            let mut last = Instant::now();
            while flows + lost < total {
                let msg = match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
                    Ok(Some(Ok(m))) => m,
                    _ => break,
                };
                let tokio_tungstenite::tungstenite::Message::Text(t) = msg else {
                    continue;
                };
                // A reader that keeps up: flows frames are counted, not parsed.
                if t.starts_with(r#"{"type":"flows""#) {
                    first.get_or_insert_with(Instant::now);
                    flows += t.matches(r#""uuid":"#).count() as u64;
                    last = Instant::now();
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "lost" {
                    lost += v["count"].as_u64().unwrap();
                }
            }
            let secs = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
            (flows, lost, secs)
        }));
    }
    let mut line = Vec::new();
    for t in tasks {
        let (flows, lost, secs) = t.await.unwrap();
        line.push(format!(
            "{flows} flows in {secs:.2} s = {:.0} flows/s, lost {lost}",
            flows as f64 / secs.max(1e-9)
        ));
    }
    println!(
        "websocket, {clients} client(s), {total} flows offered at {rate} flows/s: {}",
        line.join("; ")
    );
    drop(stops);
}

#[tokio::main]
async fn main() {
    let n = env("VIGIL_BENCH_FLOWS", 1_000_000);
    let rounds = env("VIGIL_BENCH_ROUNDS", 200) as usize;
    let keep = std::env::var("VIGIL_BENCH_DB").ok();
    if n > 0 {
        history(n, rounds, keep).await;
    }
    let ws_flows = env("VIGIL_BENCH_WS_FLOWS", 200_000);
    let rate = env("VIGIL_BENCH_WS_RATE", 50_000);
    websocket(ws_flows, rate, 1).await;
    websocket(ws_flows, rate, 4).await;
}

/// The history part: seed, then measure pages on SQLite and ClickHouse.
async fn history(n: u64, rounds: usize, keep: Option<String>) {
    let path = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir()
            .join(format!("vigil-ui-bench-{}.db", std::process::id()))
            .display()
            .to_string()
    });
    let end = seed_sqlite(&path, n, now()).await;
    let web = std::env::temp_dir();
    let addr = ui(Config {
        store: format!("sqlite://{path}"),
        relay: "127.0.0.1:1".into(),
        web: web.clone(),
        watch_lost: false,
        ..Config::default()
    })
    .await;
    latency(&format!("sqlite, {n} flows"), addr, n, end, rounds).await;
    if keep.is_none() {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{ext}"));
        }
    }

    let db = format!("vigil_ui_bench_{}", std::process::id());
    match vigil_storage::ClickHouseStore::open(&format!("clickhouse://127.0.0.1:8123/{db}")).await {
        Ok(house) => {
            let end = now();
            seed(&house, n, end, "clickhouse").await;
            let addr = ui(Config {
                store: format!("clickhouse://127.0.0.1:8123/{db}"),
                relay: "127.0.0.1:1".into(),
                web,
                watch_lost: false,
                ..Config::default()
            })
            .await;
            latency(
                &format!("clickhouse, {n} flows"),
                addr,
                n,
                end,
                rounds.min(50),
            )
            .await;
            let _ = house.drop_database().await;
        }
        Err(e) => println!("clickhouse skipped: {e}"),
    }
}
