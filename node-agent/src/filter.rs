//! Hubble flow filters: `GetFlowsRequest.whitelist` / `blacklist` compiled once per request and
//! matched against flows.
//!
//! Semantics (hubble-api.md): whitelist entries are ORed, the fields inside one filter are ANDed,
//! the values inside one field are ORed; the result is whitelist minus blacklist. Pod filters are
//! `namespace/name-prefix` (`namespace/` for a whole namespace; no slash: a name prefix in any
//! namespace), IP filters an address or CIDR, label filters selectors (`app=web`, `k8s:app=web`,
//! `app!=web`, `app in (a,b)`, `app notin (a)`, `app`, `!app`, comma = AND). Filters on what Vigil
//! never produces (FQDNs, services, workloads, L7) match nothing. `vigil_policy` (900001) matches
//! flows whose enforced or pending decision, or Hubble allowed/denied lists, name the policy as
//! `name`, `namespace/name` or `Kind/[namespace/]name`. Pure: no I/O.

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use ipnet::IpNet;
use vigil_proto::flow::{self, Flow, FlowFilter};

/// A filter the request got wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("flow filter field {field}: {message} in {value:?}")]
pub struct FilterError {
    /// The FlowFilter field.
    pub field: &'static str,
    /// The offending value.
    pub value: String,
    /// What was expected.
    pub message: String,
}

fn err(field: &'static str, value: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        field,
        value: value.to_owned(),
        message: message.into(),
    }
}

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Exists(LabelKey),
    NotExists(LabelKey),
    In(LabelKey, Vec<String>),
    NotIn(LabelKey, Vec<String>),
}

/// A label key with an optional source (`k8s:app`); no source matches every source.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LabelKey {
    source: Option<String>,
    key: String,
}

impl LabelKey {
    fn parse(text: &str) -> LabelKey {
        let text = text.trim();
        match text.split_once(':') {
            Some(("any", key)) => LabelKey {
                source: None,
                key: key.to_owned(),
            },
            Some((source, key)) => LabelKey {
                source: Some(source.to_owned()),
                key: key.to_owned(),
            },
            None => LabelKey {
                source: None,
                key: text.to_owned(),
            },
        }
    }

    /// The value of this key among `labels` (`source:key=value` strings), `Some("")` for a label
    /// without value.
    fn value_in<'a>(&self, labels: &'a [String]) -> Option<&'a str> {
        labels.iter().find_map(|label| {
            let (source, rest) = match label.split_once(':') {
                Some((s, r)) if !s.contains('=') => (Some(s), r),
                _ => (None, label.as_str()),
            };
            let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
            let source_ok = match (&self.source, source) {
                (None, _) => true,
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
            };
            (source_ok && key == self.key).then_some(value)
        })
    }
}

/// A label selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses `app=web,k8s:role in (a, b),!debug`.
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0i32, 0usize);
        for (i, c) in text.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&text[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&text[start..]);
        let mut requirements = Vec::new();
        for part in parts.iter().map(|p| p.trim()) {
            if part.is_empty() {
                return Err("empty requirement".into());
            }
            requirements.push(Self::requirement(part)?);
        }
        Ok(LabelSelector(requirements))
    }

    fn requirement(part: &str) -> Result<Requirement, String> {
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| {
                    format!("expected a parenthesized value list after the operator, got {rest:?}")
                })?;
            Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
        };
        if let Some(key) = part.strip_prefix('!') {
            return Ok(Requirement::NotExists(LabelKey::parse(key)));
        }
        if let Some((key, rest)) = part.split_once(" notin ") {
            return Ok(Requirement::NotIn(LabelKey::parse(key), set(rest)?));
        }
        if let Some((key, rest)) = part.split_once(" in ") {
            return Ok(Requirement::In(LabelKey::parse(key), set(rest)?));
        }
        if let Some((key, value)) = part.split_once("!=") {
            return Ok(Requirement::NotIn(
                LabelKey::parse(key),
                vec![value.trim().to_owned()],
            ));
        }
        if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
            return Ok(Requirement::In(
                LabelKey::parse(key),
                vec![value.trim().to_owned()],
            ));
        }
        if part.contains(char::is_whitespace) {
            return Err(format!("cannot parse requirement {part:?}"));
        }
        Ok(Requirement::Exists(LabelKey::parse(part)))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &[String]) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => k.value_in(labels).is_some(),
            Requirement::NotExists(k) => k.value_in(labels).is_none(),
            Requirement::In(k, values) => k
                .value_in(labels)
                .is_some_and(|v| values.iter().any(|w| w == v)),
            Requirement::NotIn(k, values) => k
                .value_in(labels)
                .is_none_or(|v| values.iter().all(|w| w != v)),
        })
    }
}

/// `namespace/name-prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodFilter {
    namespace: Option<String>,
    prefix: String,
}

impl PodFilter {
    fn parse(text: &str) -> PodFilter {
        match text.split_once('/') {
            Some((ns, prefix)) => PodFilter {
                namespace: Some(ns.to_owned()),
                prefix: prefix.to_owned(),
            },
            None => PodFilter {
                namespace: None,
                prefix: text.to_owned(),
            },
        }
    }

    fn matches(&self, ep: &flow::Endpoint) -> bool {
        if ep.pod_name.is_empty() {
            return false;
        }
        self.namespace
            .as_deref()
            .is_none_or(|ns| ns == ep.namespace)
            && ep.pod_name.starts_with(&self.prefix)
    }
}

/// One side (source or destination) of a filter.
#[derive(Debug, Clone, Default)]
struct Side {
    ips: Vec<IpNet>,
    pods: Vec<PodFilter>,
    labels: Vec<LabelSelector>,
    ports: Vec<u16>,
    identities: Vec<u32>,
}

impl Side {
    fn matches(&self, ep: Option<&flow::Endpoint>, ip: Option<&str>, port: Option<u32>) -> bool {
        let empty = flow::Endpoint::default();
        let ep = ep.unwrap_or(&empty);
        if !self.ips.is_empty() {
            let Some(ip) = ip.and_then(|s| s.parse::<IpAddr>().ok()) else {
                return false;
            };
            if !self.ips.iter().any(|n| n.contains(&ip)) {
                return false;
            }
        }
        (self.pods.is_empty() || self.pods.iter().any(|p| p.matches(ep)))
            && (self.labels.is_empty() || self.labels.iter().any(|s| s.matches(&ep.labels)))
            && (self.ports.is_empty()
                || port.is_some_and(|p| self.ports.iter().any(|&q| u32::from(q) == p)))
            && (self.identities.is_empty() || self.identities.contains(&ep.identity))
    }
}

/// One compiled `FlowFilter`.
#[derive(Debug, Clone, Default)]
struct Compiled {
    never: bool,
    uuid: Vec<String>,
    source: Side,
    destination: Side,
    traffic_direction: Vec<i32>,
    verdict: Vec<i32>,
    drop_reason: Vec<i32>,
    event_type: Vec<flow::EventTypeFilter>,
    protocol: Vec<String>,
    reply: Vec<bool>,
    tcp_flags: Vec<flow::TcpFlags>,
    node_name: Vec<String>,
    ip_version: Vec<i32>,
    policy: Vec<String>,
}

fn ips(field: &'static str, values: &[String]) -> Result<Vec<IpNet>, FilterError> {
    values
        .iter()
        .map(|v| {
            v.parse::<IpNet>()
                .or_else(|_| v.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| err(field, v, "expected an IP address or CIDR"))
        })
        .collect()
}

fn ports(field: &'static str, values: &[String]) -> Result<Vec<u16>, FilterError> {
    values
        .iter()
        .map(|v| {
            v.parse::<u16>()
                .map_err(|_| err(field, v, "expected a port number 0-65535"))
        })
        .collect()
}

fn labels(field: &'static str, values: &[String]) -> Result<Vec<LabelSelector>, FilterError> {
    values
        .iter()
        .map(|v| LabelSelector::parse(v).map_err(|m| err(field, v, m)))
        .collect()
}

const PROTOCOLS: [&str; 6] = ["tcp", "udp", "sctp", "icmp", "icmpv4", "icmpv6"];
const L7_PROTOCOLS: [&str; 3] = ["http", "dns", "kafka"];

impl Compiled {
    fn new(f: &FlowFilter) -> Result<Compiled, FilterError> {
        let protocol = f
            .protocol
            .iter()
            .map(|p| {
                let p = p.to_ascii_lowercase();
                if PROTOCOLS.contains(&p.as_str()) || L7_PROTOCOLS.contains(&p.as_str()) {
                    Ok(p)
                } else {
                    Err(err(
                        "protocol",
                        &p,
                        "expected tcp, udp, sctp, icmp, icmpv4, icmpv6, http, dns or kafka",
                    ))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Compiled {
            never: !f.source_fqdn.is_empty()
                || !f.destination_fqdn.is_empty()
                || !f.source_service.is_empty()
                || !f.destination_service.is_empty()
                || !f.source_workload.is_empty()
                || !f.destination_workload.is_empty()
                || !f.http_status_code.is_empty()
                || !f.http_method.is_empty()
                || !f.http_path.is_empty()
                || !f.http_url.is_empty()
                || !f.dns_query.is_empty(),
            uuid: f.uuid.clone(),
            source: Side {
                ips: ips("source_ip", &f.source_ip)?,
                pods: f.source_pod.iter().map(|p| PodFilter::parse(p)).collect(),
                labels: labels("source_label", &f.source_label)?,
                ports: ports("source_port", &f.source_port)?,
                identities: f.source_identity.clone(),
            },
            destination: Side {
                ips: ips("destination_ip", &f.destination_ip)?,
                pods: f
                    .destination_pod
                    .iter()
                    .map(|p| PodFilter::parse(p))
                    .collect(),
                labels: labels("destination_label", &f.destination_label)?,
                ports: ports("destination_port", &f.destination_port)?,
                identities: f.destination_identity.clone(),
            },
            traffic_direction: f.traffic_direction.clone(),
            verdict: f.verdict.clone(),
            drop_reason: f.drop_reason_desc.clone(),
            event_type: f.event_type.clone(),
            protocol,
            reply: f.reply.clone(),
            tcp_flags: f.tcp_flags.clone(),
            node_name: f.node_name.clone(),
            ip_version: f.ip_version.clone(),
            policy: f.vigil_policy.clone(),
        })
    }

    fn matches(&self, f: &Flow) -> bool {
        use flow::layer4::Protocol;
        if self.never {
            return false;
        }
        let l4 = f.l4.as_ref().and_then(|l| l.protocol.as_ref());
        let (sport, dport) = match l4 {
            Some(Protocol::Tcp(t)) => (Some(t.source_port), Some(t.destination_port)),
            Some(Protocol::Udp(u)) => (Some(u.source_port), Some(u.destination_port)),
            Some(Protocol::Sctp(s)) => (Some(s.source_port), Some(s.destination_port)),
            _ => (None, None),
        };
        let ip = f.ip.as_ref();
        let any = |v: &[i32], x: i32| v.is_empty() || v.contains(&x);
        (self.uuid.is_empty() || self.uuid.contains(&f.uuid))
            && self
                .source
                .matches(f.source.as_ref(), ip.map(|i| i.source.as_str()), sport)
            && self.destination.matches(
                f.destination.as_ref(),
                ip.map(|i| i.destination.as_str()),
                dport,
            )
            && any(&self.traffic_direction, f.traffic_direction)
            && any(&self.verdict, f.verdict)
            && any(&self.drop_reason, f.drop_reason_desc)
            && any(&self.ip_version, ip.map_or(0, |i| i.ip_version))
            && (self.event_type.is_empty()
                || f.event_type.as_ref().is_some_and(|e| {
                    self.event_type.iter().any(|t| {
                        t.r#type == e.r#type && (!t.match_sub_type || t.sub_type == e.sub_type)
                    })
                }))
            && (self.protocol.is_empty()
                || self.protocol.iter().any(|p| {
                    matches!(
                        (p.as_str(), l4),
                        ("tcp", Some(Protocol::Tcp(_)))
                            | ("udp", Some(Protocol::Udp(_)))
                            | ("sctp", Some(Protocol::Sctp(_)))
                            | ("icmp" | "icmpv4", Some(Protocol::IcmPv4(_)))
                            | ("icmp" | "icmpv6", Some(Protocol::IcmPv6(_)))
                    )
                }))
            && (self.reply.is_empty() || f.is_reply.is_some_and(|r| self.reply.contains(&r)))
            && (self.tcp_flags.is_empty()
                || matches!(l4, Some(Protocol::Tcp(t)) if t.flags.as_ref().is_some_and(|have| self.tcp_flags.iter().any(|want| flags_contain(have, want)))))
            && (self.node_name.is_empty()
                || self.node_name.iter().any(|n| node_matches(n, &f.node_name)))
            && (self.policy.is_empty() || self.policy.iter().any(|p| names_policy(f, p)))
    }
}

fn flags_contain(have: &flow::TcpFlags, want: &flow::TcpFlags) -> bool {
    let h = [
        have.fin, have.syn, have.rst, have.psh, have.ack, have.urg, have.ece, have.cwr, have.ns,
    ];
    let w = [
        want.fin, want.syn, want.rst, want.psh, want.ack, want.urg, want.ece, want.cwr, want.ns,
    ];
    h.iter().zip(w).all(|(h, w)| !w || *h)
}

/// Hubble node-name patterns: an optional `cluster/` prefix (ignored: one cluster) and `*`
/// wildcards.
fn node_matches(pattern: &str, node: &str) -> bool {
    let pattern = pattern.rsplit_once('/').map_or(pattern, |(_, p)| p);
    glob(pattern.as_bytes(), node.as_bytes())
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s
            .split_first()
            .is_some_and(|(d, srest)| c == d && glob(rest, srest)),
    }
}

fn policy_names(kind: &str, namespace: &str, name: &str, want: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let ns_name = if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    };
    want == name || want == ns_name || want == format!("{kind}/{ns_name}")
}

fn names_policy(f: &Flow, want: &str) -> bool {
    let hubble = f
        .ingress_allowed_by
        .iter()
        .chain(&f.ingress_denied_by)
        .chain(&f.egress_allowed_by)
        .chain(&f.egress_denied_by)
        .any(|p| policy_names(&p.kind, &p.namespace, &p.name, want));
    hubble
        || f.vigil_trace.as_ref().is_some_and(|t| {
            t.decided_by
                .iter()
                .chain(&t.pending_decided_by)
                .any(|h| policy_names(&h.kind, &h.namespace, &h.name, want))
        })
}

/// A request's whitelist and blacklist, compiled.
#[derive(Debug, Clone, Default)]
pub struct Query {
    whitelist: Vec<Compiled>,
    blacklist: Vec<Compiled>,
}

impl Query {
    /// Compiles the filters of a request.
    pub fn new(whitelist: &[FlowFilter], blacklist: &[FlowFilter]) -> Result<Query, FilterError> {
        Ok(Query {
            whitelist: whitelist
                .iter()
                .map(Compiled::new)
                .collect::<Result<_, _>>()?,
            blacklist: blacklist
                .iter()
                .map(Compiled::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether `flow` passes: some whitelist filter (or no whitelist) and no blacklist filter.
    pub fn matches(&self, flow: &Flow) -> bool {
        (self.whitelist.is_empty() || self.whitelist.iter().any(|c| c.matches(flow)))
            && !self.blacklist.iter().any(|c| c.matches(flow))
    }

    /// Whether a flow kept encoded in the ring passes; decoded only when there are filters.
    pub fn matches_stored(&self, flow: &crate::ring::StoredFlow) -> bool {
        if self.whitelist.is_empty() && self.blacklist.is_empty() {
            return true;
        }
        flow.decode().is_some_and(|f| self.matches(&f))
    }
}
