//! Unit tests of `metrics`: the exposition text users scrape.
use std::sync::atomic::Ordering;

use super::*;

#[test]
fn nodes_writer_counters_and_retention_are_exposed() {
    let w = WriterStats::default();
    w.stored.store(1200, Ordering::Relaxed);
    w.gaps.store(40, Ordering::Relaxed);
    w.lost.store(3, Ordering::Relaxed);
    let text = render(
        &[
            NodeLine {
                name: "node-1".into(),
                state: NodeState::NodeConnected,
            },
            NodeLine {
                name: "node-\"2\"".into(),
                state: NodeState::NodeUnavailable,
            },
        ],
        Some((&w, 65536)),
        Some(7),
    );
    for line in [
        "vigil_relay_node_connected{node=\"node-1\",state=\"NODE_CONNECTED\"} 1",
        "vigil_relay_node_connected{node=\"node-\\\"2\\\"\",state=\"NODE_UNAVAILABLE\"} 0",
        "vigil_relay_store_flows_total 1200",
        "vigil_relay_store_gap_events_total 40",
        "vigil_relay_store_reported_lost_events_total 3",
        "vigil_relay_store_queue_capacity 65536",
        "vigil_relay_retention_removed_flows_total 7",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in:\n{text}"
        );
    }
    // Every sample belongs to a declared family.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} undeclared"
        );
    }
    // Without a store, no writer families.
    assert!(!render(&[], None, None).contains("vigil_relay_store_"));
}
