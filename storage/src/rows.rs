//! Flow -> rows: one [`FlowRow`] per flow and one [`HitRow`] per policy contribution.
//!
//! Hits come from the flow's Vigil trace (every enforced hit, then every pending one); a flow
//! without a trace (from a plain Hubble agent) contributes Hubble's `*_allowed_by` /
//! `*_denied_by` lists instead, so each contribution is counted once. Pure conversion, no I/O.

use serde::Serialize;
use vigil_proto::{
    flow::{Endpoint, Flow, Ip, Policy, TrafficDirection, Verdict, layer4::Protocol},
    vigil::{Action, HitKind, PolicyHit},
};

/// One row of `flows`. Field order is the column order of both backends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ::clickhouse::Row)]
pub struct FlowRow {
    pub uuid: String,
    /// Unix seconds.
    pub time: u32,
    /// Nanoseconds within `time`.
    pub nanos: u32,
    pub node: String,
    /// `FORWARDED`, `DROPPED`, `AUDIT`, ...
    pub verdict: String,
    /// `POLICY_DENY`, ... or empty.
    pub drop_reason: String,
    /// `INGRESS`, `EGRESS` or `TRAFFIC_DIRECTION_UNKNOWN`.
    pub direction: String,
    pub src_namespace: String,
    pub src_pod: String,
    /// Labels joined by `,` ("k8s:app=web,...").
    pub src_labels: String,
    pub src_identity: u32,
    pub src_ip: String,
    pub src_port: u32,
    pub dst_namespace: String,
    pub dst_pod: String,
    pub dst_labels: String,
    pub dst_identity: u32,
    pub dst_ip: String,
    pub dst_port: u32,
    /// `TCP`, `UDP`, `ICMPv4`, `ICMPv6`, `SCTP` or empty.
    pub protocol: String,
    /// Set TCP flags joined by `,` ("SYN,ACK").
    pub tcp_flags: String,
    /// 1 reply, 0 request, 2 unknown.
    pub is_reply: u8,
    /// The deciding policy, `Kind/[namespace/]name`, or empty.
    pub policy: String,
    /// L7 record type (`http`, `dns`, `kafka`) when present, else empty.
    pub l7_type: String,
    /// When the agent that produced the flow started (Unix ns), 0 when the flow has no position.
    pub agent_start: u64,
    /// The flow's index in that agent's stream (see `vigil.Position`), 0 when absent.
    pub stream_index: u64,
}

/// One row of `lost_events`: events that never became stored flows, with where they were lost.
#[derive(Debug, Clone, PartialEq, Serialize, ::clickhouse::Row)]
pub struct LostRow {
    /// When the loss was reported or detected (Unix seconds).
    pub time: u32,
    /// Nanoseconds within `time`.
    pub nanos: u32,
    pub node: String,
    /// `PERF_EVENT_RING_BUFFER`, `OBSERVER_EVENTS_QUEUE`, `HUBBLE_RING_BUFFER`, ...
    pub source: String,
    /// How many events.
    pub count: u64,
    /// What happened, in words.
    pub detail: String,
}

/// One row of `policy_hits`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ::clickhouse::Row)]
pub struct HitRow {
    /// The flow's uuid.
    pub uuid: String,
    /// The hit's position within the flow (part of the de-duplication key).
    pub idx: u32,
    pub time: u32,
    pub nanos: u32,
    pub node: String,
    pub policy_kind: String,
    pub policy_namespace: String,
    pub policy_name: String,
    pub tier: String,
    /// The rule's index, -1 for end-of-tier, default allow and Hubble-list hits.
    pub rule_index: i64,
    /// `allow`, `deny`, `pass`, `log` or empty.
    pub action: String,
    /// `enforced` or `pending` (staged).
    pub enforcement: String,
    /// `rule`, `end-of-tier`, `default-allow`, or `hubble` for a Hubble-list hit.
    pub hit_kind: String,
    pub direction: String,
    pub src_namespace: String,
    pub src_pod: String,
    pub dst_namespace: String,
    pub dst_pod: String,
    pub dst_port: u32,
    pub protocol: String,
    pub verdict: String,
}

/// The rows of one flow.
pub fn to_rows(flow: &Flow) -> (FlowRow, Vec<HitRow>) {
    let (time, nanos) = flow
        .time
        .as_ref()
        .map_or((0, 0), |t| (t.seconds.max(0) as u32, t.nanos.max(0) as u32));
    // Borrowed, not cloned: only the fields a row keeps are copied.
    let (no_endpoint, no_ip) = (Endpoint::default(), Ip::default());
    let src = flow.source.as_ref().unwrap_or(&no_endpoint);
    let dst = flow.destination.as_ref().unwrap_or(&no_endpoint);
    let ip = flow.ip.as_ref().unwrap_or(&no_ip);
    let (protocol, src_port, dst_port, tcp_flags) =
        match flow.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
            Some(Protocol::Tcp(t)) => (
                "TCP",
                t.source_port,
                t.destination_port,
                t.flags
                    .as_ref()
                    .map(|f| f.names().join(","))
                    .unwrap_or_default(),
            ),
            Some(Protocol::Udp(u)) => ("UDP", u.source_port, u.destination_port, String::new()),
            Some(Protocol::Sctp(s)) => ("SCTP", s.source_port, s.destination_port, String::new()),
            Some(Protocol::IcmPv4(_)) => ("ICMPv4", 0, 0, String::new()),
            Some(Protocol::IcmPv6(_)) => ("ICMPv6", 0, 0, String::new()),
            None => ("", 0, 0, String::new()),
        };
    let verdict = Verdict::try_from(flow.verdict)
        .map(|v| v.as_str_name())
        .unwrap_or("VERDICT_UNKNOWN")
        .to_owned();
    let drop_reason = if flow.drop_reason_desc == 0 {
        String::new()
    } else {
        vigil_proto::flow::DropReason::try_from(flow.drop_reason_desc)
            .map(|d| d.as_str_name().to_owned())
            .unwrap_or_else(|_| flow.drop_reason_desc.to_string())
    };
    let direction = TrafficDirection::try_from(flow.traffic_direction)
        .map(|d| d.as_str_name())
        .unwrap_or("TRAFFIC_DIRECTION_UNKNOWN")
        .to_owned();
    let uuid = if flow.uuid.is_empty() {
        // Agents always set one; a foreign flow without one gets a key from what identifies it.
        format!(
            "{}:{time}.{nanos:09}:{}:{src_port}:{}:{dst_port}",
            flow.node_name, ip.source, ip.destination
        )
    } else {
        flow.uuid.clone()
    };
    let trace = flow.vigil_trace.as_ref();
    let policy = trace
        .and_then(|t| t.decided_by.as_ref())
        .filter(|h| !h.name.is_empty())
        .map(|h| {
            if h.namespace.is_empty() {
                format!("{}/{}", h.kind, h.name)
            } else {
                format!("{}/{}/{}", h.kind, h.namespace, h.name)
            }
        })
        .unwrap_or_default();
    let l7_type = flow
        .l7
        .as_ref()
        .and_then(|l| l.record.as_ref())
        .map(|r| match r {
            vigil_proto::flow::layer7::Record::Dns(_) => "dns",
            vigil_proto::flow::layer7::Record::Http(_) => "http",
            vigil_proto::flow::layer7::Record::Kafka(_) => "kafka",
        })
        .unwrap_or_default()
        .to_owned();
    let row = FlowRow {
        uuid: uuid.clone(),
        time,
        nanos,
        node: flow.node_name.clone(),
        verdict: verdict.clone(),
        drop_reason,
        direction: direction.clone(),
        src_namespace: src.namespace.clone(),
        src_pod: src.pod_name.clone(),
        src_labels: src.labels.join(","),
        src_identity: src.identity,
        src_ip: ip.source.clone(),
        src_port,
        dst_namespace: dst.namespace.clone(),
        dst_pod: dst.pod_name.clone(),
        dst_labels: dst.labels.join(","),
        dst_identity: dst.identity,
        dst_ip: ip.destination.clone(),
        dst_port,
        protocol: protocol.to_owned(),
        tcp_flags,
        is_reply: match flow.is_reply {
            Some(true) => 1,
            Some(false) => 0,
            None => 2,
        },
        policy,
        l7_type,
        agent_start: flow.vigil_position.map_or(0, |p| p.agent_start_ns),
        stream_index: flow.vigil_position.map_or(0, |p| p.index),
    };
    let hit = |idx: usize, kind: &str, namespace: &str, name: &str| HitRow {
        uuid: uuid.clone(),
        idx: idx as u32,
        time,
        nanos,
        node: flow.node_name.clone(),
        policy_kind: kind.to_owned(),
        policy_namespace: namespace.to_owned(),
        policy_name: name.to_owned(),
        tier: String::new(),
        rule_index: -1,
        action: String::new(),
        enforcement: "enforced".into(),
        hit_kind: "hubble".into(),
        direction: direction.clone(),
        src_namespace: src.namespace.clone(),
        src_pod: src.pod_name.clone(),
        dst_namespace: dst.namespace.clone(),
        dst_pod: dst.pod_name.clone(),
        dst_port,
        protocol: protocol.to_owned(),
        verdict: verdict.clone(),
    };
    let mut hits = Vec::new();
    if let Some(trace) = trace {
        let all = trace.enforced.iter().map(|h| (h, false));
        let all = all.chain(trace.pending.iter().map(|h| (h, true)));
        for (i, (h, pending)) in all.enumerate() {
            hits.push(trace_hit(
                hit(i, &h.kind, &h.namespace, &h.name),
                h,
                pending,
            ));
        }
    } else {
        let lists: [(&[Policy], &str); 4] = [
            (&flow.egress_allowed_by, "allow"),
            (&flow.ingress_allowed_by, "allow"),
            (&flow.egress_denied_by, "deny"),
            (&flow.ingress_denied_by, "deny"),
        ];
        for (policies, action) in lists {
            for p in policies {
                let mut row = hit(hits.len(), &p.kind, &p.namespace, &p.name);
                row.action = action.into();
                hits.push(row);
            }
        }
    }
    (row, hits)
}

fn trace_hit(mut row: HitRow, h: &PolicyHit, pending: bool) -> HitRow {
    row.tier = h.tier.clone();
    row.rule_index = h.rule_index.map_or(-1, i64::from);
    row.action = match Action::try_from(h.action) {
        Ok(Action::Allow) => "allow",
        Ok(Action::Deny) => "deny",
        Ok(Action::Pass) => "pass",
        Ok(Action::Log) => "log",
        _ => "",
    }
    .into();
    row.enforcement = if pending || h.pending {
        "pending"
    } else {
        "enforced"
    }
    .into();
    row.hit_kind = match HitKind::try_from(h.hit_kind) {
        Ok(HitKind::EndOfTier) => "end-of-tier",
        Ok(HitKind::DefaultAllow) => "default-allow",
        _ => "rule",
    }
    .into();
    row
}

#[cfg(test)]
mod tests;
