//! Unit tests of `dns`: behaviour checked beside the code it tests.
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::*;
use crate::plan::DnsRecord;

#[test]
fn dnsmasq_answers_only_the_labs_records() {
    let dns = DnsPlan {
        netns: "vg-dns".to_owned(),
        ipv4: Ipv4Addr::new(198, 51, 100, 53),
        ipv6: "2001:db8:51:100::53".parse::<Ipv6Addr>().unwrap(),
        records: vec![
            DnsRecord {
                name: "api.example.com".to_owned(),
                addresses: vec![
                    "198.51.100.10".parse().unwrap(),
                    "2001:db8:51:100::10".parse().unwrap(),
                ],
            },
            DnsRecord {
                name: "one.example.org".to_owned(),
                addresses: vec!["203.0.113.1".parse().unwrap()],
            },
        ],
    };
    let args = dnsmasq_args(
        &dns,
        Path::new("/s/dnsmasq.pid"),
        Path::new("/s/logs/dnsmasq.log"),
    );
    for expected in [
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=198.51.100.53",
        "--listen-address=2001:db8:51:100::53",
        "--pid-file=/s/dnsmasq.pid",
        "--log-facility=/s/logs/dnsmasq.log",
        "--host-record=api.example.com,198.51.100.10,2001:db8:51:100::10",
        "--host-record=one.example.org,203.0.113.1",
    ] {
        assert!(
            args.iter().any(|arg| arg == expected),
            "missing {expected} in {args:?}"
        );
    }
    assert!(
        !args.iter().any(|arg| arg == "--keep-in-foreground"),
        "lab up relies on the fork"
    );
}
