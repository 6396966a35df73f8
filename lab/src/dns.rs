//! The command line of the lab's DNS server: dnsmasq, authoritative for the topology's records
//! and nothing else (no upstream servers, no /etc/hosts, no config file).
//!
//! Pure: builds arguments; the binary starts the process.

use std::path::Path;

use crate::plan::DnsPlan;

#[cfg(test)]
mod tests;

/// Where Debian's dnsmasq-base installs the server.
pub const DNSMASQ: &str = "/usr/sbin/dnsmasq";
/// TTL of the lab's records: long enough for FQDN policies to cache, short enough to watch.
pub const RECORD_TTL_SECONDS: u32 = 60;

/// dnsmasq's arguments. It daemonizes and writes `pid_file` once it is listening.
pub fn dnsmasq_args(dns: &DnsPlan, pid_file: &Path, log_file: &Path) -> Vec<String> {
    let mut args = vec![
        "--conf-file=/dev/null".to_owned(),
        "--no-resolv".to_owned(),
        "--no-hosts".to_owned(),
        "--no-poll".to_owned(),
        "--bind-interfaces".to_owned(),
        format!("--listen-address={}", dns.ipv4),
        format!("--listen-address={}", dns.ipv6),
        "--user=root".to_owned(),
        format!("--pid-file={}", pid_file.display()),
        format!("--log-facility={}", log_file.display()),
        "--log-queries".to_owned(),
        format!("--local-ttl={RECORD_TTL_SECONDS}"),
        // Names without a record get a quick NXDOMAIN instead of a timeout.
        "--address=/#/".to_owned(),
    ];
    for record in &dns.records {
        let mut arg = format!("--host-record={}", record.name);
        for address in &record.addresses {
            arg.push(',');
            arg.push_str(&address.to_string());
        }
        args.push(arg);
    }
    args
}
