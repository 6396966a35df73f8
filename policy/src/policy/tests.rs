//! Unit tests of `policy`: behaviour checked beside the code it tests.
use super::*;

fn port(name: &str, port: u16, protocol: u8) -> NamedPort {
    NamedPort {
        name: name.into(),
        port,
        protocol,
    }
}

#[test]
fn port_entries_match_protocol_range_and_names() {
    let l4 = L4Match::AnyOf(vec![
        PortMatch {
            protocol: ProtocolMatch::Is(proto::TCP),
            ports: PortSpec::Range(8000, 8080),
        },
        PortMatch {
            protocol: ProtocolMatch::TcpUdpSctp,
            ports: PortSpec::Named("dns".into()),
        },
    ]);
    let named = [port("dns", 53, proto::UDP)];
    assert!(l4.matches(proto::TCP, 8000, &named));
    assert!(l4.matches(proto::TCP, 8080, &named));
    assert!(!l4.matches(proto::TCP, 8081, &named));
    assert!(!l4.matches(proto::UDP, 8000, &named));
    assert!(l4.matches(proto::UDP, 53, &named));
    assert!(!l4.matches(proto::TCP, 53, &named), "the named port is UDP");
    assert!(
        !l4.matches(proto::ICMP, 53, &named),
        "ANY is TCP, UDP and SCTP"
    );
    let mut starts = Vec::new();
    l4.port_boundaries(proto::UDP, &named, &mut starts);
    assert_eq!(starts, [53, 54]);
    let mut protocols = BTreeSet::new();
    l4.protocols(&mut protocols);
    assert_eq!(
        protocols,
        BTreeSet::from([proto::TCP, proto::UDP, proto::SCTP])
    );
}

#[test]
fn calico_criteria_all_hold() {
    let l4 = L4Match::Calico(CalicoL4 {
        protocol: Some(proto::ICMP),
        icmp: Some(IcmpMatch {
            icmp_type: 3,
            code: None,
        }),
        not_icmp: Some(IcmpMatch {
            icmp_type: 3,
            code: Some(4),
        }),
        ..CalicoL4::default()
    });
    assert!(l4.matches(proto::ICMP, 0x0300, &[]));
    assert!(l4.matches(proto::ICMP, 0x03ff, &[]));
    assert!(!l4.matches(proto::ICMP, 0x0304, &[]));
    assert!(!l4.matches(proto::ICMP, 0x0800, &[]));
    assert!(!l4.matches(proto::ICMPV6, 0x0300, &[]));
    assert!(!l4.may_match_protocol(proto::TCP));

    let not_tcp = L4Match::Calico(CalicoL4 {
        not_protocol: Some(proto::TCP),
        ..CalicoL4::default()
    });
    assert!(not_tcp.matches(proto::UDP, 1, &[]) && !not_tcp.matches(proto::TCP, 1, &[]));

    let ports = L4Match::Calico(CalicoL4 {
        protocol: Some(proto::TCP),
        ports: Some(vec![PortSpec::Range(1, 1024)]),
        not_ports: vec![PortSpec::Named("ssh".into())],
        ..CalicoL4::default()
    });
    let named = [port("ssh", 22, proto::TCP)];
    assert!(ports.matches(proto::TCP, 80, &named));
    assert!(!ports.matches(proto::TCP, 22, &named));
    assert!(!ports.matches(proto::TCP, 2000, &named));
}

#[test]
fn kinds_know_their_manifest_names_and_families() {
    for kind in PolicyKind::ALL {
        assert!(!kind.enforced_counterpart().is_staged());
        assert!(!kind.api_version().is_empty());
    }
    assert_eq!(
        PolicyKind::CalicoNetworkPolicy.to_string(),
        "CalicoNetworkPolicy"
    );
    assert_eq!(
        PolicyKind::KubernetesNetworkPolicy.to_string(),
        "NetworkPolicy"
    );
    assert_eq!(
        PolicyKind::StagedKubernetesNetworkPolicy.enforced_counterpart(),
        PolicyKind::KubernetesNetworkPolicy
    );
    assert!(!PolicyKind::GlobalNetworkPolicy.is_namespaced());
    assert!(PolicyKind::StagedNetworkPolicy.is_namespaced());
}

#[test]
fn matcher_combinators_simplify() {
    assert_eq!(PeerMatch::any_of(vec![]), PeerMatch::Nothing);
    assert_eq!(PeerMatch::all_of(vec![PeerMatch::Any]), PeerMatch::Any);
    assert_eq!(
        PeerMatch::any_of(vec![PeerMatch::Nothing, PeerMatch::Entity(Entity::Host)]),
        PeerMatch::Entity(Entity::Host)
    );
}
