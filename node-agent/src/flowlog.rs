//! The `--flow-log` file: one JSON object per flow, in Vigil's own flat format (stable for users
//! who grep it; the Hubble-shaped view is the gRPC API). Records are derived from the observer's
//! `flow.Flow`, and the writer follows the observer ring like any client, so a slow disk never
//! slows the event reader; flows it missed are counted (`flow_log_lost` in the status file).

use std::net::IpAddr;

use serde::Serialize;
use vigil_proto::{
    flow::{self, Flow},
    vigil,
};

/// One endpoint of a flow, as far as the agent can name it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FlowEndpoint {
    pub ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub identity: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// One policy hit in a flow's trace.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PolicyHit {
    /// The hit, described in one line.
    pub policy: String,
    pub tier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_index: Option<u32>,
    /// Allow, Deny, Pass or Log.
    pub action: &'static str,
    /// `enforced` or `pending` (staged).
    pub view: &'static str,
}

/// A flow log line.
#[derive(Debug, Clone, Serialize)]
pub struct FlowRecord {
    /// RFC 3339 with nanoseconds.
    pub time: String,
    pub node: String,
    /// FORWARDED, DROPPED or AUDIT.
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<&'static str>,
    /// INGRESS or EGRESS, from the local endpoint's point of view.
    pub traffic_direction: &'static str,
    /// new, established or reply.
    pub ct_state: &'static str,
    pub is_reply: bool,
    pub protocol: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tcp_flags: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<(u16, u16)>,
    pub source: FlowEndpoint,
    pub destination: FlowEndpoint,
    pub generation: u32,
    /// The hit that decided the enforced verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<PolicyHit>,
    /// The hit that decided the staged view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staged_decided_by: Option<PolicyHit>,
    /// What the staged view would do: ALLOW or DENY (NONE without staged policies).
    pub staged_action: &'static str,
    /// Every hit on the way, both views (Log and Pass included).
    pub trace: Vec<PolicyHit>,
    pub packet_length: u32,
}

/// Formats nanoseconds since the Unix epoch as RFC 3339 (UTC) with nanoseconds.
pub use vigil_proto::time::rfc3339;

fn action_name(a: i32) -> &'static str {
    match vigil::Action::try_from(a).unwrap_or(vigil::Action::Unspecified) {
        vigil::Action::Allow => "Allow",
        vigil::Action::Deny => "Deny",
        vigil::Action::Pass => "Pass",
        vigil::Action::Log => "Log",
        vigil::Action::Unspecified => "None",
    }
}

/// One line describing a hit, as the policy engine's `RuleRef` prints it (the flow does not
/// carry the text: it is derived here, off the hot path).
pub fn describe(h: &vigil::PolicyHit, direction: &str) -> String {
    if !h.description.is_empty() {
        return h.description.clone();
    }
    let pending = if h.pending { " (pending)" } else { "" };
    let ns = if h.namespace.is_empty() {
        String::new()
    } else {
        format!("{}/", h.namespace)
    };
    let action = action_name(h.action);
    match (
        vigil::HitKind::try_from(h.hit_kind).unwrap_or(vigil::HitKind::Rule),
        h.rule_index,
    ) {
        (vigil::HitKind::DefaultAllow, _) => {
            format!("{direction} default allow (no policy applies)")
        }
        (vigil::HitKind::EndOfTier, _) => format!(
            "{direction} end of tier {:?} after {} {ns}{}: {action}{pending}",
            h.tier, h.kind, h.name
        ),
        (_, Some(i)) => format!(
            "{direction} {} {ns}{} (tier {}) rule {i}: {action}{pending}",
            h.kind, h.name, h.tier
        ),
        (_, None) => format!("{direction} {} {ns}{}: {action}{pending}", h.kind, h.name),
    }
}

fn hit(h: &vigil::PolicyHit, view: &'static str, direction: &str) -> PolicyHit {
    PolicyHit {
        policy: describe(h, direction),
        tier: h.tier.clone(),
        rule_index: h.rule_index,
        action: action_name(h.action),
        view,
    }
}

fn endpoint(ep: Option<&flow::Endpoint>, ip: Option<&str>, port: Option<u32>) -> FlowEndpoint {
    let ep = ep.cloned().unwrap_or_default();
    let some = |s: String| (!s.is_empty()).then_some(s);
    FlowEndpoint {
        ip: ip.and_then(|i| i.parse().ok()),
        port: port.map(|p| p as u16),
        identity: ep.identity,
        namespace: some(ep.namespace),
        pod: some(ep.pod_name),
        labels: ep.labels,
    }
}

impl FlowRecord {
    /// The flow log line of a flow.
    pub fn from_flow(f: &Flow) -> FlowRecord {
        use flow::layer4::Protocol;
        let trace = f.vigil_trace.clone().unwrap_or_default();
        let l4 = f.l4.as_ref().and_then(|l| l.protocol.as_ref());
        let (protocol, ports, flags, icmp) = match l4 {
            Some(Protocol::Tcp(t)) => (
                "TCP".to_owned(),
                Some((t.source_port, t.destination_port)),
                t.flags,
                None,
            ),
            Some(Protocol::Udp(u)) => (
                "UDP".to_owned(),
                Some((u.source_port, u.destination_port)),
                None,
                None,
            ),
            Some(Protocol::Sctp(s)) => (
                "SCTP".to_owned(),
                Some((s.source_port, s.destination_port)),
                None,
                None,
            ),
            Some(Protocol::IcmPv4(i)) => (
                "ICMPv4".to_owned(),
                None,
                None,
                Some((i.r#type as u16, i.code as u16)),
            ),
            Some(Protocol::IcmPv6(i)) => (
                "ICMPv6".to_owned(),
                None,
                None,
                Some((i.r#type as u16, i.code as u16)),
            ),
            None => (format!("proto-{}", trace.ip_protocol), None, None, None),
        };
        let ip = f.ip.as_ref();
        let direction = if f.traffic_direction == flow::TrafficDirection::Ingress as i32 {
            "ingress"
        } else {
            "egress"
        };
        let time = f.time.as_ref().map_or(0, vigil_proto::time::unix_ns);
        FlowRecord {
            time: rfc3339(time),
            node: f.node_name.clone(),
            verdict: match flow::Verdict::try_from(f.verdict).unwrap_or(flow::Verdict::Unknown) {
                flow::Verdict::Dropped => "DROPPED",
                flow::Verdict::Audit => "AUDIT",
                _ => "FORWARDED",
            },
            drop_reason: match f.drop_reason_desc {
                133 => Some("POLICY_DENIED"),
                181 => Some("POLICY_DENY"),
                _ => None,
            },
            traffic_direction: if f.traffic_direction == flow::TrafficDirection::Ingress as i32 {
                "INGRESS"
            } else {
                "EGRESS"
            },
            ct_state: match vigil::ConnectionState::try_from(trace.ct_state)
                .unwrap_or(vigil::ConnectionState::Unknown)
            {
                vigil::ConnectionState::New => "new",
                vigil::ConnectionState::Established => "established",
                _ => "reply",
            },
            is_reply: f.is_reply.unwrap_or(false),
            protocol,
            tcp_flags: flags.map(|fl| fl.names()).unwrap_or_default(),
            icmp,
            source: endpoint(
                f.source.as_ref(),
                ip.map(|i| i.source.as_str()),
                ports.map(|p| p.0),
            ),
            destination: endpoint(
                f.destination.as_ref(),
                ip.map(|i| i.destination.as_str()),
                ports.map(|p| p.1),
            ),
            generation: trace.generation,
            decided_by: trace
                .decided_by
                .as_ref()
                .map(|h| hit(h, "enforced", direction)),
            staged_decided_by: trace
                .pending_decided_by
                .as_ref()
                .map(|h| hit(h, "pending", direction)),
            staged_action: match vigil::Action::try_from(trace.pending_action)
                .unwrap_or(vigil::Action::Unspecified)
            {
                vigil::Action::Allow => "ALLOW",
                vigil::Action::Deny => "DENY",
                _ => "NONE",
            },
            trace: trace
                .enforced
                .iter()
                .map(|h| hit(h, "enforced", direction))
                .chain(trace.pending.iter().map(|h| hit(h, "pending", direction)))
                .collect(),
            packet_length: trace.packet_length,
        }
    }
}
