//! Wire compatibility: our field numbers checked against the table of
//! `shared/docs/hubble-api.md`, written out here by hand from the doc and compared with the
//! descriptors protox compiled from our .proto files (not with the generated Rust structs).

use prost::Message as _;
use prost_types::{DescriptorProto, FileDescriptorSet};

fn message<'a>(fds: &'a FileDescriptorSet, full: &str) -> &'a DescriptorProto {
    let (package, name) = full.rsplit_once('.').unwrap();
    let (outer, inner) = match package.split_once('.') {
        Some((p, parent)) => (p, Some(parent)),
        None => (package, None),
    };
    let file = fds
        .file
        .iter()
        .find(|f| {
            f.package() == outer
                && f.message_type
                    .iter()
                    .any(|m| Some(m.name()) == inner.or(Some(name)))
        })
        .unwrap_or_else(|| panic!("no message {full}"));
    let top = file
        .message_type
        .iter()
        .find(|m| Some(m.name()) == inner.or(Some(name)))
        .unwrap();
    match inner {
        Some(_) => top.nested_type.iter().find(|m| m.name() == name).unwrap(),
        None => top,
    }
}

/// (message, field, number) from hubble-api.md.
const FIELDS: &[(&str, &str, i32)] = &[
    ("observer.GetFlowsRequest", "number", 1),
    ("observer.GetFlowsRequest", "follow", 3),
    ("observer.GetFlowsRequest", "blacklist", 5),
    ("observer.GetFlowsRequest", "whitelist", 6),
    ("observer.GetFlowsRequest", "since", 7),
    ("observer.GetFlowsRequest", "until", 8),
    ("observer.GetFlowsRequest", "first", 9),
    ("observer.GetFlowsRequest", "field_mask", 10),
    ("observer.GetFlowsRequest", "extensions", 150000),
    ("observer.GetFlowsResponse", "flow", 1),
    ("observer.GetFlowsResponse", "node_status", 2),
    ("observer.GetFlowsResponse", "lost_events", 3),
    ("observer.GetFlowsResponse", "node_name", 1000),
    ("observer.GetFlowsResponse", "time", 1001),
    ("observer.ServerStatusResponse", "num_flows", 1),
    ("observer.ServerStatusResponse", "max_flows", 2),
    ("observer.ServerStatusResponse", "seen_flows", 3),
    ("observer.ServerStatusResponse", "uptime_ns", 4),
    ("observer.ServerStatusResponse", "num_connected_nodes", 5),
    ("observer.ServerStatusResponse", "num_unavailable_nodes", 6),
    ("observer.ServerStatusResponse", "unavailable_nodes", 7),
    ("observer.ServerStatusResponse", "version", 8),
    ("observer.ServerStatusResponse", "flows_rate", 9),
    ("observer.GetNodesResponse", "nodes", 1),
    ("observer.Node", "name", 1),
    ("observer.Node", "version", 2),
    ("observer.Node", "address", 3),
    ("observer.Node", "state", 4),
    ("observer.Node", "tls", 5),
    ("observer.Node", "uptime_ns", 6),
    ("observer.Node", "num_flows", 7),
    ("observer.Node", "max_flows", 8),
    ("observer.Node", "seen_flows", 9),
    ("observer.TLS", "enabled", 1),
    ("observer.TLS", "server_name", 2),
    ("observer.GetNamespacesResponse", "namespaces", 1),
    ("observer.Namespace", "cluster", 1),
    ("observer.Namespace", "namespace", 2),
    ("relay.NodeStatusEvent", "state_change", 1),
    ("relay.NodeStatusEvent", "node_names", 2),
    ("relay.NodeStatusEvent", "message", 3),
    ("flow.Flow", "time", 1),
    ("flow.Flow", "verdict", 2),
    ("flow.Flow", "ethernet", 4),
    ("flow.Flow", "IP", 5),
    ("flow.Flow", "l4", 6),
    ("flow.Flow", "source", 8),
    ("flow.Flow", "destination", 9),
    ("flow.Flow", "Type", 10),
    ("flow.Flow", "node_name", 11),
    ("flow.Flow", "source_names", 13),
    ("flow.Flow", "destination_names", 14),
    ("flow.Flow", "l7", 15),
    ("flow.Flow", "event_type", 19),
    ("flow.Flow", "source_service", 20),
    ("flow.Flow", "destination_service", 21),
    ("flow.Flow", "traffic_direction", 22),
    ("flow.Flow", "policy_match_type", 23),
    ("flow.Flow", "trace_observation_point", 24),
    ("flow.Flow", "drop_reason_desc", 25),
    ("flow.Flow", "is_reply", 26),
    ("flow.Flow", "interface", 28),
    ("flow.Flow", "uuid", 34),
    ("flow.Flow", "extensions", 150000),
    ("flow.Flow", "egress_allowed_by", 21001),
    ("flow.Flow", "ingress_allowed_by", 21002),
    ("flow.Flow", "egress_denied_by", 21004),
    ("flow.Flow", "ingress_denied_by", 21005),
    ("flow.Flow", "policy_log", 21006),
    ("flow.Ethernet", "source", 1),
    ("flow.Ethernet", "destination", 2),
    ("flow.IP", "source", 1),
    ("flow.IP", "destination", 2),
    ("flow.IP", "ipVersion", 3),
    ("flow.IP", "encrypted", 4),
    ("flow.CiliumEventType", "type", 1),
    ("flow.CiliumEventType", "sub_type", 2),
    ("flow.Service", "name", 1),
    ("flow.Service", "namespace", 2),
    ("flow.NetworkInterface", "index", 1),
    ("flow.NetworkInterface", "name", 2),
    ("flow.Policy", "name", 1),
    ("flow.Policy", "namespace", 2),
    ("flow.Policy", "labels", 3),
    ("flow.Policy", "revision", 4),
    ("flow.Policy", "kind", 5),
    ("flow.Endpoint", "ID", 1),
    ("flow.Endpoint", "identity", 2),
    ("flow.Endpoint", "namespace", 3),
    ("flow.Endpoint", "labels", 4),
    ("flow.Endpoint", "pod_name", 5),
    ("flow.Endpoint", "workloads", 6),
    ("flow.Endpoint", "cluster_name", 7),
    ("flow.Workload", "name", 1),
    ("flow.Workload", "kind", 2),
    ("flow.Layer4", "TCP", 1),
    ("flow.Layer4", "UDP", 2),
    ("flow.Layer4", "ICMPv4", 3),
    ("flow.Layer4", "ICMPv6", 4),
    ("flow.Layer4", "SCTP", 5),
    ("flow.TCP", "source_port", 1),
    ("flow.TCP", "destination_port", 2),
    ("flow.TCP", "flags", 3),
    ("flow.TCPFlags", "FIN", 1),
    ("flow.TCPFlags", "SYN", 2),
    ("flow.TCPFlags", "RST", 3),
    ("flow.TCPFlags", "PSH", 4),
    ("flow.TCPFlags", "ACK", 5),
    ("flow.TCPFlags", "URG", 6),
    ("flow.TCPFlags", "ECE", 7),
    ("flow.TCPFlags", "CWR", 8),
    ("flow.TCPFlags", "NS", 9),
    ("flow.UDP", "source_port", 1),
    ("flow.UDP", "destination_port", 2),
    ("flow.SCTP", "source_port", 1),
    ("flow.SCTP", "destination_port", 2),
    ("flow.ICMPv4", "type", 1),
    ("flow.ICMPv4", "code", 2),
    ("flow.ICMPv6", "type", 1),
    ("flow.ICMPv6", "code", 2),
    ("flow.Layer7", "type", 1),
    ("flow.Layer7", "latency_ns", 2),
    ("flow.Layer7", "dns", 100),
    ("flow.Layer7", "http", 101),
    ("flow.Layer7", "kafka", 102),
    ("flow.HTTP", "code", 1),
    ("flow.HTTP", "method", 2),
    ("flow.HTTP", "url", 3),
    ("flow.HTTP", "protocol", 4),
    ("flow.HTTP", "headers", 5),
    ("flow.DNS", "query", 1),
    ("flow.DNS", "ips", 2),
    ("flow.DNS", "ttl", 3),
    ("flow.DNS", "cnames", 4),
    ("flow.DNS", "observation_source", 5),
    ("flow.DNS", "rcode", 6),
    ("flow.DNS", "qtypes", 7),
    ("flow.DNS", "rrtypes", 8),
    ("flow.Kafka", "error_code", 1),
    ("flow.Kafka", "api_version", 2),
    ("flow.Kafka", "api_key", 3),
    ("flow.Kafka", "correlation_id", 4),
    ("flow.Kafka", "topic", 5),
    ("flow.LostEvent", "source", 1),
    ("flow.LostEvent", "num_events_lost", 2),
    ("flow.LostEvent", "cpu", 3),
    ("flow.LostEvent", "first", 4),
    ("flow.LostEvent", "last", 5),
    ("flow.EventTypeFilter", "type", 1),
    ("flow.EventTypeFilter", "match_sub_type", 2),
    ("flow.EventTypeFilter", "sub_type", 3),
    ("flow.FlowFilter", "uuid", 29),
    ("flow.FlowFilter", "source_ip", 1),
    ("flow.FlowFilter", "source_pod", 2),
    ("flow.FlowFilter", "source_fqdn", 7),
    ("flow.FlowFilter", "source_label", 10),
    ("flow.FlowFilter", "source_service", 16),
    ("flow.FlowFilter", "source_workload", 26),
    ("flow.FlowFilter", "destination_ip", 3),
    ("flow.FlowFilter", "destination_pod", 4),
    ("flow.FlowFilter", "destination_fqdn", 8),
    ("flow.FlowFilter", "destination_label", 11),
    ("flow.FlowFilter", "destination_service", 17),
    ("flow.FlowFilter", "destination_workload", 27),
    ("flow.FlowFilter", "traffic_direction", 30),
    ("flow.FlowFilter", "verdict", 5),
    ("flow.FlowFilter", "drop_reason_desc", 33),
    ("flow.FlowFilter", "event_type", 6),
    ("flow.FlowFilter", "http_status_code", 9),
    ("flow.FlowFilter", "protocol", 12),
    ("flow.FlowFilter", "source_port", 13),
    ("flow.FlowFilter", "destination_port", 14),
    ("flow.FlowFilter", "reply", 15),
    ("flow.FlowFilter", "dns_query", 18),
    ("flow.FlowFilter", "source_identity", 19),
    ("flow.FlowFilter", "destination_identity", 20),
    ("flow.FlowFilter", "http_method", 21),
    ("flow.FlowFilter", "http_path", 22),
    ("flow.FlowFilter", "http_url", 31),
    ("flow.FlowFilter", "tcp_flags", 23),
    ("flow.FlowFilter", "node_name", 24),
    ("flow.FlowFilter", "ip_version", 25),
];

/// (enum, value name, number) from hubble-api.md.
const ENUM_VALUES: &[(&str, &str, i32)] = &[
    ("flow.Verdict", "VERDICT_UNKNOWN", 0),
    ("flow.Verdict", "FORWARDED", 1),
    ("flow.Verdict", "DROPPED", 2),
    ("flow.Verdict", "ERROR", 3),
    ("flow.Verdict", "AUDIT", 4),
    ("flow.Verdict", "REDIRECTED", 5),
    ("flow.Verdict", "TRACED", 6),
    ("flow.Verdict", "TRANSLATED", 7),
    ("flow.FlowType", "UNKNOWN_TYPE", 0),
    ("flow.FlowType", "L3_L4", 1),
    ("flow.FlowType", "L7", 2),
    ("flow.FlowType", "SOCK", 3),
    ("flow.TrafficDirection", "INGRESS", 1),
    ("flow.TrafficDirection", "EGRESS", 2),
    ("flow.TraceObservationPoint", "TO_ENDPOINT", 101),
    ("flow.TraceObservationPoint", "FROM_ENDPOINT", 5),
    ("flow.TraceObservationPoint", "TO_STACK", 3),
    ("flow.TraceObservationPoint", "FROM_NETWORK", 10),
    ("flow.TraceObservationPoint", "TO_NETWORK", 11),
    ("flow.DropReason", "POLICY_DENIED", 133),
    ("flow.DropReason", "POLICY_DENY", 181),
    ("flow.IPVersion", "IP_NOT_USED", 0),
    ("flow.IPVersion", "IPv4", 1),
    ("flow.IPVersion", "IPv6", 2),
    ("flow.L7FlowType", "REQUEST", 1),
    ("flow.L7FlowType", "RESPONSE", 2),
    ("flow.L7FlowType", "SAMPLE", 3),
    ("flow.LostEventSource", "PERF_EVENT_RING_BUFFER", 1),
    ("flow.LostEventSource", "OBSERVER_EVENTS_QUEUE", 2),
    ("flow.LostEventSource", "HUBBLE_RING_BUFFER", 3),
    ("relay.NodeState", "UNKNOWN_NODE_STATE", 0),
    ("relay.NodeState", "NODE_CONNECTED", 1),
    ("relay.NodeState", "NODE_UNAVAILABLE", 2),
    ("relay.NodeState", "NODE_GONE", 3),
    ("relay.NodeState", "NODE_ERROR", 4),
];

fn fds() -> FileDescriptorSet {
    FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap()
}

#[test]
fn field_numbers_match_the_hubble_api_table() {
    let fds = fds();
    let mut wrong = Vec::new();
    for (msg, field, number) in FIELDS {
        let m = message(&fds, msg);
        match m.field.iter().find(|f| f.name() == *field) {
            Some(f) if f.number() == *number => {}
            Some(f) => wrong.push(format!("{msg}.{field} = {} (doc: {number})", f.number())),
            None => wrong.push(format!("{msg}.{field} missing")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn enum_values_match_the_hubble_api_table() {
    let fds = fds();
    let mut wrong = Vec::new();
    for (e, value, number) in ENUM_VALUES {
        let (package, name) = e.split_once('.').unwrap();
        let found = fds
            .file
            .iter()
            .filter(|f| f.package() == package)
            .flat_map(|f| &f.enum_type)
            .find(|d| d.name() == name)
            .and_then(|d| d.value.iter().find(|v| v.name() == *value));
        match found {
            Some(v) if v.number() == *number => {}
            other => wrong.push(format!(
                "{e}.{value}: {:?} (doc: {number})",
                other.map(|v| v.number())
            )),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_service_has_hubbles_methods_and_vigil_fields_stay_clear_of_hubbles() {
    let fds = fds();
    let service = fds
        .file
        .iter()
        .flat_map(|f| &f.service)
        .find(|s| s.name() == "Observer")
        .unwrap();
    let methods: Vec<(&str, &str, bool)> = service
        .method
        .iter()
        .map(|m| (m.name(), m.output_type(), m.server_streaming()))
        .collect();
    assert!(methods.contains(&("GetFlows", ".observer.GetFlowsResponse", true)));
    assert!(methods.contains(&("ServerStatus", ".observer.ServerStatusResponse", false)));
    assert!(methods.contains(&("GetNodes", ".observer.GetNodesResponse", false)));
    assert!(methods.contains(&("GetNamespaces", ".observer.GetNamespacesResponse", false)));
    for (msg, field) in [
        ("flow.Flow", "vigil_trace"),
        ("flow.Flow", "vigil_position"),
        ("flow.FlowFilter", "vigil_policy"),
    ] {
        let f = message(&fds, msg)
            .field
            .iter()
            .find(|f| f.name() == field)
            .unwrap();
        assert!(f.number() >= 1000 && !(19000..20000).contains(&f.number()));
        assert!(FIELDS.iter().all(|(m, _, n)| *m != msg || *n != f.number()));
    }
}
