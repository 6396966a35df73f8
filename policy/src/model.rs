//! The cluster as the policy engine sees it: endpoints (pods), namespaces and nodes.
//!
//! These are plain data supplied by the caller (the node agent builds them from its inventory,
//! tests build them by hand or from cluster manifests). Nothing here does I/O or interprets
//! policy; identities and label views derived from these types live in `universe`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// Traffic direction from the subject endpoint's point of view.
///
/// The numbers are Hubble's `TrafficDirection` and `VIGIL_DIR_*` in `ebpf/vigil.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Traffic arriving at the subject endpoint.
    Ingress,
    /// Traffic leaving the subject endpoint.
    Egress,
}

impl Direction {
    /// Both directions, ingress first.
    pub const ALL: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    /// The datapath's encoding: ingress 1, egress 2.
    pub fn as_u8(self) -> u8 {
        match self {
            Direction::Ingress => 1,
            Direction::Egress => 2,
        }
    }

    /// The inverse of [`Direction::as_u8`].
    pub fn from_u8(value: u8) -> Option<Direction> {
        match value {
            1 => Some(Direction::Ingress),
            2 => Some(Direction::Egress),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// A workload endpoint (a pod's network interface).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// The pod name.
    pub name: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's labels, without any `k8s:` source prefix.
    pub labels: BTreeMap<String, String>,
    /// Every address of the endpoint (IPv4 and/or IPv6).
    pub ips: Vec<IpAddr>,
    /// Named container ports, used to resolve named ports in policy rules.
    pub ports: Vec<NamedPort>,
    /// The node the endpoint runs on.
    pub node: String,
    /// The host-side interface name (e.g. the veth peer).
    pub interface: String,
    /// The pod's service account, when known.
    pub service_account: Option<String>,
    /// The network namespace holding `interface` (a name under /run/netns or a path), when it is
    /// not the agent's own.
    pub netns: Option<String>,
}

/// The label under which an endpoint's service account is part of its identity (Cilium's name).
pub const SERVICE_ACCOUNT_LABEL: &str = "io.cilium.k8s.policy.serviceaccount";

impl Endpoint {
    /// The labels that make up the endpoint's security identity: its pod labels plus, when the
    /// service account is known, [`SERVICE_ACCOUNT_LABEL`] (as Cilium does), so that service
    /// account matching is exact at identity level. Pass these to [`crate::identity_of`].
    pub fn identity_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        if let Some(sa) = &self.service_account {
            labels.insert(SERVICE_ACCOUNT_LABEL.to_owned(), sa.clone());
        }
        labels
    }
}

/// A named container port (`containerPort` with a `name`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamedPort {
    /// The port name referenced by policies (e.g. `http`).
    pub name: String,
    /// The port number.
    pub port: u16,
    /// The IP protocol number (TCP 6, UDP 17, SCTP 132).
    pub protocol: u8,
}

/// A namespace and its labels (used by namespace selectors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace {
    /// The namespace name.
    pub name: String,
    /// The namespace's labels. `kubernetes.io/metadata.name` and `projectcalico.org/name` are
    /// implied and need not be listed.
    pub labels: BTreeMap<String, String>,
}

/// A cluster node and its addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// The node name, as in [`Endpoint::node`].
    pub name: String,
    /// The node's addresses: `host` identity on that node, `remote-node` elsewhere.
    pub ips: Vec<IpAddr>,
    /// The network namespace standing for the node in a lab, when there is one.
    pub netns: Option<String>,
}

/// Everything the policy engine needs to know about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    /// Every endpoint of the cluster, on every node.
    pub endpoints: Vec<Endpoint>,
    /// Namespaces with labels; a namespace that is not listed has only its implied labels.
    pub namespaces: Vec<Namespace>,
    /// Every node of the cluster.
    pub nodes: Vec<Node>,
}

/// IP protocol numbers the policy dialects name.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// UDP-Lite.
    pub const UDPLITE: u8 = 136;

    /// Whether the datapath reads a port for this protocol: the destination port for TCP, UDP
    /// and SCTP, `(type << 8) | code` for ICMP and ICMPv6. Every other protocol has port 0.
    pub fn has_port(protocol: u8) -> bool {
        matches!(protocol, TCP | UDP | SCTP | ICMP | ICMPV6)
    }

    /// Whether the protocol is ICMP or ICMPv6 (port = type and code).
    pub fn is_icmp(protocol: u8) -> bool {
        matches!(protocol, ICMP | ICMPV6)
    }
}
