//! The topology file: the cluster that `lab up` builds, as the user writes it.
//!
//! ```yaml
//! nodes:
//!   - name: node-1
//!     podCIDR: 10.200.1.0/24        # optional; a /24 in 10.0.0.0/8, default 10.200.<index+1>.0/24
//!   - name: node-2
//! namespaces:
//!   - name: shop
//!     labels: {team: web}
//! pods:
//!   - name: frontend
//!     namespace: shop               # must be declared under `namespaces`
//!     node: node-1                  # must be declared under `nodes`
//!     labels: {app: frontend}
//!     ports: [{name: http, port: 80, protocol: TCP}]
//!     serve: [tcp:80, udp:53]       # optional listeners the lab runs inside the pod
//!     ip: 10.200.1.20               # optional; default .10, .11, ... of the node's podCIDR
//!     serviceAccount: default       # optional
//! externals:
//!   - name: api-example
//!     ip: 198.51.100.10             # optional; in 192.0.2.0/24, 198.51.100.0/24 or 203.0.113.0/24
//!     ip6: "2001:db8:51:100::10"    # optional; in 2001:db8::/32, default mirrors `ip`
//!     serve: [tcp:443, tcp:80]
//! dns:
//!   api.example.com: api-example   # name -> external host name, or an IP address
//! ```
//!
//! The DNS server runs on the external host named [`DNS_HOST`]; when the file declares none, the
//! lab adds it at [`DNS_HOST_IPV4`].
//!
//! This module is pure: it turns text into a validated [`Topology`] and never touches files,
//! namespaces or the network. Addresses left out are chosen later, by [`crate::plan`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// Name of the external host that runs the DNS server.
pub const DNS_HOST: &str = "dns";
/// Address of the DNS host when the topology does not declare one.
pub const DNS_HOST_IPV4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);

/// The documentation ranges (RFC 5737) that external hosts take their IPv4 address from.
pub const EXTERNAL_RANGES: [Ipv4Net; 3] = [
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 2, 0), 24),
    Ipv4Net::new_assert(Ipv4Addr::new(198, 51, 100, 0), 24),
    Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 0), 24),
];
/// The documentation range (RFC 3849) that external hosts take their IPv6 address from.
pub const EXTERNAL_RANGE6: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32);
/// The range every pod CIDR must lie in.
pub const POD_RANGE: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8);

/// A whole lab: nodes, namespaces, pods, external hosts and DNS records.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Topology {
    /// The nodes; every pod runs on one of them. At least one is required.
    pub nodes: Vec<Node>,
    /// The Kubernetes namespaces pods live in, with their labels.
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    /// The pods.
    #[serde(default)]
    pub pods: Vec<Pod>,
    /// Hosts outside the cluster ("world"), reachable from every pod.
    #[serde(default)]
    pub externals: Vec<External>,
    /// DNS records served to pods: a name -> an external host's name or an IP address.
    #[serde(default)]
    pub dns: BTreeMap<String, String>,
}

/// A node: one network namespace that routes for its pods.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Node {
    /// The node's name, a DNS label such as `node-1`.
    pub name: String,
    /// The IPv4 /24 (inside 10.0.0.0/8) the node's pods take addresses from;
    /// default `10.200.<index + 1>.0/24`.
    #[serde(default, rename = "podCIDR")]
    pub pod_cidr: Option<Ipv4Net>,
}

/// A Kubernetes namespace.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Namespace {
    /// The namespace's name, a DNS label.
    pub name: String,
    /// The namespace's labels, as policies' namespace selectors see them.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A pod: one network namespace with an `eth0` attached to its node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pod {
    /// The pod's name, a DNS label, unique within its namespace.
    pub name: String,
    /// The namespace the pod belongs to; it must be declared under `namespaces`.
    pub namespace: String,
    /// The node the pod runs on; it must be declared under `nodes`.
    pub node: String,
    /// The pod's labels, as policies' pod selectors see them.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The pod's declared container ports (used by named-port policy rules).
    #[serde(default)]
    pub ports: Vec<Port>,
    /// Listeners the lab runs inside the pod, such as `tcp:80` or `udp:53`.
    #[serde(default)]
    pub serve: Vec<Listener>,
    /// The pod's IPv4 address, inside its node's pod CIDR; default: the next free one from `.10`.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// The pod's service account; default `default`.
    #[serde(default)]
    pub service_account: Option<String>,
}

/// A container port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Port {
    /// The port's name, for named-port rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The port number, 1..=65535.
    pub port: u16,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Protocol,
}

/// A transport protocol, spelled as Kubernetes spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum Protocol {
    /// TCP.
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

/// A host outside the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct External {
    /// The host's name, a DNS label; `lab exec` accepts it.
    pub name: String,
    /// The host's IPv4 address in a documentation range; default: the next free one in
    /// 198.51.100.0/24 from `.10`.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// The host's IPv6 address in 2001:db8::/32; default mirrors `ip`
    /// (198.51.100.10 -> 2001:db8:51:100::10).
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    /// Listeners the lab runs on the host, such as `tcp:443`.
    #[serde(default)]
    pub serve: Vec<Listener>,
}

/// A listener that `lab serve` runs: TCP echo (or a one-shot HTTP answer) or UDP echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Listener {
    /// Which transport.
    pub transport: Transport,
    /// The port, 1..=65535.
    pub port: u16,
}

/// The transport of a [`Listener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// A TCP listener.
    Tcp,
    /// A UDP socket.
    Udp,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match self.transport {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        };
        write!(f, "{transport}:{}", self.port)
    }
}

impl FromStr for Listener {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expected = || format!("expected `tcp:PORT` or `udp:PORT`, found {text:?}");
        let (transport, port) = text.split_once(':').ok_or_else(expected)?;
        let transport = match transport.to_ascii_lowercase().as_str() {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            _ => return Err(expected()),
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| format!("{text:?}: the port must be a number in 1..=65535"))?;
        Ok(Listener { transport, port })
    }
}

impl<'de> Deserialize<'de> for Listener {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a topology file was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not YAML of the expected shape.
    #[error("{message}")]
    Syntax {
        /// serde_yaml's message, which names the field, line and column.
        message: String,
        /// The 1-based line of the error, when known.
        line: Option<usize>,
    },
    /// The YAML has the right shape but says something impossible.
    #[error("{item}: {message}")]
    Invalid {
        /// The offending entry, such as `pods[2] (shop/frontend)`.
        item: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

fn invalid(item: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Invalid {
        item: item.into(),
        message: message.into(),
    }
}

/// Parses and validates a topology file's text.
pub fn parse(text: &str) -> Result<Topology, Error> {
    let topology: Topology = serde_yaml::from_str(text).map_err(|error| Error::Syntax {
        line: error.location().map(|location| location.line()),
        message: error.to_string(),
    })?;
    topology.validate()?;
    Ok(topology)
}

impl Topology {
    /// The pod CIDR of the node at `index`: its own, or the default `10.200.<index + 1>.0/24`.
    pub fn pod_cidr(&self, index: usize) -> Ipv4Net {
        self.nodes[index].pod_cidr.unwrap_or_else(|| {
            let third = u8::try_from(index + 1).unwrap_or(u8::MAX);
            Ipv4Net::new_assert(Ipv4Addr::new(10, 200, third, 0), 24)
        })
    }

    /// Whether the topology declares the DNS host itself (otherwise the lab adds it).
    pub fn declares_dns_host(&self) -> bool {
        self.externals
            .iter()
            .any(|external| external.name == DNS_HOST)
    }

    /// Checks everything that can be checked without choosing addresses.
    fn validate(&self) -> Result<(), Error> {
        self.validate_nodes()?;
        let namespaces = self.validate_namespaces()?;
        self.validate_pods(&namespaces)?;
        self.validate_externals()?;
        self.validate_dns()
    }

    fn validate_nodes(&self) -> Result<(), Error> {
        if self.nodes.is_empty() {
            return Err(invalid("nodes", "at least one node is required"));
        }
        if self.nodes.len() > usize::from(u8::MAX) {
            return Err(invalid("nodes", "at most 255 nodes are supported"));
        }
        let mut names = BTreeSet::new();
        let mut cidrs: HashMap<Ipv4Net, &str> = HashMap::new();
        for (index, node) in self.nodes.iter().enumerate() {
            let item = format!("nodes[{index}] ({})", node.name);
            check_dns_label(&item, "name", &node.name)?;
            if !names.insert(node.name.as_str()) {
                return Err(invalid(item, "another node has the same name"));
            }
            let cidr = self.pod_cidr(index);
            if cidr.prefix_len() != 24 || !POD_RANGE.contains(&cidr) {
                return Err(invalid(
                    item,
                    format!(
                        "podCIDR {cidr} must be a /24 inside {POD_RANGE}, such as 10.200.1.0/24"
                    ),
                ));
            }
            if cidr.network() != cidr.addr() {
                return Err(invalid(
                    item,
                    format!(
                        "podCIDR {cidr} has host bits set; did you mean {}?",
                        cidr.trunc()
                    ),
                ));
            }
            if let Some(other) = cidrs.insert(cidr, &node.name) {
                return Err(invalid(
                    item,
                    format!("podCIDR {cidr} is also node {other}'s"),
                ));
            }
        }
        Ok(())
    }

    fn validate_namespaces(&self) -> Result<BTreeSet<&str>, Error> {
        let mut names = BTreeSet::new();
        for (index, namespace) in self.namespaces.iter().enumerate() {
            let item = format!("namespaces[{index}] ({})", namespace.name);
            check_dns_label(&item, "name", &namespace.name)?;
            check_labels(&item, &namespace.labels)?;
            if !names.insert(namespace.name.as_str()) {
                return Err(invalid(item, "another namespace has the same name"));
            }
        }
        Ok(names)
    }

    fn validate_pods(&self, namespaces: &BTreeSet<&str>) -> Result<(), Error> {
        let mut names = BTreeSet::new();
        let mut ips: HashMap<Ipv4Addr, String> = HashMap::new();
        for (index, pod) in self.pods.iter().enumerate() {
            let item = format!("pods[{index}] ({}/{})", pod.namespace, pod.name);
            check_dns_label(&item, "name", &pod.name)?;
            check_labels(&item, &pod.labels)?;
            if !namespaces.contains(pod.namespace.as_str()) {
                return Err(invalid(
                    item,
                    format!(
                        "namespace {:?} is not declared; add `- name: {}` under `namespaces:`",
                        pod.namespace, pod.namespace
                    ),
                ));
            }
            let Some(node_index) = self.nodes.iter().position(|node| node.name == pod.node) else {
                let known: Vec<&str> = self.nodes.iter().map(|node| node.name.as_str()).collect();
                return Err(invalid(
                    item,
                    format!(
                        "node {:?} is not declared (nodes: {})",
                        pod.node,
                        known.join(", ")
                    ),
                ));
            };
            if !names.insert((pod.namespace.as_str(), pod.name.as_str())) {
                return Err(invalid(
                    item,
                    "another pod in this namespace has the same name",
                ));
            }
            for port in &pod.ports {
                if port.port == 0 {
                    return Err(invalid(item, "ports: port 0 is not a valid port"));
                }
            }
            check_listeners(&item, &pod.serve)?;
            if let Some(ip) = pod.ip {
                let cidr = self.pod_cidr(node_index);
                if !is_usable_host(cidr, ip) {
                    return Err(invalid(
                        item,
                        format!(
                            "ip {ip} is not a usable address of node {}'s podCIDR {cidr}",
                            pod.node
                        ),
                    ));
                }
                if let Some(other) = ips.insert(ip, format!("{}/{}", pod.namespace, pod.name)) {
                    return Err(invalid(item, format!("ip {ip} is also pod {other}'s")));
                }
            }
        }
        Ok(())
    }

    fn validate_externals(&self) -> Result<(), Error> {
        let mut names = BTreeSet::new();
        let mut ips: HashMap<IpAddr, &str> = HashMap::new();
        for (index, external) in self.externals.iter().enumerate() {
            let item = format!("externals[{index}] ({})", external.name);
            check_dns_label(&item, "name", &external.name)?;
            if !names.insert(external.name.as_str()) {
                return Err(invalid(item, "another external host has the same name"));
            }
            if external.name == DNS_HOST
                && external.serve.iter().any(|listener| listener.port == 53)
            {
                return Err(invalid(
                    item,
                    "the DNS server already listens on port 53 of this host; remove it from `serve`",
                ));
            }
            check_listeners(&item, &external.serve)?;
            if let Some(ip) = external.ip {
                if !EXTERNAL_RANGES
                    .iter()
                    .any(|range| is_usable_host(*range, ip))
                {
                    return Err(invalid(
                        item,
                        format!(
                            "ip {ip} must be a host address in a documentation range: {}",
                            ranges_text()
                        ),
                    ));
                }
                if let Some(other) = ips.insert(IpAddr::V4(ip), &external.name) {
                    return Err(invalid(
                        item,
                        format!("ip {ip} is also external host {other}'s"),
                    ));
                }
            }
            if let Some(ip6) = external.ip6 {
                if !EXTERNAL_RANGE6.contains(&ip6) {
                    return Err(invalid(
                        item,
                        format!("ip6 {ip6} must be inside {EXTERNAL_RANGE6}"),
                    ));
                }
                if let Some(other) = ips.insert(IpAddr::V6(ip6), &external.name) {
                    return Err(invalid(
                        item,
                        format!("ip6 {ip6} is also external host {other}'s"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_dns(&self) -> Result<(), Error> {
        for (name, target) in &self.dns {
            let item = format!("dns ({name})");
            check_dns_name(&item, name)?;
            let is_external = self
                .externals
                .iter()
                .any(|external| &external.name == target)
                || (target == DNS_HOST);
            if !is_external && target.parse::<IpAddr>().is_err() {
                let known: Vec<&str> = self.externals.iter().map(|e| e.name.as_str()).collect();
                return Err(invalid(
                    item,
                    format!(
                        "{target:?} is neither an external host (externals: {}) nor an IP address",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Whether `ip` is inside `net` and is neither its network nor its broadcast address.
pub fn is_usable_host(net: Ipv4Net, ip: Ipv4Addr) -> bool {
    net.contains(&ip) && ip != net.network() && ip != net.broadcast()
}

fn ranges_text() -> String {
    let ranges: Vec<String> = EXTERNAL_RANGES.iter().map(ToString::to_string).collect();
    ranges.join(", ")
}

/// Kubernetes object names here are DNS labels (RFC 1123): they end up in namespace names.
fn check_dns_label(item: &str, field: &str, value: &str) -> Result<(), Error> {
    let valid = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(invalid(
            item,
            format!(
                "{field} {value:?} must be a DNS label: 1-63 lowercase letters, digits or '-', \
                 starting and ending with a letter or digit"
            ),
        ))
    }
}

fn check_dns_name(item: &str, name: &str) -> Result<(), Error> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err(invalid(item, "a DNS name must have 1-253 characters"));
    }
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(invalid(
                item,
                format!("{label:?} is not a valid DNS label (letters, digits and '-')"),
            ));
        }
    }
    Ok(())
}

fn check_labels(item: &str, labels: &BTreeMap<String, String>) -> Result<(), Error> {
    for (key, value) in labels {
        if key.is_empty() || key.len() > 317 || key.chars().any(char::is_whitespace) {
            return Err(invalid(
                item,
                format!("label key {key:?} is not a valid label key"),
            ));
        }
        if value.len() > 63 || value.chars().any(char::is_whitespace) {
            return Err(invalid(
                item,
                format!(
                    "label {key}: value {value:?} must have at most 63 characters and no spaces"
                ),
            ));
        }
    }
    Ok(())
}

fn check_listeners(item: &str, listeners: &[Listener]) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    for listener in listeners {
        if !seen.insert(listener) {
            return Err(invalid(item, format!("serve lists {listener} twice")));
        }
    }
    Ok(())
}
