//! The Observe milestone end to end: real lab traffic through real agents, read back with the real
//! `observe` binary over the agents' Hubble-compatible gRPC API. Needs root.

#[path = "enforcement/support.rs"]
mod support;

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpStream, UdpSocket},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::Value;
use support::{Lab, bin, observe};
use vigil_node_agent::sys;

const TOPOLOGY: &str = r#"
nodes:
  - name: node-1
  - name: node-2
namespaces:
  - name: shop
    labels: {team: web}
  - name: ops
    labels: {team: ops}
pods:
  - name: frontend
    namespace: shop
    node: node-1
    labels: {app: frontend}
    serve: [tcp:80]
  - name: my-api
    namespace: shop
    node: node-2
    labels: {app: my-api}
    serve: [tcp:80, tcp:22, udp:53]
  - name: client
    namespace: ops
    node: node-1
    labels: {app: client}
    serve: [tcp:22]
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
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: allow-frontend
  namespace: shop
spec:
  endpointSelector:
    matchLabels: {app: my-api}
  ingress:
    - fromEndpoints:
        - matchLabels: {app: frontend}
      toPorts:
        - ports: [{port: "80", protocol: TCP}]
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

/// `observe --server <node> -o json <args>` as parsed objects (each also checked with a generic
/// protobuf-JSON reader against the descriptors).
fn observe_json(server: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--server", server, "-o", "json"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = observe(&all);
    assert!(ok, "observe {all:?} failed: {stderr}");
    let pool = DescriptorPool::decode(vigil_proto::FILE_DESCRIPTOR_SET).unwrap();
    let message = pool
        .get_message_by_name("observer.GetFlowsResponse")
        .unwrap();
    stdout
        .lines()
        .map(|line| {
            let mut de = serde_json::Deserializer::from_str(line);
            DynamicMessage::deserialize(message.clone(), &mut de)
                .unwrap_or_else(|e| panic!("a generic protobuf-JSON reader refuses {line}: {e}"));
            serde_json::from_str(line).unwrap()
        })
        .collect()
}

fn flows_of(responses: &[Value]) -> Vec<&Value> {
    responses
        .iter()
        .filter(|r| r["flow"].is_object())
        .map(|r| &r["flow"])
        .collect()
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("")
}

fn dport(f: &Value) -> u64 {
    f["l4"]["TCP"]["destination_port"]
        .as_u64()
        .or(f["l4"]["UDP"]["destination_port"].as_u64())
        .unwrap_or(0)
}

/// Waits until `observe` returns a flow matching `pred`.
fn wait_flow(server: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let responses = observe_json(server, &["--all"]);
        if let Some(f) = flows_of(&responses).into_iter().find(|f| pred(f)) {
            return f.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no flow for {what}; flows: {responses:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lab_with_policies() -> Lab {
    let mut lab = Lab::up(TOPOLOGY);
    lab.start_agent("node-1", &[]);
    lab.start_agent("node-2", &[]);
    lab.apply("policies.yaml", POLICIES);
    lab
}

#[test]
fn observe_names_the_deciding_policy_of_every_verdict() {
    let lab = lab_with_policies();
    let node2 = lab.observer_addr("node-2");
    assert!(!lab.tcp("ops/client", "shop/my-api", 22), "ssh is refused");
    assert!(
        lab.tcp("shop/frontend", "shop/my-api", 80),
        "frontend is allowed"
    );
    assert!(
        !lab.tcp("ops/client", "shop/my-api", 80),
        "the CNP's implicit deny"
    );
    assert!(
        lab.tcp("shop/frontend", "ops/web", 8080),
        "staged deny is only audited"
    );

    let ssh = wait_flow(&node2, "refused ssh", |f| {
        s(f, &["verdict"]) == "DROPPED"
            && dport(f) == 22
            && s(f, &["source", "pod_name"]) == "client"
    });
    assert_eq!(s(&ssh, &["drop_reason_desc"]), "POLICY_DENY");
    assert_eq!(s(&ssh, &["traffic_direction"]), "INGRESS");
    assert_eq!(s(&ssh, &["trace_observation_point"]), "TO_ENDPOINT");
    assert_eq!(s(&ssh, &["source", "namespace"]), "ops");
    assert_eq!(s(&ssh, &["destination", "pod_name"]), "my-api");
    assert!(
        ssh["destination"]["labels"]
            .to_string()
            .contains("k8s:app=my-api"),
        "{ssh:#}"
    );
    assert_eq!(ssh["event_type"]["type"], 1, "a drop notification");
    assert_eq!(ssh["is_reply"], false);
    assert_eq!(ssh["l4"]["TCP"]["flags"]["SYN"], true);
    let denied = &ssh["ingress_denied_by"][0];
    assert_eq!(s(denied, &["name"]), "deny-ssh");
    assert_eq!(s(denied, &["kind"]), "GlobalNetworkPolicy");
    assert!(
        denied["labels"].to_string().contains("vigil:rule=0"),
        "{denied:#}"
    );
    assert_eq!(ssh["vigil_trace"]["decided_by"]["rule_index"], 0);
    assert_eq!(s(&ssh, &["vigil_trace", "decided_by", "tier"]), "default");
    assert_eq!(
        s(&ssh, &["vigil_trace", "decided_by", "action"]),
        "ACTION_DENY"
    );
    assert!(!s(&ssh, &["uuid"]).is_empty());
    assert_eq!(s(&ssh, &["node_name"]), "node-2");

    let allowed = wait_flow(&node2, "allowed frontend", |f| {
        s(f, &["verdict"]) == "FORWARDED"
            && dport(f) == 80
            && s(f, &["source", "pod_name"]) == "frontend"
    });
    assert_eq!(
        s(&allowed["ingress_allowed_by"][0], &["name"]),
        "allow-frontend"
    );
    assert_eq!(s(&allowed["ingress_allowed_by"][0], &["namespace"]), "shop");
    assert_eq!(
        s(&allowed["ingress_allowed_by"][0], &["kind"]),
        "CiliumNetworkPolicy"
    );
    assert_eq!(allowed["event_type"]["type"], 5, "a policy verdict");

    let eot = wait_flow(&node2, "end of tier", |f| {
        s(f, &["verdict"]) == "DROPPED"
            && dport(f) == 80
            && s(f, &["source", "pod_name"]) == "client"
    });
    assert_eq!(
        s(&eot, &["vigil_trace", "decided_by", "hit_kind"]),
        "HIT_KIND_END_OF_TIER",
        "{eot:#}"
    );
    assert!(
        eot["ingress_denied_by"][0]["labels"]
            .to_string()
            .contains("vigil:end-of-tier"),
        "{eot:#}"
    );

    let audit = wait_flow(&node2, "staged deny", |f| {
        s(f, &["verdict"]) == "AUDIT" && dport(f) == 8080
    });
    assert_eq!(
        s(&audit, &["vigil_trace", "pending_decided_by", "name"]),
        "would-deny-web"
    );
    assert_eq!(audit["vigil_trace"]["pending_decided_by"]["pending"], true);
    assert_eq!(s(&audit, &["vigil_trace", "pending_action"]), "ACTION_DENY");
    assert_eq!(
        s(&audit, &["vigil_trace", "decided_by", "hit_kind"]),
        "HIT_KIND_DEFAULT_ALLOW",
        "{audit:#}"
    );

    // Compact output names the deciding policy; --print-policy-names adds Hubble's lists.
    let (ok, compact, err) = observe(&[
        "--server",
        &node2,
        "--all",
        "--verdict",
        "DROPPED",
        "--to-port",
        "22",
        "--print-policy-names",
    ]);
    assert!(ok, "{err}");
    let line = compact.lines().next().unwrap_or_default();
    assert!(
        line.contains("ops/client:") && line.contains("-> shop/my-api:22"),
        "{compact}"
    );
    assert!(
        line.contains("to-endpoint DROPPED") && line.contains("TCP Flags: SYN"),
        "{compact}"
    );
    assert!(
        line.contains("by GlobalNetworkPolicy/deny-ssh rule 0"),
        "{compact}"
    );
    assert!(
        line.contains("ingress-denied-by: GlobalNetworkPolicy/deny-ssh"),
        "{compact}"
    );

    // Filters: AND inside one filter, OR across values, --not, policy names, IPs.
    let all = flows_of(&observe_json(&node2, &["--all"])).len();
    let and = observe_json(
        &node2,
        &["--all", "--from-pod", "ops/client", "--to-port", "22"],
    );
    assert!(!and.is_empty());
    for f in flows_of(&and) {
        assert!(
            s(f, &["source", "pod_name"]) == "client" && dport(f) == 22,
            "{f:#}"
        );
    }
    let or = observe_json(
        &node2,
        &[
            "--all",
            "--from-pod",
            "ops/client",
            "--from-pod",
            "shop/frontend",
        ],
    );
    let sources: std::collections::BTreeSet<&str> = flows_of(&or)
        .iter()
        .map(|f| s(f, &["source", "pod_name"]))
        .collect();
    assert_eq!(sources, ["client", "frontend"].into(), "{or:#?}");
    let not = observe_json(&node2, &["--all", "--not", "--verdict", "DROPPED"]);
    assert!(
        flows_of(&not)
            .iter()
            .all(|f| s(f, &["verdict"]) != "DROPPED")
    );
    let dropped = observe_json(&node2, &["--all", "--verdict", "DROPPED"]);
    assert_eq!(
        flows_of(&not).len() + flows_of(&dropped).len(),
        all,
        "--not is the complement"
    );
    let by_policy = observe_json(&node2, &["--all", "--policy", "deny-ssh"]);
    assert!(!by_policy.is_empty());
    for f in flows_of(&by_policy) {
        assert_eq!(
            s(f, &["vigil_trace", "decided_by", "name"]),
            "deny-ssh",
            "{f:#}"
        );
    }
    let web_ip = lab.ip("ops/web", false).to_string();
    let by_ip = observe_json(&node2, &["--all", "--ip", &web_ip]);
    assert!(!by_ip.is_empty());
    for f in flows_of(&by_ip) {
        assert!(
            s(f, &["IP", "source"]) == web_ip || s(f, &["IP", "destination"]) == web_ip,
            "{f:#}"
        );
    }
    let by_ns = observe_json(
        &node2,
        &[
            "--all",
            "-n",
            "ops",
            "--label",
            "app=web",
            "--protocol",
            "tcp",
        ],
    );
    assert!(!by_ns.is_empty());
    for f in flows_of(&by_ns) {
        assert!(f.to_string().contains("k8s:app=web"), "{f:#}");
    }
    let last2 = observe_json(&node2, &["--last", "2"]);
    assert_eq!(flows_of(&last2).len(), 2);
    // Hubble's --drop-reason-desc, -t, --tcp-flags and --uuid: the deny-ssh drops are
    // POLICY_DENY (a Deny rule), drop events, SYNs.
    let denied = observe_json(
        &node2,
        &[
            "--all",
            "--drop-reason-desc",
            "POLICY_DENY",
            "-t",
            "drop",
            "--tcp-flags",
            "syn",
        ],
    );
    let denied = flows_of(&denied);
    assert!(!denied.is_empty());
    for f in &denied {
        assert_eq!(s(f, &["drop_reason_desc"]), "POLICY_DENY", "{f:#}");
        assert_eq!(f["event_type"]["type"], 1, "{f:#}");
        assert_eq!(f["l4"]["TCP"]["flags"]["SYN"], true, "{f:#}");
    }
    assert!(
        denied.len() < all,
        "the filters narrow: {} of {all}",
        denied.len()
    );
    let one = s(denied[0], &["uuid"]).to_owned();
    let by_uuid = observe_json(&node2, &["--all", "--uuid", &one]);
    assert_eq!(flows_of(&by_uuid).len(), 1);
    assert_eq!(s(flows_of(&by_uuid)[0], &["uuid"]), one);
    // Hubble's field mask: the agent sends only the named fields.
    let masked = observe_json(
        &node2,
        &[
            "--last",
            "5",
            "--experimental-field-mask",
            "time,verdict,source.pod_name",
        ],
    );
    let masked = flows_of(&masked);
    assert_eq!(masked.len(), 5);
    for f in &masked {
        let keys: std::collections::BTreeSet<&str> =
            f.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(
            keys.is_subset(&["time", "verdict", "source"].into()) && keys.contains("time"),
            "{f:#}"
        );
        if let Some(src) = f.get("source") {
            assert_eq!(src.as_object().unwrap().len(), 1, "{f:#}");
            assert!(src["pod_name"].is_string(), "{f:#}");
        }
    }
    let (ok, _, err) = observe(&[
        "--server",
        &node2,
        "--last",
        "1",
        "--experimental-field-mask",
        "sauce",
    ]);
    assert!(!ok);
    assert!(err.contains("flow.Flow has no field \"sauce\""), "{err}");

    // The flow log still gets every flow, in its own format.
    lab.wait_flow("node-2", "deny-ssh in the flow log", |f| {
        s(f, &["verdict"]) == "DROPPED" && s(f, &["decided_by", "policy"]).contains("deny-ssh")
    });

    // /metrics counts them.
    let metrics = http_get(&lab.metrics_addr("node-2"), "/metrics");
    assert!(
        metrics.contains("vigil_flows_total{verdict=\"DROPPED\",direction=\"INGRESS\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("policy=\"GlobalNetworkPolicy/deny-ssh\",view=\"enforced\""),
        "{metrics}"
    );
    assert!(metrics.contains("vigil_policy_generation "), "{metrics}");
    // Map occupancy: the installed generation's entries and the connections tracked (recounted
    // every second while the table is small).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let metrics = http_get(&lab.metrics_addr("node-2"), "/metrics");
    let gauge = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(
        gauge("vigil_map_entries{map=\"endpoints\"}") >= 2,
        "{metrics}"
    );
    assert!(gauge("vigil_map_entries{map=\"policy\"}") > 0, "{metrics}");
    assert!(gauge("vigil_map_entries{map=\"ct\"}") > 0, "{metrics}");
    assert_eq!(
        gauge("vigil_map_capacity{map=\"ct\"}"),
        262_144,
        "{metrics}"
    );
}

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to /metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body
}

#[test]
fn observe_follow_status_nodes_and_ctrl_c() {
    let lab = lab_with_policies();
    let node2 = lab.observer_addr("node-2");
    let mut child = Command::new(bin("observe"))
        .args([
            "--server",
            &node2,
            "-f",
            "-o",
            "json",
            "--to-pod",
            "shop/my-api",
            "--to-port",
            "22",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn observe -f");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The stream may start after the first attempts: keep knocking until one is seen.
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        assert!(!lab.tcp("ops/client", "shop/my-api", 22));
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            break line;
        }
        assert!(Instant::now() < deadline, "observe -f saw nothing");
    };
    let v: Value = serde_json::from_str(&seen).unwrap();
    assert_eq!(s(&v, &["flow", "verdict"]), "DROPPED");
    assert_eq!(dport(&v["flow"]), 22);
    // Ctrl-C ends a follow cleanly.
    // SAFETY: kill(2) on our own child's pid with SIGINT.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.success(), "observe -f after Ctrl-C: {status}");

    let (ok, out, err) = observe(&["status", "--server", &node2]);
    assert!(ok, "{err}");
    assert!(
        out.contains("Current/Max Flows:") && out.contains("/65536"),
        "{out}"
    );
    let (ok, out, err) = observe(&["nodes", "--server", &node2]);
    assert!(ok, "{err}");
    assert!(
        out.contains("node-2") && out.contains("NODE_CONNECTED"),
        "{out}"
    );
}

#[test]
fn observe_reports_an_unreachable_server_in_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let (ok, out, err) = observe(&["--server", &addr, "--last", "1"]);
    assert!(!ok);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&addr) && !err.contains("panicked"), "{err}");
}

#[test]
fn overload_every_event_is_delivered_or_reported_lost() {
    let mut lab = Lab::up(TOPOLOGY);
    lab.start_agent(
        "node-1",
        &["--aggregation", "none", "--ring-buffer-size", "4096"],
    );
    lab.start_agent("node-2", &[]);
    let node1 = lab.observer_addr("node-1");
    let to = lab.ip("shop/my-api", false);
    let socket = sys::run_in(Some(&lab.netns("ops/client")), || {
        UdpSocket::bind("0.0.0.0:0")
    })
    .unwrap()
    .unwrap();
    for i in 0..20_000u32 {
        let _ = socket.send_to(&i.to_be_bytes(), (to, 53));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = lab.status("node-1");
        let produced = status["datapath"]["events"].as_u64().unwrap_or(0)
            + status["datapath"]["events_lost"].as_u64().unwrap_or(0);
        let responses = observe_json(&node1, &["--all"]);
        let delivered = flows_of(&responses).len() as u64;
        let lost: u64 = responses
            .iter()
            .filter(|r| {
                matches!(
                    s(r, &["lost_events", "source"]),
                    "PERF_EVENT_RING_BUFFER" | "OBSERVER_EVENTS_QUEUE"
                )
            })
            .map(|r| {
                s(r, &["lost_events", "num_events_lost"])
                    .parse::<u64>()
                    .unwrap()
            })
            .sum();
        let ring_lost = status["datapath"]["events_lost"].as_u64().unwrap_or(0);
        if delivered + lost == produced && ring_lost > 0 {
            assert!(delivered > 0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delivered {delivered} + reported lost {lost} != produced {produced} (datapath lost {ring_lost}); status: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
