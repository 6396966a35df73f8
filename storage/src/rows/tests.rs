//! Unit tests of `rows`: behaviour checked beside the code it tests.
use super::*;
use crate::testing::sample_flow;

#[test]
fn denied_flow_becomes_one_row_and_one_enforced_hit() {
    let flow = sample_flow("node-1", 1_700_000_000, 5, "u-3", 3);
    let (row, hits) = to_rows(&flow);
    assert_eq!(row.uuid, "u-3");
    assert_eq!((row.time, row.nanos), (1_700_000_000, 5));
    assert_eq!(row.verdict, "DROPPED");
    assert_eq!(row.drop_reason, "POLICY_DENY");
    assert_eq!(row.direction, "INGRESS");
    assert_eq!(row.protocol, "TCP");
    assert_eq!(row.tcp_flags, "SYN");
    assert_eq!(row.dst_port, 22);
    assert_eq!(row.is_reply, 0);
    assert_eq!(row.policy, "GlobalNetworkPolicy/deny-ssh");
    assert_eq!(hits.len(), 1, "the trace, not also Hubble's lists");
    assert_eq!(hits[0].action, "deny");
    assert_eq!(hits[0].enforcement, "enforced");
    assert_eq!(hits[0].rule_index, 0);
}

#[test]
fn staged_hits_are_pending_rows() {
    let flow = sample_flow("node-1", 1_700_000_000, 0, "u-10", 10);
    let (row, hits) = to_rows(&flow);
    assert_eq!(row.verdict, "AUDIT");
    let pending: Vec<_> = hits.iter().filter(|h| h.enforcement == "pending").collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].policy_name, "lockdown");
    assert_eq!(pending[0].idx, 1);
}

#[test]
fn without_a_trace_hubble_lists_are_the_hits() {
    let mut flow = sample_flow("node-1", 1_700_000_000, 0, "", 1);
    flow.vigil_trace = None;
    let (row, hits) = to_rows(&flow);
    assert!(
        !row.uuid.is_empty(),
        "a key is derived when the agent sent none"
    );
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].hit_kind, "hubble");
    assert_eq!(hits[0].action, "allow");
    assert_eq!(hits[0].policy_name, "allow-web");
}
