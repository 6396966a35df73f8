//! Unit tests of `state`: behaviour checked beside the code it tests.
use std::path::Path;

use super::*;
use crate::plan::{Plan, Prefix};
use crate::topology;

fn state() -> LabState {
    let topology = topology::parse(
        "
nodes: [{name: node-1}, {name: node-2}]
namespaces: [{name: shop}, {name: ops}]
pods:
  - {name: web, namespace: shop, node: node-1}
  - {name: web, namespace: ops, node: node-2}
  - {name: db, namespace: shop, node: node-2}
externals: [{name: db-backup}, {name: node-2x}]
",
    )
    .unwrap();
    let plan = Plan::new(&topology, Prefix::new("tt").unwrap()).unwrap();
    LabState::planned(
        &plan,
        Path::new("/t.yaml"),
        Path::new("/state"),
        &["shop-web.yaml".to_owned()],
    )
}

#[test]
fn planned_state_records_everything_to_remove() {
    let state = state();
    assert_eq!(state.prefix, "tt");
    assert_eq!(
        state.netns.len(),
        3 + 3 + 2 + 1,
        "pods, externals with dns, nodes, fabric"
    );
    assert_eq!(state.netns.last().map(String::as_str), Some("tt-fabric"));
    assert!(state.netns.iter().all(|netns| netns.starts_with("tt-")));
    assert_eq!(state.etc_netns[0], Path::new("/etc/netns/tt-shop-web"));
    assert_eq!(
        state.files,
        vec![Path::new("/state/endpoints/shop-web.yaml")]
    );
    assert_eq!(state.pods["shop/db"].interface.len(), "tt-h".len() + 6);
    assert!(state.externals.contains_key("dns"));
    assert!(state.processes.is_empty());
}

#[test]
fn state_round_trips_through_json() {
    let mut state = state();
    state.processes.push(ProcessRecord {
        role: "serve".to_owned(),
        netns: "tt-shop-web".to_owned(),
        pid: 42,
        start_time: 1234,
        log: "/state/logs/serve.log".into(),
    });
    let text = serde_json::to_string(&state).unwrap();
    assert!(text.contains("\"startTime\":1234"), "{text}");
    assert_eq!(serde_json::from_str::<LabState>(&text).unwrap(), state);
}

#[test]
fn targets_resolve_by_key_unique_name_or_host() {
    let state = state();
    assert_eq!(state.resolve("shop/web"), Ok("tt-shop-web"));
    assert_eq!(state.resolve("db"), Ok("tt-shop-db"));
    assert_eq!(state.resolve("db-backup"), Ok("tt-db-backup"));
    assert_eq!(state.resolve("node-1"), Ok("tt-node-1"));
    assert_eq!(state.resolve("fabric"), Ok("tt-fabric"));
    assert_eq!(state.resolve("dns"), Ok("tt-dns"));
}

#[test]
fn ambiguous_and_unknown_targets_are_explained() {
    let state = state();
    let error = state.resolve("web").unwrap_err();
    assert_eq!(
        error.to_string(),
        "\"web\" is ambiguous: it could be pod ops/web, pod shop/web; use namespace/name for pods"
    );
    let error = state.resolve("nope").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("known: ops/web, shop/db, shop/web, db-backup"),
        "{error}"
    );
}

#[test]
fn proc_stat_fields_are_found_past_odd_command_names() {
    let stat = "4242 (lab serve) x) S 1 4242 4242 0 -1 4194560 120 0 0 0 1 2 0 0 20 0 3 0 987654 \
                10000000 500 18446744073709551615";
    assert_eq!(
        parse_proc_stat(stat),
        Some(ProcStat {
            state: 'S',
            start_time: 987_654
        })
    );
    let zombie = "7 (dnsmasq) Z 1 7 7 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0";
    assert_eq!(parse_proc_stat(zombie).map(|stat| stat.state), Some('Z'));
    assert_eq!(parse_proc_stat("garbage"), None);
    assert_eq!(parse_proc_stat("1 (x) S 1 2"), None);
}
