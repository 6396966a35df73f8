//! Unit tests of `convert`: workload names, times, summaries, rows and live flows to UI flows.

use super::*;

#[test]
fn workload_prefers_labels_then_the_pod_name_without_generated_suffixes() {
    let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        workload(&l(&["k8s:app=frontend"]), "x-1", "1.2.3.4"),
        "frontend"
    );
    assert_eq!(workload(&l(&["k8s:k8s-app=kube-dns"]), "x", ""), "kube-dns");
    assert_eq!(
        workload(
            &l(&["k8s:app.kubernetes.io/name=api", "k8s:tier=x"]),
            "x",
            ""
        ),
        "api"
    );
    assert_eq!(workload(&l(&["app=web"]), "x", ""), "web");
    assert_eq!(workload(&[], "frontend-7d4b9c8f6d-x2x9z", ""), "frontend");
    assert_eq!(workload(&[], "my-api-5f6d8b-kq7wn", ""), "my-api");
    assert_eq!(workload(&[], "db-0", ""), "db");
    assert_eq!(workload(&[], "frontend-1", ""), "frontend");
    assert_eq!(
        workload(&[], "my-api", ""),
        "my-api",
        "a word is not a suffix"
    );
    assert_eq!(workload(&[], "web", ""), "web");
    assert_eq!(workload(&[], "", "203.0.113.5"), "203.0.113.5");
}

#[test]
fn times_are_rfc3339_with_nanoseconds() {
    assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
    assert_eq!(
        rfc3339(1_795_692_125, 123_456_789),
        "2026-11-26T11:22:05.123456789Z"
    );
    assert_eq!(rfc3339(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
    assert_eq!(
        rfc3339_ns(1_795_692_125_000_000_007),
        "2026-11-26T11:22:05.000000007Z"
    );
}

#[test]
fn summaries_read_like_hubbles() {
    assert_eq!(summary("TCP", "SYN,ACK"), "TCP Flags: SYN, ACK");
    assert_eq!(summary("TCP", ""), "TCP");
    assert_eq!(summary("UDP", ""), "UDP");
    assert_eq!(summary("", ""), "unknown");
}

#[test]
fn rows_from_either_engine_read_alike() {
    // SQLite gives numbers; ClickHouse gives 64-bit integers as strings.
    let mut row: Vec<Value> = (0..23).map(|_| Value::from("")).collect();
    row[0] = "u1".into();
    row[1] = Value::from(1_700_000_000);
    row[2] = Value::from("42");
    for i in [10, 12, 16, 18] {
        row[i] = Value::from(7);
    }
    row[21] = Value::from(2);
    row[9] = "k8s:app=web,k8s:tier=front".into();
    let f = flow_row(&row).unwrap();
    assert_eq!(
        (f.time, f.nanos, f.src_port, f.is_reply),
        (1_700_000_000, 42, 7, 2)
    );
    let ui = ui_flow(&f, &[]);
    assert_eq!(ui.is_reply, None);
    assert_eq!(ui.src.labels, ["k8s:app=web", "k8s:tier=front"]);
    assert_eq!(ui.src.workload, "web");
    assert!(ui.dst.labels.is_empty());
    assert!(flow_row(&row[..5]).is_err());
    row[1] = Value::Null;
    assert!(flow_row(&row).is_err(), "a time that is not a number");
}

#[test]
fn a_live_flow_becomes_the_same_ui_flow_as_its_stored_rows() {
    let Some(vigil_proto::observer::get_flows_response::ResponseTypes::Flow(flow)) =
        vigil_proto::sample::enriched_flow().response_types
    else {
        panic!("the sample is a flow");
    };
    let (f, hits) = vigil_storage::to_rows(&flow);
    let ui = ui_flow(&f, &hits);
    assert_eq!(ui.uuid, "6f1c2e8a-3b7d-4c1e-9a2f-0d5e8b7c6a41");
    assert_eq!(ui.time, "2025-11-26T09:40:00.123456789Z");
    assert_eq!(ui.verdict, "DROPPED");
    assert_eq!(ui.is_reply, Some(false));
    assert_eq!(ui.src.workload, "frontend");
    assert_eq!(ui.dst.pod, "my-api-5f6d8b-kq7wn");
    assert_eq!(ui.dst.port, 22);
    assert_eq!(ui.policy, "GlobalNetworkPolicy/deny-ssh");
    assert_eq!(ui.summary, "TCP Flags: SYN");
    let actions: Vec<_> = ui
        .hits
        .iter()
        .map(|h| (h.action.as_str(), h.rule_index))
        .collect();
    assert_eq!(actions, [("log", Some(0)), ("deny", Some(1))]);
    // The JSON has exactly the documented keys.
    let json = serde_json::to_value(&ui).unwrap();
    let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "direction",
            "drop_reason",
            "dst",
            "hits",
            "is_reply",
            "node",
            "policy",
            "protocol",
            "src",
            "summary",
            "tcp_flags",
            "time",
            "uuid",
            "verdict"
        ]
    );
}

#[test]
fn peer_kinds() {
    assert_eq!(peer_kind("shop", &[], 1234), "pod");
    assert_eq!(peer_kind("", &[], 2), "world");
    assert_eq!(peer_kind("", &["reserved:host".into()], 1), "host");
}
