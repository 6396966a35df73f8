//! Bytes on the wire for the lab's traffic tools: ICMP echo packets for `lab probe icmp`, and
//! the line protocol of `lab serve`'s TCP listeners (echo, or one HTTP answer).
//!
//! Pure: builds and parses buffers; the binary owns the sockets.

use std::net::IpAddr;

#[cfg(test)]
mod tests;

/// ICMPv4 echo request type.
const ICMP4_ECHO_REQUEST: u8 = 8;
/// ICMPv4 echo reply type.
const ICMP4_ECHO_REPLY: u8 = 0;
/// ICMPv6 echo request type.
const ICMP6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 echo reply type.
const ICMP6_ECHO_REPLY: u8 = 129;

/// The Internet checksum (RFC 1071) of `data`.
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| {
            u32::from(u16::from_be_bytes([
                pair[0],
                pair.get(1).copied().unwrap_or(0),
            ]))
        })
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request for `target`'s family. For IPv6 the checksum is left zero: the kernel
/// fills it in on raw ICMPv6 sockets, since it covers the pseudo-header.
pub fn echo_request(target: IpAddr, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let kind = match target {
        IpAddr::V4(_) => ICMP4_ECHO_REQUEST,
        IpAddr::V6(_) => ICMP6_ECHO_REQUEST,
    };
    let mut packet = vec![kind, 0, 0, 0];
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(payload);
    if target.is_ipv4() {
        let checksum = internet_checksum(&packet);
        packet[2..4].copy_from_slice(&checksum.to_be_bytes());
    }
    packet
}

/// The `(id, seq)` of an echo reply read from a raw socket of `target`'s family, or `None` for
/// any other message. Raw IPv4 sockets deliver the IP header too; raw IPv6 sockets do not.
pub fn parse_echo_reply(target: IpAddr, packet: &[u8]) -> Option<(u16, u16)> {
    let (icmp, reply) = match target {
        IpAddr::V4(_) => {
            let header_len = usize::from(*packet.first()? & 0x0f) * 4;
            (packet.get(header_len..)?, ICMP4_ECHO_REPLY)
        }
        IpAddr::V6(_) => (packet, ICMP6_ECHO_REPLY),
    };
    if icmp.len() < 8 || icmp[0] != reply || icmp[1] != 0 {
        return None;
    }
    Some((
        u16::from_be_bytes([icmp[4], icmp[5]]),
        u16::from_be_bytes([icmp[6], icmp[7]]),
    ))
}

/// The method and target of an HTTP/1.x request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine<'a> {
    /// Such as `GET`.
    pub method: &'a str,
    /// Such as `/healthz`.
    pub path: &'a str,
}

/// Recognises `METHOD PATH HTTP/1.x` (with or without the line ending); anything else is
/// echoed rather than answered.
pub fn parse_request_line(line: &str) -> Option<RequestLine<'_>> {
    let mut parts = line.trim_end_matches(['\r', '\n']).split(' ');
    let (method, path, version) = (parts.next()?, parts.next()?, parts.next()?);
    let is_method = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    let is_version = version.starts_with("HTTP/1.");
    (parts.next().is_none() && is_method && path.starts_with('/') && is_version)
        .then_some(RequestLine { method, path })
}

/// The answer `lab serve` gives to any HTTP request: 200, naming the server and the request,
/// so a test can tell which listener answered.
pub fn http_response(server: &str, request: RequestLine<'_>) -> String {
    let body = format!("{server}: {} {}\n", request.method, request.path);
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
