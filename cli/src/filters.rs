//! Turns the command line's filter flags into Hubble `FlowFilter`s, the way `hubble observe`
//! does: flags naming one side (`--from-pod`, `--to-ip`, ...) fill that side; flags naming either
//! side (`--pod`, `--ip`, `--label`, `--port`, `--identity`, `-n`) produce two filters, one with
//! the value as source and one as destination, ORed; the others (`--verdict`, `--protocol`,
//! `--drop-reason-desc`, `--type`, `--tcp-flags`, `--uuid`, ...) go into both.
//! `--not` sends the next filter flag to the blacklist instead. Also parses `--since`/`--until`.
//! Pure: no I/O.

#[cfg(test)]
mod tests;

use vigil_proto::flow::{self, FlowFilter};

/// One filter flag occurrence, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// The flag's long name without dashes (`pod`, `from-ip`, `namespace`, ...).
    pub flag: &'static str,
    /// Its value.
    pub value: String,
    /// Whether a `--not` preceded it.
    pub negated: bool,
}

/// Filter flags understood, by long name.
pub const FLAGS: [&str; 25] = [
    "pod",
    "from-pod",
    "to-pod",
    "namespace",
    "ip",
    "from-ip",
    "to-ip",
    "label",
    "from-label",
    "to-label",
    "port",
    "from-port",
    "to-port",
    "verdict",
    "protocol",
    "traffic-direction",
    "policy",
    "node-name",
    "drop-reason-desc",
    "type",
    "identity",
    "from-identity",
    "to-identity",
    "tcp-flags",
    "uuid",
];

#[derive(Debug, Default)]
struct Pair {
    left: FlowFilter,
    right: FlowFilter,
    either: bool,
    used: bool,
}

impl Pair {
    fn into_filters(self) -> Vec<FlowFilter> {
        match (self.used, self.either) {
            (false, _) => Vec::new(),
            (true, false) => vec![self.left],
            (true, true) => vec![self.left, self.right],
        }
    }
}

fn pod_value(value: &str, namespace: Option<&str>) -> String {
    match (value.contains('/'), namespace) {
        (true, _) => value.to_owned(),
        (false, Some(ns)) => format!("{ns}/{value}"),
        (false, None) => value.to_owned(),
    }
}

/// A flag value the server would not understand.
#[derive(Debug, PartialEq, Eq)]
pub struct BadValue(pub String);

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadValue {}

/// Builds (whitelist, blacklist) from the occurrences, in order.
pub fn build(occurrences: &[Occurrence]) -> Result<(Vec<FlowFilter>, Vec<FlowFilter>), BadValue> {
    // The namespace of pod flags without one; a namespace alone is an either-side pod filter.
    let namespace = occurrences
        .iter()
        .rev()
        .find(|o| o.flag == "namespace" && !o.negated)
        .map(|o| o.value.clone());
    let has_pod = occurrences
        .iter()
        .any(|o| matches!(o.flag, "pod" | "from-pod" | "to-pod"));
    let (mut white, mut black) = (Pair::default(), Pair::default());
    for o in occurrences {
        if o.flag == "namespace" && has_pod && !o.negated {
            // Supplies the namespace of the pod flags.
            continue;
        }
        let pair = if o.negated { &mut black } else { &mut white };
        pair.used = true;
        let v = o.value.clone();
        let ns = namespace.as_deref();
        let (l, r) = (&mut pair.left, &mut pair.right);
        match o.flag {
            "pod" => {
                let p = pod_value(&v, ns);
                l.source_pod.push(p.clone());
                r.destination_pod.push(p);
                pair.either = true;
            }
            "namespace" => {
                let p = format!("{v}/");
                l.source_pod.push(p.clone());
                r.destination_pod.push(p);
                pair.either = true;
            }
            "from-pod" => {
                let p = pod_value(&v, ns);
                l.source_pod.push(p.clone());
                r.source_pod.push(p);
            }
            "to-pod" => {
                let p = pod_value(&v, ns);
                l.destination_pod.push(p.clone());
                r.destination_pod.push(p);
            }
            "ip" => {
                l.source_ip.push(v.clone());
                r.destination_ip.push(v);
                pair.either = true;
            }
            "from-ip" => {
                l.source_ip.push(v.clone());
                r.source_ip.push(v);
            }
            "to-ip" => {
                l.destination_ip.push(v.clone());
                r.destination_ip.push(v);
            }
            "label" => {
                l.source_label.push(v.clone());
                r.destination_label.push(v);
                pair.either = true;
            }
            "from-label" => {
                l.source_label.push(v.clone());
                r.source_label.push(v);
            }
            "to-label" => {
                l.destination_label.push(v.clone());
                r.destination_label.push(v);
            }
            "port" => {
                l.source_port.push(v.clone());
                r.destination_port.push(v);
                pair.either = true;
            }
            "from-port" => {
                l.source_port.push(v.clone());
                r.source_port.push(v);
            }
            "to-port" => {
                l.destination_port.push(v.clone());
                r.destination_port.push(v);
            }
            "verdict" => {
                let verdict = flow::Verdict::from_str_name(&v.to_ascii_uppercase())
                    .ok_or_else(|| BadValue(format!("--verdict {v}: expected FORWARDED, DROPPED, AUDIT, ERROR, REDIRECTED, TRACED or TRANSLATED")))?
                    as i32;
                l.verdict.push(verdict);
                r.verdict.push(verdict);
            }
            "traffic-direction" => {
                let d = match v.to_ascii_lowercase().as_str() {
                    "ingress" => flow::TrafficDirection::Ingress,
                    "egress" => flow::TrafficDirection::Egress,
                    _ => {
                        return Err(BadValue(format!(
                            "--traffic-direction {v}: expected ingress or egress"
                        )));
                    }
                } as i32;
                l.traffic_direction.push(d);
                r.traffic_direction.push(d);
            }
            "protocol" => {
                l.protocol.push(v.clone());
                r.protocol.push(v);
            }
            "policy" => {
                l.vigil_policy.push(v.clone());
                r.vigil_policy.push(v);
            }
            "node-name" => {
                l.node_name.push(v.clone());
                r.node_name.push(v);
            }
            "drop-reason-desc" => {
                let reason =
                    flow::DropReason::from_str_name(&v.to_ascii_uppercase()).ok_or_else(|| {
                        BadValue(format!(
                            "--drop-reason-desc {v}: not a Hubble drop reason \
                             (e.g. POLICY_DENIED, POLICY_DENY, CT_NO_MAP_FOUND)"
                        ))
                    })? as i32;
                l.drop_reason_desc.push(reason);
                r.drop_reason_desc.push(reason);
            }
            "type" => {
                let t = event_type(&v)?;
                l.event_type.push(t);
                r.event_type.push(t);
            }
            "identity" => {
                let id = identity(&v, "identity")?;
                l.source_identity.push(id);
                r.destination_identity.push(id);
                pair.either = true;
            }
            "from-identity" => {
                let id = identity(&v, "from-identity")?;
                l.source_identity.push(id);
                r.source_identity.push(id);
            }
            "to-identity" => {
                let id = identity(&v, "to-identity")?;
                l.destination_identity.push(id);
                r.destination_identity.push(id);
            }
            "tcp-flags" => {
                let f = tcp_flags(&v)?;
                l.tcp_flags.push(f);
                r.tcp_flags.push(f);
            }
            "uuid" => {
                l.uuid.push(v.clone());
                r.uuid.push(v);
            }
            other => return Err(BadValue(format!("unknown filter flag --{other}"))),
        }
    }
    Ok((white.into_filters(), black.into_filters()))
}

fn identity(v: &str, flag: &str) -> Result<u32, BadValue> {
    v.parse().map_err(|_| {
        BadValue(format!(
            "--{flag} {v}: expected a numeric security identity"
        ))
    })
}

/// Hubble's event type names (`hubble observe -t`), with their monitor message types.
const EVENT_TYPES: [(&str, i32); 9] = [
    ("drop", 1),
    ("debug", 2),
    ("capture", 3),
    ("trace", 4),
    ("policy-verdict", 5),
    ("recorder", 6),
    ("trace-sock", 7),
    ("l7", 129),
    ("agent", 130),
];

/// Hubble's trace sub-type names (`-t trace:to-endpoint`).
const TRACE_SUB_TYPES: [(&str, i32); 12] = [
    ("to-endpoint", 0),
    ("to-proxy", 1),
    ("to-host", 2),
    ("to-stack", 3),
    ("to-overlay", 4),
    ("from-endpoint", 5),
    ("from-proxy", 6),
    ("from-host", 7),
    ("from-stack", 8),
    ("from-overlay", 9),
    ("from-network", 10),
    ("to-network", 11),
];

/// `-t TYPE[:SUBTYPE]`: a name from [`EVENT_TYPES`] or a number; the sub-type a trace
/// sub-type name or a number.
fn event_type(v: &str) -> Result<flow::EventTypeFilter, BadValue> {
    let (name, sub) = match v.split_once(':') {
        Some((n, s)) => (n, Some(s)),
        None => (v, None),
    };
    let lookup = |table: &[(&str, i32)], text: &str| {
        table
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(text))
            .map(|(_, t)| *t)
            .or_else(|| text.parse().ok())
    };
    let names =
        |table: &[(&str, i32)]| table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let r#type = lookup(&EVENT_TYPES, name).ok_or_else(|| {
        BadValue(format!(
            "--type {v}: expected TYPE[:SUBTYPE], TYPE one of {}",
            names(&EVENT_TYPES)
        ))
    })?;
    let sub_type = match sub {
        None => None,
        Some(s) => Some(lookup(&TRACE_SUB_TYPES, s).ok_or_else(|| {
            BadValue(format!(
                "--type {v}: unknown sub-type {s:?} (trace sub-types: {})",
                names(&TRACE_SUB_TYPES)
            ))
        })?),
    };
    Ok(flow::EventTypeFilter {
        r#type,
        match_sub_type: sub_type.is_some(),
        sub_type: sub_type.unwrap_or(0),
    })
}

/// `--tcp-flags syn,ack`: flows with every named flag set.
fn tcp_flags(v: &str) -> Result<flow::TcpFlags, BadValue> {
    let mut f = flow::TcpFlags::default();
    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let bit = match name.to_ascii_uppercase().as_str() {
            "SYN" => &mut f.syn,
            "FIN" => &mut f.fin,
            "RST" => &mut f.rst,
            "PSH" => &mut f.psh,
            "ACK" => &mut f.ack,
            "URG" => &mut f.urg,
            "ECE" => &mut f.ece,
            "CWR" => &mut f.cwr,
            "NS" => &mut f.ns,
            _ => {
                return Err(BadValue(format!(
                    "--tcp-flags {v}: unknown flag {name:?} (SYN, FIN, RST, PSH, ACK, URG, ECE, CWR, NS)"
                )));
            }
        };
        *bit = true;
    }
    if f == flow::TcpFlags::default() {
        return Err(BadValue(format!(
            "--tcp-flags {v:?}: name at least one flag, e.g. syn or syn,ack"
        )));
    }
    Ok(f)
}

/// Parses `--since`/`--until`: a duration ago (`90s`, `5m`, `1h30m`, `2d`, `500ms`) or an RFC 3339
/// time (`2025-01-02T12:51:20Z`, `2025-01-02T12:51:20.053+01:00`). Returns Unix nanoseconds.
pub fn parse_time(text: &str, now_unix_ns: i128) -> Result<i128, BadValue> {
    vigil_proto::time::parse_time(text, now_unix_ns).ok_or_else(|| {
        BadValue(format!(
            "{text:?}: expected a duration like 5m or 1h30m, or an RFC 3339 time"
        ))
    })
}
