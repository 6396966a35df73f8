//! Scenario tests: each reads as a sentence of policy-semantics.md.

use std::collections::BTreeMap;

use super::*;
use crate::manifest::parse_policy_file;
use crate::model::{Namespace, Node};
use crate::policy::RuleAction;
use crate::reserved;

fn endpoint(name: &str, ns: &str, labels: &[(&str, &str)], ip: &str, node: &str) -> Endpoint {
    Endpoint {
        name: name.into(),
        namespace: ns.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ips: vec![ip.parse().unwrap()],
        node: node.into(),
        interface: format!("veth-{name}"),
        ..Endpoint::default()
    }
}

/// web (prod, n1), client (prod, n2), other (dev, n2), plus a world address.
fn cluster() -> Cluster {
    let mut web = endpoint("web", "prod", &[("app", "web")], "10.0.0.1", "n1");
    web.ports.push(NamedPort {
        name: "http".into(),
        port: 8080,
        protocol: proto::TCP,
    });
    web.service_account = Some("sa-web".into());
    let mut client = endpoint("client", "prod", &[("app", "client")], "10.0.0.2", "n2");
    client.ports.push(NamedPort {
        name: "http".into(),
        port: 9000,
        protocol: proto::TCP,
    });
    Cluster {
        endpoints: vec![
            web,
            client,
            endpoint("other", "dev", &[("app", "client")], "10.0.1.3", "n2"),
        ],
        namespaces: vec![
            Namespace {
                name: "prod".into(),
                labels: BTreeMap::from([("env".into(), "prod".into())]),
            },
            Namespace {
                name: "dev".into(),
                labels: BTreeMap::from([("env".into(), "dev".into())]),
            },
        ],
        nodes: vec![
            Node {
                name: "n1".into(),
                ips: vec!["192.168.0.1".parse().unwrap()],
                netns: None,
            },
            Node {
                name: "n2".into(),
                ips: vec!["192.168.0.2".parse().unwrap()],
                netns: None,
            },
        ],
    }
}

const CLIENT: &str = "10.0.0.2";
const OTHER: &str = "10.0.1.3";
const WORLD: &str = "8.8.8.8";

struct Case {
    set: PolicySet,
    cluster: Cluster,
}

impl Case {
    fn new(yaml: &str) -> Case {
        let parsed = parse_policy_file("case.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
        Case {
            set: PolicySet::new(parsed.policies, parsed.tiers).unwrap(),
            cluster: cluster(),
        }
    }

    fn eval(
        &self,
        subject: &str,
        dir: Direction,
        peer: &str,
        protocol: u8,
        port: u16,
    ) -> Evaluation {
        let ep = self
            .cluster
            .endpoints
            .iter()
            .find(|e| e.name == subject)
            .unwrap();
        evaluate(
            &self.set,
            &self.cluster,
            ep,
            dir,
            peer.parse().unwrap(),
            protocol,
            port,
        )
    }

    fn tcp_in(&self, peer: &str, port: u16) -> Evaluation {
        self.eval("web", Direction::Ingress, peer, proto::TCP, port)
    }

    fn tcp_out(&self, peer: &str, port: u16) -> Evaluation {
        self.eval("web", Direction::Egress, peer, proto::TCP, port)
    }
}

fn decided(e: &ViewResult) -> (Action, Special, &str, Option<u32>) {
    (
        e.action,
        e.decided_by.special,
        e.decided_by.name.as_str(),
        e.decided_by.rule_index,
    )
}

#[test]
fn without_policies_everything_is_allowed_by_default() {
    let case = Case::new("");
    let e = case.tcp_in(WORLD, 80);
    assert_eq!(
        decided(&e.enforced),
        (Action::Allow, Special::DefaultAllow, "", None)
    );
    assert_eq!(
        e.enforced.hits,
        vec![RuleRef::default_allow(Direction::Ingress)]
    );
    assert_eq!(e.staged, e.enforced);
    assert_eq!(e.peer_identity, reserved::WORLD);
}

const K8S_WEB_FROM_CLIENT: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: client}}}]
      ports: [{port: 80}, {port: http}]
"#;

#[test]
fn kubernetes_policy_isolates_and_allows_the_union_of_its_peers() {
    let case = Case::new(K8S_WEB_FROM_CLIENT);
    assert_eq!(
        decided(&case.tcp_in(CLIENT, 80).enforced),
        (Action::Allow, Special::None, "web", Some(0))
    );
    // The named port resolves against the subject's own ports on ingress.
    assert_eq!(case.tcp_in(CLIENT, 8080).enforced.action, Action::Allow);
    assert_eq!(case.tcp_in(CLIENT, 9000).enforced.action, Action::Deny);
    // podSelector alone means the policy's namespace: the dev client is not a peer.
    let e = case.tcp_in(OTHER, 80);
    assert_eq!(
        decided(&e.enforced),
        (Action::Deny, Special::EndOfTier, "web", None)
    );
    assert_eq!(e.enforced.decided_by.tier, "default");
    assert_eq!(
        case.eval("web", Direction::Ingress, CLIENT, proto::UDP, 80)
            .enforced
            .action,
        Action::Deny
    );
    // policyTypes defaults to Ingress only: egress stays open.
    assert_eq!(
        decided(&case.tcp_out(WORLD, 443).enforced).1,
        Special::DefaultAllow
    );
    // The policy does not select the client.
    assert_eq!(
        case.eval("client", Direction::Ingress, WORLD, proto::TCP, 1)
            .enforced
            .action,
        Action::Allow
    );
}

#[test]
fn kubernetes_namespace_selector_sees_the_implied_name_label() {
    let case = Case::new(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-dev, namespace: prod}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress:
    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: dev}}}]
"#,
    );
    assert_eq!(case.tcp_in(OTHER, 1).enforced.action, Action::Allow);
    assert_eq!(case.tcp_in(CLIENT, 1).enforced.action, Action::Deny);
    // Egress is isolated by policyTypes although it has no rules.
    assert_eq!(
        decided(&case.tcp_out(CLIENT, 1).enforced).1,
        Special::EndOfTier
    );
}

#[test]
fn ip_blocks_match_outside_addresses_and_whole_endpoint_identities() {
    let case = Case::new(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: blocks, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
    - from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.1.0/24]}}]
    - from: [{ipBlock: {cidr: 0.0.0.0/0}}]
      ports: [{port: 443}]
"#,
    );
    assert_eq!(case.tcp_in(CLIENT, 1).enforced.action, Action::Allow);
    assert_eq!(case.tcp_in("10.0.200.9", 1).enforced.action, Action::Allow);
    assert_eq!(case.tcp_in(OTHER, 1).enforced.action, Action::Deny);
    assert_eq!(case.tcp_in("10.0.1.77", 1).enforced.action, Action::Deny);
    assert_eq!(
        decided(&case.tcp_in(WORLD, 443).enforced),
        (Action::Allow, Special::None, "blocks", Some(1))
    );
    assert_eq!(case.tcp_in(WORLD, 80).enforced.action, Action::Deny);
}

#[test]
fn cilium_deny_wins_over_every_allow_of_the_default_tier() {
    let case = Case::new(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-allow-all, namespace: prod}
spec:
  podSelector: {}
  ingress: [{}]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: z-deny-ssh}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingressDeny:
    - fromEntities: [all]
      toPorts: [{ports: [{port: "22", protocol: TCP}]}]
"#,
    );
    let e = case.tcp_in(CLIENT, 22);
    assert_eq!(
        decided(&e.enforced),
        (Action::Deny, Special::None, "z-deny-ssh", Some(0))
    );
    assert_eq!(e.enforced.decided_by.action, RuleAction::Deny);
    assert_eq!(decided(&case.tcp_in(CLIENT, 80).enforced).2, "a-allow-all");
}

#[test]
fn cilium_rules_select_peers_as_documented() {
    let case = Case::new(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: client}}]
      toPorts: [{ports: [{port: "80"}]}]
    - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": dev}}]
      toPorts: [{ports: [{port: "81"}]}]
    - fromCIDR: [10.0.0.0/8]
      toPorts: [{ports: [{port: "82"}]}]
    - fromEntities: [world]
      toPorts: [{ports: [{port: "83"}]}]
    - toPorts: [{ports: [{port: "84", protocol: UDP}]}]
    - {}
  egress:
    - toEndpoints: [{matchLabels: {app: client}}]
      toPorts: [{ports: [{port: http, protocol: TCP}]}]
"#,
    );
    // fromEndpoints in a namespaced policy: own namespace only...
    assert_eq!(case.tcp_in(CLIENT, 80).enforced.action, Action::Allow);
    assert_eq!(case.tcp_in(OTHER, 80).enforced.action, Action::Deny);
    // ...unless the selector names the namespace label.
    assert_eq!(case.tcp_in(OTHER, 81).enforced.action, Action::Allow);
    // CIDR rules never match endpoints, only outside addresses.
    assert_eq!(case.tcp_in(CLIENT, 82).enforced.action, Action::Deny);
    assert_eq!(case.tcp_in("10.9.9.9", 82).enforced.action, Action::Allow);
    assert_eq!(case.tcp_in(WORLD, 83).enforced.action, Action::Allow);
    assert_eq!(case.tcp_in(CLIENT, 83).enforced.action, Action::Deny);
    // toPorts without L3: every peer. Cilium's ANY default is for ports rules; UDP only here.
    assert_eq!(
        case.eval("web", Direction::Ingress, WORLD, proto::UDP, 84)
            .enforced
            .action,
        Action::Allow
    );
    // Egress named ports resolve against the peer's ports.
    assert_eq!(case.tcp_out(CLIENT, 9000).enforced.action, Action::Allow);
    assert_eq!(case.tcp_out(CLIENT, 8080).enforced.action, Action::Deny);
    // Node addresses are host (this node) or remote-node.
    assert_eq!(case.tcp_in("192.168.0.1", 1).peer_identity, reserved::HOST);
    assert_eq!(
        case.tcp_in("192.168.0.2", 1).peer_identity,
        reserved::REMOTE_NODE
    );
}

#[test]
fn an_empty_cilium_rule_only_isolates() {
    let case = Case::new(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-all, namespace: prod}
spec:
  endpointSelector: {}
  ingress: [{}]
"#,
    );
    let e = case.tcp_in(CLIENT, 80);
    assert_eq!(
        decided(&e.enforced),
        (Action::Deny, Special::EndOfTier, "deny-all", None)
    );
}

const TIERS: &str = r#"
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: platform}
spec: {order: 200, defaultAction: Pass}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.pass-clients}
spec:
  tier: security
  order: 10
  selector: app == 'web'
  ingress:
    - action: Log
    - action: Pass
      source: {selector: app == 'client'}
    - action: Deny
      protocol: TCP
      destination: {ports: [22]}
    - action: Allow
      source: {nets: [8.8.8.0/24]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: platform.noop}
spec:
  tier: platform
  selector: all()
  ingress:
    - action: Deny
      protocol: UDP
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
    - ports: [{port: 80}]
"#;

#[test]
fn tiers_pass_log_and_end_of_tier() {
    let case = Case::new(TIERS);
    // Log, then Pass skips the rest of the security tier; platform's default Pass goes on; the
    // Kubernetes policy in the default tier allows port 80.
    let e = case.tcp_in(CLIENT, 80);
    let hits: Vec<(RuleAction, Special, &str)> = e
        .enforced
        .hits
        .iter()
        .map(|h| (h.action, h.special, h.name.as_str()))
        .collect();
    assert_eq!(
        hits,
        [
            (RuleAction::Log, Special::None, "pass-clients"),
            (RuleAction::Pass, Special::None, "pass-clients"),
            (RuleAction::Pass, Special::EndOfTier, "noop"),
            (RuleAction::Allow, Special::None, "web"),
        ]
    );
    assert_eq!(e.enforced.decided_by.tier, "default");
    // A client passed out of the security tier still meets the platform tier's Deny.
    let udp = case.eval("web", Direction::Ingress, CLIENT, proto::UDP, 53);
    assert_eq!(
        decided(&udp.enforced),
        (Action::Deny, Special::None, "noop", Some(0))
    );
    // Not a client: the security tier decides, ssh first.
    assert_eq!(
        decided(&case.tcp_in(WORLD, 22).enforced),
        (Action::Deny, Special::None, "pass-clients", Some(2))
    );
    assert_eq!(
        decided(&case.tcp_in(WORLD, 80).enforced),
        (Action::Allow, Special::None, "pass-clients", Some(3))
    );
    // Nothing decides in the security tier: its default Deny, naming the tier and the policy.
    let e = case.tcp_in("9.9.9.9", 80);
    assert_eq!(
        decided(&e.enforced),
        (Action::Deny, Special::EndOfTier, "pass-clients", None)
    );
    assert_eq!(e.enforced.decided_by.tier, "security");
}

#[test]
fn order_inside_a_tier_then_name_and_unordered_last() {
    let case = Case::new(
        r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: a-unordered}
spec:
  selector: all()
  ingress: [{action: Deny}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: c-second}
spec:
  order: 500
  selector: all()
  ingress: [{action: Allow, protocol: UDP}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: b-second}
spec:
  order: 500
  selector: all()
  ingress: [{action: Allow, protocol: TCP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: k8s, namespace: prod}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 1, protocol: SCTP}]}]
"#,
    );
    assert_eq!(decided(&case.tcp_in(WORLD, 1).enforced).2, "b-second");
    assert_eq!(
        decided(
            &case
                .eval("web", Direction::Ingress, WORLD, proto::UDP, 1)
                .enforced
        )
        .2,
        "c-second"
    );
    // Kubernetes policies sit at order 1000, before unordered Calico policies.
    assert_eq!(
        decided(
            &case
                .eval("web", Direction::Ingress, WORLD, proto::SCTP, 1)
                .enforced
        )
        .2,
        "k8s"
    );
    assert_eq!(
        decided(
            &case
                .eval("web", Direction::Ingress, WORLD, proto::ICMP, 0)
                .enforced
        )
        .2,
        "a-unordered"
    );
}

#[test]
fn staged_policies_change_only_the_staged_view() {
    let case = Case::new(
        r#"
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  selector: app == 'web'
  ingress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  selector: app == 'web'
  ingress: [{action: Deny, protocol: TCP, destination: {ports: [22]}}, {action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata: {name: lockdown, namespace: prod}
spec:
  podSelector: {}
  policyTypes: [Egress]
"#,
    );
    let e = case.tcp_in(CLIENT, 22);
    assert_eq!(
        decided(&e.enforced),
        (Action::Allow, Special::None, "web", Some(0))
    );
    assert!(!e.enforced.decided_by.staged);
    assert_eq!(
        decided(&e.staged),
        (Action::Deny, Special::None, "web", Some(0))
    );
    assert_eq!(
        e.staged.decided_by.kind,
        Some(PolicyKind::StagedNetworkPolicy)
    );
    assert!(e.staged.decided_by.staged);
    // The added staged Kubernetes policy isolates egress in the staged view only.
    let out = case.tcp_out(WORLD, 443);
    assert_eq!(out.enforced.action, Action::Allow);
    assert_eq!(
        decided(&out.staged),
        (Action::Deny, Special::EndOfTier, "lockdown", None)
    );
}

#[test]
fn staged_delete_removes_the_enforced_policy_from_the_staged_view() {
    let case = Case::new(
        r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-all}
spec:
  selector: all()
  ingress: [{action: Deny}]
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: deny-all}
spec:
  stagedAction: Delete
"#,
    );
    let e = case.tcp_in(CLIENT, 80);
    assert_eq!(e.enforced.action, Action::Deny);
    assert_eq!(decided(&e.staged).1, Special::DefaultAllow);
}

#[test]
fn calico_rules_scope_selectors_match_ports_icmp_and_service_accounts() {
    let case = Case::new(
        r#"
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: ns-scoped, namespace: prod}
spec:
  order: 1
  selector: app == 'web'
  ingress:
    - action: Allow
      protocol: TCP
      source: {selector: app == 'client'}
      destination: {ports: ["8000:8100"], notPorts: [8050]}
    - action: Allow
      protocol: ICMP
      icmp: {type: 8}
      notICMP: {type: 8, code: 1}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: global}
spec:
  order: 2
  selector: app == 'web'
  types: [Ingress, Egress]
  ingress:
    - action: Allow
      protocol: UDP
      source: {selector: app == 'client', namespaceSelector: env == 'dev'}
  egress:
    - action: Allow
      destination: {serviceAccounts: {names: [sa-web]}}
    - action: Allow
      source: {serviceAccounts: {names: [sa-web]}}
      destination: {notNets: [10.0.0.0/8]}
"#,
    );
    assert_eq!(case.tcp_in(CLIENT, 8000).enforced.action, Action::Allow);
    assert_eq!(case.tcp_in(CLIENT, 8050).enforced.action, Action::Deny);
    assert_eq!(
        case.tcp_in(OTHER, 8000).enforced.action,
        Action::Deny,
        "namespaced selector"
    );
    let icmp = |port| {
        case.eval("web", Direction::Ingress, WORLD, proto::ICMP, port)
            .enforced
            .action
    };
    assert_eq!(icmp(0x0800), Action::Allow);
    assert_eq!(icmp(0x0801), Action::Deny);
    assert_eq!(icmp(0x0000), Action::Deny);
    let udp = |peer| {
        case.eval("web", Direction::Ingress, peer, proto::UDP, 53)
            .enforced
            .action
    };
    assert_eq!(udp(OTHER), Action::Allow);
    assert_eq!(udp(CLIENT), Action::Deny);
    // The subject runs as sa-web, so the second egress rule applies to it; 10.0.0.0/8 is excluded.
    assert_eq!(case.tcp_out(WORLD, 1).enforced.action, Action::Allow);
    assert_eq!(case.tcp_out(CLIENT, 1).enforced.action, Action::Deny);
}

#[test]
fn calico_types_default_to_egress_for_egress_only_policies() {
    let case = Case::new(
        r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: egress-only}
spec:
  selector: all()
  egress: [{action: Allow, protocol: UDP}]
"#,
    );
    assert_eq!(
        decided(&case.tcp_in(CLIENT, 1).enforced).1,
        Special::DefaultAllow
    );
    assert_eq!(
        decided(&case.tcp_out(CLIENT, 1).enforced).1,
        Special::EndOfTier
    );
}

#[test]
fn l7_and_fqdn_rules_are_enforced_at_l4_and_select_no_peer() {
    let fixtures = concat!(
        include_str!(
            "../../../../shared/fixtures/seed-policies/12-cilium-cnp-allow-healthz-l7.yaml"
        ),
        "\n---\n",
        include_str!(
            "../../../../shared/fixtures/seed-policies/06-cilium-cnp-allow-egress-to-openai.yaml"
        ),
    )
    .replace(
        "name: allow-healthz",
        "name: allow-healthz\n  namespace: prod",
    )
    .replace(
        "name: allow-egress-to-openai",
        "name: allow-egress-to-openai\n  namespace: prod",
    )
    .replace("app: backend", "app: web")
    .replace("app: frontend", "app: client");
    let case = Case::new(&fixtures);
    assert_eq!(case.tcp_in(CLIENT, 80).enforced.action, Action::Allow);
    assert_eq!(case.tcp_in(CLIENT, 81).enforced.action, Action::Deny);
    assert_eq!(
        decided(&case.tcp_out(WORLD, 443).enforced).1,
        Special::EndOfTier
    );
}

#[test]
fn ports_of_portless_protocols_are_ignored() {
    let case = Case::new(K8S_WEB_FROM_CLIENT);
    let a = case.eval("web", Direction::Ingress, CLIENT, 47, 0);
    let b = case.eval("web", Direction::Ingress, CLIENT, 47, 80);
    assert_eq!(a, b);
}

#[test]
fn calico_ip_version_matches_the_packet_family_not_the_peer_identity() {
    let mut case = Case::new(
        r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: by-family}
spec:
  selector: app == 'web'
  ingress:
    - action: Allow
      ipVersion: 6
      source: {selector: app == 'client'}
  egress:
    - action: Deny
      ipVersion: 4
      destination: {nets: [0.0.0.0/0]}
    - action: Allow
"#,
    );
    // The client is dual-stack: one identity with addresses of both families.
    case.cluster.endpoints[1]
        .ips
        .push("fd00::2".parse().unwrap());
    let v6 = case.tcp_in("fd00::2", 80);
    let v4 = case.tcp_in(CLIENT, 80);
    assert_eq!(v4.peer_identity, v6.peer_identity);
    assert_eq!(
        decided(&v6.enforced),
        (Action::Allow, Special::None, "by-family", Some(0))
    );
    assert_eq!(
        decided(&v4.enforced),
        (Action::Deny, Special::EndOfTier, "by-family", None)
    );
    // A /0 net is `world` for both families; ipVersion 4 keeps the deny to IPv4 packets.
    let out4 = case.tcp_out(WORLD, 443);
    let out6 = case.tcp_out("2606:4700::1", 443);
    assert_eq!(out4.peer_identity, out6.peer_identity);
    assert_eq!(
        decided(&out4.enforced),
        (Action::Deny, Special::None, "by-family", Some(0))
    );
    assert_eq!(
        decided(&out6.enforced),
        (Action::Allow, Special::None, "by-family", Some(1))
    );
}
