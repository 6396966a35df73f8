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
    let bad = || {
        BadValue(format!(
            "{text:?}: expected a duration like 5m or 1h30m, or an RFC 3339 time"
        ))
    };
    if text.contains('-') && text.contains(':') {
        return parse_rfc3339(text).ok_or_else(bad);
    }
    let mut total: i128 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: i128 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return Err(bad()),
        };
        total += n * unit;
        rest = &rest[unit_len..];
    }
    Ok(now_unix_ns - total)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_rfc3339(t: &str) -> Option<i128> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &t[19..];
    let mut nanos: i128 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let len = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        if len == 0 || len > 9 {
            return None;
        }
        nanos = frac[..len].parse::<i128>().ok()? * 10i128.pow(9 - len as u32);
        rest = &frac[len..];
    }
    let offset_s: i64 = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset_s;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}
