//! Unit tests of `print`: behaviour checked beside the code it tests.
use super::*;

fn flow() -> Flow {
    Flow {
        time: Some(prost_types::Timestamp {
            seconds: 1_704_199_880,
            nanos: 53_000_000,
        }),
        verdict: flow::Verdict::Dropped as i32,
        drop_reason_desc: flow::DropReason::PolicyDeny as i32,
        ip: Some(flow::Ip {
            source: "10.0.0.1".into(),
            destination: "10.0.0.2".into(),
            ip_version: 1,
            encrypted: false,
        }),
        l4: Some(flow::Layer4 {
            protocol: Some(Protocol::Tcp(flow::Tcp {
                source_port: 46722,
                destination_port: 22,
                flags: Some(flow::TcpFlags {
                    syn: true,
                    ..Default::default()
                }),
            })),
        }),
        source: Some(flow::Endpoint {
            identity: 22917,
            namespace: "demo".into(),
            pod_name: "client".into(),
            ..Default::default()
        }),
        destination: Some(flow::Endpoint {
            identity: 40767,
            namespace: "demo".into(),
            pod_name: "backend".into(),
            ..Default::default()
        }),
        is_reply: Some(false),
        trace_observation_point: flow::TraceObservationPoint::ToEndpoint as i32,
        vigil_trace: Some(vigil::PolicyTrace {
            decided_by: Some(vigil::PolicyHit {
                kind: "GlobalNetworkPolicy".into(),
                name: "deny-ssh".into(),
                tier: "default".into(),
                rule_index: Some(0),
                action: vigil::Action::Deny as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn compact_is_hubbles_line_plus_the_deciding_policy() {
    let r = GetFlowsResponse {
        response_types: Some(ResponseTypes::Flow(flow())),
        ..Default::default()
    };
    let style = Style {
        format: Format::Compact,
        color: false,
        policy_names: false,
    };
    assert_eq!(
        render(&r, style),
        "Jan  2 12:51:20.053: demo/client:46722 (ID:22917) -> demo/backend:22 (ID:40767) \
         to-endpoint DROPPED (POLICY_DENY) (TCP Flags: SYN) by GlobalNetworkPolicy/deny-ssh rule 0 (tier default)"
    );
}

#[test]
fn replies_keep_the_initiator_on_the_left() {
    let mut f = flow();
    f.is_reply = Some(true);
    f.verdict = flow::Verdict::Forwarded as i32;
    let r = GetFlowsResponse {
        response_types: Some(ResponseTypes::Flow(f)),
        ..Default::default()
    };
    let style = Style {
        format: Format::Compact,
        color: false,
        policy_names: false,
    };
    let line = render(&r, style);
    assert!(
        line.contains("demo/backend:22 (ID:40767) <- demo/client:46722"),
        "{line}"
    );
}

#[test]
fn json_uses_proto_names_and_enum_names() {
    let r = GetFlowsResponse {
        response_types: Some(ResponseTypes::Flow(flow())),
        node_name: "node-1".into(),
        ..Default::default()
    };
    let style = Style {
        format: Format::Json,
        color: false,
        policy_names: false,
    };
    let v: serde_json::Value = serde_json::from_str(&render(&r, style)).unwrap();
    assert_eq!(v["flow"]["verdict"], "DROPPED");
    assert_eq!(v["flow"]["drop_reason_desc"], "POLICY_DENY");
    assert_eq!(v["flow"]["l4"]["TCP"]["destination_port"], 22);
    assert_eq!(v["flow"]["time"], "2024-01-02T12:51:20.053Z");
    assert_eq!(v["flow"]["is_reply"], false);
    assert_eq!(v["flow"]["vigil_trace"]["decided_by"]["name"], "deny-ssh");
    assert_eq!(v["node_name"], "node-1");
}
