//! Differential tests of the direct JSON encoder ([`super::fast`]) against the prost-reflect
//! path ([`super::to_json`]): the same text, byte for byte (and so the same parsed value), over
//! hand-written edge cases and a few thousand generated responses.

use prost_types::{Any, Timestamp};

use super::{fast, flows_response_to_json, to_json};
use crate::{
    flow::{self, layer4::Protocol, layer7::Record},
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
    relay, vigil,
};

const NAME: &str = "observer.GetFlowsResponse";

/// Asserts the fast output is the reflect output, byte for byte, and returns it.
#[track_caller]
fn assert_same(response: &GetFlowsResponse) -> String {
    let reflect = to_json(response, NAME).expect("the reflect path serializes");
    let fast = fast::get_flows_response_to_json(response).expect("the fast path serializes");
    let reflect_value: serde_json::Value = serde_json::from_str(&reflect).unwrap();
    let fast_value: serde_json::Value =
        serde_json::from_str(&fast).unwrap_or_else(|e| panic!("fast output {fast:?}: {e}"));
    assert_eq!(fast_value, reflect_value, "{response:?}");
    assert_eq!(fast, reflect, "{response:?}");
    assert_eq!(flows_response_to_json(response).unwrap(), reflect);
    fast
}

fn ts(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos })
}

fn flow_response(f: flow::Flow) -> GetFlowsResponse {
    GetFlowsResponse {
        response_types: Some(ResponseTypes::Flow(f)),
        ..Default::default()
    }
}

#[test]
fn enriched_flow_matches_reflect() {
    let json = assert_same(&crate::sample::enriched_flow());
    assert!(
        json.starts_with(r#"{"flow":{"time":"2025-11-26T"#),
        "{json}"
    );
    assert!(
        json.contains(r#""IP":{"source":"10.0.0.1","destination":"10.0.0.2","ipVersion":"IPv4"}"#)
    );
    assert!(json.contains(r#""revision":"42""#), "{json}");
    assert!(json.contains(r#""is_reply":false"#), "{json}");
}

#[test]
fn empty_and_default_values_match_reflect() {
    assert_eq!(assert_same(&GetFlowsResponse::default()), "{}");
    assert_same(&flow_response(flow::Flow::default()));
    // Present but empty messages, in every message field and oneof.
    let empty = flow::Flow {
        time: ts(0, 0),
        ethernet: Some(Default::default()),
        ip: Some(Default::default()),
        l4: Some(Default::default()),
        source: Some(Default::default()),
        destination: Some(Default::default()),
        l7: Some(Default::default()),
        event_type: Some(Default::default()),
        source_service: Some(Default::default()),
        destination_service: Some(Default::default()),
        is_reply: Some(true),
        interface: Some(Default::default()),
        egress_allowed_by: vec![Default::default()],
        ingress_allowed_by: vec![Default::default(), Default::default()],
        egress_denied_by: vec![Default::default()],
        ingress_denied_by: vec![Default::default()],
        vigil_trace: Some(vigil::PolicyTrace {
            decided_by: Some(Default::default()),
            pending_decided_by: Some(vigil::PolicyHit {
                rule_index: Some(0),
                ..Default::default()
            }),
            enforced: vec![Default::default()],
            pending: vec![Default::default()],
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_same(&flow_response(empty));
    assert_same(&GetFlowsResponse {
        response_types: Some(ResponseTypes::LostEvents(Default::default())),
        ..Default::default()
    });
    assert_same(&GetFlowsResponse {
        response_types: Some(ResponseTypes::NodeStatus(Default::default())),
        ..Default::default()
    });
}

#[test]
fn every_oneof_variant_matches_reflect() {
    let l4s = [
        Protocol::Tcp(flow::Tcp {
            source_port: 1,
            destination_port: 65_535,
            flags: Some(flow::TcpFlags {
                fin: true,
                syn: true,
                rst: true,
                psh: true,
                ack: true,
                urg: true,
                ece: true,
                cwr: true,
                ns: true,
            }),
        }),
        Protocol::Tcp(Default::default()),
        Protocol::Udp(flow::Udp {
            source_port: 53,
            destination_port: 5353,
        }),
        Protocol::Udp(Default::default()),
        Protocol::IcmPv4(flow::IcmPv4 { r#type: 8, code: 0 }),
        Protocol::IcmPv6(flow::IcmPv6 {
            r#type: 128,
            code: 3,
        }),
        Protocol::Sctp(flow::Sctp {
            source_port: 9,
            destination_port: 0,
        }),
    ];
    for protocol in l4s {
        assert_same(&flow_response(flow::Flow {
            l4: Some(flow::Layer4 {
                protocol: Some(protocol),
            }),
            ..Default::default()
        }));
    }
    let records = [
        Record::Dns(flow::Dns {
            query: "example.com.".into(),
            ips: vec!["1.2.3.4".into(), "::1".into()],
            ttl: 300,
            cnames: vec!["a.example.com.".into()],
            observation_source: "proxy".into(),
            rcode: 3,
            qtypes: vec!["A".into(), "AAAA".into()],
            rrtypes: vec!["CNAME".into()],
        }),
        Record::Http(flow::Http {
            code: 404,
            method: "GET".into(),
            url: "http://my-api/a?b=\"c\"&d=\\e".into(),
            protocol: "HTTP/1.1".into(),
            headers: vec![
                flow::HttpHeader {
                    key: "User-Agent".into(),
                    value: "curl/8".into(),
                },
                Default::default(),
            ],
        }),
        Record::Kafka(flow::Kafka {
            error_code: -1,
            api_version: i32::MAX,
            api_key: "produce".into(),
            correlation_id: i32::MIN,
            topic: "orders".into(),
        }),
        Record::Dns(Default::default()),
        Record::Http(Default::default()),
        Record::Kafka(Default::default()),
    ];
    for record in records {
        assert_same(&flow_response(flow::Flow {
            l7: Some(flow::Layer7 {
                r#type: flow::L7FlowType::Response as i32,
                latency_ns: u64::MAX,
                record: Some(record),
            }),
            ..Default::default()
        }));
    }
}

#[test]
fn strings_numbers_and_enums_match_reflect() {
    let strings = [
        "plain",
        "quote \" backslash \\ slash / done",
        "\u{0}\u{1}\u{7}\u{8}\t\n\u{b}\u{c}\r\u{1b}\u{1f} \u{7f}",
        "unicode: héllo wörld — 日本語 🦀 \u{2028}\u{2029} \u{feff}",
        "</script><!-- & ' -->",
        "",
    ];
    for s in strings {
        assert_same(&flow_response(flow::Flow {
            node_name: s.into(),
            source_names: vec![s.into(), "x".into(), s.into()],
            policy_log: vec![s.into()],
            uuid: s.into(),
            source_service: Some(flow::Service {
                name: s.into(),
                namespace: s.into(),
            }),
            ..Default::default()
        }));
    }
    // Negative, extreme and unknown values (enum numbers without a name are bare numbers).
    for (n, u) in [(-1, 1), (i32::MIN, u32::MAX), (i32::MAX, 0), (7, 999_999)] {
        assert_same(&flow_response(flow::Flow {
            verdict: n,
            r#type: n,
            traffic_direction: n,
            trace_observation_point: n,
            drop_reason_desc: n,
            policy_match_type: u,
            event_type: Some(flow::CiliumEventType {
                r#type: n,
                sub_type: n,
            }),
            ip: Some(flow::Ip {
                ip_version: n,
                ..Default::default()
            }),
            source: Some(flow::Endpoint {
                id: u,
                identity: u,
                ..Default::default()
            }),
            egress_allowed_by: vec![flow::Policy {
                revision: u64::from(u) << 20,
                ..Default::default()
            }],
            vigil_trace: Some(vigil::PolicyTrace {
                pending_action: n,
                ct_state: n,
                generation: u,
                decided_by: Some(vigil::PolicyHit {
                    action: n,
                    hit_kind: n,
                    rule_index: Some(u),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }));
    }
}

#[test]
fn timestamps_match_reflect() {
    let cases = [
        (0, 0),
        (1, 0),
        (1_764_150_000, 0),
        (1_764_150_000, 1),
        (1_764_150_000, 10),
        (1_764_150_000, 100_000_000),
        (1_764_150_000, 120_000_000),
        (1_764_150_000, 123_000),
        (1_764_150_000, 123_456),
        (1_764_150_000, 123_456_789),
        (1_764_150_000, 999_999_999),
        (-1, 0),
        (-1, 500_000_000),
        (-62_135_596_800, 0),
        (253_402_300_799, 999_999_999),
        (951_782_400, 0), // 2000-02-29
        // Not normalized (as a peer may send them).
        (5, -1),
        (5, 1_500_000_000),
    ];
    for (seconds, nanos) in cases {
        assert_same(&GetFlowsResponse {
            response_types: Some(ResponseTypes::LostEvents(flow::LostEvent {
                first: ts(seconds, nanos),
                last: ts(seconds, nanos),
                ..Default::default()
            })),
            time: ts(seconds, nanos),
            ..Default::default()
        });
    }
}

#[test]
fn lost_and_node_status_events_match_reflect() {
    for cpu in [None, Some(0), Some(3), Some(-7), Some(i32::MAX)] {
        for source in 0..5 {
            assert_same(&GetFlowsResponse {
                response_types: Some(ResponseTypes::LostEvents(flow::LostEvent {
                    source,
                    num_events_lost: u64::from(source as u32) * 1_000_000_007,
                    cpu,
                    first: ts(1_764_150_000, 0),
                    last: ts(1_764_150_001, 500),
                    vigil_position: cpu.map(|c| vigil::Position {
                        agent_start_ns: 1_764_149_000_000_000_000,
                        index: c.unsigned_abs().into(),
                    }),
                })),
                node_name: "node-2".into(),
                time: ts(1_764_150_001, 999),
            });
        }
    }
    for state in 0..6 {
        assert_same(&GetFlowsResponse {
            response_types: Some(ResponseTypes::NodeStatus(relay::NodeStatusEvent {
                state_change: state,
                node_names: vec!["node-1".into(), "nöde-\"2\"".into()],
                message: "connection refused\n".into(),
            })),
            node_name: String::new(),
            time: ts(1_764_150_001, 0),
        });
    }
}

/// What the fast path leaves to reflection gives reflection's answer.
#[test]
fn any_and_out_of_range_timestamps_fall_back_to_reflect() {
    let mut with_any = flow::Flow::default();
    with_any.extensions = Some(Any {
        type_url: "type.googleapis.com/flow.Service".into(),
        value: prost::Message::encode_to_vec(&flow::Service {
            name: "a".into(),
            namespace: "b".into(),
        }),
    });
    let response = flow_response(with_any);
    assert_eq!(
        fast::get_flows_response_to_json(&response),
        Err(fast::Unsupported::Any)
    );
    let json = flows_response_to_json(&response).unwrap();
    assert_eq!(json, to_json(&response, NAME).unwrap());
    assert!(json.contains("type.googleapis.com/flow.Service"), "{json}");

    for seconds in [i64::MIN, -62_135_596_801, 253_402_300_800, i64::MAX] {
        let response = GetFlowsResponse {
            time: ts(seconds, 0),
            ..Default::default()
        };
        assert_eq!(
            fast::get_flows_response_to_json(&response),
            Err(fast::Unsupported::TimestampOutOfRange)
        );
        assert!(to_json(&response, NAME).is_err());
        assert!(flows_response_to_json(&response).is_err());
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self) -> bool {
        self.below(3) == 0
    }
    fn i32(&mut self) -> i32 {
        match self.below(4) {
            0 => 0,
            1 => self.below(12) as i32,
            2 => -(self.below(1000) as i32),
            _ => self.next() as i32,
        }
    }
    fn u32(&mut self) -> u32 {
        match self.below(3) {
            0 => 0,
            1 => self.below(70_000) as u32,
            _ => self.next() as u32,
        }
    }
    fn u64(&mut self) -> u64 {
        match self.below(3) {
            0 => 0,
            1 => self.below(1_000_000),
            _ => self.next(),
        }
    }
    fn string(&mut self) -> String {
        const PIECES: [&str; 12] = [
            "",
            "a",
            "node-1",
            "k8s:app=web",
            "\"",
            "\\",
            "\n",
            "\u{1}",
            "é",
            "日本",
            "🦀",
            " /",
        ];
        (0..self.below(5))
            .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
            .collect()
    }
    fn strings(&mut self) -> Vec<String> {
        (0..self.below(4)).map(|_| self.string()).collect()
    }
    fn timestamp(&mut self) -> Option<Timestamp> {
        self.chance().then(|| Timestamp {
            seconds: self.below(4_000_000_000) as i64 - 100_000_000,
            nanos: match self.below(4) {
                0 => 0,
                1 => self.below(1000) as i32 * 1_000_000,
                2 => self.below(1_000_000) as i32 * 1000,
                _ => self.below(1_000_000_000) as i32,
            },
        })
    }
    fn hit(&mut self) -> vigil::PolicyHit {
        vigil::PolicyHit {
            kind: self.string(),
            namespace: self.string(),
            name: self.string(),
            tier: self.string(),
            rule_index: self.chance().then(|| self.u32()),
            action: self.i32(),
            hit_kind: self.i32(),
            pending: self.chance(),
            description: self.string(),
        }
    }
    fn endpoint(&mut self) -> flow::Endpoint {
        flow::Endpoint {
            id: self.u32(),
            identity: self.u32(),
            namespace: self.string(),
            labels: self.strings(),
            pod_name: self.string(),
            workloads: (0..self.below(3))
                .map(|_| flow::Workload {
                    name: self.string(),
                    kind: self.string(),
                })
                .collect(),
            cluster_name: self.string(),
        }
    }
    fn policy(&mut self) -> flow::Policy {
        flow::Policy {
            name: self.string(),
            namespace: self.string(),
            labels: self.strings(),
            revision: self.u64(),
            kind: self.string(),
        }
    }
    fn policies(&mut self) -> Vec<flow::Policy> {
        (0..self.below(3)).map(|_| self.policy()).collect()
    }
    fn l4(&mut self) -> flow::Layer4 {
        let protocol = match self.below(6) {
            0 => None,
            1 => Some(Protocol::Tcp(flow::Tcp {
                source_port: self.u32(),
                destination_port: self.u32(),
                flags: self.chance().then(|| flow::TcpFlags {
                    fin: self.chance(),
                    syn: self.chance(),
                    rst: self.chance(),
                    psh: self.chance(),
                    ack: self.chance(),
                    urg: self.chance(),
                    ece: self.chance(),
                    cwr: self.chance(),
                    ns: self.chance(),
                }),
            })),
            2 => Some(Protocol::Udp(flow::Udp {
                source_port: self.u32(),
                destination_port: self.u32(),
            })),
            3 => Some(Protocol::IcmPv4(flow::IcmPv4 {
                r#type: self.u32(),
                code: self.u32(),
            })),
            4 => Some(Protocol::IcmPv6(flow::IcmPv6 {
                r#type: self.u32(),
                code: self.u32(),
            })),
            _ => Some(Protocol::Sctp(flow::Sctp {
                source_port: self.u32(),
                destination_port: self.u32(),
            })),
        };
        flow::Layer4 { protocol }
    }
    fn l7(&mut self) -> flow::Layer7 {
        let record = match self.below(4) {
            0 => None,
            1 => Some(Record::Dns(flow::Dns {
                query: self.string(),
                ips: self.strings(),
                ttl: self.u32(),
                cnames: self.strings(),
                observation_source: self.string(),
                rcode: self.u32(),
                qtypes: self.strings(),
                rrtypes: self.strings(),
            })),
            2 => Some(Record::Http(flow::Http {
                code: self.u32(),
                method: self.string(),
                url: self.string(),
                protocol: self.string(),
                headers: (0..self.below(3))
                    .map(|_| flow::HttpHeader {
                        key: self.string(),
                        value: self.string(),
                    })
                    .collect(),
            })),
            _ => Some(Record::Kafka(flow::Kafka {
                error_code: self.i32(),
                api_version: self.i32(),
                api_key: self.string(),
                correlation_id: self.i32(),
                topic: self.string(),
            })),
        };
        flow::Layer7 {
            r#type: self.i32(),
            latency_ns: self.u64(),
            record,
        }
    }
    fn flow(&mut self) -> flow::Flow {
        flow::Flow {
            time: self.timestamp(),
            verdict: self.i32(),
            ethernet: self.chance().then(|| flow::Ethernet {
                source: self.string(),
                destination: self.string(),
            }),
            ip: self.chance().then(|| flow::Ip {
                source: self.string(),
                destination: self.string(),
                ip_version: self.i32(),
                encrypted: self.chance(),
            }),
            l4: self.chance().then(|| self.l4()),
            source: self.chance().then(|| self.endpoint()),
            destination: self.chance().then(|| self.endpoint()),
            r#type: self.i32(),
            node_name: self.string(),
            source_names: self.strings(),
            destination_names: self.strings(),
            l7: self.chance().then(|| self.l7()),
            event_type: self.chance().then(|| flow::CiliumEventType {
                r#type: self.i32(),
                sub_type: self.i32(),
            }),
            source_service: self.chance().then(|| flow::Service {
                name: self.string(),
                namespace: self.string(),
            }),
            destination_service: self.chance().then(|| flow::Service {
                name: self.string(),
                namespace: self.string(),
            }),
            traffic_direction: self.i32(),
            policy_match_type: self.u32(),
            trace_observation_point: self.i32(),
            drop_reason_desc: self.i32(),
            is_reply: self.chance().then(|| self.chance()),
            interface: self.chance().then(|| flow::NetworkInterface {
                index: self.u32(),
                name: self.string(),
            }),
            uuid: self.string(),
            extensions: None,
            egress_allowed_by: self.policies(),
            ingress_allowed_by: self.policies(),
            egress_denied_by: self.policies(),
            ingress_denied_by: self.policies(),
            policy_log: self.strings(),
            vigil_trace: self.chance().then(|| vigil::PolicyTrace {
                decided_by: self.chance().then(|| self.hit()),
                pending_decided_by: self.chance().then(|| self.hit()),
                pending_action: self.i32(),
                enforced: (0..self.below(3)).map(|_| self.hit()).collect(),
                pending: (0..self.below(3)).map(|_| self.hit()).collect(),
                generation: self.u32(),
                ct_state: self.i32(),
                packet_length: self.u32(),
                ip_protocol: self.u32(),
            }),
            vigil_position: self.chance().then(|| vigil::Position {
                agent_start_ns: self.u64(),
                index: self.u64(),
            }),
        }
    }
    fn response(&mut self) -> GetFlowsResponse {
        let response_types = match self.below(5) {
            0 => None,
            1 => Some(ResponseTypes::LostEvents(flow::LostEvent {
                source: self.i32(),
                num_events_lost: self.u64(),
                cpu: self.chance().then(|| self.i32()),
                first: self.timestamp(),
                last: self.timestamp(),
                vigil_position: self.chance().then(|| vigil::Position {
                    agent_start_ns: self.u64(),
                    index: self.u64(),
                }),
            })),
            2 => Some(ResponseTypes::NodeStatus(relay::NodeStatusEvent {
                state_change: self.i32(),
                node_names: self.strings(),
                message: self.string(),
            })),
            _ => Some(ResponseTypes::Flow(self.flow())),
        };
        GetFlowsResponse {
            response_types,
            node_name: self.string(),
            time: self.timestamp(),
        }
    }
}

#[test]
fn generated_responses_match_reflect() {
    let mut rng = Rng(0x5eed_1e55_c0ff_ee01);
    for _ in 0..3000 {
        assert_same(&rng.response());
    }
}
