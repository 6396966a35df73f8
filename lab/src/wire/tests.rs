//! Unit tests of `wire`: behaviour checked beside the code it tests.
use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

#[test]
fn checksum_matches_rfc_1071_example() {
    // The example of RFC 1071 section 3: the one's complement sum is 0xddf2.
    let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    assert_eq!(internet_checksum(&data), !0xddf2);
    // A packet carrying its checksum sums to zero; odd lengths are padded.
    let packet = echo_request(V4, 0x1234, 7, b"odd");
    assert_eq!(internet_checksum(&packet), 0);
}

#[test]
fn echo_requests_have_the_right_type_id_and_sequence() {
    let packet = echo_request(V4, 0xbeef, 2, b"x");
    assert_eq!(&packet[..2], &[8, 0]);
    assert_eq!(&packet[4..8], &[0xbe, 0xef, 0, 2]);
    assert_eq!(packet[8..], *b"x");
    let packet = echo_request(V6, 1, 2, b"");
    assert_eq!(
        packet,
        vec![128, 0, 0, 0, 0, 1, 0, 2],
        "kernel fills the ICMPv6 checksum"
    );
}

#[test]
fn echo_replies_are_recognised_past_the_ipv4_header() {
    let mut reply = vec![0x45; 1];
    reply.extend([0; 19]); // rest of a 20-byte IPv4 header
    reply.extend([0, 0, 0xff, 0xff, 0x12, 0x34, 0, 9]);
    assert_eq!(parse_echo_reply(V4, &reply), Some((0x1234, 9)));
    // Our own request (type 8) and truncated packets are not replies.
    let request = echo_request(V4, 0x1234, 9, b"");
    let mut looped = vec![0x45; 1];
    looped.extend([0; 19]);
    looped.extend(&request);
    assert_eq!(parse_echo_reply(V4, &looped), None);
    assert_eq!(parse_echo_reply(V4, &[0x45, 0, 0]), None);
    assert_eq!(parse_echo_reply(V4, &[]), None);
}

#[test]
fn echo_replies_over_ipv6_have_no_header() {
    assert_eq!(
        parse_echo_reply(V6, &[129, 0, 0, 0, 0, 5, 0, 6]),
        Some((5, 6))
    );
    assert_eq!(parse_echo_reply(V6, &[128, 0, 0, 0, 0, 5, 0, 6]), None);
    assert_eq!(parse_echo_reply(V6, &[129, 0, 0]), None);
}

#[test]
fn http_request_lines_are_told_from_other_text() {
    assert_eq!(
        parse_request_line("GET /healthz HTTP/1.1\r\n"),
        Some(RequestLine {
            method: "GET",
            path: "/healthz"
        })
    );
    assert_eq!(
        parse_request_line("POST /a?b=c HTTP/1.0"),
        Some(RequestLine {
            method: "POST",
            path: "/a?b=c"
        })
    );
    assert_eq!(parse_request_line("hello world\n"), None);
    assert_eq!(parse_request_line("get / HTTP/1.1"), None);
    assert_eq!(parse_request_line("GET / HTTP/2"), None);
    assert_eq!(parse_request_line("GET / HTTP/1.1 extra"), None);
}

#[test]
fn http_responses_are_complete() {
    let response = http_response(
        "shop/api",
        RequestLine {
            method: "GET",
            path: "/status",
        },
    );
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(body, "shop/api: GET /status\n");
    assert!(head.contains(&format!("Content-Length: {}", body.len())));
}
