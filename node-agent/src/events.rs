//! Reads verdict events from the datapath's ring buffer and turns them into flow records.
//!
//! The ring buffer is read through `AsyncFd`: await readable, drain every record, copy each out
//! before the next await, clear readiness. Each event is decoded against the ABI mirror and
//! enriched with the tables of the generation it was produced under (rule and trace ids are only
//! meaningful there), so a policy update never mislabels events in flight. The reader never
//! blocks on its consumers: records go to a bounded channel and every overflow is counted.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use aya::maps::{MapData, RingBuf};
use serde::Serialize;
use vigil_policy::{Cluster, Compiled, RuleRef};

use crate::abi::{self, Event};

/// How many generations' tables are kept for labelling late events.
const KEEP_GENERATIONS: usize = 16;

/// The compiled tables of recent generations, by generation number.
#[derive(Debug, Default)]
pub struct Generations {
    by_number: BTreeMap<u32, Arc<(Compiled, Cluster)>>,
}

impl Generations {
    /// Records the tables of `generation`, forgetting the oldest beyond the limit.
    pub fn insert(&mut self, generation: u32, compiled: Compiled, cluster: Cluster) {
        self.by_number
            .insert(generation, Arc::new((compiled, cluster)));
        while self.by_number.len() > KEEP_GENERATIONS {
            self.by_number.pop_first();
        }
    }

    /// The tables of `generation`, if still kept.
    pub fn get(&self, generation: u32) -> Option<Arc<(Compiled, Cluster)>> {
        self.by_number.get(&generation).cloned()
    }
}

/// Counters of the event pipeline, shared with the status writer.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records read from the ring buffer.
    pub read: AtomicU64,
    /// Records that did not decode (unknown type/version, short).
    pub decode_errors: AtomicU64,
    /// Flows with verdict FORWARDED.
    pub forwarded: AtomicU64,
    /// Flows with verdict DROPPED.
    pub dropped: AtomicU64,
    /// Flows with verdict AUDIT (allowed, the staged view would deny).
    pub audit: AtomicU64,
    /// Events whose generation's tables were no longer kept (labelled without policy names).
    pub unknown_generation: AtomicU64,
    /// Flow records dropped because the consumer queue was full.
    pub queue_dropped: AtomicU64,
}

/// Counter values at one moment, for the status file.
#[derive(Debug, Clone, Serialize)]
pub struct CounterSnapshot {
    pub read: u64,
    pub decode_errors: u64,
    pub forwarded: u64,
    pub dropped: u64,
    pub audit: u64,
    pub unknown_generation: u64,
    pub queue_dropped: u64,
}

impl Counters {
    /// Current values.
    pub fn snapshot(&self) -> CounterSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            read: l(&self.read),
            decode_errors: l(&self.decode_errors),
            forwarded: l(&self.forwarded),
            dropped: l(&self.dropped),
            audit: l(&self.audit),
            unknown_generation: l(&self.unknown_generation),
            queue_dropped: l(&self.queue_dropped),
        }
    }
}

/// One endpoint of a flow, as far as the agent can name it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FlowEndpoint {
    pub ip: IpAddr,
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
    /// `kind/namespace/name` (namespace omitted for cluster-wide kinds), or the special case.
    pub policy: String,
    pub tier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_index: Option<u32>,
    pub action: String,
    /// `enforced` or `pending` (staged).
    pub view: &'static str,
}

/// A verdict event, enriched: what the flow log writes and the observer pipeline will carry.
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
    /// What the staged view would do: ALLOW or DENY.
    pub staged_action: &'static str,
    /// Every hit on the way, both views (Log and Pass included).
    pub trace: Vec<PolicyHit>,
    pub packet_length: u32,
}

fn action_name(action: u8) -> &'static str {
    match action {
        abi::ACT_ALLOW => "ALLOW",
        abi::ACT_DENY => "DENY",
        3 => "REDIRECT",
        _ => "NONE",
    }
}

fn describe(rule: &RuleRef, view: &'static str) -> PolicyHit {
    PolicyHit {
        policy: rule.to_string(),
        tier: rule.tier.clone(),
        rule_index: rule.rule_index,
        action: rule.action.to_string(),
        view,
    }
}

fn addr(family: u8, bytes: &[u8; 16]) -> IpAddr {
    if family == 4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    }
}

fn flow_endpoint(
    cluster: Option<&Cluster>,
    compiled: Option<&Compiled>,
    ip: IpAddr,
    identity: u32,
    port: Option<u16>,
) -> FlowEndpoint {
    let endpoint = cluster.and_then(|c| c.endpoints.iter().find(|e| e.ips.contains(&ip)));
    let labels = compiled
        .and_then(|c| c.identities.iter().find(|i| i.id == identity))
        .map(|i| i.labels.clone())
        .unwrap_or_default();
    FlowEndpoint {
        ip,
        port,
        identity,
        namespace: endpoint.map(|e| e.namespace.clone()),
        pod: endpoint.map(|e| e.name.clone()),
        labels,
    }
}

fn tcp_flag_names(flags: u8) -> Vec<&'static str> {
    const NAMES: [(u8, &str); 8] = [
        (0x01, "FIN"),
        (0x02, "SYN"),
        (0x04, "RST"),
        (0x08, "PSH"),
        (0x10, "ACK"),
        (0x20, "URG"),
        (0x40, "ECE"),
        (0x80, "CWR"),
    ];
    NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect()
}

fn protocol_name(proto: u8) -> String {
    match proto {
        6 => "TCP".into(),
        17 => "UDP".into(),
        132 => "SCTP".into(),
        1 => "ICMPv4".into(),
        58 => "ICMPv6".into(),
        other => format!("proto-{other}"),
    }
}

/// Formats nanoseconds since the Unix epoch as RFC 3339 (UTC) with nanoseconds.
pub fn rfc3339(unix_ns: i128) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000) as i64;
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Turns one decoded event into a flow record using the tables of its generation.
pub fn enrich(
    event: &Event,
    node: &str,
    boot_offset_ns: i128,
    generations: &Generations,
    counters: &Counters,
) -> FlowRecord {
    let tables = generations.get(event.generation);
    if tables.is_none() {
        counters.unknown_generation.fetch_add(1, Ordering::Relaxed);
    }
    let compiled = tables.as_ref().map(|t| &t.0);
    let cluster = tables.as_ref().map(|t| &t.1);
    let src_ip = addr(event.family, &event.saddr);
    let dst_ip = addr(event.family, &event.daddr);
    let has_ports = matches!(event.proto, 6 | 17 | 132);
    let (sport, dport) = if has_ports {
        (Some(event.sport), Some(event.dport))
    } else {
        (None, None)
    };
    // The event's direction is the packet's, seen from the local endpoint: it sent an egress
    // packet and received an ingress one, replies included.
    let reply = event.ct_state == 3;
    let local_is_source = event.direction == 2;
    let (src_id, dst_id) = if local_is_source {
        (event.local_identity, event.peer_identity)
    } else {
        (event.peer_identity, event.local_identity)
    };
    let rule = |id: u32| compiled.and_then(|c| c.rules.get(id as usize));
    let decided_by = rule(event.rule_id).map(|r| describe(r, "enforced"));
    let staged_decided_by = rule(event.staged_rule_id).map(|r| describe(r, "pending"));
    let trace = compiled
        .and_then(|c| c.traces.get(event.trace_id as usize))
        .map(|t| {
            t.enforced
                .iter()
                .map(|h| describe(h, "enforced"))
                .chain(t.staged.iter().map(|h| describe(h, "pending")))
                .collect()
        })
        .unwrap_or_default();
    let verdict = match (event.verdict, event.action, event.staged_action) {
        (abi::VERDICT_DROPPED, _, _) => "DROPPED",
        (_, abi::ACT_ALLOW, abi::ACT_DENY) => "AUDIT",
        _ => "FORWARDED",
    };
    match verdict {
        "DROPPED" => counters.dropped.fetch_add(1, Ordering::Relaxed),
        "AUDIT" => counters.audit.fetch_add(1, Ordering::Relaxed),
        _ => counters.forwarded.fetch_add(1, Ordering::Relaxed),
    };
    FlowRecord {
        time: rfc3339(i128::from(event.ts_ns) + boot_offset_ns),
        node: node.to_owned(),
        verdict,
        drop_reason: match event.drop_reason {
            133 => Some("POLICY_DENIED"),
            181 => Some("POLICY_DENY"),
            _ => None,
        },
        traffic_direction: if event.direction == 1 {
            "INGRESS"
        } else {
            "EGRESS"
        },
        ct_state: match event.ct_state {
            1 => "new",
            2 => "established",
            _ => "reply",
        },
        is_reply: reply,
        protocol: protocol_name(event.proto),
        tcp_flags: if event.proto == 6 {
            tcp_flag_names(event.tcp_flags)
        } else {
            Vec::new()
        },
        icmp: (!has_ports && matches!(event.proto, 1 | 58)).then_some((event.sport, event.dport)),
        source: flow_endpoint(cluster, compiled, src_ip, src_id, sport),
        destination: flow_endpoint(cluster, compiled, dst_ip, dst_id, dport),
        generation: event.generation,
        decided_by,
        staged_decided_by,
        staged_action: action_name(event.staged_action),
        trace,
        packet_length: event.pkt_len,
    }
}

/// Reads the ring buffer until the process ends, sending each flow record to `sink` (bounded:
/// a full queue drops the record and counts it).
pub async fn read_ring(
    ring: RingBuf<MapData>,
    node: String,
    generations: Arc<RwLock<Generations>>,
    counters: Arc<Counters>,
    sink: tokio::sync::mpsc::Sender<FlowRecord>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let boot_offset_ns = crate::sys::boot_to_unix_offset_ns();
    let mut fd =
        crate::sys::async_ring(ring).context("register the ring buffer with the reactor")?;
    loop {
        let mut guard = fd
            .readable_mut()
            .await
            .context("wait for ring buffer events")?;
        let ring = guard.get_inner_mut();
        let mut batch = Vec::new();
        while let Some(item) = ring.next() {
            counters.read.fetch_add(1, Ordering::Relaxed);
            match Event::decode(&item) {
                Ok(event) => batch.push(event),
                Err(error) => {
                    counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "undecodable ring buffer record");
                }
            }
        }
        guard.clear_ready();
        let generations = generations.read().unwrap_or_else(|p| p.into_inner());
        for event in &batch {
            let record = enrich(event, &node, boot_offset_ns, &generations, &counters);
            tracing::debug!(verdict = record.verdict, src = %record.source.ip, dst = %record.destination.ip, "flow");
            if sink.try_send(record).is_err() {
                counters.queue_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
