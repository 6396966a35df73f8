//! Unit tests of `flows`: behaviour checked beside the code it tests.
use super::*;
use vigil_policy::{PolicySet, compile, parse_cluster_file, parse_policy_file};

const CLUSTER: &str = r#"
apiVersion: vigil.dev/v1
kind: Endpoint
metadata: {name: client, namespace: ops, labels: {app: client}}
spec: {node: node-1, interface: veth1, ips: [10.0.0.1]}
---
apiVersion: vigil.dev/v1
kind: Endpoint
metadata: {name: my-api, namespace: shop, labels: {app: my-api}}
spec: {node: node-2, interface: veth2, ips: [10.0.0.2]}
"#;

const POLICY: &str = r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-ssh}
spec:
  selector: all()
  types: [Ingress]
  ingress:
    - action: Log
    - action: Deny
      protocol: TCP
      destination: {ports: [22]}
"#;

fn tables(node: &str) -> (Compiled, Cluster) {
    let parsed = parse_cluster_file("c.yaml", CLUSTER).unwrap();
    let cluster = Cluster {
        endpoints: parsed.endpoints,
        namespaces: parsed.namespaces,
        nodes: parsed.nodes,
    };
    let p = parse_policy_file("p.yaml", POLICY).unwrap();
    let set = PolicySet::new(p.policies, p.tiers).unwrap();
    (compile(&set, &cluster, node), cluster)
}

fn ctx() -> Context {
    Context {
        node: "node-2".into(),
        boot_offset_ns: 1_000_000_000,
        uuid_prefix: 0xabcd,
    }
}

fn ssh_event(compiled: &Compiled) -> Event {
    let rule_id = compiled
        .rules
        .iter()
        .position(|r| r.name == "deny-ssh" && r.rule_index == Some(1))
        .expect("the deny rule is in the rule table") as u32;
    let trace_id = compiled
        .traces
        .iter()
        .position(|t| t.enforced.iter().any(|h| h.action == RuleAction::Log))
        .unwrap_or(0) as u32;
    let identity = |name: &str| {
        compiled
            .endpoints
            .iter()
            .find(|e| e.name == name)
            .map_or(0, |e| e.identity)
    };
    let mut e = Event {
        direction: 1,
        verdict: abi::VERDICT_DROPPED,
        drop_reason: 181,
        ct_state: 1,
        proto: 6,
        family: 4,
        tcp_flags: 0x02,
        action: abi::ACT_DENY,
        ts_ns: 500,
        endpoint_id: 1,
        local_identity: identity("my-api"),
        peer_identity: 0,
        rule_id,
        trace_id,
        generation: 7,
        sport: 40000,
        dport: 22,
        ..Event::default()
    };
    e.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
    e.daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
    e
}

#[test]
fn a_drop_names_the_rule_its_generation_decided_with() {
    let (compiled, cluster) = tables("node-2");
    let index = GenerationIndex::new(7, &compiled, &cluster);
    let event = ssh_event(&compiled);
    let f = to_flow(&event, &ctx(), Some(&index), 1);
    assert_eq!(f.verdict, flow::Verdict::Dropped as i32);
    assert_eq!(f.drop_reason_desc, flow::DropReason::PolicyDeny as i32);
    assert_eq!(f.traffic_direction, flow::TrafficDirection::Ingress as i32);
    assert_eq!(
        f.trace_observation_point,
        flow::TraceObservationPoint::ToEndpoint as i32
    );
    assert_eq!(
        f.event_type,
        Some(flow::CiliumEventType {
            r#type: event_type::DROP,
            sub_type: 181
        })
    );
    assert_eq!(
        f.time,
        Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 500
        })
    );
    assert_eq!(f.is_reply, Some(false));
    let src = f.source.as_ref().unwrap();
    let dst = f.destination.as_ref().unwrap();
    assert_eq!(
        (src.namespace.as_str(), src.pod_name.as_str()),
        ("ops", "client")
    );
    assert_eq!(
        (dst.namespace.as_str(), dst.pod_name.as_str(), dst.id),
        ("shop", "my-api", 1)
    );
    assert!(
        dst.labels.iter().any(|l| l == "k8s:app=my-api"),
        "{:?}",
        dst.labels
    );
    assert_eq!(f.ingress_denied_by.len(), 1);
    let p = &f.ingress_denied_by[0];
    assert_eq!(
        (p.name.as_str(), p.kind.as_str(), p.revision),
        ("deny-ssh", "GlobalNetworkPolicy", 7)
    );
    assert!(
        p.labels.contains(&"vigil:rule=1".to_owned()),
        "{:?}",
        p.labels
    );
    let trace = f.vigil_trace.as_ref().unwrap();
    let decided = trace.decided_by.as_ref().unwrap();
    assert_eq!(
        (decided.rule_index, decided.action),
        (Some(1), vigil::Action::Deny as i32)
    );
    assert_eq!(trace.generation, 7);
    assert!(f.uuid.len() == 36 && f.uuid != to_flow(&event, &ctx(), Some(&index), 2).uuid);
    match f.l4.and_then(|l| l.protocol) {
        Some(flow::layer4::Protocol::Tcp(t)) => {
            assert_eq!(t.destination_port, 22);
            assert!(t.flags.unwrap().syn);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unknown_generation_still_gives_addresses_and_identities() {
    let (compiled, _) = tables("node-2");
    let event = ssh_event(&compiled);
    let f = to_flow(&event, &ctx(), None, 1);
    assert_eq!(f.ip.as_ref().unwrap().source, "10.0.0.1");
    assert_eq!(f.source.as_ref().unwrap().pod_name, "");
    assert!(f.ingress_denied_by.is_empty());
    assert!(f.vigil_trace.as_ref().unwrap().decided_by.is_none());
}

#[test]
fn egress_allowed_established_is_a_trace_from_the_endpoint() {
    let (compiled, cluster) = tables("node-1");
    let index = GenerationIndex::new(7, &compiled, &cluster);
    let mut event = ssh_event(&compiled);
    event.direction = 2;
    event.verdict = abi::VERDICT_FORWARDED;
    event.action = abi::ACT_ALLOW;
    event.ct_state = 2;
    event.rule_id = compiled.rules.len() as u32 + 10;
    let f = to_flow(&event, &ctx(), Some(&index), 1);
    assert_eq!(f.traffic_direction, flow::TrafficDirection::Egress as i32);
    assert_eq!(
        f.trace_observation_point,
        flow::TraceObservationPoint::FromEndpoint as i32
    );
    assert_eq!(f.event_type.unwrap().r#type, event_type::TRACE);
    assert_eq!(f.drop_reason_desc, 0);
    assert!(f.egress_denied_by.is_empty() && f.ingress_denied_by.is_empty());
}

#[test]
fn the_flow_log_describes_hits_exactly_as_the_policy_engine_does() {
    let (compiled, _) = tables("node-2");
    assert!(!compiled.rules.is_empty());
    for r in compiled.rules.iter().chain(
        compiled
            .traces
            .iter()
            .flat_map(|t| t.enforced.iter().chain(&t.staged)),
    ) {
        assert_eq!(
            crate::flowlog::describe(&policy_hit(r), &r.direction.to_string()),
            r.to_string()
        );
    }
}

#[test]
fn the_direct_encoding_decodes_to_the_reference_flow_for_every_kind_of_event() {
    use prost::Message as _;
    let (compiled, cluster) = tables("node-2");
    let index = GenerationIndex::new(7, &compiled, &cluster);
    let base = ssh_event(&compiled);
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    let mut cases = 0;
    for direction in [0, 1] {
        for (verdict, action, staged) in [
            (abi::VERDICT_DROPPED, abi::ACT_DENY, 0),
            (0, abi::ACT_ALLOW, 0),
            (0, abi::ACT_ALLOW, abi::ACT_DENY),
            (0, abi::ACT_ALLOW, abi::ACT_ALLOW),
        ] {
            for ct_state in 0..4 {
                for (proto, family) in [(6, 4), (17, 4), (1, 4), (58, 6), (132, 6), (47, 4)] {
                    for (peer, rule_id, known) in [
                        (0, base.rule_id, true),
                        (2, u32::MAX, false),
                        (12345, 0, true),
                    ] {
                        let mut e = Event {
                            direction,
                            verdict,
                            action,
                            staged_action: staged,
                            staged_rule_id: if staged != 0 { base.rule_id } else { u32::MAX },
                            ct_state,
                            proto,
                            family,
                            peer_identity: peer,
                            rule_id,
                            tcp_flags: 0x12,
                            pkt_len: 1500,
                            ..base
                        };
                        if family == 6 {
                            e.saddr = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
                        }
                        if !known {
                            e.daddr[..4].copy_from_slice(&[198, 51, 100, 7]);
                        }
                        for index in [Some(&index), None] {
                            out.clear();
                            let enc = encode_flow(&e, &ctx(), index, 99, &mut out, &mut scratch);
                            let t = enc.unix_ns;
                            let reference = to_flow(&e, &ctx(), index, 99);
                            // What /metrics counts is what the flow says.
                            let trace = reference.vigil_trace.as_ref().unwrap();
                            assert_eq!(
                                (enc.summary.verdict, enc.summary.direction),
                                (reference.verdict, reference.traffic_direction)
                            );
                            assert_eq!(enc.summary.drop_reason, reference.drop_reason_desc);
                            assert_eq!(enc.summary.decided_by, trace.decided_by.as_ref());
                            assert_eq!(
                                enc.summary.pending_decided_by,
                                trace.pending_decided_by.as_ref()
                            );
                            let decoded = Flow::decode(&out[..]).expect("the encoding decodes");
                            assert_eq!(decoded, reference, "event {e:?}");
                            assert_eq!(
                                Some(timestamp(t)),
                                reference.time,
                                "the returned time is the flow's"
                            );
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cases, 2 * 4 * 4 * 6 * 3 * 2);
}

#[test]
fn uuids_are_version_8_and_unique_per_sequence() {
    let a = uuid(0x0123_4567_89ab_cdef, 1);
    assert_eq!(a, "01234567-89ab-8def-8000-000000000001");
    assert_ne!(a, uuid(0x0123_4567_89ab_cdef, 2));
}
