//! The relay and storage milestone end to end: two real agents in the lab behind real `relay`
//! processes (one storing into SQLite, one into a real ClickHouse server), read back with the real
//! `observe` binary. Needs root and ClickHouse on 127.0.0.1:8123 (`make test` starts it).

#[path = "enforcement/support.rs"]
mod support;

use std::{
    io::{BufRead as _, BufReader},
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{Lab, bin, observe};

const TOPOLOGY: &str = r#"
nodes:
  - name: node-1
  - name: node-2
namespaces:
  - name: shop
  - name: ops
pods:
  - name: frontend
    namespace: shop
    node: node-1
    labels: {app: frontend}
    serve: [tcp:80]
  - name: client
    namespace: ops
    node: node-1
    labels: {app: client}
    serve: [tcp:22]
  - name: my-api
    namespace: shop
    node: node-2
    labels: {app: my-api}
    serve: [tcp:80, tcp:22]
  - name: web
    namespace: ops
    node: node-2
    labels: {app: web}
    serve: [tcp:8080]
"#;

const POLICIES: &str = r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: deny-ssh
spec:
  selector: app in {'my-api', 'client'}
  types: [Ingress]
  ingress:
    - action: Deny
      protocol: TCP
      destination:
        ports: [22]
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata:
  name: would-deny-web
spec:
  selector: app == 'web'
  types: [Ingress]
  ingress:
    - action: Deny
      protocol: TCP
      destination:
        ports: [8080]
"#;

fn free_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A relay process, killed on drop.
struct Relay {
    child: Child,
    addr: String,
    metrics: String,
    log: std::path::PathBuf,
}

impl Relay {
    fn start(lab: &Lab, name: &str, store: &str, addr: &str) -> Relay {
        let log = lab.state.join(format!("relay-{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let metrics = free_port();
        let child = Command::new(bin("relay"))
            .arg("--state")
            .arg(&lab.state)
            .args([
                "--listen",
                addr,
                "--store",
                store,
                "--flush-interval",
                "100ms",
                "--metrics",
                &metrics,
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn relay");
        let relay = Relay {
            child,
            addr: addr.to_owned(),
            metrics,
            log,
        };
        relay.wait_status("both nodes connected", |s| {
            s.contains("Connected Nodes: 2/2")
        });
        relay
    }

    fn wait_status(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (ok, out, err) = observe(&["status", "--server", &self.addr]);
            if ok && pred(&out) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "relay {}: {what}: {out}{err}\n{}",
                self.addr,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

fn is_clickhouse(store: &str) -> bool {
    store.starts_with("clickhouse://")
}

/// `observe query` as rows of JSON objects.
fn query(store: &str, sql: &str) -> Vec<Value> {
    let (ok, out, err) = observe(&["query", "--store", store, "-o", "json", sql]);
    assert!(ok, "observe query {sql:?} on {store}: {err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Stored flows per node (duplicates folded).
fn stored(store: &str, node: &str) -> u64 {
    let from = if is_clickhouse(store) {
        "flows FINAL"
    } else {
        "flows"
    };
    let rows = query(
        store,
        &format!("SELECT count(*) AS n FROM {from} WHERE node = '{node}'"),
    );
    rows[0]["n"].as_u64().unwrap()
}

/// Waits until the store holds exactly the flows `node`'s agents logged.
fn wait_stored(lab: &Lab, store: &str, node: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let want = lab.flows(node).len() as u64;
        let have = stored(store, node);
        if have == want && want > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{store}: {have} flows stored for {node}, its agents logged {want}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Unix ns of a proto3-JSON timestamp ("2026-11-26T10:01:02.123Z"), comparable within a day.
fn ns_of(t: &str) -> u128 {
    let t = t.trim_end_matches('Z');
    let (whole, frac) = t.split_once('.').unwrap_or((t, "0"));
    let hms = whole.rsplit('T').next().unwrap();
    let day: u128 = whole[..10].replace('-', "").parse().unwrap();
    let secs: u128 = hms
        .split(':')
        .fold(0, |acc, p| acc * 60 + p.parse::<u128>().unwrap());
    let nanos: u128 = format!("{frac:0<9}")[..9].parse().unwrap();
    (day * 100_000 + secs) * 1_000_000_000 + nanos
}

fn traffic(lab: &Lab, rounds: usize) {
    for _ in 0..rounds {
        assert!(lab.tcp("ops/client", "shop/frontend", 80));
        assert!(lab.tcp("ops/client", "ops/web", 8080));
        assert!(!lab.tcp("shop/frontend", "shop/my-api", 22));
        assert!(lab.tcp("shop/frontend", "ops/web", 8080));
    }
}

#[test]
fn relay_merges_nodes_survives_restarts_and_stores_every_flow_once() {
    let mut lab = Lab::up(TOPOLOGY);
    lab.apply("policies.yaml", POLICIES);
    lab.start_agent("node-1", &[]);
    lab.start_agent("node-2", &[]);
    let sqlite = format!("sqlite://{}", lab.state.join("flows.db").display());
    let db = format!(
        "vigil_relay_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let clickhouse = format!("clickhouse://127.0.0.1:8123/{db}");
    let _drop_db = DropDatabase(db.clone());
    let (addr_a, addr_b) = (free_port(), free_port());
    let mut a = Relay::start(&lab, "sqlite", &sqlite, &addr_a);
    let mut b = Relay::start(&lab, "clickhouse", &clickhouse, &addr_b);

    traffic(&lab, 3);

    // Both nodes in one stream, in time order.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, out, err) = observe(&["--server", &a.addr, "--all", "-o", "json"]);
        assert!(ok, "{err}");
        let flows: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["flow"].is_object())
            .map(|r| r["flow"].clone())
            .collect();
        let nodes: std::collections::BTreeSet<&str> = flows
            .iter()
            .filter_map(|f| f["node_name"].as_str())
            .collect();
        if nodes.len() == 2 {
            let times: Vec<u128> = flows
                .iter()
                .map(|f| ns_of(f["time"].as_str().unwrap()))
                .collect();
            assert!(
                times.windows(2).all(|w| w[0] <= w[1]),
                "flows out of time order"
            );
            // --last N is N overall.
            let (ok, out, _) = observe(&["--server", &a.addr, "--last", "3", "-o", "json"]);
            assert!(ok);
            let last: Vec<&str> = out.lines().filter(|l| l.contains("\"flow\"")).collect();
            assert_eq!(last.len(), 3, "{out}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "flows of both nodes via the relay: {nodes:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Stopping an agent: followers see NODE_UNAVAILABLE, ServerStatus names it.
    let mut follower = Command::new(bin("observe"))
        .args(["--server", &a.addr, "-f", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    wait_stored(&lab, &sqlite, "node-2");
    lab.kill_agent("node-2");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a NODE_UNAVAILABLE event for node-2");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["node_status"]["state_change"] == "NODE_UNAVAILABLE"
            && v["node_status"]["node_names"][0] == "node-2"
        {
            break;
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    a.wait_status("node-2 named unavailable", |s| {
        s.contains("Unavailable Nodes: node-2") && s.contains("Connected Nodes: 1/2")
    });

    // Traffic while node-2 is down, then it comes back.
    assert!(lab.tcp("ops/client", "shop/frontend", 80));
    lab.start_agent("node-2", &[]);
    a.wait_status("node-2 back", |s| s.contains("Connected Nodes: 2/2"));
    b.wait_status("node-2 back", |s| s.contains("Connected Nodes: 2/2"));
    traffic(&lab, 2);
    for node in ["node-1", "node-2"] {
        wait_stored(&lab, &sqlite, node);
        wait_stored(&lab, &clickhouse, node);
    }

    // Relays restarted mid-traffic: every flow still stored, once.
    let (mut a, b) = std::thread::scope(|scope| {
        let busy = scope.spawn(|| traffic(&lab, 6));
        std::thread::sleep(Duration::from_millis(300));
        a.kill();
        b.kill();
        std::thread::sleep(Duration::from_millis(500));
        let restarted = (
            Relay::start(&lab, "sqlite", &sqlite, &addr_a),
            Relay::start(&lab, "clickhouse", &clickhouse, &addr_b),
        );
        busy.join().unwrap();
        restarted
    });
    traffic(&lab, 1);
    for node in ["node-1", "node-2"] {
        wait_stored(&lab, &sqlite, node);
        wait_stored(&lab, &clickhouse, node);
    }
    for store in [&sqlite, &clickhouse] {
        let from = if is_clickhouse(store) {
            "flows FINAL"
        } else {
            "flows"
        };
        let r = query(
            store,
            &format!("SELECT count(*) AS n, count(DISTINCT uuid) AS d FROM {from}"),
        );
        assert_eq!(r[0]["n"], r[0]["d"], "{store}: duplicates");
    }

    // Both stores answer the policy-hit examples alike.
    let names = ["top-denied", "hits-per-hour", "staged-denies"];
    for name in names {
        let example = vigil_examples(name);
        let x = query(&sqlite, example.0);
        let y = query(&clickhouse, example.1);
        assert!(!x.is_empty(), "{name}: no rows");
        assert_eq!(x, y, "{name}: SQLite and ClickHouse differ");
    }

    // Writes and DDL are refused on both; bad SQL shows the engine's message.
    for store in [&sqlite, &clickhouse] {
        let (create, attach) = if is_clickhouse(store) {
            (
                "CREATE TABLE t (x UInt8) ENGINE = Memory",
                "ATTACH TABLE flows2 (x UInt8) ENGINE = Memory",
            )
        } else {
            (
                "CREATE TABLE t (x INT)",
                &*Box::leak(
                    format!(
                        "ATTACH DATABASE '{}' AS x",
                        lab.state.join("x.db").display()
                    )
                    .into_boxed_str(),
                ),
            )
        };
        for sql in [
            "DROP TABLE flows",
            "INSERT INTO flows (uuid) VALUES ('x')",
            create,
            attach,
        ] {
            let (ok, _, err) = observe(&["query", "--store", store, sql]);
            assert!(!ok, "{store}: {sql} was not refused");
            assert!(err.contains("read-only"), "{store}: {sql}: {err}");
        }
        let (ok, _, err) = observe(&["query", "--store", store, "SELECT * FROM no_such_table"]);
        assert!(!ok && err.contains("no_such_table"), "{store}: {err}");
    }
    a.kill();
    drop(b);
}

/// The events recorded lost for `node` in the store.
fn lost(store: &str, node: &str) -> u64 {
    let rows = query(
        store,
        &format!("SELECT coalesce(sum(count), 0) AS n FROM lost_events WHERE node = '{node}'"),
    );
    rows[0]["n"].as_u64().unwrap()
}

/// One sample of the relay's `/metrics`.
fn metric(relay: &Relay, name: &str) -> u64 {
    let out = Command::new("curl")
        .args(["-sf", &format!("http://{}/metrics", relay.metrics)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn what_an_agent_evicted_while_the_relay_was_away_is_recorded_as_lost_exactly() {
    let mut lab = Lab::up(TOPOLOGY);
    lab.apply("policies.yaml", POLICIES);
    // Rings of 16 flows: a few connections overrun them.
    lab.start_agent("node-1", &["--max-flows", "16"]);
    lab.start_agent("node-2", &["--max-flows", "16"]);
    let store = format!("sqlite://{}", lab.state.join("gaps.db").display());
    let addr = free_port();
    let mut relay = Relay::start(&lab, "gaps", &store, &addr);
    traffic(&lab, 1);
    for node in ["node-1", "node-2"] {
        wait_stored(&lab, &store, node);
        assert_eq!(
            lost(&store, node),
            0,
            "{node}: nothing lost while following"
        );
    }
    let before = stored(&store, "node-1") + stored(&store, "node-2");
    // The relay is away while the agents' rings turn over several times.
    relay.kill();
    traffic(&lab, 8);
    let relay = Relay::start(&lab, "gaps", &store, &addr);
    traffic(&lab, 1);
    // Stored + recorded lost = every flow the agents produced (their flow logs), per node.
    for node in ["node-1", "node-2"] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let produced = lab.flows(node).len() as u64;
            let (have, gone) = (stored(&store, node), lost(&store, node));
            if have + gone == produced && gone > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{node}: {have} stored + {gone} recorded lost != {produced} produced"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let rows = query(
        &store,
        "SELECT source, detail, count FROM lost_events ORDER BY node, time, nanos",
    );
    assert!(
        rows.iter().all(|r| r["source"] == "HUBBLE_RING_BUFFER"
            && r["detail"].as_str().unwrap().contains("evicted")),
        "{rows:?}"
    );
    // The relay counts what it recorded.
    let total = lost(&store, "node-1") + lost(&store, "node-2");
    assert_eq!(metric(&relay, "vigil_relay_store_gap_events_total"), total);
    assert_eq!(
        metric(&relay, "vigil_relay_store_flows_total"),
        stored(&store, "node-1") + stored(&store, "node-2") - before,
        "the restarted relay wrote what the first one had not"
    );
}

/// The (SQLite, ClickHouse) text of an example, read from `observe query --examples`.
fn vigil_examples(name: &'static str) -> (&'static str, &'static str) {
    let get = |store: &str| -> &'static str {
        let (ok, out, err) = observe(&["query", "--store", store, "--examples"]);
        assert!(ok, "{err}");
        let mut lines = out.lines();
        while let Some(l) = lines.next() {
            if l.starts_with(&format!("-- {name}:")) {
                let sql = lines.next().unwrap().trim_end_matches(';').to_owned();
                return Box::leak(sql.into_boxed_str());
            }
        }
        panic!("no example {name}: {out}");
    };
    (get("sqlite://x.db"), get("clickhouse://127.0.0.1:8123/x"))
}

/// Drops the test's ClickHouse database on drop.
struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let _ = Command::new("curl")
            .args(["-s", "--data-binary"])
            .arg(format!("DROP DATABASE IF EXISTS {}", self.0))
            .arg("http://127.0.0.1:8123/")
            .output();
    }
}
