//! Compiler tests: the differential property against the evaluator on random worlds, and the
//! documented shape of the tables on small hand-written ones.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::*;
use crate::manifest::parse_policy_file;
use crate::testing::{Lookup, check_world, probes, random_world, scale_world, validate};
use crate::{Evaluator, Namespace, Node, reserved};

/// The differential property: for random worlds of all three dialects, a lookup in the compiled
/// tables (ipcache LPM, then the 4-probe decision LPM keyed by the packet family where the
/// context is family-keyed) gives exactly the evaluator's decision.
#[test]
fn compiled_tables_agree_with_the_evaluator_on_random_worlds() {
    const WORLDS: u64 = 3000;
    let mut checked = 0;
    let mut keyed_worlds = 0;
    // Probes of family-keyed endpoints, by packet family (IPv4, IPv6).
    let mut keyed_probes = [0usize; 2];
    for seed in 0..WORLDS {
        let world = random_world(seed);
        let probes = probes(&world, seed, 400);
        let keyed: Vec<(&str, &str)> = compile(&world.set, &world.cluster, &world.node)
            .endpoints
            .iter()
            .filter(|e| e.family_keyed)
            .map(|e| {
                let ep = world
                    .cluster
                    .endpoints
                    .iter()
                    .find(|x| x.namespace == e.namespace && x.name == e.name)
                    .unwrap();
                (ep.namespace.as_str(), ep.name.as_str())
            })
            .collect();
        keyed_worlds += usize::from(!keyed.is_empty());
        for p in &probes {
            let ep = p.subject(&world);
            if keyed.contains(&(ep.namespace.as_str(), ep.name.as_str())) {
                keyed_probes[usize::from(p.peer.is_ipv6())] += 1;
            }
        }
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
    assert!(checked > 800_000, "only {checked} probes checked");
    // ipVersion rules are common enough to exercise family-keyed contexts in both families.
    assert!(
        keyed_worlds * 5 > WORLDS as usize,
        "only {keyed_worlds} of {WORLDS} worlds have a family-keyed context"
    );
    assert!(
        keyed_probes.iter().all(|&n| n > 20_000),
        "probes of family-keyed endpoints (IPv4, IPv6): {keyed_probes:?}"
    );
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
            .chain(
                world
                    .cluster
                    .nodes
                    .iter()
                    .flat_map(|n| n.ips.iter().copied()),
            )
            .chain(["8.8.8.8".parse().unwrap(), "2606:4700::1".parse().unwrap()])
            .collect();
        for ep in world
            .cluster
            .endpoints
            .iter()
            .filter(|e| e.node == world.node)
        {
            let entry = compiled
                .endpoints
                .iter()
                .find(|e| e.name == ep.name)
                .unwrap();
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
                        (proto::SCTP, &[80][..]),
                        (proto::ICMP, &[0x0800, 0x0301, 0x0300][..]),
                        (proto::ICMPV6, &[0x8000, 0x0301][..]),
                        (47, &[0][..]),
                    ] {
                        for &port in ports {
                            let ev = evaluator.evaluate(ep, dir, peer, protocol, port);
                            let (id, v) = tables.decide_packet(entry, dir, peer, protocol, port);
                            assert_eq!(id, ev.peer_identity);
                            let v = v.unwrap();
                            assert_eq!(
                                compiled.rules[v.rule_id as usize], ev.enforced.decided_by,
                                "seed {seed}"
                            );
                            assert_eq!(
                                compiled.rules[v.staged_rule_id as usize], ev.staged.decided_by,
                                "seed {seed}"
                            );
                            let trace = &compiled.traces[v.trace_id as usize];
                            assert_eq!(trace.enforced, ev.enforced.hits, "seed {seed}");
                            assert_eq!(trace.staged, ev.staged.hits, "seed {seed}");
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
        &c.endpoints[0],
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
        &c.endpoints[0],
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

/// `ipVersion` makes a context family-keyed: a Calico rule with `ipVersion: 6` allows the IPv6
/// packets of a dual-stack peer identity and not its IPv4 ones; contexts without such rules keep
/// family 0; a staged rule is enough to key a context.
#[test]
fn ip_version_rules_make_their_contexts_family_keyed() {
    let policy = r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: v6-only}
spec:
  selector: app == 'web'
  ingress:
    - action: Allow
      ipVersion: 6
      source: {selector: app == 'client'}
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: no-v4-out}
spec:
  selector: app == 'db'
  egress:
    - action: Deny
      ipVersion: 4
    - action: Allow
"#;
    let (set, mut cluster) = one_endpoint_world(policy);
    cluster.endpoints[2].ips.push("fd00::3".parse().unwrap());
    for (name, app, ip) in [("db", "db", "10.0.0.4"), ("cache", "cache", "10.0.0.5")] {
        cluster.endpoints.push(Endpoint {
            name: name.into(),
            namespace: "default".into(),
            labels: BTreeMap::from([("app".into(), app.into())]),
            ips: vec![ip.parse().unwrap()],
            node: "n1".into(),
            interface: format!("veth-{name}"),
            ..Endpoint::default()
        });
    }
    let c = compile(&set, &cluster, "n1");
    validate(&c).unwrap();
    let ep = |name: &str| c.endpoints.iter().find(|e| e.name == name).unwrap();
    let families = |ctx: u32| {
        c.decisions
            .iter()
            .filter(|d| d.context == ctx)
            .map(|d| d.family)
            .collect::<BTreeSet<u8>>()
    };
    let v4: IpAddr = "10.0.0.3".parse().unwrap();
    let v6: IpAddr = "fd00::3".parse().unwrap();
    for (name, keyed) in [
        ("web-1", true),
        ("web-2", true),
        ("db", true),
        ("cache", false),
    ] {
        let e = ep(name);
        assert_eq!(e.family_keyed, keyed, "{name}");
        if keyed {
            assert_eq!(e.flags(), endpoint_flags::FAMILY_KEYED);
            assert_eq!((e.key_family(v4), e.key_family(v6)), (4, 6));
            assert_eq!(families(e.context), BTreeSet::from([4, 6]), "{name}");
        } else {
            assert_eq!(e.flags(), 0);
            assert_eq!((e.key_family(v4), e.key_family(v6)), (0, 0));
            assert_eq!(families(e.context), BTreeSet::from([0]), "{name}");
        }
    }

    // The client is one identity with both families; only its IPv6 packets are allowed.
    let web = ep("web-1");
    let (id4, allowed4) = crate::testing::lookup(&c, web, Direction::Ingress, v4, proto::TCP, 80);
    let (id6, allowed6) = crate::testing::lookup(&c, web, Direction::Ingress, v6, proto::TCP, 80);
    assert_eq!(id4, id6);
    let (allowed4, allowed6) = (allowed4.unwrap(), allowed6.unwrap());
    assert_eq!((allowed4.action, allowed6.action), (2, 1));
    assert_eq!(
        c.rules[allowed4.rule_id as usize].special,
        Special::EndOfTier
    );
    assert_eq!(
        (
            c.rules[allowed6.rule_id as usize].name.as_str(),
            c.rules[allowed6.rule_id as usize].rule_index
        ),
        ("v6-only", Some(0))
    );
    // A key without the packet's family finds nothing in a family-keyed context.
    let tables = Lookup::new(&c);
    assert_eq!(
        tables.decide(web.context, 0, Direction::Ingress, proto::TCP, id6, 80),
        None
    );

    // The staged view of db differs for IPv4 egress only.
    let db = ep("db");
    let (_, out4) = crate::testing::lookup(&c, db, Direction::Egress, v4, proto::UDP, 53);
    let (_, out6) = crate::testing::lookup(&c, db, Direction::Egress, v6, proto::UDP, 53);
    let (out4, out6) = (out4.unwrap(), out6.unwrap());
    assert_eq!((out4.action, out4.staged_action), (1, 2));
    assert_eq!(out4.flags, flags::STAGED_DIFFERS);
    assert_eq!((out6.action, out6.staged_action, out6.flags), (1, 1, 0));
}
