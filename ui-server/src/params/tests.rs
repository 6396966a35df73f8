//! Unit tests of `params`: parsing, the local match, Hubble filters, times, cursors, buckets.

use vigil_proto::flow::{TrafficDirection, Verdict};

use super::*;
use vigil_storage::{FlowRow, HitRow};

fn params(q: &str) -> Params {
    Params::parse(Some(q), &FlowQuery::allowed()).unwrap()
}

fn filter(q: &str) -> Filter {
    Filter::parse(&params(q)).unwrap()
}

fn flow() -> (FlowRow, Vec<HitRow>) {
    let f = FlowRow {
        uuid: "u1".into(),
        time: 1_700_000_000,
        node: "node-1".into(),
        verdict: "DROPPED".into(),
        drop_reason: "POLICY_DENY".into(),
        direction: "INGRESS".into(),
        src_namespace: "ops".into(),
        src_pod: "client-7d4b9c-x2x9z".into(),
        src_ip: "10.0.0.1".into(),
        src_port: 43122,
        dst_namespace: "payments".into(),
        dst_pod: "db-0".into(),
        dst_ip: "10.0.0.2".into(),
        dst_port: 22,
        protocol: "TCP".into(),
        policy: "GlobalNetworkPolicy/deny-ssh".into(),
        ..FlowRow::default()
    };
    let hits = vec![
        HitRow {
            policy_kind: "GlobalNetworkPolicy".into(),
            policy_name: "log-all".into(),
            action: "log".into(),
            enforcement: "enforced".into(),
            ..HitRow::default()
        },
        HitRow {
            policy_kind: "StagedNetworkPolicy".into(),
            policy_namespace: "payments".into(),
            policy_name: "lockdown".into(),
            idx: 2,
            action: "deny".into(),
            enforcement: "pending".into(),
            ..HitRow::default()
        },
    ];
    (f, hits)
}

#[test]
fn unknown_parameters_and_bad_values_name_the_parameter() {
    let e = Params::parse(Some("verdikt=DROPPED"), &FlowQuery::allowed()).unwrap_err();
    assert!(e.to_string().contains("verdikt"), "{e}");
    for (q, name) in [
        ("verdict=DENIED", "verdict"),
        ("port=70000", "port"),
        ("port=ssh", "port"),
        ("protocol=gre", "protocol"),
        ("ip=10.0.0.0/8", "ip"),
        ("direction=up", "direction"),
        ("policy=a/b/c/d", "policy"),
        ("policy=a//b", "policy"),
        ("drop_reason=NOT%20A%20NAME", "drop_reason"),
    ] {
        let e = Filter::parse(&params(q)).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        assert!(
            e.to_string().contains(&format!("parameter {name}")),
            "{q}: {e}"
        );
    }
    let e = Params::parse(Some("pod=a%00b"), &FlowQuery::allowed()).unwrap_err();
    assert!(e.to_string().contains("NUL"), "{e}");
}

#[test]
fn values_are_canonicalised() {
    let f = filter(
        "verdict=dropped&protocol=icmp&protocol=Tcp&ip=fd00:0::1&direction=egress&q=OPS%20Db",
    );
    assert_eq!(f.verdicts, ["DROPPED"]);
    assert_eq!(f.protocols, ["ICMPv4", "TCP"]);
    assert_eq!(f.ips, ["fd00::1"]);
    assert_eq!(f.directions, ["EGRESS"]);
    assert_eq!(f.terms, ["ops", "db"]);
    assert_eq!(filter("verdict=&pod=").pods, []);
}

#[test]
fn local_match_follows_the_documented_semantics() {
    let (f, hits) = flow();
    let yes = |q: &str| assert!(filter(q).matches(&f, &hits), "{q} should match");
    let no = |q: &str| assert!(!filter(q).matches(&f, &hits), "{q} should not match");
    yes("");
    yes("namespace=payments");
    yes("namespace=nowhere&namespace=ops");
    no("namespace=shop");
    yes("pod=db");
    yes("pod=payments/db");
    yes("pod=ops/");
    no("pod=ops/db");
    yes("from_pod=ops/client");
    no("from_pod=payments/db");
    yes("to_pod=payments/db-0");
    yes("verdict=DROPPED&verdict=FORWARDED");
    no("verdict=FORWARDED");
    yes("port=22");
    yes("port=43122");
    no("port=80");
    yes("ip=10.0.0.1");
    no("ip=10.0.0.3");
    yes("node=node-1");
    no("node=node-2");
    yes("direction=ingress");
    no("direction=egress");
    yes("protocol=tcp");
    no("protocol=udp");
    yes("drop_reason=POLICY_DENY");
    no("drop_reason=CT_NO_MAP_FOUND");
    no("drop_reason=POLICY_DENIED");
    // Policies: the enforced or the pending deciding policy, in every spelling; a Log hit
    // does not decide.
    yes("policy=deny-ssh");
    yes("policy=GlobalNetworkPolicy/deny-ssh");
    yes("policy=payments/lockdown");
    yes("policy=StagedNetworkPolicy/payments/lockdown");
    no("policy=log-all");
    no("policy=GlobalNetworkPolicy/log-all");
    no("policy=ops/lockdown");
    no("policy=ssh");
    // Free text: every term somewhere.
    yes("q=PAYMENTS");
    yes("q=deny-ssh%2010.0.0.2");
    no("q=payments%20nowhere");
    // AND across parameters.
    no("namespace=payments&verdict=FORWARDED");
}

#[test]
fn flows_without_a_trace_are_decided_by_their_hubble_lists() {
    let (mut f, _) = flow();
    f.policy.clear();
    let hits = vec![HitRow {
        policy_kind: "CiliumNetworkPolicy".into(),
        policy_namespace: "payments".into(),
        policy_name: "deny-all".into(),
        hit_kind: "hubble".into(),
        enforcement: "enforced".into(),
        ..HitRow::default()
    }];
    assert!(filter("policy=payments/deny-all").matches(&f, &hits));
    assert!(!filter("policy=deny-ssh").matches(&f, &hits));
}

#[test]
fn hubble_filters_pass_a_superset_of_the_local_match() {
    assert!(filter("").to_hubble().is_empty());
    assert!(
        filter("q=db&policy=x").to_hubble().is_empty(),
        "left to the local match"
    );
    let f = filter("verdict=DROPPED&protocol=TCP&node=node-1&direction=INGRESS");
    let h = f.to_hubble();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].verdict, [Verdict::Dropped as i32]);
    assert_eq!(h[0].protocol, ["tcp"]);
    assert_eq!(h[0].node_name, ["node-1"]);
    assert_eq!(h[0].traffic_direction, [TrafficDirection::Ingress as i32]);
    // An either-side parameter becomes a source filter ORed with a destination filter.
    let h = filter("pod=shop/web&verdict=DROPPED").to_hubble();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].source_pod, ["shop/web"]);
    assert!(h[0].destination_pod.is_empty());
    assert_eq!(h[1].destination_pod, ["shop/web"]);
    assert_eq!(h[1].verdict, [Verdict::Dropped as i32]);
    // A namespace alone is a pod filter on the namespace.
    let h = filter("namespace=shop").to_hubble();
    assert_eq!(h[0].source_pod, ["shop/"]);
    // from_pod occupies source_pod: the either-side pod is not ORed into it.
    let h = filter("from_pod=ops/client&pod=web").to_hubble();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].source_pod, ["ops/client"]);
}

#[test]
fn times_parse_as_durations_back_or_rfc3339() {
    let now = 1_800_000_000_000_000_000i128;
    assert_eq!(parse_time("15m", now), Ok(now - 900_000_000_000));
    assert_eq!(parse_time("1h30m", now), Ok(now - 5_400_000_000_000));
    assert_eq!(parse_time("7d", now), Ok(now - 7 * 86_400_000_000_000));
    assert_eq!(
        parse_time("2026-11-26T11:22:05.123456789Z", now),
        Ok(1_795_692_125_123_456_789)
    );
    assert_eq!(
        parse_time("2026-11-26T12:22:05+01:00", now),
        Ok(1_795_692_125_000_000_000)
    );
    for bad in [
        "",
        "15",
        "m",
        "15x",
        "2026-11-26",
        "2026-13-26T11:22:05Z",
        "2026-11-26T11:22:05",
    ] {
        assert!(parse_time(bad, now).is_err(), "{bad:?}");
    }
    let p = params("since=1h&until=2h");
    assert!(
        TimeRange::parse(&p, now, None).is_err(),
        "since after until"
    );
    let r = TimeRange::parse(&params(""), now, Some("24h")).unwrap();
    assert_eq!(r.since, Some(now - 86_400_000_000_000));
}

#[test]
fn cursors_round_trip_and_refuse_forgeries() {
    let c = Cursor {
        time: 1_700_000_000,
        nanos: 5,
        uuid: "node-1:1.2.3.4:80/ü".into(),
    };
    assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
    for bad in [
        "",
        "1.2",
        "x.1.41",
        "1.2.4",
        "1.2.zz",
        "1.1000000000.41",
        "-1.0.41",
    ] {
        assert!(Cursor::decode(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn limits_and_buckets_are_bounded() {
    assert_eq!(
        FlowQuery::parse(&params(""), 0).unwrap().limit,
        DEFAULT_LIMIT
    );
    assert_eq!(
        FlowQuery::parse(&params("limit=1000"), 0).unwrap().limit,
        1000
    );
    for bad in ["limit=0", "limit=1001", "limit=-1", "limit=ten"] {
        assert!(FlowQuery::parse(&params(bad), 0).is_err(), "{bad}");
    }
    let p = |q: &str| Params::parse(Some(q), &["bucket"]).unwrap();
    assert_eq!(bucket_seconds(&p("bucket=5m"), 0, 3600).unwrap(), 300);
    assert_eq!(
        bucket_seconds(&p(""), 0, 3600).unwrap(),
        30,
        "about 120 buckets"
    );
    assert_eq!(bucket_seconds(&p(""), 0, 7 * 86_400).unwrap(), 7200);
    assert!(
        bucket_seconds(&p("bucket=1s"), 0, 86_400).is_err(),
        "too many buckets"
    );
    assert!(bucket_seconds(&p("bucket=0s"), 0, 60).is_err());
}
