//! Flows as the dashboard sees them: the UI flow object of docs/ui-api.md, built from the
//! store's rows (history) or from a live `flow.Flow` through the same rows
//! (`vigil_storage::to_rows`), so history and the live stream send exactly the same shape.
//! Also workload naming, RFC 3339 times and Hubble's summary text. Pure: no I/O.

#[cfg(test)]
mod tests;

use serde::Serialize;
use serde_json::Value;
use vigil_storage::{FlowRow, HitRow};

/// One side of a flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UiEndpoint {
    pub namespace: String,
    pub pod: String,
    pub workload: String,
    pub labels: Vec<String>,
    pub identity: u32,
    pub ip: String,
    pub port: u32,
}

/// One policy hit of a flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UiHit {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub tier: String,
    /// `None` for end-of-tier, default allow and Hubble-list hits.
    pub rule_index: Option<i64>,
    pub action: String,
    pub enforcement: String,
    pub hit_kind: String,
    pub direction: String,
}

/// The UI flow object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UiFlow {
    pub uuid: String,
    pub time: String,
    pub node: String,
    pub verdict: String,
    pub drop_reason: String,
    pub direction: String,
    pub is_reply: Option<bool>,
    pub protocol: String,
    pub tcp_flags: String,
    pub src: UiEndpoint,
    pub dst: UiEndpoint,
    pub policy: String,
    pub hits: Vec<UiHit>,
    pub summary: String,
}

/// `2026-11-26T11:22:05.123456789Z`.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    vigil_proto::time::rfc3339(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

/// Unix nanoseconds as RFC 3339.
pub use vigil_proto::time::rfc3339 as rfc3339_ns;

/// The labels a workload is named after, in order of preference.
const WORKLOAD_LABELS: [&str; 3] = ["app", "k8s-app", "app.kubernetes.io/name"];

/// Characters Kubernetes uses in generated name suffixes (no vowels, no 0/1/3).
fn generated(suffix: &str, lengths: std::ops::RangeInclusive<usize>) -> bool {
    lengths.contains(&suffix.len())
        && suffix
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
}

/// The workload a peer belongs to: its `app` / `k8s-app` / `app.kubernetes.io/name` label, else
/// the pod name without the suffixes controllers add (`web-7d4b9c8f6d-x2x9z` -> `web`,
/// `db-0` -> `db`, `frontend-1` -> `frontend`), else the IP.
pub fn workload(labels: &[String], pod: &str, ip: &str) -> String {
    for wanted in WORKLOAD_LABELS {
        for label in labels {
            // `k8s:app=web` or `app=web`.
            let label = label
                .split_once(':')
                .map_or(label.as_str(), |(source, rest)| {
                    if source.contains('=') {
                        label.as_str()
                    } else {
                        rest
                    }
                });
            if let Some((k, v)) = label.split_once('=')
                && k == wanted
                && !v.is_empty()
            {
                return v.to_owned();
            }
        }
    }
    if pod.is_empty() {
        return ip.to_owned();
    }
    let mut name = pod;
    // A ReplicaSet pod: NAME-HASH-XXXXX; a StatefulSet or numbered pod: NAME-N.
    if let Some((rest, last)) = name.rsplit_once('-') {
        if !rest.is_empty() && !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
            return rest.to_owned();
        }
        if !rest.is_empty() && generated(last, 5..=5) {
            name = rest;
            if let Some((base, hash)) = name.rsplit_once('-')
                && !base.is_empty()
                && generated(hash, 6..=10)
            {
                name = base;
            }
        }
    }
    name.to_owned()
}

/// Hubble's summary text for what the store keeps: `TCP Flags: SYN, ACK`, `UDP`, `ICMPv4`.
pub fn summary(protocol: &str, tcp_flags: &str) -> String {
    match protocol {
        "TCP" if !tcp_flags.is_empty() => format!("TCP Flags: {}", tcp_flags.replace(',', ", ")),
        "" => "unknown".into(),
        other => other.to_owned(),
    }
}

fn labels(joined: &str) -> Vec<String> {
    if joined.is_empty() {
        Vec::new()
    } else {
        joined.split(',').map(str::to_owned).collect()
    }
}

fn endpoint(
    namespace: &str,
    pod: &str,
    joined_labels: &str,
    identity: u32,
    ip: &str,
    port: u32,
) -> UiEndpoint {
    let labels = labels(joined_labels);
    UiEndpoint {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        workload: workload(&labels, pod, ip),
        labels,
        identity,
        ip: ip.to_owned(),
        port,
    }
}

/// The UI flow of a flow's rows.
pub fn ui_flow(f: &FlowRow, hits: &[HitRow]) -> UiFlow {
    UiFlow {
        uuid: f.uuid.clone(),
        time: rfc3339(i64::from(f.time), f.nanos),
        node: f.node.clone(),
        verdict: f.verdict.clone(),
        drop_reason: f.drop_reason.clone(),
        direction: f.direction.clone(),
        is_reply: match f.is_reply {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        },
        protocol: f.protocol.clone(),
        tcp_flags: f.tcp_flags.clone(),
        src: endpoint(
            &f.src_namespace,
            &f.src_pod,
            &f.src_labels,
            f.src_identity,
            &f.src_ip,
            f.src_port,
        ),
        dst: endpoint(
            &f.dst_namespace,
            &f.dst_pod,
            &f.dst_labels,
            f.dst_identity,
            &f.dst_ip,
            f.dst_port,
        ),
        policy: f.policy.clone(),
        hits: hits
            .iter()
            .map(|h| UiHit {
                kind: h.policy_kind.clone(),
                namespace: h.policy_namespace.clone(),
                name: h.policy_name.clone(),
                tier: h.tier.clone(),
                rule_index: (h.rule_index >= 0).then_some(h.rule_index),
                action: h.action.clone(),
                enforcement: h.enforcement.clone(),
                hit_kind: h.hit_kind.clone(),
                direction: h.direction.clone(),
            })
            .collect(),
        summary: summary(&f.protocol, &f.tcp_flags),
    }
}

/// A JSON cell as an integer (ClickHouse sends 64-bit integers as strings).
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A JSON cell as text.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The columns [`flow_row`] reads, in order.
pub const FLOW_COLUMNS: &str = "uuid, TIME, nanos, node, verdict, drop_reason, direction, \
    src_namespace, src_pod, src_labels, src_identity, src_ip, src_port, \
    dst_namespace, dst_pod, dst_labels, dst_identity, dst_ip, dst_port, \
    protocol, tcp_flags, is_reply, policy";

/// A `flows` row selected with [`FLOW_COLUMNS`].
pub fn flow_row(r: &[Value]) -> Result<FlowRow, String> {
    if r.len() < 23 {
        return Err(format!("a flows row has {} columns, expected 23", r.len()));
    }
    let n = |i: usize| int(&r[i]).ok_or_else(|| format!("column {i}: not a number: {}", r[i]));
    Ok(FlowRow {
        uuid: text(&r[0]),
        time: n(1)? as u32,
        nanos: n(2)? as u32,
        node: text(&r[3]),
        verdict: text(&r[4]),
        drop_reason: text(&r[5]),
        direction: text(&r[6]),
        src_namespace: text(&r[7]),
        src_pod: text(&r[8]),
        src_labels: text(&r[9]),
        src_identity: n(10)? as u32,
        src_ip: text(&r[11]),
        src_port: n(12)? as u32,
        dst_namespace: text(&r[13]),
        dst_pod: text(&r[14]),
        dst_labels: text(&r[15]),
        dst_identity: n(16)? as u32,
        dst_ip: text(&r[17]),
        dst_port: n(18)? as u32,
        protocol: text(&r[19]),
        tcp_flags: text(&r[20]),
        is_reply: n(21)? as u8,
        policy: text(&r[22]),
        // Columns the dashboard does not show are not read.
        ..FlowRow::default()
    })
}

/// The columns [`hit_row`] reads, in order.
pub const HIT_COLUMNS: &str = "uuid, idx, policy_kind, policy_namespace, policy_name, tier, \
    rule_index, action, enforcement, hit_kind, direction";

/// A `policy_hits` row selected with [`HIT_COLUMNS`].
pub fn hit_row(r: &[Value]) -> Result<HitRow, String> {
    if r.len() < 11 {
        return Err(format!(
            "a policy_hits row has {} columns, expected 11",
            r.len()
        ));
    }
    Ok(HitRow {
        uuid: text(&r[0]),
        idx: int(&r[1]).unwrap_or(0) as u32,
        policy_kind: text(&r[2]),
        policy_namespace: text(&r[3]),
        policy_name: text(&r[4]),
        tier: text(&r[5]),
        rule_index: int(&r[6]).unwrap_or(-1),
        action: text(&r[7]),
        enforcement: text(&r[8]),
        hit_kind: text(&r[9]),
        direction: text(&r[10]),
        // Columns the dashboard does not show are not read.
        ..HitRow::default()
    })
}

/// The kind of a peer on the service map.
pub fn peer_kind(namespace: &str, labels: &[String], identity: u32) -> &'static str {
    if identity == 1 || labels.iter().any(|l| l == "reserved:host") {
        "host"
    } else if namespace.is_empty() {
        "world"
    } else {
        "pod"
    }
}
