use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;
use crate::manifest::parse_policy_file;
use crate::testing::{Lookup, check_world, probes, random_world, scale_world, validate};
use crate::{Evaluator, Namespace, Node, reserved};

/// The differential property: for random worlds of all three dialects, a lookup in the compiled
/// tables (ipcache LPM, then the 4-probe decision LPM) gives exactly the evaluator's decision.
#[test]
fn compiled_tables_agree_with_the_evaluator_on_random_worlds() {
    let mut checked = 0;
    for seed in 0..1500 {
        let world = random_world(seed);
        let probes = probes(&world, seed, 400);
        match check_world(&world, &probes) {
            Ok(n) => checked += n,
            Err(e) => {
                let files: Vec<String> = world
                    .files
                    .iter()
                    .map(|(n, t)| format!("--- {n}\n{t}"))
                    .collect();
                panic!(
                    "seed {seed}: {e}\n{}\ncluster: {:#?}",
                    files.join("\n"),
                    world.cluster
                );
            }
        }
    }
    assert!(checked > 400_000, "only {checked} probes checked");
}

/// Every (local endpoint, direction, peer identity, protocol class, port) of a few small worlds,
/// exhaustively at rule boundaries, not just sampled.
#[test]
fn exhaustive_agreement_on_small_worlds() {
    for seed in 1000..1020 {
        let world = random_world(seed);
        let compiled = compile(&world.set, &world.cluster, &world.node);
        validate(&compiled).unwrap();
        let evaluator = Evaluator::new(&world.set, &world.cluster, &world.node);
        let tables = Lookup::new(&compiled);
        let peers: Vec<IpAddr> = world
            .cluster
            .endpoints
            .iter()
            .flat_map(|e| e.ips.iter().copied())
            .chain(world.set.prefixes().iter().map(|n| n.network()))
            .chain(["8.8.8.8".parse().unwrap(), "2606:4700::1".parse().unwrap()])
            .collect();
        for ep in world
            .cluster
            .endpoints
            .iter()
            .filter(|e| e.node == world.node)
        {
            let ctx = compiled
                .endpoints
                .iter()
                .find(|e| e.name == ep.name)
                .unwrap()
                .context;
            for dir in Direction::ALL {
                for &peer in &peers {
                    for (protocol, ports) in [
                        (
                            proto::TCP,
                            &[
                                0u16, 52, 53, 54, 79, 80, 81, 7999, 8000, 8080, 8081, 9090, 9091,
                                65535,
                            ][..],
                        ),
                        (proto::UDP, &[53, 80][..]),
                        (proto::ICMP, &[0x0800, 0x0301, 0x0300][..]),
                        (47, &[0][..]),
                    ] {
                        for &port in ports {
                            let ev = evaluator.evaluate(ep, dir, peer, protocol, port);
                            let id = tables.resolve(peer);
                            assert_eq!(id, ev.peer_identity);
                            let v = tables.decide(ctx, dir, protocol, id, port).unwrap();
                            assert_eq!(
                                compiled.rules[v.rule_id as usize], ev.enforced.decided_by,
                                "seed {seed}"
                            );
                            assert_eq!(
                                compiled.rules[v.staged_rule_id as usize], ev.staged.decided_by,
                                "seed {seed}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn range_prefixes_cover_exactly() {
    for (lo, hi) in [
        (0u32, 65535u32),
        (80, 80),
        (8000, 8080),
        (1, 65535),
        (0, 0),
        (65535, 65535),
        (1024, 2047),
    ] {
        let blocks = range_prefixes(lo, hi);
        let mut covered = Vec::new();
        for (port, len) in &blocks {
            let size = 1u32 << (16 - u32::from(*len));
            assert_eq!(port % size, 0, "unaligned block {port}/{len}");
            covered.extend(*port..*port + size);
        }
        assert_eq!(covered, (lo..=hi).collect::<Vec<_>>());
    }
    assert_eq!(range_prefixes(0, 65535), vec![(0, 0)]);
    assert_eq!(range_prefixes(80, 80), vec![(80, 16)]);
}

fn one_endpoint_world(policy: &str) -> (PolicySet, Cluster) {
    let parsed = parse_policy_file("p.yaml", policy).unwrap();
    let set = PolicySet::new(parsed.policies, parsed.tiers).unwrap();
    let cluster = Cluster {
        endpoints: vec![
            Endpoint {
                name: "web-1".into(),
                namespace: "default".into(),
                labels: BTreeMap::from([("app".into(), "web".into())]),
                ips: vec!["10.0.0.1".parse().unwrap()],
                node: "n1".into(),
                interface: "veth1".into(),
                ..Endpoint::default()
            },
            Endpoint {
                name: "web-2".into(),
                namespace: "default".into(),
                labels: BTreeMap::from([("app".into(), "web".into())]),
                ips: vec!["10.0.0.2".parse().unwrap()],
                node: "n1".into(),
                interface: "veth2".into(),
                ..Endpoint::default()
            },
            Endpoint {
                name: "client".into(),
                namespace: "default".into(),
                labels: BTreeMap::from([("app".into(), "client".into())]),
                ips: vec!["10.0.0.3".parse().unwrap()],
                node: "n2".into(),
                interface: "veth3".into(),
                ..Endpoint::default()
            },
        ],
        namespaces: vec![Namespace {
            name: "default".into(),
            labels: BTreeMap::new(),
        }],
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
    };
    (set, cluster)
}

const ALLOW_CLIENT_80: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: client}}}]
      ports: [{port: 80}]
"#;

#[test]
fn tables_have_the_documented_shape() {
    let (set, cluster) = one_endpoint_world(ALLOW_CLIENT_80);
    let c = compile(&set, &cluster, "n1");
    validate(&c).unwrap();
    // Only local endpoints, sharing one context (same identity, same programs).
    assert_eq!(c.endpoints.len(), 2);
    assert_eq!(c.endpoints[0].context, c.endpoints[1].context);
    assert_eq!(c.endpoints[0].identity, c.endpoints[1].identity);
    assert_eq!(
        (c.endpoints[0].endpoint_id, c.endpoints[1].endpoint_id),
        (1, 2)
    );
    // ipcache: endpoints /32, node IPs as host (local) and remote-node.
    let find = |ip: &str| {
        c.ipcache
            .iter()
            .find(|e| e.net == ip.parse::<IpNet>().unwrap())
            .map(|e| e.identity)
    };
    assert_eq!(find("192.168.0.1/32"), Some(reserved::HOST));
    assert_eq!(find("192.168.0.2/32"), Some(reserved::REMOTE_NODE));
    let client_id = find("10.0.0.3/32").unwrap();
    assert!((reserved::MIN_ENDPOINT..reserved::MIN_CIDR).contains(&client_id));
    // The client gets its own entries for TCP; everyone else is peer 0.
    let ctx = c.endpoints[0].context;
    let client_tcp: Vec<_> = c
        .decisions
        .iter()
        .filter(|d| {
            d.context == ctx && d.direction == 1 && d.peer == client_id && d.proto == proto::TCP
        })
        .collect();
    assert_eq!(client_tcp.len(), 2, "{client_tcp:?}");
    let port80 = client_tcp.iter().find(|d| d.port_prefix_len == 16).unwrap();
    assert_eq!(port80.port, 80);
    assert_eq!(port80.value.action, 1);
    let rule = &c.rules[port80.value.rule_id as usize];
    assert_eq!(
        (rule.name.as_str(), rule.rule_index, rule.special),
        ("web", Some(0), Special::None)
    );
    // Isolated: the default entry denies by end-of-tier, without EXPLICIT_DENY.
    let default = c
        .decisions
        .iter()
        .find(|d| d.context == ctx && d.direction == 1 && d.peer == 0 && d.proto == 0)
        .unwrap();
    assert_eq!(default.value.action, 2);
    assert_eq!(default.value.flags, 0);
    assert_eq!(
        c.rules[default.value.rule_id as usize].special,
        Special::EndOfTier
    );
    // Egress is not isolated: default allow everywhere.
    let egress: Vec<_> = c
        .decisions
        .iter()
        .filter(|d| d.context == ctx && d.direction == 2)
        .collect();
    assert!(
        egress
            .iter()
            .all(|d| c.rules[d.value.rule_id as usize].special == Special::DefaultAllow)
    );
    assert!(egress.iter().all(|d| d.peer == 0 && d.port_prefix_len == 0));
}

#[test]
fn rule_ids_do_not_depend_on_the_node_or_cluster() {
    let (set, cluster) = one_endpoint_world(ALLOW_CLIENT_80);
    let a = compile(&set, &cluster, "n1");
    let b = compile(&set, &cluster, "n2");
    let c = compile(&set, &Cluster::default(), "n1");
    assert_eq!(a.rules, b.rules);
    assert_eq!(a.rules, c.rules);
    assert!(a.rules.iter().any(|r| r.special == Special::DefaultAllow));
    assert!(a.rules.iter().any(|r| r.special == Special::EndOfTier));
}

#[test]
fn flags_log_explicit_deny_and_staged_differs() {
    let policy = r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: log-then-deny-ssh}
spec:
  selector: app == 'web'
  ingress:
    - action: Log
    - action: Deny
      protocol: TCP
      destination: {ports: [22]}
    - action: Allow
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: log-then-deny-ssh}
spec:
  selector: app == 'web'
  ingress:
    - action: Allow
"#;
    let (set, cluster) = one_endpoint_world(policy);
    let c = compile(&set, &cluster, "n1");
    let (_, ssh) = crate::testing::lookup(
        &c,
        c.endpoints[0].context,
        Direction::Ingress,
        "10.0.0.3".parse().unwrap(),
        proto::TCP,
        22,
    );
    let ssh = ssh.unwrap();
    assert_eq!((ssh.action, ssh.staged_action), (2, 1));
    assert_eq!(
        ssh.flags,
        flags::LOG | flags::EXPLICIT_DENY | flags::STAGED_DIFFERS
    );
    let trace = &c.traces[ssh.trace_id as usize];
    assert_eq!(trace.enforced.len(), 2);
    assert_eq!(trace.enforced[0].action, RuleAction::Log);
    assert_eq!(trace.staged.len(), 1);
    assert!(trace.staged[0].staged);
    let (_, http) = crate::testing::lookup(
        &c,
        c.endpoints[0].context,
        Direction::Ingress,
        "10.0.0.3".parse().unwrap(),
        proto::TCP,
        80,
    );
    let http = http.unwrap();
    assert_eq!(
        (http.action, http.staged_action, http.flags),
        (1, 1, flags::LOG)
    );
}

#[test]
fn scale_world_compiles_and_agrees() {
    let world = scale_world(600, 120, 7);
    let probes = probes(&world, 7, 3000);
    check_world(&world, &probes).unwrap();
}
