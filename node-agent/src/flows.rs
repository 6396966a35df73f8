//! Turns one decoded datapath event into a Hubble `flow.Flow` with Vigil's policy trace.
//!
//! Pure: no I/O, no clock, no locks. Everything expensive to derive from a generation's compiled
//! tables (endpoint by address, labels by identity, rule and trace descriptions) is built once per
//! generation in [`GenerationIndex`]; converting an event then only looks up and clones. Rule and
//! trace ids are only meaningful in the generation the event was produced under, which is why the
//! caller passes that generation's index (or none, when it is no longer kept).
//!
//! Choices, as Cilium makes them:
//! - `event_type`: a drop is a drop notification (type 1, sub-type = the drop reason); the verdict
//!   on a new connection is a policy verdict (type 5); every other packet (established, reply,
//!   `--aggregation none`) is a trace (type 4, sub-type 0 to-endpoint / 5 from-endpoint).
//! - `trace_observation_point`: TO_ENDPOINT for ingress, FROM_ENDPOINT for egress (the program
//!   runs on the endpoint's host-side veth).
//! - `*_allowed_by` / `*_denied_by` name the policy that decided the enforced view (none for
//!   default allow, like Cilium when no policy selects the endpoint), with Cilium-style labels plus
//!   `vigil:tier=..` and `vigil:rule=N` or `vigil:end-of-tier`; `policy_log` lists the Log hits.
//!   Everything else (tiers, pending hits, end-of-tier, default allow) is in `vigil_trace`.

mod encode;
#[cfg(test)]
mod tests;

pub use encode::{Encoded, encode_flow};

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use vigil_policy::{Cluster, Compiled, PolicyKind, RuleAction, RuleRef, Special};
use vigil_proto::{
    flow::{self, Flow},
    vigil,
};

use crate::abi::{self, Event};

/// Cilium monitor event types.
pub mod event_type {
    /// Drop notification.
    pub const DROP: i32 = 1;
    /// Trace notification.
    pub const TRACE: i32 = 4;
    /// Policy verdict notification.
    pub const POLICY_VERDICT: i32 = 5;
    /// Trace sub-type: to the endpoint.
    pub const TRACE_TO_LXC: i32 = 0;
    /// Trace sub-type: from the endpoint.
    pub const TRACE_FROM_LXC: i32 = 5;
}

/// What is known about an address of a generation's cluster.
#[derive(Debug, Clone)]
struct EndpointMeta {
    /// The address as text (what `flow.IP` carries), formatted once.
    ip: String,
    namespace: String,
    pod_name: String,
    /// The endpoint id when the endpoint is local to this node, else 0.
    id: u32,
    /// `namespace` and `pod_name` as encoded `flow.Endpoint` fields.
    encoded: Vec<u8>,
}

/// A rule of the rule table, pre-rendered.
#[derive(Debug, Clone)]
struct RuleEntry {
    hit: vigil::PolicyHit,
    /// Hubble's `Policy`, `None` for default allow.
    policy: Option<flow::Policy>,
    /// `hit`, encoded.
    hit_bytes: Vec<u8>,
    /// `policy`, encoded.
    policy_bytes: Option<Vec<u8>>,
}

/// A trace of the trace table, pre-rendered.
#[derive(Debug, Clone, Default)]
struct TraceEntry {
    enforced: Vec<vigil::PolicyHit>,
    pending: Vec<vigil::PolicyHit>,
    /// Descriptions of the enforced view's Log hits.
    log: Vec<String>,
    /// `enforced` as encoded `PolicyTrace.enforced` fields, `pending` as `PolicyTrace.pending`
    /// fields, `log` as `Flow.policy_log` fields.
    enforced_bytes: Vec<u8>,
    pending_bytes: Vec<u8>,
    log_bytes: Vec<u8>,
}

/// The lookups of one generation, built once when it is installed.
#[derive(Debug, Default)]
pub struct GenerationIndex {
    generation: u32,
    endpoints: HashMap<IpAddr, EndpointMeta>,
    labels: HashMap<u32, Vec<String>>,
    /// Each identity's labels as encoded `flow.Endpoint.labels` fields.
    labels_bytes: HashMap<u32, Vec<u8>>,
    rules: Vec<RuleEntry>,
    traces: Vec<TraceEntry>,
    namespaces: Vec<String>,
}

impl GenerationIndex {
    /// Indexes the tables of `generation`.
    pub fn new(generation: u32, compiled: &Compiled, cluster: &Cluster) -> GenerationIndex {
        let local: HashMap<(&str, &str), u32> = compiled
            .endpoints
            .iter()
            .map(|e| ((e.namespace.as_str(), e.name.as_str()), e.endpoint_id))
            .collect();
        let mut endpoints = HashMap::new();
        for e in &cluster.endpoints {
            let meta = EndpointMeta {
                ip: String::new(),
                namespace: e.namespace.clone(),
                pod_name: e.name.clone(),
                id: local
                    .get(&(e.namespace.as_str(), e.name.as_str()))
                    .copied()
                    .unwrap_or(0),
                encoded: encode::endpoint_names(&e.namespace, &e.name),
            };
            for ip in &e.ips {
                let meta = EndpointMeta {
                    ip: ip.to_string(),
                    ..meta.clone()
                };
                endpoints.insert(*ip, meta);
            }
        }
        let labels: HashMap<u32, Vec<String>> = compiled
            .identities
            .iter()
            .map(|i| (i.id, i.labels.clone()))
            .collect();
        let labels_bytes = labels
            .iter()
            .map(|(id, l)| (*id, encode::repeated_strings(encode::ENDPOINT_LABELS, l)))
            .collect();
        let rules = compiled
            .rules
            .iter()
            .map(|r| {
                let hit = policy_hit(r);
                let policy = hubble_policy(r, generation);
                RuleEntry {
                    hit_bytes: prost::Message::encode_to_vec(&hit),
                    policy_bytes: policy.as_ref().map(prost::Message::encode_to_vec),
                    hit,
                    policy,
                }
            })
            .collect();
        let traces = compiled
            .traces
            .iter()
            .map(|t| {
                let enforced: Vec<_> = t.enforced.iter().map(policy_hit).collect();
                let pending: Vec<_> = t.staged.iter().map(policy_hit).collect();
                let log: Vec<String> = t
                    .enforced
                    .iter()
                    .filter(|h| h.action == RuleAction::Log)
                    .map(ToString::to_string)
                    .collect();
                TraceEntry {
                    enforced_bytes: encode::repeated_messages(encode::TRACE_ENFORCED, &enforced),
                    pending_bytes: encode::repeated_messages(encode::TRACE_PENDING, &pending),
                    log_bytes: encode::repeated_strings(encode::FLOW_POLICY_LOG, &log),
                    enforced,
                    pending,
                    log,
                }
            })
            .collect();
        let mut namespaces: Vec<String> = cluster
            .namespaces
            .iter()
            .map(|n| n.name.clone())
            .chain(cluster.endpoints.iter().map(|e| e.namespace.clone()))
            .collect();
        namespaces.sort();
        namespaces.dedup();
        GenerationIndex {
            generation,
            endpoints,
            labels,
            labels_bytes,
            rules,
            traces,
            namespaces,
        }
    }

    /// The generation indexed.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Every namespace of the generation's cluster, sorted.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }
}

fn action(a: RuleAction) -> vigil::Action {
    match a {
        RuleAction::Allow => vigil::Action::Allow,
        RuleAction::Deny => vigil::Action::Deny,
        RuleAction::Pass => vigil::Action::Pass,
        RuleAction::Log => vigil::Action::Log,
    }
}

fn policy_hit(r: &RuleRef) -> vigil::PolicyHit {
    vigil::PolicyHit {
        kind: r.kind.map(|k| k.to_string()).unwrap_or_default(),
        namespace: r.namespace.clone().unwrap_or_default(),
        name: r.name.clone(),
        tier: r.tier.clone(),
        rule_index: r.rule_index,
        action: action(r.action) as i32,
        hit_kind: match r.special {
            Special::None => vigil::HitKind::Rule,
            Special::EndOfTier => vigil::HitKind::EndOfTier,
            Special::DefaultAllow => vigil::HitKind::DefaultAllow,
        } as i32,
        pending: r.staged,
        // Derivable from the fields above; left empty to keep flows cheap (see flowlog::describe).
        description: String::new(),
    }
}

fn hubble_policy(r: &RuleRef, generation: u32) -> Option<flow::Policy> {
    let kind: PolicyKind = r.kind?;
    let mut labels = vec![
        format!("k8s:io.cilium.k8s.policy.derived-from={kind}"),
        format!("k8s:io.cilium.k8s.policy.name={}", r.name),
    ];
    if let Some(ns) = &r.namespace {
        labels.push(format!("k8s:io.cilium.k8s.policy.namespace={ns}"));
    }
    labels.push(format!("vigil:tier={}", r.tier));
    match (r.special, r.rule_index) {
        (Special::EndOfTier, _) => labels.push("vigil:end-of-tier".into()),
        (_, Some(i)) => labels.push(format!("vigil:rule={i}")),
        _ => {}
    }
    Some(flow::Policy {
        name: r.name.clone(),
        namespace: r.namespace.clone().unwrap_or_default(),
        labels,
        revision: u64::from(generation),
        kind: kind.to_string(),
    })
}

/// Per-agent conversion settings.
#[derive(Debug, Clone)]
pub struct Context {
    /// This node's name.
    pub node: String,
    /// Nanoseconds to add to an event's `CLOCK_BOOTTIME` timestamp to get Unix time.
    pub boot_offset_ns: i128,
    /// Random per-agent prefix of flow uuids.
    pub uuid_prefix: u64,
}

fn addr(family: u8, bytes: &[u8; 16]) -> IpAddr {
    if family == 4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    }
}

/// `google.protobuf.Timestamp` of nanoseconds since the Unix epoch.
pub use vigil_proto::time::timestamp;

fn endpoint(
    index: Option<&GenerationIndex>,
    ip: IpAddr,
    identity: u32,
    local_id: u32,
) -> flow::Endpoint {
    let meta = index.and_then(|i| i.endpoints.get(&ip));
    let mut labels = index
        .and_then(|i| i.labels.get(&identity))
        .cloned()
        .unwrap_or_default();
    if labels.is_empty() && identity == 2 {
        labels.push("reserved:world".into());
    }
    flow::Endpoint {
        id: if local_id != 0 {
            local_id
        } else {
            meta.map_or(0, |m| m.id)
        },
        identity,
        namespace: meta.map(|m| m.namespace.clone()).unwrap_or_default(),
        labels,
        pod_name: meta.map(|m| m.pod_name.clone()).unwrap_or_default(),
        workloads: Vec::new(),
        cluster_name: String::new(),
    }
}

fn tcp_flags(bits: u8) -> flow::TcpFlags {
    flow::TcpFlags {
        fin: bits & 0x01 != 0,
        syn: bits & 0x02 != 0,
        rst: bits & 0x04 != 0,
        psh: bits & 0x08 != 0,
        ack: bits & 0x10 != 0,
        urg: bits & 0x20 != 0,
        ece: bits & 0x40 != 0,
        cwr: bits & 0x80 != 0,
        ns: false,
    }
}

fn layer4(event: &Event) -> Option<flow::Layer4> {
    use flow::layer4::Protocol;
    let (s, d) = (u32::from(event.sport), u32::from(event.dport));
    let protocol = match event.proto {
        6 => Protocol::Tcp(flow::Tcp {
            source_port: s,
            destination_port: d,
            flags: Some(tcp_flags(event.tcp_flags)),
        }),
        17 => Protocol::Udp(flow::Udp {
            source_port: s,
            destination_port: d,
        }),
        132 => Protocol::Sctp(flow::Sctp {
            source_port: s,
            destination_port: d,
        }),
        // The datapath puts ICMP type and code where ports would be.
        1 => Protocol::IcmPv4(flow::IcmPv4 { r#type: s, code: d }),
        58 => Protocol::IcmPv6(flow::IcmPv6 { r#type: s, code: d }),
        _ => return None,
    };
    Some(flow::Layer4 {
        protocol: Some(protocol),
    })
}

/// The flow's verdict: DROPPED, AUDIT (allowed, the staged view would deny) or FORWARDED.
pub fn verdict(event: &Event) -> flow::Verdict {
    match (event.verdict, event.action, event.staged_action) {
        (abi::VERDICT_DROPPED, _, _) => flow::Verdict::Dropped,
        (_, abi::ACT_ALLOW, abi::ACT_DENY) => flow::Verdict::Audit,
        _ => flow::Verdict::Forwarded,
    }
}

/// An RFC 4122 version-8 uuid from the agent's random prefix and a sequence number, as text
/// bytes (this runs once per event: no `format!`, no allocation).
fn uuid_bytes(prefix: u64, seq: u64) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Writes `digits` hex digits of `value` at `at`; returns the position after them and a dash.
    fn put(out: &mut [u8; 36], at: usize, value: u64, digits: usize) -> usize {
        for i in 0..digits {
            out[at + i] = HEX[((value >> ((digits - 1 - i) * 4)) & 0xf) as usize];
        }
        at + digits + 1
    }
    let mut out = [b'-'; 36];
    let at = put(&mut out, 0, prefix >> 32, 8);
    let at = put(&mut out, at, (prefix >> 16) & 0xffff, 4);
    // Version 8, then the prefix's last 12 bits.
    let at = put(&mut out, at, 0x8000 | (prefix & 0xfff), 4);
    let at = put(&mut out, at, 0x8000 | ((seq >> 48) & 0x3fff), 4);
    put(&mut out, at, seq & 0xffff_ffff_ffff, 12);
    out
}

/// [`uuid_bytes`] as a string.
fn uuid(prefix: u64, seq: u64) -> String {
    String::from_utf8_lossy(&uuid_bytes(prefix, seq)).into_owned()
}

/// What both renderings of an event ([`to_flow`], [`encode_flow`]) derive from it alike.
#[derive(Debug, Clone, Copy)]
struct Derived {
    ingress: bool,
    src_ip: IpAddr,
    dst_ip: IpAddr,
    src_id: u32,
    dst_id: u32,
    src_local: u32,
    dst_local: u32,
    verdict: flow::Verdict,
    dropped: bool,
    reply: bool,
    event_type: i32,
    sub_type: i32,
    pending_action: vigil::Action,
    ct_state: vigil::ConnectionState,
}

impl Derived {
    fn of(event: &Event) -> Derived {
        let ingress = event.direction == 1;
        // The local endpoint sent an egress packet and received an ingress one, replies included.
        let (src_id, dst_id, src_local, dst_local) = if ingress {
            (
                event.peer_identity,
                event.local_identity,
                0,
                event.endpoint_id,
            )
        } else {
            (
                event.local_identity,
                event.peer_identity,
                event.endpoint_id,
                0,
            )
        };
        let verdict = verdict(event);
        let dropped = verdict == flow::Verdict::Dropped;
        let (event_type, sub_type) = if dropped {
            (event_type::DROP, i32::from(event.drop_reason))
        } else if event.ct_state == 1 {
            (event_type::POLICY_VERDICT, 0)
        } else if ingress {
            (event_type::TRACE, event_type::TRACE_TO_LXC)
        } else {
            (event_type::TRACE, event_type::TRACE_FROM_LXC)
        };
        Derived {
            ingress,
            src_ip: addr(event.family, &event.saddr),
            dst_ip: addr(event.family, &event.daddr),
            src_id,
            dst_id,
            src_local,
            dst_local,
            verdict,
            dropped,
            reply: event.ct_state == 3,
            event_type,
            sub_type,
            pending_action: match event.staged_action {
                abi::ACT_ALLOW => vigil::Action::Allow,
                abi::ACT_DENY => vigil::Action::Deny,
                _ => vigil::Action::Unspecified,
            },
            ct_state: match event.ct_state {
                1 => vigil::ConnectionState::New,
                2 => vigil::ConnectionState::Established,
                3 => vigil::ConnectionState::Reply,
                _ => vigil::ConnectionState::Unknown,
            },
        }
    }

    fn traffic_direction(&self) -> flow::TrafficDirection {
        if self.ingress {
            flow::TrafficDirection::Ingress
        } else {
            flow::TrafficDirection::Egress
        }
    }

    fn observation_point(&self) -> flow::TraceObservationPoint {
        if self.ingress {
            flow::TraceObservationPoint::ToEndpoint
        } else {
            flow::TraceObservationPoint::FromEndpoint
        }
    }
}

/// The flow's `IP` version.
fn ip_version(event: &Event) -> flow::IpVersion {
    if event.family == 4 {
        flow::IpVersion::IPv4
    } else {
        flow::IpVersion::IPv6
    }
}

/// Converts one event. `index` is the index of the event's generation, `None` when it is no
/// longer kept (the flow then carries addresses and identities but no names). `seq` makes the
/// uuid unique within this agent. The reference for [`encode_flow`], which the agent runs.
pub fn to_flow(event: &Event, ctx: &Context, index: Option<&GenerationIndex>, seq: u64) -> Flow {
    let d = Derived::of(event);
    let Derived {
        ingress,
        src_ip,
        dst_ip,
        src_id,
        dst_id,
        src_local,
        dst_local,
        verdict,
        dropped,
        reply,
        event_type,
        sub_type,
        pending_action,
        ..
    } = d;
    let rule = index.and_then(|i| i.rules.get(event.rule_id as usize));
    let staged_rule = index.and_then(|i| i.rules.get(event.staged_rule_id as usize));
    let trace = index.and_then(|i| i.traces.get(event.trace_id as usize));
    let deciding: Vec<flow::Policy> = rule.and_then(|r| r.policy.clone()).into_iter().collect();
    let (mut ingress_allowed_by, mut ingress_denied_by) = (Vec::new(), Vec::new());
    let (mut egress_allowed_by, mut egress_denied_by) = (Vec::new(), Vec::new());
    match (ingress, dropped) {
        (true, true) => ingress_denied_by = deciding,
        (true, false) => ingress_allowed_by = deciding,
        (false, true) => egress_denied_by = deciding,
        (false, false) => egress_allowed_by = deciding,
    }
    let uuid = uuid(ctx.uuid_prefix, seq);
    let ip_text = |ip: IpAddr| {
        index
            .and_then(|i| i.endpoints.get(&ip))
            .map_or_else(|| ip.to_string(), |m| m.ip.clone())
    };
    Flow {
        time: Some(timestamp(i128::from(event.ts_ns) + ctx.boot_offset_ns)),
        verdict: verdict as i32,
        ip: Some(flow::Ip {
            source: ip_text(src_ip),
            destination: ip_text(dst_ip),
            ip_version: ip_version(event) as i32,
            encrypted: false,
        }),
        l4: layer4(event),
        source: Some(endpoint(index, src_ip, src_id, src_local)),
        destination: Some(endpoint(index, dst_ip, dst_id, dst_local)),
        r#type: flow::FlowType::L3L4 as i32,
        node_name: ctx.node.clone(),
        event_type: Some(flow::CiliumEventType {
            r#type: event_type,
            sub_type,
        }),
        traffic_direction: d.traffic_direction() as i32,
        trace_observation_point: d.observation_point() as i32,
        drop_reason_desc: if dropped {
            i32::from(event.drop_reason)
        } else {
            0
        },
        is_reply: Some(reply),
        interface: Some(flow::NetworkInterface {
            index: event.ifindex,
            name: String::new(),
        }),
        uuid,
        ingress_allowed_by,
        ingress_denied_by,
        egress_allowed_by,
        egress_denied_by,
        policy_log: trace.map(|t| t.log.clone()).unwrap_or_default(),
        vigil_trace: Some(vigil::PolicyTrace {
            decided_by: rule.map(|r| r.hit.clone()),
            pending_decided_by: staged_rule.map(|r| r.hit.clone()),
            pending_action: pending_action as i32,
            enforced: trace.map(|t| t.enforced.clone()).unwrap_or_default(),
            pending: trace.map(|t| t.pending.clone()).unwrap_or_default(),
            generation: event.generation,
            ct_state: d.ct_state as i32,
            packet_length: event.pkt_len,
            ip_protocol: u32::from(event.proto),
        }),
        ..Flow::default()
    }
}
