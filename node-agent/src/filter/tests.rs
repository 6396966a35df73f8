//! Unit tests of `filter`: behaviour checked beside the code it tests.
use super::*;
use vigil_proto::flow::{Endpoint, Ip, Layer4, Tcp, TcpFlags, layer4::Protocol};

fn flow() -> Flow {
    Flow {
        verdict: flow::Verdict::Dropped as i32,
        traffic_direction: flow::TrafficDirection::Ingress as i32,
        node_name: "node-2".into(),
        ip: Some(Ip {
            source: "10.0.1.5".into(),
            destination: "10.0.2.7".into(),
            ip_version: 1,
            encrypted: false,
        }),
        l4: Some(Layer4 {
            protocol: Some(Protocol::Tcp(Tcp {
                source_port: 40000,
                destination_port: 22,
                flags: Some(TcpFlags {
                    syn: true,
                    ..TcpFlags::default()
                }),
            })),
        }),
        source: Some(Endpoint {
            namespace: "ops".into(),
            pod_name: "client-7f9".into(),
            labels: vec![
                "k8s:app=client".into(),
                "k8s:io.kubernetes.pod.namespace=ops".into(),
            ],
            identity: 300,
            ..Endpoint::default()
        }),
        destination: Some(Endpoint {
            namespace: "shop".into(),
            pod_name: "my-api".into(),
            labels: vec!["k8s:app=my-api".into(), "k8s:tier=api".into()],
            identity: 301,
            ..Endpoint::default()
        }),
        ingress_denied_by: vec![flow::Policy {
            name: "deny-ssh".into(),
            kind: "GlobalNetworkPolicy".into(),
            ..flow::Policy::default()
        }],
        ..Flow::default()
    }
}

fn q(white: Vec<FlowFilter>, black: Vec<FlowFilter>) -> Query {
    Query::new(&white, &black).unwrap()
}

#[test]
fn fields_are_anded_values_ored_filters_ored_blacklist_subtracted() {
    let f = flow();
    let and = FlowFilter {
        source_pod: vec!["ops/client".into()],
        destination_port: vec!["22".into()],
        ..FlowFilter::default()
    };
    assert!(q(vec![and.clone()], vec![]).matches(&f));
    let and_miss = FlowFilter {
        destination_port: vec!["80".into()],
        ..and.clone()
    };
    assert!(!q(vec![and_miss.clone()], vec![]).matches(&f));
    let values_ored = FlowFilter {
        destination_port: vec!["80".into(), "22".into()],
        ..and.clone()
    };
    assert!(q(vec![values_ored], vec![]).matches(&f));
    assert!(
        q(vec![and_miss.clone(), and.clone()], vec![]).matches(&f),
        "filters are ORed"
    );
    assert!(
        !q(vec![and.clone()], vec![and]).matches(&f),
        "blacklist wins"
    );
    assert!(
        q(vec![], vec![and_miss]).matches(&f),
        "an empty whitelist lets everything in"
    );
}

#[test]
fn pods_namespaces_ips_cidrs_and_labels() {
    let f = flow();
    let one = |filter: FlowFilter| q(vec![filter], vec![]).matches(&f);
    assert!(
        one(FlowFilter {
            source_pod: vec!["ops/".into()],
            ..Default::default()
        }),
        "namespace"
    );
    assert!(!one(FlowFilter {
        source_pod: vec!["shop/".into()],
        ..Default::default()
    }));
    assert!(
        one(FlowFilter {
            source_pod: vec!["client".into()],
            ..Default::default()
        }),
        "any namespace"
    );
    assert!(one(FlowFilter {
        destination_ip: vec!["10.0.2.0/24".into()],
        ..Default::default()
    }));
    assert!(one(FlowFilter {
        destination_ip: vec!["10.0.2.7".into()],
        ..Default::default()
    }));
    assert!(!one(FlowFilter {
        source_ip: vec!["10.0.2.0/24".into()],
        ..Default::default()
    }));
    assert!(one(FlowFilter {
        destination_label: vec!["app=my-api,k8s:tier in (api, db)".into()],
        ..Default::default()
    }));
    assert!(!one(FlowFilter {
        destination_label: vec!["app=my-api,!tier".into()],
        ..Default::default()
    }));
    assert!(one(FlowFilter {
        source_label: vec!["app!=web".into()],
        ..Default::default()
    }));
    assert!(!one(FlowFilter {
        source_label: vec!["reserved:app=client".into()],
        ..Default::default()
    }));
}

#[test]
fn verdict_direction_protocol_flags_node_identity_and_policy() {
    let f = flow();
    let one = |filter: FlowFilter| q(vec![filter], vec![]).matches(&f);
    assert!(one(FlowFilter {
        verdict: vec![2],
        ..Default::default()
    }));
    assert!(!one(FlowFilter {
        verdict: vec![1],
        ..Default::default()
    }));
    assert!(one(FlowFilter {
        traffic_direction: vec![1],
        ..Default::default()
    }));
    assert!(one(FlowFilter {
        protocol: vec!["TCP".into()],
        ..Default::default()
    }));
    assert!(!one(FlowFilter {
        protocol: vec!["udp".into()],
        ..Default::default()
    }));
    assert!(one(FlowFilter {
        tcp_flags: vec![TcpFlags {
            syn: true,
            ..Default::default()
        }],
        ..Default::default()
    }));
    assert!(!one(FlowFilter {
        tcp_flags: vec![TcpFlags {
            ack: true,
            ..Default::default()
        }],
        ..Default::default()
    }));
    assert!(one(FlowFilter {
        node_name: vec!["cluster/node-*".into()],
        ..Default::default()
    }));
    assert!(!one(FlowFilter {
        node_name: vec!["node-1".into()],
        ..Default::default()
    }));
    assert!(one(FlowFilter {
        source_identity: vec![300],
        ..Default::default()
    }));
    assert!(one(FlowFilter {
        vigil_policy: vec!["deny-ssh".into()],
        ..Default::default()
    }));
    assert!(one(FlowFilter {
        vigil_policy: vec!["GlobalNetworkPolicy/deny-ssh".into()],
        ..Default::default()
    }));
    assert!(!one(FlowFilter {
        vigil_policy: vec!["allow-web".into()],
        ..Default::default()
    }));
    assert!(
        !one(FlowFilter {
            source_fqdn: vec!["example.com".into()],
            ..Default::default()
        }),
        "no DNS names"
    );
}

#[test]
fn bad_values_are_refused_with_the_field() {
    let e = Query::new(
        &[FlowFilter {
            source_ip: vec!["10.0.0.300".into()],
            ..Default::default()
        }],
        &[],
    )
    .unwrap_err();
    assert_eq!(e.field, "source_ip");
    let e = Query::new(
        &[FlowFilter {
            destination_port: vec!["http".into()],
            ..Default::default()
        }],
        &[],
    )
    .unwrap_err();
    assert_eq!(e.field, "destination_port");
    let e = Query::new(
        &[],
        &[FlowFilter {
            source_label: vec!["app in a".into()],
            ..Default::default()
        }],
    )
    .unwrap_err();
    assert_eq!(e.field, "source_label");
}
