//! Real enforcement: the real `lab` builds network-namespace pods on two nodes, real
//! `node-agent` processes attach the eBPF datapath to their host-side veths, and real TCP, UDP and
//! ICMP traffic checks what each policy dialect allows and refuses. Needs root.

#[path = "enforcement/support.rs"]
mod support;

use std::net::IpAddr;

use serde_json::Value;
use support::{Lab, echo};

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
    labels: {app: frontend, role: client}
    serve: [tcp:80]
  - name: my-api
    namespace: shop
    node: node-2
    labels: {app: my-api, role: api}
    ports: [{name: http, port: 80, protocol: TCP}]
    serve: [tcp:80, tcp:22, tcp:8080, tcp:9000, udp:53, udp:5353]
  - name: db
    namespace: shop
    node: node-1
    labels: {app: db}
    ports: [{name: postgres, port: 5432, protocol: TCP}]
    serve: [tcp:5432, tcp:22]
  - name: client
    namespace: ops
    node: node-1
    labels: {app: client, role: client}
    serve: [tcp:22]
externals:
  - name: ext
    ip: 198.51.100.10
    serve: [tcp:443, tcp:80]
  - name: ext2
    ip: 203.0.113.20
    serve: [tcp:443]
dns:
  api.example.com: ext
"#;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/seed-policies"
);

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}"))
        .unwrap_or_else(|e| panic!("read fixture {name}: {e}"))
}

/// A namespaced seed fixture applied to namespace `ns`, as `kubectl apply -n ns` would.
fn fixture_in(name: &str, ns: &str) -> String {
    fixture(name).replacen("metadata:\n", &format!("metadata:\n  namespace: {ns}\n"), 1)
}

/// The seed article's deny-ssh GlobalNetworkPolicy, corrected (apiVersion, indentation) and
/// completed with a Pass so that everything else goes on to the next tier.
const DENY_SSH: &str = r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: deny-ssh
spec:
  selector: all()
  types: [Ingress]
  ingress:
    - action: Deny
      protocol: TCP
      destination:
        ports: [22]
    - action: Pass
"#;

fn lab_with_agents() -> Lab {
    let mut lab = Lab::up(TOPOLOGY);
    lab.start_agent("node-1", &[]);
    lab.start_agent("node-2", &[]);
    lab
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("")
}

/// A flow record from `from` (pod) to `to` (pod or IP) on `port` with `verdict`.
fn find_flow(lab: &Lab, node: &str, from: &str, to: IpAddr, port: u16, verdict: &str) -> Value {
    let src = lab.ip(from, to.is_ipv6());
    lab.wait_flow(node, &format!("{from} -> {to}:{port} {verdict}"), |f| {
        str_of(f, &["verdict"]) == verdict
            && str_of(f, &["source", "ip"]) == src.to_string()
            && str_of(f, &["destination", "ip"]) == to.to_string()
            && f["destination"]["port"].as_u64() == Some(u64::from(port))
    })
}

#[test]
fn calico_gnp_denies_ssh_cluster_wide() {
    let lab = lab_with_agents();
    assert!(
        lab.tcp("ops/client", "shop/my-api", 22),
        "no policy yet: ssh must pass"
    );
    lab.apply("deny-ssh.yaml", DENY_SSH);
    assert!(
        !lab.tcp("ops/client", "shop/my-api", 22),
        "ssh across nodes must be refused"
    );
    assert!(
        !lab.tcp("shop/frontend", "shop/db", 22),
        "ssh on the same node must be refused"
    );
    assert!(
        lab.tcp("ops/client", "shop/my-api", 80),
        "other ports pass on to the next tier and are allowed"
    );

    let my_api = lab.ip("shop/my-api", false);
    let drop = find_flow(&lab, "node-2", "ops/client", my_api, 22, "DROPPED");
    assert_eq!(str_of(&drop, &["drop_reason"]), "POLICY_DENY");
    assert_eq!(str_of(&drop, &["traffic_direction"]), "INGRESS");
    assert!(
        str_of(&drop, &["decided_by", "policy"]).contains("deny-ssh"),
        "{drop:#}"
    );
    assert_eq!(str_of(&drop, &["decided_by", "action"]), "Deny");
    assert_eq!(drop["decided_by"]["rule_index"], 0);
    assert_eq!(str_of(&drop, &["source", "pod"]), "client");
}

#[test]
fn cilium_cnp_allows_frontend_to_my_api_port_80_only() {
    let lab = lab_with_agents();
    lab.apply(
        "05.yaml",
        &fixture_in("05-cilium-cnp-allow-get-healthz.yaml", "shop"),
    );
    assert!(
        lab.tcp("shop/frontend", "shop/my-api", 80),
        "frontend -> my-api:80 is allowed"
    );
    assert!(
        !lab.tcp("shop/frontend", "shop/my-api", 8080),
        "only port 80 is allowed"
    );
    assert!(
        !lab.tcp("shop/db", "shop/my-api", 80),
        "other pods are refused"
    );
    assert!(
        !lab.tcp("ops/client", "shop/my-api", 80),
        "a namespaced CNP admits only its own namespace"
    );
    let status = lab.status("node-1");
    let warnings = status["warnings"].to_string();
    assert!(
        warnings.contains("allow-get-healthz") && warnings.contains("http"),
        "L7 rules are reported as not enforced: {warnings}"
    );

    let my_api = lab.ip("shop/my-api", false);
    let allowed = find_flow(&lab, "node-2", "shop/frontend", my_api, 80, "FORWARDED");
    assert!(
        str_of(&allowed, &["decided_by", "policy"]).contains("allow-get-healthz"),
        "{allowed:#}"
    );
    let denied = find_flow(&lab, "node-2", "shop/db", my_api, 80, "DROPPED");
    assert_eq!(
        str_of(&denied, &["drop_reason"]),
        "POLICY_DENIED",
        "isolation, not an explicit deny"
    );
}

#[test]
fn cilium_clusterwide_policy_applies_across_namespaces() {
    let lab = lab_with_agents();
    lab.apply("08.yaml", &fixture("08-cilium-ccnp-allow-get-status.yaml"));
    assert!(
        lab.tcp("shop/frontend", "shop/my-api", 80),
        "role=client in shop"
    );
    assert!(
        lab.tcp("ops/client", "shop/my-api", 80),
        "role=client in another namespace"
    );
    assert!(
        !lab.tcp("shop/db", "shop/my-api", 80),
        "no role=client label"
    );
    assert!(
        lab.tcp("shop/frontend", "shop/db", 5432),
        "db is not selected by the policy"
    );
}

#[test]
fn kubernetes_default_deny_plus_allow() {
    let lab = lab_with_agents();
    lab.apply(
        "k8s.yaml",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-ops, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
    - from:
        - namespaceSelector: {matchLabels: {team: ops}}
      ports:
        - port: postgres
"#,
    );
    assert!(
        lab.tcp("ops/client", "shop/db", 5432),
        "allowed by namespace and named port"
    );
    assert!(
        !lab.tcp("ops/client", "shop/db", 22),
        "other ports of db are isolated"
    );
    assert!(
        !lab.tcp("shop/frontend", "shop/db", 5432),
        "shop is not team=ops"
    );
    assert!(
        !lab.tcp("ops/client", "shop/my-api", 80),
        "default deny in shop"
    );
    assert!(
        lab.tcp("shop/frontend", "ops/client", 22),
        "ops is not isolated"
    );
}

#[test]
fn calico_tiers_pass_end_of_tier_order_and_log() {
    let lab = lab_with_agents();
    lab.apply(
        "tiers.yaml",
        r#"
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.triage}
spec:
  tier: security
  order: 10
  selector: app == 'my-api'
  types: [Ingress]
  ingress:
    - action: Log
    - action: Pass
      source:
        namespaceSelector: team == 'ops'
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.allow-8080}
spec:
  tier: security
  order: 20
  selector: app == 'my-api'
  types: [Ingress]
  ingress:
    - action: Allow
      protocol: TCP
      destination: {ports: [8080]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.deny-8080-and-9000}
spec:
  tier: security
  order: 30
  selector: app == 'my-api'
  types: [Ingress]
  ingress:
    - action: Deny
      protocol: TCP
      destination: {ports: [8080, 9000]}
"#,
    );
    assert!(
        lab.tcp("ops/client", "shop/my-api", 80),
        "ops passes to the default tier, where nothing applies"
    );
    assert!(
        !lab.tcp("shop/frontend", "shop/my-api", 80),
        "end of the security tier denies"
    );
    assert!(
        lab.tcp("shop/frontend", "shop/my-api", 8080),
        "order 20 allows before order 30 denies"
    );
    assert!(
        !lab.tcp("shop/frontend", "shop/my-api", 9000),
        "order 30 denies 9000"
    );

    let my_api = lab.ip("shop/my-api", false);
    let passed = find_flow(&lab, "node-2", "ops/client", my_api, 80, "FORWARDED");
    let trace = passed["trace"].to_string();
    assert!(
        trace.contains("\"Log\"") && trace.contains("\"Pass\""),
        "Log then Pass in the trace: {trace}"
    );
    let eot = find_flow(&lab, "node-2", "shop/frontend", my_api, 80, "DROPPED");
    let decided = eot["decided_by"].to_string();
    assert!(
        decided.contains("security") && decided.to_lowercase().contains("end"),
        "end-of-tier is named: {decided}"
    );
    let allowed = find_flow(&lab, "node-2", "shop/frontend", my_api, 8080, "FORWARDED");
    assert!(
        str_of(&allowed, &["decided_by", "policy"]).contains("allow-8080"),
        "{allowed:#}"
    );
    assert!(
        allowed["trace"].to_string().contains("\"Log\""),
        "the Log rule is in the trace before the Allow"
    );
}

#[test]
fn cilium_deny_beats_allow_across_policies() {
    let lab = lab_with_agents();
    lab.apply(
        "cilium.yaml",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: allow-all-to-api, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: my-api}}
  ingress:
    - fromEntities: [all]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-frontend, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: my-api}}
  ingressDeny:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
      toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
    );
    assert!(
        !lab.tcp("shop/frontend", "shop/my-api", 80),
        "the deny wins over the allow"
    );
    assert!(
        lab.tcp("shop/frontend", "shop/my-api", 8080),
        "the deny covers port 80 only"
    );
    assert!(lab.tcp("shop/db", "shop/my-api", 80), "others are allowed");
    let my_api = lab.ip("shop/my-api", false);
    let drop = find_flow(&lab, "node-2", "shop/frontend", my_api, 80, "DROPPED");
    assert!(
        str_of(&drop, &["decided_by", "policy"]).contains("deny-frontend"),
        "{drop:#}"
    );
}

#[test]
fn cidr_except_not_nets_port_ranges_and_named_ports() {
    let lab = lab_with_agents();
    lab.apply(
        "egress.yaml",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: ops}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
    - to:
        - ipBlock: {cidr: 0.0.0.0/0, except: [198.51.100.10/32]}
      ports: [{port: 443}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: frontend-egress}
spec:
  selector: app == 'frontend'
  types: [Egress]
  egress:
    - action: Allow
      protocol: TCP
      destination:
        notNets: [203.0.113.0/24]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-range, namespace: shop}
spec:
  podSelector: {matchLabels: {app: my-api}}
  ingress:
    - ports: [{port: 8000, endPort: 9000, protocol: TCP}]
"#,
    );
    assert!(lab.tcp("ops/client", "ext2", 443), "inside the ipBlock");
    assert!(
        !lab.tcp("ops/client", "ext", 443),
        "the except carves the host out"
    );
    assert!(!lab.tcp("ops/client", "ext2", 80), "only port 443");
    assert!(lab.tcp("shop/frontend", "ext", 443), "outside notNets");
    assert!(!lab.tcp("shop/frontend", "ext2", 443), "inside notNets");
    assert!(
        lab.tcp("shop/db", "shop/my-api", 8080),
        "inside the port range"
    );
    assert!(
        lab.tcp("shop/db", "shop/my-api", 9000),
        "the range includes endPort"
    );
    assert!(
        !lab.tcp("shop/db", "shop/my-api", 80),
        "outside the port range"
    );
}

#[test]
fn icmp_udp_and_ipv6() {
    let lab = lab_with_agents();
    lab.apply(
        "api-ingress.yaml",
        r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: api-ingress}
spec:
  selector: app == 'my-api'
  types: [Ingress]
  ingress:
    - action: Allow
      protocol: ICMP
      icmp: {type: 8}
    - action: Allow
      protocol: UDP
      destination: {ports: [53]}
    - action: Allow
      protocol: TCP
      ipVersion: 6
      destination: {ports: [80]}
"#,
    );
    let v4 = lab.ip("shop/my-api", false);
    let v6 = lab.ip("shop/my-api", true);
    assert!(lab.ping("shop/frontend", v4), "ICMP echo is allowed");
    assert!(!lab.ping("shop/frontend", v6), "ICMPv6 is not ICMP");
    assert!(
        lab.udp("shop/frontend", "shop/my-api", 53),
        "UDP 53 is allowed"
    );
    assert!(
        !lab.udp("shop/frontend", "shop/my-api", 5353),
        "UDP 5353 is not"
    );
    assert!(
        lab.tcp_ip("shop/frontend", v6, 80),
        "TCP 80 over IPv6 is allowed"
    );
    assert!(
        !lab.tcp_ip("shop/frontend", v4, 80),
        "TCP 80 over IPv4 is not"
    );
    let udp_drop = lab.wait_flow("node-2", "the UDP 5353 drop", |f| {
        str_of(f, &["verdict"]) == "DROPPED" && str_of(f, &["protocol"]) == "UDP"
    });
    assert_eq!(udp_drop["destination"]["port"], 5353);
}

#[test]
fn conntrack_lets_replies_through_and_policy_changes_apply_to_new_connections() {
    let lab = lab_with_agents();
    // frontend is isolated both ways; only its egress to my-api:80 is allowed, so the replies
    // can only come back through conntrack.
    lab.apply(
        "frontend.yaml",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: frontend-out, namespace: shop}
spec:
  podSelector: {matchLabels: {app: frontend}}
  policyTypes: [Ingress, Egress]
  egress:
    - to: [{podSelector: {matchLabels: {app: my-api}}}]
      ports: [{port: 80}]
"#,
    );
    let my_api = lab.ip("shop/my-api", false);
    let established = lab
        .connect("shop/frontend", my_api, 80)
        .expect("allowed connection");
    assert!(echo(&established), "replies come back through conntrack");
    assert!(
        !lab.tcp("shop/frontend", "shop/my-api", 8080),
        "other egress is refused"
    );

    lab.apply(
        "api-deny.yaml",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-isolated, namespace: shop}
spec:
  podSelector: {matchLabels: {app: my-api}}
  policyTypes: [Ingress]
"#,
    );
    assert!(
        !lab.tcp("shop/frontend", "shop/my-api", 80),
        "new connections follow the new policy"
    );
    assert!(
        echo(&established),
        "the established connection keeps working"
    );
}

#[test]
fn staged_policy_is_audited_not_enforced() {
    let lab = lab_with_agents();
    lab.apply(
        "staged.yaml",
        r#"
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: would-deny-api}
spec:
  selector: app == 'my-api'
  types: [Ingress]
  ingress:
    - action: Deny
      protocol: TCP
      destination: {ports: [80]}
"#,
    );
    assert!(
        lab.tcp("shop/frontend", "shop/my-api", 80),
        "the packet follows the enforced view"
    );
    let my_api = lab.ip("shop/my-api", false);
    let audit = find_flow(&lab, "node-2", "shop/frontend", my_api, 80, "AUDIT");
    assert_eq!(str_of(&audit, &["staged_action"]), "DENY");
    assert!(
        str_of(&audit, &["staged_decided_by", "policy"]).contains("would-deny-api"),
        "{audit:#}"
    );
    assert_eq!(str_of(&audit, &["staged_decided_by", "view"]), "pending");
    let decided = audit["decided_by"].to_string();
    assert!(
        decided.to_lowercase().contains("default"),
        "enforced view: default allow, named: {decided}"
    );
}

#[test]
fn killed_agent_leaves_enforcement_in_place_and_restart_adopts_it() {
    let mut lab = lab_with_agents();
    lab.apply("deny-ssh.yaml", DENY_SSH);
    assert!(!lab.tcp("ops/client", "shop/db", 22));
    lab.kill_agent("node-1");
    for _ in 0..3 {
        assert!(
            !lab.tcp("ops/client", "shop/db", 22),
            "denied traffic stays denied while the agent is down"
        );
        assert!(
            lab.tcp("ops/client", "shop/db", 5432),
            "allowed traffic stays allowed while the agent is down"
        );
    }
    let before = lab.status("node-1")["generation"].as_u64().unwrap();
    lab.start_agent("node-1", &[]);
    lab.wait_status("node-1", "a generation after the restart", |s| {
        s["generation"].as_u64().unwrap_or(0) > before
    });
    assert!(
        !lab.tcp("ops/client", "shop/db", 22),
        "still denied after the restart"
    );
    lab.remove("deny-ssh.yaml");
    assert!(
        lab.tcp("ops/client", "shop/db", 22),
        "the restarted agent applies changes"
    );
}

#[test]
fn bad_manifests_are_refused_with_locations_and_enforcement_continues() {
    let lab = lab_with_agents();
    lab.apply("deny-ssh.yaml", DENY_SSH);
    let policies = lab.state.join("policies");
    std::fs::write(
        policies.join("01.yaml"),
        fixture("01-calico-gnp-deny-ssh.yaml"),
    )
    .unwrap();
    std::fs::write(
        policies.join("broken.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: [unclosed\n",
    )
    .unwrap();
    std::fs::write(
        policies.join("unknown.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicyy\nmetadata: {name: x}\n",
    )
    .unwrap();
    let status = lab.wait_status("node-1", "three rejected files", |s| {
        s["rejected"].as_array().is_some_and(|r| r.len() == 3)
    });
    let rejected = status["rejected"].to_string();
    assert!(
        rejected.contains("01.yaml") && rejected.contains("projectcalico.org/v3"),
        "{rejected}"
    );
    assert!(
        rejected.contains("broken.yaml:3:1: invalid YAML"),
        "broken YAML is located: {rejected}"
    );
    assert!(rejected.contains("NetworkPolicyy"), "{rejected}");
    assert!(
        !lab.tcp("ops/client", "shop/db", 22),
        "the policy in force stays in force"
    );

    // Breaking the file in force keeps its last good version.
    std::fs::write(
        policies.join("deny-ssh.yaml"),
        DENY_SSH.replace("action: Deny", "action: Dney"),
    )
    .unwrap();
    lab.wait_status("node-1", "deny-ssh.yaml rejected", |s| {
        s["rejected"].to_string().contains("deny-ssh.yaml")
    });
    assert!(
        !lab.tcp("ops/client", "shop/db", 22),
        "the last good version stays in force"
    );
    assert!(lab.tcp("ops/client", "shop/db", 5432));
}
