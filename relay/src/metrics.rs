//! The relay's `/metrics` in the Prometheus text format: node health, the storage writer's
//! counters (stored, batches, insert errors, backpressure, lost events by cause, duplicates
//! skipped, queue depth) and retention. Rendering is pure; [`serve`] is the only I/O.

#[cfg(test)]
mod tests;

use std::{
    fmt::Write as _,
    sync::{Arc, atomic::Ordering},
};

use vigil_proto::relay::NodeState;

use crate::{nodes::Pool, writer::WriterStats};

/// What `/metrics` reports.
#[derive(Debug, Clone)]
pub struct Sources {
    pub pool: Arc<Pool>,
    /// The writer's counters and its queue bound, when a store is configured.
    pub writer: Option<(Arc<WriterStats>, usize)>,
    /// Flows removed by retention so far.
    pub retention_removed: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// One node's line: its name and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    pub name: String,
    pub state: NodeState,
}

/// Appends one metric family's header.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders the exposition text.
pub fn render(
    nodes: &[NodeLine],
    writer: Option<(&WriterStats, usize)>,
    removed: Option<u64>,
) -> String {
    let mut out = String::new();
    let name = "vigil_relay_node_connected";
    family(
        &mut out,
        name,
        "gauge",
        "1 when the relay is connected to the node's agent, else 0.",
    );
    for node in nodes {
        let _ = writeln!(
            out,
            "{name}{{node=\"{}\",state=\"{}\"}} {}",
            escape(&node.name),
            node.state.as_str_name(),
            u8::from(node.state == NodeState::NodeConnected)
        );
    }
    if let Some((w, capacity)) = writer {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let values: [(&str, &str, &str, u64); 9] = [
            (
                "vigil_relay_store_flows_total",
                "counter",
                "Flows written to the store.",
                load(&w.stored),
            ),
            (
                "vigil_relay_store_batches_total",
                "counter",
                "Insert batches the store took.",
                load(&w.batches),
            ),
            (
                "vigil_relay_store_insert_errors_total",
                "counter",
                "Failed inserts (each retried until it succeeds).",
                load(&w.insert_errors),
            ),
            (
                "vigil_relay_store_backpressure_waits_total",
                "counter",
                "Times a follower waited for room in the store queue.",
                load(&w.backpressure),
            ),
            (
                "vigil_relay_store_reported_lost_events_total",
                "counter",
                "Events the agents reported lost, recorded in lost_events.",
                load(&w.lost),
            ),
            (
                "vigil_relay_store_gap_events_total",
                "counter",
                "Events the agents' rings evicted before the writer read them, recorded in lost_events.",
                load(&w.gaps),
            ),
            (
                "vigil_relay_store_duplicates_skipped_total",
                "counter",
                "Replayed entries skipped because they were stored already.",
                load(&w.duplicates),
            ),
            (
                "vigil_relay_store_queue_depth",
                "gauge",
                "Flows and lost records waiting for the batcher.",
                load(&w.queued),
            ),
            (
                "vigil_relay_store_queue_capacity",
                "gauge",
                "The bound of the store queue.",
                capacity as u64,
            ),
        ];
        for (name, kind, help, value) in values {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
    }
    if let Some(removed) = removed {
        let name = "vigil_relay_retention_removed_flows_total";
        family(&mut out, name, "counter", "Flows removed by retention.");
        let _ = writeln!(out, "{name} {removed}");
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Sources {
    /// Renders the current values.
    pub fn render(&self) -> String {
        let nodes: Vec<NodeLine> = self
            .pool
            .nodes()
            .iter()
            .map(|n| NodeLine {
                name: n.name(),
                state: n.state(),
            })
            .collect();
        render(
            &nodes,
            self.writer.as_ref().map(|(w, c)| (&**w, *c)),
            self.retention_removed
                .as_ref()
                .map(|r| r.load(Ordering::Relaxed)),
        )
    }
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, sources: Sources) -> std::io::Result<()> {
    use axum::{http::header, routing::get};
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let sources = sources.clone();
            async move {
                let _span = tracing::debug_span!("http", path = "/metrics").entered();
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    sources.render(),
                )
            }
        }),
    );
    axum::serve(listener, app).await
}
