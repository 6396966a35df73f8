//! A realistic enriched flow (a new TCP connection with endpoints, labels, Hubble's policy lists
//! and Vigil's policy trace), shared by the JSON tests and benchmarks so both measure and check the
//! same message. Pure data, no I/O.

use prost_types::Timestamp;

use crate::{
    flow::{self, layer4::Protocol},
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
    vigil,
};

fn ts(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos })
}

fn hit(rule_index: Option<u32>, action: i32, hit_kind: i32, pending: bool) -> vigil::PolicyHit {
    vigil::PolicyHit {
        kind: "GlobalNetworkPolicy".into(),
        namespace: String::new(),
        name: "deny-ssh".into(),
        tier: "default".into(),
        rule_index,
        action,
        hit_kind,
        pending,
        description: "ingress GlobalNetworkPolicy deny-ssh (tier default) rule 0: Deny".into(),
    }
}

/// A flow as the node agent enriches it: TCP, both endpoints, a policy trace (the same as
/// `enriched_flow` in `src/json/tests.rs`).
/// A flow as an agent serves it, wrapped in a `GetFlowsResponse`.
pub fn enriched_flow() -> GetFlowsResponse {
    let endpoint = |id, name: &str, app: &str| flow::Endpoint {
        id,
        identity: 10_000 + id,
        namespace: "shop".into(),
        labels: vec![
            format!("k8s:app={app}"),
            "k8s:io.kubernetes.pod.namespace=shop".into(),
        ],
        pod_name: name.into(),
        workloads: vec![flow::Workload {
            name: app.into(),
            kind: "Deployment".into(),
        }],
        cluster_name: "default".into(),
    };
    GetFlowsResponse {
        response_types: Some(ResponseTypes::Flow(flow::Flow {
            time: ts(1_764_150_000, 123_456_789),
            verdict: flow::Verdict::Dropped as i32,
            ethernet: Some(flow::Ethernet {
                source: "0a:58:0a:00:00:01".into(),
                destination: "0a:58:0a:00:00:02".into(),
            }),
            ip: Some(flow::Ip {
                source: "10.0.0.1".into(),
                destination: "10.0.0.2".into(),
                ip_version: flow::IpVersion::IPv4 as i32,
                encrypted: false,
            }),
            l4: Some(flow::Layer4 {
                protocol: Some(Protocol::Tcp(flow::Tcp {
                    source_port: 43_512,
                    destination_port: 22,
                    flags: Some(flow::TcpFlags {
                        syn: true,
                        ..Default::default()
                    }),
                })),
            }),
            source: Some(endpoint(1, "frontend-7d4b9c-x2x9z", "frontend")),
            destination: Some(endpoint(2, "my-api-5f6d8b-kq7wn", "my-api")),
            r#type: flow::FlowType::L3L4 as i32,
            node_name: "node-1".into(),
            event_type: Some(flow::CiliumEventType {
                r#type: 1,
                sub_type: 133,
            }),
            traffic_direction: flow::TrafficDirection::Ingress as i32,
            trace_observation_point: flow::TraceObservationPoint::ToEndpoint as i32,
            drop_reason_desc: flow::DropReason::PolicyDenied as i32,
            is_reply: Some(false),
            interface: Some(flow::NetworkInterface {
                index: 7,
                name: "veth2".into(),
            }),
            uuid: "6f1c2e8a-3b7d-4c1e-9a2f-0d5e8b7c6a41".into(),
            ingress_denied_by: vec![flow::Policy {
                name: "deny-ssh".into(),
                namespace: String::new(),
                labels: vec!["k8s:io.cilium.k8s.policy.name=deny-ssh".into()],
                revision: 42,
                kind: "GlobalNetworkPolicy".into(),
            }],
            vigil_trace: Some(vigil::PolicyTrace {
                decided_by: Some(hit(Some(1), vigil::Action::Deny as i32, 0, false)),
                pending_decided_by: None,
                pending_action: 0,
                enforced: vec![
                    hit(Some(0), vigil::Action::Log as i32, 0, false),
                    hit(Some(1), vigil::Action::Deny as i32, 0, false),
                ],
                pending: vec![],
                generation: 3,
                ct_state: vigil::ConnectionState::New as i32,
                packet_length: 74,
                ip_protocol: 6,
            }),
            vigil_position: Some(vigil::Position {
                agent_start_ns: 1_764_149_000_000_000_000,
                index: 41,
            }),
            ..Default::default()
        })),
        node_name: "node-1".into(),
        time: ts(1_764_150_000, 123_456_789),
    }
}
