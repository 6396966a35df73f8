//! Renders `GetFlowsResponse`s: `compact` (Hubble's one line plus the deciding policy), `dict`,
//! `table` and `json` (proto3 JSON mapping, one object per line, as `hubble observe -o json`).
//! Times are printed in UTC. Pure: returns strings, the caller writes them.

#[cfg(test)]
mod tests;

use vigil_proto::{
    flow::{self, Flow, LostEvent, layer4::Protocol},
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
    vigil,
};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per flow, as `hubble observe`, plus the deciding policy.
    Compact,
    /// Proto3 JSON, one object per line.
    Json,
    /// Aligned columns.
    Table,
    /// One `KEY: value` block per flow.
    Dict,
}

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// The format.
    pub format: Format,
    /// ANSI colours.
    pub color: bool,
    /// Also print Hubble's allowed/denied-by lists and every hit of the trace.
    pub policy_names: bool,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Jan  2 12:51:20.053` (UTC).
pub fn compact_time(t: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = t else {
        return "N/A".into();
    };
    let rem = t.seconds.rem_euclid(86_400);
    let (_, month, day) = vigil_proto::time::civil_from_days(t.seconds.div_euclid(86_400));
    format!(
        "{} {day:>2} {:02}:{:02}:{:02}.{:03}",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        t.nanos / 1_000_000
    )
}

fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn ports(f: &Flow) -> (Option<u32>, Option<u32>) {
    match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(Protocol::Tcp(t)) => (Some(t.source_port), Some(t.destination_port)),
        Some(Protocol::Udp(u)) => (Some(u.source_port), Some(u.destination_port)),
        Some(Protocol::Sctp(s)) => (Some(s.source_port), Some(s.destination_port)),
        _ => (None, None),
    }
}

fn endpoint(ep: Option<&flow::Endpoint>, ip: &str, port: Option<u32>, color: bool) -> String {
    let ep = ep.cloned().unwrap_or_default();
    let name = if ep.pod_name.is_empty() {
        ip.to_owned()
    } else {
        format!("{}/{}", ep.namespace, ep.pod_name)
    };
    let name = match port {
        Some(p) if ip.contains(':') && ep.pod_name.is_empty() => format!("[{name}]:{p}"),
        Some(p) => format!("{name}:{p}"),
        None => name,
    };
    let id = match ep.labels.iter().find_map(|l| l.strip_prefix("reserved:")) {
        Some(reserved) if ep.pod_name.is_empty() => format!("({reserved})"),
        _ => format!("(ID:{})", ep.identity),
    };
    format!("{} {id}", paint(color, "36", &name))
}

fn observation_point(f: &Flow) -> &'static str {
    match flow::TraceObservationPoint::try_from(f.trace_observation_point) {
        Ok(flow::TraceObservationPoint::ToEndpoint) => "to-endpoint",
        Ok(flow::TraceObservationPoint::FromEndpoint) => "from-endpoint",
        Ok(p) => match p {
            flow::TraceObservationPoint::ToStack => "to-stack",
            flow::TraceObservationPoint::FromNetwork => "from-network",
            flow::TraceObservationPoint::ToNetwork => "to-network",
            _ => "unknown",
        },
        Err(_) => "unknown",
    }
}

fn verdict(f: &Flow, color: bool) -> String {
    let v = flow::Verdict::try_from(f.verdict).unwrap_or(flow::Verdict::Unknown);
    let code = match v {
        flow::Verdict::Forwarded => "32",
        flow::Verdict::Dropped | flow::Verdict::Error => "31",
        _ => "33",
    };
    let mut text = v.as_str_name().to_owned();
    if v == flow::Verdict::Dropped && f.drop_reason_desc != 0 {
        let reason = flow::DropReason::try_from(f.drop_reason_desc)
            .map(|r| r.as_str_name().to_owned())
            .unwrap_or_else(|_| f.drop_reason_desc.to_string());
        text = format!("{text} ({reason})");
    }
    paint(color, code, &text)
}

/// `TCP Flags: SYN, ACK`, `UDP`, `ICMPv4 type 8 code 0`, ...
pub fn summary(f: &Flow) -> String {
    match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(Protocol::Tcp(t)) => {
            let names = t.flags.unwrap_or_default().names();
            format!("TCP Flags: {}", names.join(", "))
        }
        Some(Protocol::Udp(_)) => "UDP".into(),
        Some(Protocol::Sctp(_)) => "SCTP".into(),
        Some(Protocol::IcmPv4(i)) => format!("ICMPv4 type {} code {}", i.r#type, i.code),
        Some(Protocol::IcmPv6(i)) => format!("ICMPv6 type {} code {}", i.r#type, i.code),
        None => format!(
            "IP protocol {}",
            f.vigil_trace.as_ref().map_or(0, |t| t.ip_protocol)
        ),
    }
}

/// A short name of a hit: `GlobalNetworkPolicy/deny-ssh rule 0 (tier default)`.
pub fn hit_name(h: &vigil::PolicyHit) -> String {
    match vigil::HitKind::try_from(h.hit_kind).unwrap_or(vigil::HitKind::Rule) {
        vigil::HitKind::DefaultAllow => "default-allow".into(),
        kind => {
            let ns = if h.namespace.is_empty() {
                String::new()
            } else {
                format!("{}/", h.namespace)
            };
            let what = match (kind, h.rule_index) {
                (vigil::HitKind::EndOfTier, _) => "end-of-tier".to_owned(),
                (_, Some(i)) => format!("rule {i}"),
                _ => String::new(),
            };
            let pending = if h.pending { " pending" } else { "" };
            format!(
                "{}/{ns}{} {what} (tier {}){pending}",
                h.kind, h.name, h.tier
            )
        }
    }
}

fn hubble_policies(list: &[flow::Policy]) -> String {
    list.iter()
        .map(|p| {
            if p.namespace.is_empty() {
                format!("{}/{}", p.kind, p.name)
            } else {
                format!("{}/{}/{}", p.kind, p.namespace, p.name)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The policy part of a line: the decisive hit, the pending one, and with `policy_names` the
/// Hubble lists and every hit.
pub fn policy(f: &Flow, policy_names: bool) -> String {
    let mut parts = Vec::new();
    if let Some(t) = &f.vigil_trace {
        if let Some(d) = &t.decided_by {
            parts.push(format!("by {}", hit_name(d)));
        }
        if let Some(p) = &t.pending_decided_by {
            let action = vigil::Action::try_from(t.pending_action)
                .map(|a| a.as_str_name().trim_start_matches("ACTION_").to_owned())
                .unwrap_or_default();
            parts.push(format!("pending {action} by {}", hit_name(p)));
        }
    }
    if policy_names {
        for (label, list) in [
            ("ingress-allowed-by", &f.ingress_allowed_by),
            ("ingress-denied-by", &f.ingress_denied_by),
            ("egress-allowed-by", &f.egress_allowed_by),
            ("egress-denied-by", &f.egress_denied_by),
        ] {
            if !list.is_empty() {
                parts.push(format!("{label}: {}", hubble_policies(list)));
            }
        }
        if let Some(t) = &f.vigil_trace {
            let hits: Vec<String> = t.enforced.iter().chain(&t.pending).map(hit_name).collect();
            if !hits.is_empty() {
                parts.push(format!("trace: {}", hits.join("; ")));
            }
        }
    }
    parts.join(" ")
}

/// Source, arrow, destination: replies are printed with the initiator on the left.
fn sides(f: &Flow, color: bool) -> (String, &'static str, String) {
    let ip = f.ip.clone().unwrap_or_default();
    let (sp, dp) = ports(f);
    let src = endpoint(f.source.as_ref(), &ip.source, sp, color);
    let dst = endpoint(f.destination.as_ref(), &ip.destination, dp, color);
    match f.is_reply {
        Some(true) => (dst, "<-", src),
        Some(false) => (src, "->", dst),
        None => (src, "<>", dst),
    }
}

fn lost(l: &LostEvent) -> String {
    let source = flow::LostEventSource::try_from(l.source)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN_LOST_EVENT_SOURCE");
    let cpu = l.cpu.map(|c| format!(" CPU({c})")).unwrap_or_default();
    format!("EVENTS LOST: {source}{cpu} - {}", l.num_events_lost)
}

/// One response, rendered (without a trailing newline).
pub fn render(r: &GetFlowsResponse, style: Style) -> String {
    if style.format == Format::Json {
        return vigil_proto::json::flows_response_to_json(r)
            .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()));
    }
    let f = match &r.response_types {
        Some(ResponseTypes::Flow(f)) => f,
        Some(ResponseTypes::LostEvents(l)) => {
            return paint(
                style.color,
                "33",
                &format!("{}: {}", compact_time(r.time.as_ref()), lost(l)),
            );
        }
        Some(ResponseTypes::NodeStatus(n)) => {
            return format!(
                "{}: node status: {} {}",
                compact_time(r.time.as_ref()),
                n.node_names.join(", "),
                n.message
            );
        }
        None => return String::new(),
    };
    let time = compact_time(f.time.as_ref());
    let (left, arrow, right) = sides(f, style.color);
    let policy = policy(f, style.policy_names);
    match style.format {
        Format::Compact => format!(
            "{time}: {left} {arrow} {right} {} {} ({}){}",
            observation_point(f),
            verdict(f, style.color),
            summary(f),
            if policy.is_empty() {
                String::new()
            } else {
                format!(" {policy}")
            }
        ),
        Format::Table => format!(
            "{time:<20} {:<20} {left:<45} {arrow} {right:<45} {:<14} {:<24} {:<22} {policy}",
            f.node_name,
            observation_point(f),
            verdict(f, style.color),
            summary(f)
        ),
        Format::Dict | Format::Json => format!(
            "  TIMESTAMP: {time}\n     SOURCE: {left}\nDESTINATION: {right}\n       TYPE: {}\n    VERDICT: {}\n    SUMMARY: {}\n       NODE: {}\n     POLICY: {policy}\n------------",
            observation_point(f),
            verdict(f, style.color),
            summary(f),
            f.node_name,
        ),
    }
}

/// The header line of `-o table`.
pub fn table_header() -> String {
    format!(
        "{:<20} {:<20} {:<45}    {:<45} {:<14} {:<24} {:<22} POLICY",
        "TIMESTAMP", "NODE", "SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"
    )
}
