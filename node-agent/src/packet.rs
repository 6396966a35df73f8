//! Builds Ethernet frames for `BPF_PROG_TEST_RUN`: the differential tests and the datapath
//! benchmark push crafted packets through the real program with these.
//!
//! Checksums are left zero: the datapath never verifies them. Pure code, no I/O.

use std::net::IpAddr;

/// What to put in a crafted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP, 1 ICMP, 58 ICMPv6, or any other).
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// TCP flags byte (SYN = 0x02).
    pub tcp_flags: u8,
    /// ICMP type and code (ICMP/ICMPv6 only).
    pub icmp: (u8, u8),
    /// ICMP echo identifier (ICMP/ICMPv6 echo only).
    pub icmp_id: u16,
}

impl Spec {
    /// A TCP SYN from `src:sport` to `dst:dport`.
    pub fn tcp_syn(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Spec {
        Spec {
            src,
            dst,
            proto: 6,
            sport,
            dport,
            tcp_flags: 0x02,
            icmp: (0, 0),
            icmp_id: 0,
        }
    }
}

/// Serialises `spec` as an Ethernet frame carrying IPv4 or IPv6 (by the addresses' family).
///
/// # Panics
/// When `src` and `dst` are of different families.
pub fn build(spec: &Spec) -> Vec<u8> {
    let l4 = l4_header(spec);
    let mut frame = Vec::with_capacity(14 + 40 + l4.len());
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // destination MAC
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // source MAC
    match (spec.src, spec.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            frame.extend_from_slice(&0x0800u16.to_be_bytes());
            let total = (20 + l4.len()) as u16;
            frame.extend_from_slice(&[0x45, 0]);
            frame.extend_from_slice(&total.to_be_bytes());
            frame.extend_from_slice(&[0, 1, 0x40, 0, 64, spec.proto, 0, 0]);
            frame.extend_from_slice(&s.octets());
            frame.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            frame.extend_from_slice(&0x86ddu16.to_be_bytes());
            frame.extend_from_slice(&[0x60, 0, 0, 0]);
            frame.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            frame.extend_from_slice(&[spec.proto, 64]);
            frame.extend_from_slice(&s.octets());
            frame.extend_from_slice(&d.octets());
        }
        _ => panic!("packet::build: source and destination address families differ"),
    }
    frame.extend_from_slice(&l4);
    frame
}

fn l4_header(spec: &Spec) -> Vec<u8> {
    let ports = [spec.sport.to_be_bytes(), spec.dport.to_be_bytes()].concat();
    match spec.proto {
        6 => {
            let mut h = ports;
            h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]); // seq, ack
            h.extend_from_slice(&[0x50, spec.tcp_flags, 0xff, 0xff, 0, 0, 0, 0]);
            h
        }
        17 => {
            let mut h = ports;
            h.extend_from_slice(&[0, 8, 0, 0]);
            h
        }
        132 => {
            let mut h = ports;
            h.extend_from_slice(&[0; 8]); // verification tag, checksum
            h
        }
        1 | 58 => {
            let id = spec.icmp_id.to_be_bytes();
            vec![spec.icmp.0, spec.icmp.1, 0, 0, id[0], id[1], 0, 1]
        }
        _ => vec![0; 8],
    }
}

#[cfg(test)]
mod tests;
