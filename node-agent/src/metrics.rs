//! The agent's Prometheus metrics: counted where flows enter the observer, rendered by hand in
//! the text exposition format (no metrics crate), served on `GET /metrics` by a tiny axum server.
//!
//! Label sets are bounded: verdicts, directions, drop reasons and lost-event sources are closed
//! enums; policies are capped at [`MAX_POLICIES`] distinct names, the rest count as `other`.

#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, fmt::Write as _, sync::Mutex};

use vigil_proto::flow::{self, Flow};

use crate::datapath::Stats;

/// Distinct policy label values kept; further policies are counted under `other`.
pub const MAX_POLICIES: usize = 100;

#[derive(Debug, Default)]
struct Inner {
    flows: BTreeMap<(&'static str, &'static str), u64>,
    drops: BTreeMap<&'static str, u64>,
    /// (policy label, view, count), in first-seen order.
    policies: Vec<(String, &'static str, u64)>,
    /// (hash of kind, namespace, name, view) -> key in `policies`, so that the hot path hashes
    /// instead of formatting a label per flow.
    policy_keys: std::collections::HashMap<u64, usize>,
    lost: BTreeMap<&'static str, u64>,
}

/// Values owned elsewhere, sampled when rendering.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// The generation in force.
    pub generation: u32,
    /// The datapath's counters.
    pub datapath: Stats,
    /// Flows held by the ring.
    pub ring_flows: u64,
    /// The ring's capacity.
    pub ring_capacity: u64,
    /// Flows seen since start.
    pub seen_flows: u64,
    /// Events waiting in the observer queue.
    pub queue_len: u64,
    /// The datapath maps' entries and capacities.
    pub maps: Vec<crate::datapath::MapUse>,
}

/// What the counters need of one flow.
#[derive(Debug, Clone, Copy)]
pub struct FlowSummary<'a> {
    pub verdict: i32,
    pub direction: i32,
    pub drop_reason: i32,
    pub decided_by: Option<&'a vigil_proto::vigil::PolicyHit>,
    pub pending_decided_by: Option<&'a vigil_proto::vigil::PolicyHit>,
}

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn verdict_name(v: i32) -> &'static str {
    match flow::Verdict::try_from(v).unwrap_or(flow::Verdict::Unknown) {
        flow::Verdict::Forwarded => "FORWARDED",
        flow::Verdict::Dropped => "DROPPED",
        flow::Verdict::Audit => "AUDIT",
        flow::Verdict::Error => "ERROR",
        _ => "VERDICT_UNKNOWN",
    }
}

fn direction_name(d: i32) -> &'static str {
    match flow::TrafficDirection::try_from(d).unwrap_or(flow::TrafficDirection::Unknown) {
        flow::TrafficDirection::Ingress => "INGRESS",
        flow::TrafficDirection::Egress => "EGRESS",
        flow::TrafficDirection::Unknown => "TRAFFIC_DIRECTION_UNKNOWN",
    }
}

fn drop_reason_name(r: i32) -> &'static str {
    match r {
        133 => "POLICY_DENIED",
        181 => "POLICY_DENY",
        _ => "OTHER",
    }
}

/// The name of a lost-event source, as in the proto enum.
pub fn lost_source_name(source: flow::LostEventSource) -> &'static str {
    source.as_str_name()
}

impl Metrics {
    /// Counts a batch of flows entering the ring.
    pub fn record_flows<'a>(&self, flows: impl IntoIterator<Item = &'a Flow>) {
        self.record(flows.into_iter().map(|f| {
            let trace = f.vigil_trace.as_ref();
            FlowSummary {
                verdict: f.verdict,
                direction: f.traffic_direction,
                drop_reason: f.drop_reason_desc,
                decided_by: trace.and_then(|t| t.decided_by.as_ref()),
                pending_decided_by: trace.and_then(|t| t.pending_decided_by.as_ref()),
            }
        }));
    }

    /// Counts a batch of flows entering the ring, from what the metrics need of each.
    pub fn record<'a>(&self, flows: impl IntoIterator<Item = FlowSummary<'a>>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for f in flows {
            *inner
                .flows
                .entry((verdict_name(f.verdict), direction_name(f.direction)))
                .or_default() += 1;
            if f.verdict == flow::Verdict::Dropped as i32 {
                *inner
                    .drops
                    .entry(drop_reason_name(f.drop_reason))
                    .or_default() += 1;
            }
            for (hit, view) in [
                (f.decided_by, "enforced"),
                (f.pending_decided_by, "pending"),
            ] {
                let Some(hit) = hit else { continue };
                let hash = {
                    use std::hash::{Hash as _, Hasher as _};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    (&hit.kind, &hit.namespace, &hit.name, view).hash(&mut h);
                    h.finish()
                };
                if let Some(&i) = inner.policy_keys.get(&hash) {
                    inner.policies[i].2 += 1;
                    continue;
                }
                let name = if hit.kind.is_empty() {
                    "default-allow".to_owned()
                } else if hit.namespace.is_empty() {
                    format!("{}/{}", hit.kind, hit.name)
                } else {
                    format!("{}/{}/{}", hit.kind, hit.namespace, hit.name)
                };
                let distinct = inner.policies.iter().filter(|p| p.0 != "other").count();
                let label = if distinct < MAX_POLICIES {
                    name
                } else {
                    "other".to_owned()
                };
                let slot = match inner
                    .policies
                    .iter()
                    .position(|p| p.0 == label && p.1 == view)
                {
                    Some(slot) => slot,
                    None => {
                        inner.policies.push((label, view, 0));
                        inner.policies.len() - 1
                    }
                };
                inner.policy_keys.insert(hash, slot);
                inner.policies[slot].2 += 1;
            }
        }
    }

    /// Counts lost events by source.
    pub fn record_lost(&self, source: flow::LostEventSource, n: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner.lost.entry(lost_source_name(source)).or_default() += n;
    }

    /// The text exposition of every metric.
    pub fn render(&self, g: &Gauges) -> String {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::with_capacity(4096);
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        header(
            &mut out,
            "vigil_flows_total",
            "counter",
            "Flows by verdict and traffic direction.",
        );
        for ((verdict, direction), n) in &inner.flows {
            let _ = writeln!(
                out,
                "vigil_flows_total{{verdict=\"{verdict}\",direction=\"{direction}\"}} {n}"
            );
        }
        header(
            &mut out,
            "vigil_drops_total",
            "counter",
            "Dropped flows by drop reason.",
        );
        for (reason, n) in &inner.drops {
            let _ = writeln!(out, "vigil_drops_total{{reason=\"{reason}\"}} {n}");
        }
        header(
            &mut out,
            "vigil_policy_verdicts_total",
            "counter",
            "Flows decided per policy (kind/[namespace/]name, at most 100 then \"other\") and view (enforced or pending).",
        );
        let mut policies: Vec<_> = inner.policies.iter().collect();
        policies.sort();
        for (policy, view, n) in policies {
            let _ = writeln!(
                out,
                "vigil_policy_verdicts_total{{policy=\"{}\",view=\"{view}\"}} {n}",
                escape(policy)
            );
        }
        header(
            &mut out,
            "vigil_lost_events_total",
            "counter",
            "Events lost by source (Hubble's LostEventSource).",
        );
        for source in [
            "PERF_EVENT_RING_BUFFER",
            "OBSERVER_EVENTS_QUEUE",
            "HUBBLE_RING_BUFFER",
        ] {
            let n = inner.lost.get(source).copied().unwrap_or(0);
            let _ = writeln!(out, "vigil_lost_events_total{{source=\"{source}\"}} {n}");
        }
        let d = &g.datapath;
        for (name, kind, help, value) in [
            (
                "vigil_datapath_events_total",
                "counter",
                "Events the datapath wrote to the ring buffer.",
                d.events,
            ),
            (
                "vigil_datapath_events_lost_total",
                "counter",
                "Events lost because the ring buffer was full.",
                d.events_lost,
            ),
            (
                "vigil_datapath_packets_total",
                "counter",
                "Packets seen on endpoint interfaces.",
                d.packets,
            ),
            (
                "vigil_datapath_drops_total",
                "counter",
                "Packets dropped by policy.",
                d.drops,
            ),
            (
                "vigil_datapath_ct_new_total",
                "counter",
                "Connections created in conntrack.",
                d.ct_new,
            ),
            (
                "vigil_policy_generation",
                "gauge",
                "The policy generation in force.",
                u64::from(g.generation),
            ),
            (
                "vigil_flow_ring_flows",
                "gauge",
                "Flows held by the observer ring.",
                g.ring_flows,
            ),
            (
                "vigil_flow_ring_capacity",
                "gauge",
                "Capacity of the observer ring (--max-flows).",
                g.ring_capacity,
            ),
            (
                "vigil_flows_seen_total",
                "counter",
                "Flows the observer has seen since start.",
                g.seen_flows,
            ),
            (
                "vigil_observer_queue_events",
                "gauge",
                "Events waiting in the observer queue.",
                g.queue_len,
            ),
        ] {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        header(
            &mut out,
            "vigil_map_entries",
            "gauge",
            "Entries of each datapath map (endpoints, ipcache and policy: the generation in force; ct: connections, recounted every 1-10 s).",
        );
        for m in &g.maps {
            let _ = writeln!(out, "vigil_map_entries{{map=\"{}\"}} {}", m.map, m.entries);
        }
        header(
            &mut out,
            "vigil_map_capacity",
            "gauge",
            "Capacity (max_entries) of each datapath map.",
        );
        for m in &g.maps {
            let _ = writeln!(
                out,
                "vigil_map_capacity{{map=\"{}\"}} {}",
                m.map, m.capacity
            );
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` (and nothing else) on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    render: impl Fn() -> String + Clone + Send + Sync + 'static,
) -> anyhow::Result<()> {
    use axum::{http::header, routing::get};
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move {
                let _span = tracing::debug_span!("http", path = "/metrics").entered();
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    render(),
                )
            }
        }),
    );
    axum::serve(listener, app).await?;
    Ok(())
}
