//! Turns the command line's filter flags into Hubble `FlowFilter`s, the way `hubble observe`
//! does: flags naming one side (`--from-pod`, `--to-ip`, ...) fill that side; flags naming either
//! side (`--pod`, `--ip`, `--label`, `--port`, `-n`) produce two filters, one with the value as
//! source and one as destination, ORed; the others (`--verdict`, `--protocol`, ...) go into both.
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
pub const FLAGS: [&str; 18] = [
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
            other => return Err(BadValue(format!("unknown filter flag --{other}"))),
        }
    }
    Ok((white.into_filters(), black.into_filters()))
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
