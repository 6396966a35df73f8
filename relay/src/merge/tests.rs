//! Unit tests of `merge`: behaviour checked beside the code it tests.
use super::*;
use vigil_proto::{
    flow::Flow,
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
};

fn at(ns: i64, node: &str) -> Response {
    let t = prost_types::Timestamp {
        seconds: ns / 1_000_000_000,
        nanos: (ns % 1_000_000_000) as i32,
    };
    Response::from(GetFlowsResponse {
        time: Some(t),
        node_name: node.into(),
        response_types: Some(ResponseTypes::Flow(Flow {
            time: Some(t),
            node_name: node.into(),
            ..Flow::default()
        })),
    })
}

fn times(rs: &[Response]) -> Vec<i128> {
    rs.iter().map(unix_ns).collect()
}

#[test]
fn window_reorders_interleaved_nodes() {
    let mut w = SortWindow::new(100, 10);
    let mut out = Vec::new();
    for (t, n) in [(5, "a"), (1, "b"), (7, "a"), (3, "b"), (30, "a")] {
        w.push(at(t, n), &mut out);
    }
    // 30 - 10 = 20: everything up to 7 has left, in order.
    assert_eq!(times(&out), [1, 3, 5, 7]);
    w.drain(&mut out);
    assert_eq!(times(&out), [1, 3, 5, 7, 30]);
}

#[test]
fn a_full_window_releases_the_oldest_and_counts_it() {
    let mut w = SortWindow::new(2, 1_000);
    let mut out = Vec::new();
    for t in [3, 1, 2] {
        w.push(at(t, "a"), &mut out);
    }
    assert_eq!(times(&out), [1]);
    assert_eq!(w.forced, 1);
    assert_eq!(w.len(), 2);
}

#[test]
fn newest_keeps_the_last_n_overall() {
    let mut n = Newest::new(3);
    for i in 0..10 {
        n.push(i);
    }
    assert_eq!(n.into_vec(), [7, 8, 9]);
    let mut all = Newest::new(0);
    all.push(1);
    all.push(2);
    assert_eq!(all.into_vec(), [1, 2]);
}

#[test]
fn oldest_head_wins_the_merge_step() {
    let heads = [Some(at(5, "a")), None, Some(at(2, "c"))];
    assert_eq!(oldest(&heads), Some(2));
    assert_eq!(oldest(&[None, None]), None);
}
