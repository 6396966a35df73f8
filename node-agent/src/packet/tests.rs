//! Unit tests of `packet`: behaviour checked beside the code it tests.
use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

#[test]
fn ipv4_tcp_syn_layout() {
    let frame = build(&Spec::tcp_syn(
        Ipv4Addr::new(10, 0, 0, 1).into(),
        Ipv4Addr::new(10, 0, 0, 2).into(),
        40000,
        22,
    ));
    assert_eq!(&frame[12..14], &[0x08, 0x00]);
    assert_eq!(frame[14] >> 4, 4);
    assert_eq!(frame[23], 6, "protocol");
    assert_eq!(&frame[26..30], &[10, 0, 0, 1]);
    assert_eq!(&frame[34..36], &40000u16.to_be_bytes());
    assert_eq!(&frame[36..38], &22u16.to_be_bytes());
    assert_eq!(frame[34 + 13], 0x02, "SYN flag");
    assert_eq!(
        u16::from_be_bytes([frame[16], frame[17]]) as usize,
        frame.len() - 14
    );
}

#[test]
fn ipv6_icmp_layout() {
    let spec = Spec {
        src: Ipv6Addr::LOCALHOST.into(),
        dst: "fd00::2".parse().unwrap(),
        proto: 58,
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        icmp: (128, 0),
        icmp_id: 7,
    };
    let frame = build(&spec);
    assert_eq!(&frame[12..14], &[0x86, 0xdd]);
    assert_eq!(frame[20], 58, "next header");
    assert_eq!(frame[54], 128, "icmp type");
    assert_eq!(&frame[58..60], &7u16.to_be_bytes());
}
