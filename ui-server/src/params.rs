//! Query parameters: the observe-like flow filter, time ranges, page size and cursor, buckets.
//!
//! Semantics (docs/ui-api.md): different parameters are ANDed, repeats of one parameter ORed.
//! `pod`, `namespace`, `ip` and `port` match either side; `from_pod` / `to_pod` one side. Pod
//! values are `namespace/name-prefix`, `namespace/` or a bare `name-prefix` (any namespace), as in
//! Hubble. `policy` matches flows *decided* by the policy, as `observe --policy` does: the
//! enforced deciding policy (the flow's `policy`), the pending (staged view's) deciding policy
//! (the last pending hit), or for flows without a Vigil trace a Hubble allowed/denied list entry;
//! written `name`, `Kind/name` or `namespace/name`, `Kind/namespace/name`. `q` is free text: every
//! whitespace-separated term must appear (ASCII case-insensitively) in a pod, namespace, IP or the
//! deciding policy.
//!
//! The same [`Filter`] becomes SQL (`sql`), a local predicate over a flow's rows
//! ([`Filter::matches`], used on the live stream so history and stream agree), and Hubble
//! `FlowFilter`s ([`Filter::to_hubble`], a superset sent to the relay to narrow at the source).
//! Pure: no I/O.

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use vigil_proto::flow::{FlowFilter, TrafficDirection, Verdict};
use vigil_storage::{FlowRow, HitRow};

use crate::error::ApiError;

/// The decoded query string, in order.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes `raw` (without the `?`); refuses parameters outside `allowed`.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (k, v) in &pairs {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter {k:?} (expected one of: {})",
                    allowed.join(", ")
                )));
            }
            if v.contains('\0') {
                return Err(ApiError::param(k, "NUL characters are not allowed"));
            }
        }
        Ok(Params(pairs))
    }

    /// Every non-empty value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, v)| k == key && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    }

    /// The last non-empty value of `key`.
    pub fn last<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        self.all(key).last()
    }
}

/// The flow filter parameters.
pub const FILTER_PARAMS: &[&str] = &[
    "namespace",
    "pod",
    "from_pod",
    "to_pod",
    "verdict",
    "policy",
    "port",
    "protocol",
    "ip",
    "node",
    "direction",
    "drop_reason",
    "q",
];

/// A pod reference: `namespace/name-prefix`, `namespace/` or a name prefix in any namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: Option<String>,
    pub prefix: String,
}

impl PodRef {
    fn parse(text: &str) -> PodRef {
        match text.split_once('/') {
            Some((ns, pod)) => PodRef {
                namespace: Some(ns.to_owned()),
                prefix: pod.to_owned(),
            },
            None => PodRef {
                namespace: None,
                prefix: text.to_owned(),
            },
        }
    }

    fn matches(&self, namespace: &str, pod: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace) && pod.starts_with(&self.prefix)
    }

    /// The Hubble pod filter value.
    fn hubble(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.prefix),
            None => self.prefix.clone(),
        }
    }
}

/// A policy reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRef {
    /// `name`: any kind, any namespace.
    Name(String),
    /// `A/name`: kind A (cluster-wide) or namespace A.
    Qualified(String, String),
    /// `Kind/namespace/name`.
    Full {
        kind: String,
        namespace: String,
        name: String,
    },
}

impl PolicyRef {
    /// Parses `name`, `A/name` or `Kind/namespace/name`.
    pub fn parse(text: &str) -> Result<PolicyRef, ApiError> {
        let parts: Vec<&str> = text.split('/').collect();
        let bad = || {
            ApiError::param(
                "policy",
                format!(
                    "{text:?}: expected name, Kind/name, namespace/name or Kind/namespace/name"
                ),
            )
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts[..] {
            [name] => Ok(PolicyRef::Name(name.to_owned())),
            [a, name] => Ok(PolicyRef::Qualified(a.to_owned(), name.to_owned())),
            [kind, namespace, name] => Ok(PolicyRef::Full {
                kind: kind.to_owned(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(bad()),
        }
    }

    /// Whether `Kind/name` or `Kind/namespace/name` (a flow's `policy`) is this policy.
    pub fn matches_id(&self, id: &str) -> bool {
        let parts: Vec<&str> = id.split('/').collect();
        match parts[..] {
            [kind, name] => self.matches(kind, "", name),
            [kind, namespace, name] => self.matches(kind, namespace, name),
            _ => false,
        }
    }

    /// Whether a hit names this policy.
    pub fn matches(&self, kind: &str, namespace: &str, name: &str) -> bool {
        match self {
            PolicyRef::Name(n) => n == name,
            PolicyRef::Qualified(a, n) => {
                n == name && ((a == kind && namespace.is_empty()) || a == namespace)
            }
            PolicyRef::Full {
                kind: k,
                namespace: ns,
                name: n,
            } => k == kind && ns == namespace && n == name,
        }
    }
}

/// The observe-like filter (see the module docs).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filter {
    pub namespaces: Vec<String>,
    pub pods: Vec<PodRef>,
    pub from_pods: Vec<PodRef>,
    pub to_pods: Vec<PodRef>,
    /// Canonical verdict names (`DROPPED`).
    pub verdicts: Vec<String>,
    pub policies: Vec<PolicyRef>,
    pub ports: Vec<u16>,
    /// Canonical protocol names as stored (`TCP`, `ICMPv4`).
    pub protocols: Vec<String>,
    /// Canonical addresses.
    pub ips: Vec<String>,
    pub nodes: Vec<String>,
    /// `INGRESS` / `EGRESS`.
    pub directions: Vec<String>,
    /// Drop reasons as stored (`POLICY_DENY`).
    pub drop_reasons: Vec<String>,
    /// `q`'s terms, ASCII-lowercased.
    pub terms: Vec<String>,
}

const VERDICTS: &[&str] = &[
    "FORWARDED",
    "DROPPED",
    "AUDIT",
    "ERROR",
    "REDIRECTED",
    "TRACED",
    "TRANSLATED",
];

impl Filter {
    /// Reads the filter parameters.
    pub fn parse(p: &Params) -> Result<Filter, ApiError> {
        let mut f = Filter {
            namespaces: p.all("namespace").map(str::to_owned).collect(),
            pods: p.all("pod").map(PodRef::parse).collect(),
            from_pods: p.all("from_pod").map(PodRef::parse).collect(),
            to_pods: p.all("to_pod").map(PodRef::parse).collect(),
            nodes: p.all("node").map(str::to_owned).collect(),
            ..Filter::default()
        };
        for v in p.all("verdict") {
            let up = v.to_ascii_uppercase();
            if !VERDICTS.contains(&up.as_str()) {
                return Err(ApiError::param(
                    "verdict",
                    format!("{v:?}: expected one of {}", VERDICTS.join(", ")),
                ));
            }
            f.verdicts.push(up);
        }
        for v in p.all("policy") {
            f.policies.push(PolicyRef::parse(v)?);
        }
        for v in p.all("port") {
            let port = v.parse::<u16>().map_err(|_| {
                ApiError::param("port", format!("{v:?}: expected a number 0-65535"))
            })?;
            f.ports.push(port);
        }
        for v in p.all("protocol") {
            let canonical = match v.to_ascii_lowercase().as_str() {
                "tcp" => "TCP",
                "udp" => "UDP",
                "sctp" => "SCTP",
                "icmp" | "icmpv4" => "ICMPv4",
                "icmpv6" => "ICMPv6",
                _ => {
                    return Err(ApiError::param(
                        "protocol",
                        format!("{v:?}: expected TCP, UDP, SCTP, ICMPv4 or ICMPv6"),
                    ));
                }
            };
            f.protocols.push(canonical.to_owned());
        }
        for v in p.all("ip") {
            let ip: IpAddr = v.parse().map_err(|_| {
                ApiError::param("ip", format!("{v:?}: expected an IPv4 or IPv6 address"))
            })?;
            f.ips.push(ip.to_string());
        }
        for v in p.all("direction") {
            let d = match v.to_ascii_uppercase().as_str() {
                "INGRESS" => "INGRESS",
                "EGRESS" => "EGRESS",
                _ => {
                    return Err(ApiError::param(
                        "direction",
                        format!("{v:?}: expected INGRESS or EGRESS"),
                    ));
                }
            };
            f.directions.push(d.to_owned());
        }
        for v in p.all("drop_reason") {
            let up = v.to_ascii_uppercase();
            // Any Hubble drop reason name (or number) as stored; not only those this proto knows.
            let name_like = up.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !name_like {
                return Err(ApiError::param(
                    "drop_reason",
                    format!("{v:?}: expected a Hubble drop reason name like POLICY_DENY"),
                ));
            }
            f.drop_reasons.push(up);
        }
        for v in p.all("q") {
            f.terms
                .extend(v.split_whitespace().map(|t| t.to_ascii_lowercase()));
        }
        Ok(f)
    }

    /// Whether a flow (its stored rows) passes the filter; the same answer as the SQL.
    pub fn matches(&self, f: &FlowRow, hits: &[HitRow]) -> bool {
        let any = |v: &[String], x: &str| v.is_empty() || v.iter().any(|y| y == x);
        let pods = |v: &[PodRef], ns: &str, pod: &str| {
            v.is_empty() || v.iter().any(|p| p.matches(ns, pod))
        };
        (self.namespaces.is_empty()
            || self
                .namespaces
                .iter()
                .any(|n| *n == f.src_namespace || *n == f.dst_namespace))
            && (self.pods.is_empty()
                || self.pods.iter().any(|p| {
                    p.matches(&f.src_namespace, &f.src_pod)
                        || p.matches(&f.dst_namespace, &f.dst_pod)
                }))
            && pods(&self.from_pods, &f.src_namespace, &f.src_pod)
            && pods(&self.to_pods, &f.dst_namespace, &f.dst_pod)
            && any(&self.verdicts, &f.verdict)
            && (self.policies.is_empty() || self.decided_by_policy(f, hits))
            && (self.ports.is_empty()
                || self
                    .ports
                    .iter()
                    .any(|p| u32::from(*p) == f.src_port || u32::from(*p) == f.dst_port))
            && any(&self.protocols, &f.protocol)
            && (self.ips.is_empty() || self.ips.iter().any(|i| *i == f.src_ip || *i == f.dst_ip))
            && any(&self.nodes, &f.node)
            && any(&self.directions, &f.direction)
            && any(&self.drop_reasons, &f.drop_reason)
            && self.terms.iter().all(|t| {
                [
                    &f.src_namespace,
                    &f.src_pod,
                    &f.dst_namespace,
                    &f.dst_pod,
                    &f.src_ip,
                    &f.dst_ip,
                    &f.policy,
                ]
                .iter()
                .any(|c| c.to_ascii_lowercase().contains(t.as_str()))
            })
    }

    /// Whether one of the filter's policies decided the flow (see the module docs).
    fn decided_by_policy(&self, f: &FlowRow, hits: &[HitRow]) -> bool {
        let last_pending = hits
            .iter()
            .filter(|h| h.enforcement == "pending")
            .max_by_key(|h| h.idx);
        self.policies.iter().any(|p| {
            let names = |h: &HitRow| p.matches(&h.policy_kind, &h.policy_namespace, &h.policy_name);
            p.matches_id(&f.policy)
                || last_pending.is_some_and(names)
                || hits.iter().any(|h| h.hit_kind == "hubble" && names(h))
        })
    }

    /// Hubble `FlowFilter`s (a whitelist) that pass at least every flow [`Filter::matches`]
    /// passes: what can be said exactly in Hubble's terms is said, the rest (free text, policy,
    /// the second either-side dimension) is left to the local match. Empty when nothing narrows.
    pub fn to_hubble(&self) -> Vec<FlowFilter> {
        let mut base = FlowFilter::default();
        for v in &self.verdicts {
            if let Some(v) = Verdict::from_str_name(v) {
                base.verdict.push(v as i32);
            }
        }
        base.protocol = self
            .protocols
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect();
        base.node_name = self.nodes.clone();
        for d in &self.directions {
            let d = if d == "INGRESS" {
                TrafficDirection::Ingress
            } else {
                TrafficDirection::Egress
            };
            base.traffic_direction.push(d as i32);
        }
        for r in &self.drop_reasons {
            if let Some(r) = vigil_proto::flow::DropReason::from_str_name(r) {
                base.drop_reason_desc.push(r as i32);
            }
        }
        base.source_pod = self.from_pods.iter().map(PodRef::hubble).collect();
        base.destination_pod = self.to_pods.iter().map(PodRef::hubble).collect();
        // One either-side dimension becomes a pair of filters (source, destination), ORed.
        // A side field that already holds from_pod/to_pod values is left alone: adding values
        // there would OR them, not AND.
        let pair = |src: &mut FlowFilter, dst: &mut FlowFilter| -> bool {
            if !self.pods.is_empty()
                && base.source_pod.is_empty()
                && base.destination_pod.is_empty()
            {
                src.source_pod = self.pods.iter().map(PodRef::hubble).collect();
                dst.destination_pod = src.source_pod.clone();
            } else if !self.ips.is_empty() {
                src.source_ip = self.ips.clone();
                dst.destination_ip = self.ips.clone();
            } else if !self.ports.is_empty() {
                src.source_port = self.ports.iter().map(u16::to_string).collect();
                dst.destination_port = src.source_port.clone();
            } else if !self.namespaces.is_empty()
                && base.source_pod.is_empty()
                && base.destination_pod.is_empty()
            {
                src.source_pod = self.namespaces.iter().map(|n| format!("{n}/")).collect();
                dst.destination_pod = src.source_pod.clone();
            } else {
                return false;
            }
            true
        };
        let (mut src, mut dst) = (base.clone(), base.clone());
        if pair(&mut src, &mut dst) {
            vec![src, dst]
        } else if base == FlowFilter::default() {
            Vec::new()
        } else {
            vec![base]
        }
    }
}

/// A time range in Unix nanoseconds, both ends inclusive.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub since: Option<i128>,
    pub until: Option<i128>,
}

impl TimeRange {
    /// Reads `since` and `until`; `default_since` (a duration back, like `1h`) when absent.
    pub fn parse(
        p: &Params,
        now: i128,
        default_since: Option<&str>,
    ) -> Result<TimeRange, ApiError> {
        let since = match p.last("since").or(default_since) {
            Some(t) => Some(parse_time(t, now).map_err(|m| ApiError::param("since", m))?),
            None => None,
        };
        let until = match p.last("until") {
            Some(t) => Some(parse_time(t, now).map_err(|m| ApiError::param("until", m))?),
            None => None,
        };
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            return Err(ApiError::BadRequest(
                "parameters since and until: since is after until".into(),
            ));
        }
        Ok(TimeRange { since, until })
    }

    /// The bounds in whole seconds for bucketing: `since` (or `now` - 1h) .. `until` (or now).
    pub fn seconds(&self, now: i128) -> (i64, i64) {
        let until = self.until.unwrap_or(now);
        let since = self.since.unwrap_or(until - 3_600_000_000_000);
        (
            since.div_euclid(1_000_000_000) as i64,
            until.div_euclid(1_000_000_000) as i64,
        )
    }
}

/// Parses a time parameter: RFC 3339 (`2026-11-26T11:22:05.123Z`, `+01:00` offsets) or a
/// duration back from `now` (`90s`, `15m`, `2h`, `7d`, `1h30m`, `500ms`). Unix nanoseconds.
pub fn parse_time(text: &str, now: i128) -> Result<i128, String> {
    vigil_proto::time::parse_time(text, now).ok_or_else(|| {
        format!("{text:?}: expected a duration like 15m, 2h, 7d or an RFC 3339 time")
    })
}

pub use vigil_proto::time::parse_duration_ns;

/// Where a page ended: the last flow's time, nanos and uuid (pages are newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub time: i64,
    pub nanos: i64,
    pub uuid: String,
}

impl Cursor {
    /// The opaque text form: `TIME.NANOS.HEX(UUID)`.
    pub fn encode(&self) -> String {
        let hex: String = self.uuid.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{}.{}.{hex}", self.time, self.nanos)
    }

    /// Reads [`Cursor::encode`]'s form.
    pub fn decode(text: &str) -> Result<Cursor, ApiError> {
        let bad = || {
            ApiError::param(
                "cursor",
                format!("{text:?} is not a cursor this server issued"),
            )
        };
        let mut parts = text.splitn(3, '.');
        let time: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let nanos: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let hex = parts.next().ok_or_else(bad)?;
        if hex.len() % 2 != 0 || !(0..1_000_000_000).contains(&nanos) || time < 0 {
            return Err(bad());
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)?;
        let uuid = String::from_utf8(bytes).map_err(|_| bad())?;
        Ok(Cursor { time, nanos, uuid })
    }
}

/// Page size bounds of `/api/v1/flows`.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// A history request: filter, range, page.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowQuery {
    pub filter: Filter,
    pub range: TimeRange,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

impl FlowQuery {
    /// The parameters `/api/v1/flows` accepts.
    pub fn allowed() -> Vec<&'static str> {
        let mut v = FILTER_PARAMS.to_vec();
        v.extend(["since", "until", "limit", "cursor"]);
        v
    }

    /// Reads a history request.
    pub fn parse(p: &Params, now: i128) -> Result<FlowQuery, ApiError> {
        let limit = match p.last("limit") {
            None => DEFAULT_LIMIT,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::param(
                        "limit",
                        format!("{v:?}: expected a number from 1 to {MAX_LIMIT}"),
                    ));
                }
            },
        };
        Ok(FlowQuery {
            filter: Filter::parse(p)?,
            range: TimeRange::parse(p, now, None)?,
            limit,
            cursor: p.last("cursor").map(Cursor::decode).transpose()?,
        })
    }
}

/// Buckets of a time series: at most this many.
pub const MAX_BUCKETS: i64 = 5_000;

/// Reads `bucket` (`60s`, `5m`); absent: a round size giving at most about 120 buckets over
/// `[since, until]` seconds, at least 10 s.
pub fn bucket_seconds(p: &Params, since: i64, until: i64) -> Result<i64, ApiError> {
    let span = (until - since).max(1);
    let secs = match p.last("bucket") {
        Some(v) => {
            let ns = parse_duration_ns(v).ok_or_else(|| {
                ApiError::param(
                    "bucket",
                    format!("{v:?}: expected a duration like 60s or 5m"),
                )
            })?;
            let s = (ns / 1_000_000_000) as i64;
            if s < 1 {
                return Err(ApiError::param("bucket", format!("{v:?}: at least 1s")));
            }
            s
        }
        None => {
            const NICE: [i64; 12] = [
                10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 21_600, 43_200, 86_400,
            ];
            NICE.iter()
                .copied()
                .find(|b| span / b <= 120)
                .unwrap_or(86_400)
        }
    };
    if span / secs > MAX_BUCKETS {
        return Err(ApiError::param(
            "bucket",
            format!(
                "{secs}s gives {} buckets over the range; at most {MAX_BUCKETS} (use a larger bucket)",
                span / secs
            ),
        ));
    }
    Ok(secs)
}
