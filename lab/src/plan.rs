//! The plan: every namespace, interface, address and route of a lab, chosen from a validated
//! [`Topology`] and a name prefix, and the `ip`/`sysctl` commands that build it.
//!
//! Address plan (all of it lives inside the lab's own namespaces, so parallel labs may reuse it):
//! - node `i` (0-based) <-> fabric: a veth with 172.31.i.1/30 (fabric) and 172.31.i.2/30 (node),
//!   IPv6 fd00:172:31:i::1/64 and ::2/64; the fabric routes the node's pod CIDR to the node.
//! - pods: an IPv4 /32 from their node's /24 and an IPv6 /128 that mirrors it digit for digit
//!   (10.200.1.10 -> fd00:10:200:1::10); default routes via 169.254.1.1 (onlink) and fe80::1,
//!   answered by proxy ARP and by fe80::1 on the host-side veth, as Calico does.
//! - external hosts: the same point-to-point scheme, attached to the fabric, except that the
//!   fabric (which has no default route for proxy ARP to use) owns 169.254.1.1 on its loopback.
//!
//! Names: every namespace is `<prefix>-<name>`; every interface outside a pod or external host
//! is `<prefix>-<kind><id>`, at most 15 bytes (IFNAMSIZ - 1).
//!
//! Pure: nothing here runs a command; the binary executes [`Plan::setup_steps`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::topology::{
    DNS_HOST, DNS_HOST_IPV4, EXTERNAL_RANGES, Listener, Namespace, Port, Topology, is_usable_host,
};

#[cfg(test)]
mod tests;

/// Longest accepted name prefix: `<prefix>-h<6 hex>` must fit in 15 bytes.
pub const MAX_PREFIX_LEN: usize = 7;
/// Longest interface name Linux accepts (IFNAMSIZ minus the NUL).
pub const MAX_IFNAME_LEN: usize = 15;
/// The IPv4 gateway pods and external hosts route through; nobody owns it, proxy ARP answers.
pub const GATEWAY4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The IPv6 gateway pods and external hosts route through, owned by the far side of their veth.
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
/// The interface name inside pods and external hosts.
pub const POD_IFACE: &str = "eth0";
/// First host number handed out automatically in a pod CIDR or external range.
const FIRST_AUTO_HOST: u8 = 10;

/// The unique prefix of every namespace and interface a lab creates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Prefix(String);

impl Prefix {
    /// Accepts 2..=7 lowercase letters and digits, starting with a letter.
    pub fn new(text: &str) -> Result<Self, PlanError> {
        let valid = (2..=MAX_PREFIX_LEN).contains(&text.len())
            && text.starts_with(|c: char| c.is_ascii_lowercase())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if valid {
            Ok(Prefix(text.to_owned()))
        } else {
            Err(PlanError::Prefix(text.to_owned()))
        }
    }

    /// A prefix `vg` + 5 hex digits taken from `seed` (the caller supplies randomness).
    pub fn from_seed(seed: u64) -> Self {
        Prefix(format!("vg{:05x}", seed & 0xf_ffff))
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a plan could not be made from a valid topology.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The prefix has the wrong length or characters.
    #[error(
        "prefix {0:?}: expected 2-{MAX_PREFIX_LEN} lowercase letters or digits, starting with a letter"
    )]
    Prefix(String),
    /// A node's /24 has no free address left.
    #[error("node {node}: no free pod address left in {cidr} (automatic addresses start at .10)")]
    PodCapacity {
        /// The node.
        node: String,
        /// Its pod CIDR.
        cidr: Ipv4Net,
    },
    /// The documentation range ran out of addresses for external hosts.
    #[error("external host {name}: no free address left in 198.51.100.0/24; give it an `ip`")]
    ExternalCapacity {
        /// The external host.
        name: String,
    },
    /// Two objects map to the same namespace or interface name.
    #[error("{first} and {second} would both be named {name:?}; rename one of them")]
    NameCollision {
        /// The shared name.
        name: String,
        /// The first object.
        first: String,
        /// The second object.
        second: String,
    },
}

/// Everything a lab consists of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The prefix of every name.
    pub prefix: Prefix,
    /// The router namespace that joins nodes and external hosts.
    pub fabric_netns: String,
    /// The nodes, in topology order.
    pub nodes: Vec<NodePlan>,
    /// The Kubernetes namespaces, in topology order.
    pub namespaces: Vec<Namespace>,
    /// The pods, in topology order.
    pub pods: Vec<PodPlan>,
    /// The external hosts, the DNS host included.
    pub externals: Vec<ExternalPlan>,
    /// The DNS server.
    pub dns: DnsPlan,
}

/// A node's namespace and its link to the fabric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// The node's name.
    pub name: String,
    /// The node's namespace.
    pub netns: String,
    /// The uplink veth, in the node's namespace.
    pub uplink: String,
    /// The uplink's peer, in the fabric namespace.
    pub fabric_iface: String,
    /// The node's IPv4 address (on the uplink).
    pub ipv4: Ipv4Addr,
    /// The node's IPv6 address (on the uplink).
    pub ipv6: Ipv6Addr,
    /// The fabric's IPv4 address on this link: the node's default gateway.
    pub fabric_ipv4: Ipv4Addr,
    /// The fabric's IPv6 address on this link: the node's default gateway.
    pub fabric_ipv6: Ipv6Addr,
    /// The node's pods' IPv4 range.
    pub pod_cidr: Ipv4Net,
    /// The node's pods' IPv6 range.
    pub pod_cidr6: Ipv6Net,
}

/// A pod's namespace, veth and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlan {
    /// The pod's name.
    pub name: String,
    /// The pod's Kubernetes namespace.
    pub namespace: String,
    /// The node it runs on.
    pub node: String,
    /// The pod's network namespace.
    pub netns: String,
    /// The host-side veth, in the node's namespace: where the node-agent attaches.
    pub host_iface: String,
    /// The pod's IPv4 address.
    pub ipv4: Ipv4Addr,
    /// The pod's IPv6 address.
    pub ipv6: Ipv6Addr,
    /// The pod's labels.
    pub labels: BTreeMap<String, String>,
    /// The pod's declared ports.
    pub ports: Vec<Port>,
    /// Listeners to run inside the pod.
    pub serve: Vec<Listener>,
    /// The pod's service account.
    pub service_account: String,
}

impl PodPlan {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// An external host's namespace, veth and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalPlan {
    /// The host's name.
    pub name: String,
    /// The host's namespace.
    pub netns: String,
    /// The veth's peer in the fabric namespace.
    pub fabric_iface: String,
    /// The host's IPv4 address.
    pub ipv4: Ipv4Addr,
    /// The host's IPv6 address.
    pub ipv6: Ipv6Addr,
    /// Listeners to run on the host.
    pub serve: Vec<Listener>,
}

/// The DNS server and what it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPlan {
    /// The namespace dnsmasq runs in.
    pub netns: String,
    /// The server's IPv4 address.
    pub ipv4: Ipv4Addr,
    /// The server's IPv6 address.
    pub ipv6: Ipv6Addr,
    /// The records, sorted by name.
    pub records: Vec<DnsRecord>,
}

/// One name and its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// The fully qualified name, without a trailing dot.
    pub name: String,
    /// Its addresses (at least one).
    pub addresses: Vec<IpAddr>,
}

/// One command of the setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `ip netns add NAME`.
    AddNetns(String),
    /// `ip -n NETNS ARGS...`.
    Ip {
        /// The namespace the command acts in.
        netns: String,
        /// The arguments after `-n NETNS`.
        args: Vec<String>,
    },
    /// `ip netns exec NETNS sysctl -q -w KEY=VALUE...`.
    Sysctl {
        /// The namespace whose settings change.
        netns: String,
        /// `(key, value)` pairs, applied in order.
        settings: Vec<(String, String)>,
    },
}

impl Step {
    /// The full command line.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Step::AddNetns(name) => ["ip", "netns", "add", name].map(str::to_owned).to_vec(),
            Step::Ip { netns, args } => {
                let mut argv = vec!["ip".to_owned(), "-n".to_owned(), netns.clone()];
                argv.extend(args.iter().cloned());
                argv
            }
            Step::Sysctl { netns, settings } => {
                let mut argv = ["ip", "netns", "exec", netns, "sysctl", "-q", "-w"]
                    .map(str::to_owned)
                    .to_vec();
                argv.extend(settings.iter().map(|(key, value)| format!("{key}={value}")));
                argv
            }
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv().join(" "))
    }
}

/// Reads a number's decimal digits as hexadecimal, so that IPv6 addresses read like the IPv4
/// addresses they mirror (10 -> 0x10, 255 -> 0x255).
fn decimal_group(n: u8) -> u16 {
    let (hundreds, tens, ones) = (
        u16::from(n / 100),
        u16::from(n / 10 % 10),
        u16::from(n % 10),
    );
    hundreds << 8 | tens << 4 | ones
}

/// The IPv6 mirror of a pod or node-link address: a.b.c.d -> fd00:a:b:c::d.
pub fn cluster_ipv6(ip: Ipv4Addr) -> Ipv6Addr {
    let [a, b, c, d] = ip.octets();
    Ipv6Addr::new(
        0xfd00,
        decimal_group(a),
        decimal_group(b),
        decimal_group(c),
        0,
        0,
        0,
        decimal_group(d),
    )
}

/// The IPv6 mirror of an external host's address: a.b.c.d -> 2001:db8:b:c::d.
pub fn external_ipv6(ip: Ipv4Addr) -> Ipv6Addr {
    let [_, b, c, d] = ip.octets();
    Ipv6Addr::new(
        0x2001,
        0xdb8,
        decimal_group(b),
        decimal_group(c),
        0,
        0,
        0,
        decimal_group(d),
    )
}

/// The host-side veth name of a pod: a stable hash of `namespace/name`.
fn host_iface_name(prefix: &Prefix, namespace: &str, name: &str) -> String {
    // FNV-1a: stable across runs and Rust versions, unlike `DefaultHasher`.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in namespace.bytes().chain([b'/']).chain(name.bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{prefix}-h{:06x}", hash & 0xff_ffff)
}

impl Plan {
    /// Chooses every name and address of the lab.
    pub fn new(topology: &Topology, prefix: Prefix) -> Result<Plan, PlanError> {
        let netns = |name: &str| format!("{prefix}-{name}");
        let mut names = NameRegistry::default();
        let fabric_netns = netns("fabric");
        names.claim(&fabric_netns, "the fabric")?;

        let mut nodes = Vec::with_capacity(topology.nodes.len());
        for (index, node) in topology.nodes.iter().enumerate() {
            let i = u8::try_from(index).expect("validation caps nodes at 255");
            let pod_cidr = topology.pod_cidr(index);
            let ipv4 = Ipv4Addr::new(172, 31, i, 2);
            let fabric_ipv4 = Ipv4Addr::new(172, 31, i, 1);
            let plan = NodePlan {
                name: node.name.clone(),
                netns: netns(&node.name),
                uplink: format!("{prefix}-up"),
                fabric_iface: format!("{prefix}-n{index}"),
                ipv4,
                ipv6: cluster_ipv6(ipv4),
                fabric_ipv4,
                fabric_ipv6: cluster_ipv6(fabric_ipv4),
                pod_cidr,
                pod_cidr6: Ipv6Net::new_assert(cluster_ipv6(pod_cidr.network()), 64),
            };
            names.claim(&plan.netns, &format!("node {}", node.name))?;
            nodes.push(plan);
        }

        let pods = plan_pods(topology, &prefix, &nodes, &mut names)?;
        let externals = plan_externals(topology, &prefix, &mut names)?;
        let dns_host = externals
            .iter()
            .find(|external| external.name == DNS_HOST)
            .expect("plan_externals always includes the DNS host");
        let dns = DnsPlan {
            netns: dns_host.netns.clone(),
            ipv4: dns_host.ipv4,
            ipv6: dns_host.ipv6,
            records: topology
                .dns
                .iter()
                .map(|(name, target)| DnsRecord {
                    name: name.trim_end_matches('.').to_owned(),
                    addresses: match externals.iter().find(|external| &external.name == target) {
                        Some(external) => vec![external.ipv4.into(), external.ipv6.into()],
                        None => vec![target.parse().expect("validation accepts hosts or IPs")],
                    },
                })
                .collect(),
        };

        Ok(Plan {
            prefix,
            fabric_netns,
            nodes,
            namespaces: topology.namespaces.clone(),
            pods,
            externals,
            dns,
        })
    }

    /// Every namespace of the lab, in the order to delete them (pods first, fabric last).
    pub fn all_netns(&self) -> Vec<String> {
        let pods = self.pods.iter().map(|pod| pod.netns.clone());
        let externals = self.externals.iter().map(|external| external.netns.clone());
        let nodes = self.nodes.iter().map(|node| node.netns.clone());
        pods.chain(externals)
            .chain(nodes)
            .chain([self.fabric_netns.clone()])
            .collect()
    }

    /// The node a pod runs on.
    pub fn node_of(&self, pod: &PodPlan) -> &NodePlan {
        self.nodes
            .iter()
            .find(|node| node.name == pod.node)
            .expect("pods are planned on declared nodes")
    }

    /// `/etc/resolv.conf` for pods: the lab's DNS server only.
    pub fn resolv_conf(&self) -> String {
        format!(
            "# Written by vigil lab {prefix}; removed by `lab down`.\nnameserver {}\noptions timeout:1 attempts:2\n",
            self.dns.ipv4,
            prefix = self.prefix
        )
    }

    /// The commands that build the lab, in order. Namespaces come first so that a failure
    /// leaves nothing outside them.
    pub fn setup_steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        let routers =
            std::iter::once(&self.fabric_netns).chain(self.nodes.iter().map(|n| &n.netns));
        for netns in routers {
            add_netns(&mut steps, netns, true);
        }
        for netns in self
            .externals
            .iter()
            .map(|e| &e.netns)
            .chain(self.pods.iter().map(|p| &p.netns))
        {
            add_netns(&mut steps, netns, false);
        }
        // The fabric has no default route for proxy ARP to follow, so it simply owns the
        // external hosts' IPv4 gateway (scope host: never chosen as a source address).
        steps.push(ip(
            &self.fabric_netns,
            &[
                "addr",
                "add",
                &format!("{GATEWAY4}/32"),
                "dev",
                "lo",
                "scope",
                "host",
            ],
        ));

        for node in &self.nodes {
            self.node_link_steps(&mut steps, node);
        }
        for external in &self.externals {
            point_to_point_steps(
                &mut steps,
                &self.fabric_netns,
                &external.fabric_iface,
                &external.netns,
                external.ipv4,
                external.ipv6,
            );
        }
        for pod in &self.pods {
            let node = self.node_of(pod);
            point_to_point_steps(
                &mut steps,
                &node.netns,
                &pod.host_iface,
                &pod.netns,
                pod.ipv4,
                pod.ipv6,
            );
        }

        // Proxy ARP makes the gateway 169.254.1.1 answer on every host-side veth; without
        // proxy_delay=0 the kernel delays those (broadcast) answers by up to 0.8 s.
        let proxy = |ifaces: Vec<&String>| -> Vec<(String, String)> {
            ifaces
                .into_iter()
                .flat_map(|iface| {
                    [
                        (format!("net.ipv4.conf.{iface}.proxy_arp"), "1".to_owned()),
                        (
                            format!("net.ipv4.neigh.{iface}.proxy_delay"),
                            "0".to_owned(),
                        ),
                    ]
                })
                .collect()
        };
        for node in &self.nodes {
            let ifaces: Vec<&String> = self
                .pods
                .iter()
                .filter(|pod| pod.node == node.name)
                .map(|pod| &pod.host_iface)
                .collect();
            if !ifaces.is_empty() {
                steps.push(Step::Sysctl {
                    netns: node.netns.clone(),
                    settings: proxy(ifaces),
                });
            }
        }
        steps
    }

    fn node_link_steps(&self, steps: &mut Vec<Step>, node: &NodePlan) {
        let fabric = &self.fabric_netns;
        steps.push(ip(
            fabric,
            &[
                "link",
                "add",
                &node.fabric_iface,
                "type",
                "veth",
                "peer",
                "name",
                &node.uplink,
                "netns",
                &node.netns,
            ],
        ));
        for (netns, iface, v4, v6) in [
            (
                fabric,
                &node.fabric_iface,
                node.fabric_ipv4,
                node.fabric_ipv6,
            ),
            (&node.netns, &node.uplink, node.ipv4, node.ipv6),
        ] {
            steps.push(ip(
                netns,
                &["addr", "add", &format!("{v4}/30"), "dev", iface],
            ));
            steps.push(ip(
                netns,
                &["addr", "add", &format!("{v6}/64"), "dev", iface, "nodad"],
            ));
            steps.push(ip(netns, &["link", "set", iface, "up"]));
        }
        steps.push(ip(
            &node.netns,
            &[
                "route",
                "add",
                "default",
                "via",
                &node.fabric_ipv4.to_string(),
            ],
        ));
        steps.push(ip(
            &node.netns,
            &[
                "-6",
                "route",
                "add",
                "default",
                "via",
                &node.fabric_ipv6.to_string(),
            ],
        ));
        steps.push(ip(
            fabric,
            &[
                "route",
                "add",
                &node.pod_cidr.to_string(),
                "via",
                &node.ipv4.to_string(),
            ],
        ));
        steps.push(ip(
            fabric,
            &[
                "-6",
                "route",
                "add",
                &node.pod_cidr6.to_string(),
                "via",
                &node.ipv6.to_string(),
            ],
        ));
    }
}

fn ip(netns: &str, args: &[&str]) -> Step {
    Step::Ip {
        netns: netns.to_owned(),
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
    }
}

/// Creates a namespace, brings up its loopback and sets its namespace-wide sysctls. DAD is
/// off so that addresses are usable at once; routers forward both families.
fn add_netns(steps: &mut Vec<Step>, netns: &str, router: bool) {
    steps.push(Step::AddNetns(netns.to_owned()));
    steps.push(ip(netns, &["link", "set", "lo", "up"]));
    let mut settings = vec![
        ("net.ipv6.conf.all.accept_dad", "0"),
        ("net.ipv6.conf.default.accept_dad", "0"),
    ];
    if router {
        settings.extend([
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv6.conf.all.forwarding", "1"),
        ]);
    }
    steps.push(Step::Sysctl {
        netns: netns.to_owned(),
        settings: settings
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    });
}

/// Attaches a leaf namespace (pod or external host) to a router namespace, Calico style: the
/// leaf's `eth0` holds a /32 and a /128 and routes everything to the link-local gateways; the
/// router routes the two addresses to its side of the veth.
fn point_to_point_steps(
    steps: &mut Vec<Step>,
    router: &str,
    router_iface: &str,
    leaf: &str,
    ipv4: Ipv4Addr,
    ipv6: Ipv6Addr,
) {
    let gw4 = GATEWAY4.to_string();
    let gw6 = GATEWAY6.to_string();
    steps.push(ip(
        router,
        &[
            "link",
            "add",
            router_iface,
            "type",
            "veth",
            "peer",
            "name",
            POD_IFACE,
            "netns",
            leaf,
        ],
    ));
    steps.push(ip(
        router,
        &[
            "addr",
            "add",
            &format!("{gw6}/64"),
            "dev",
            router_iface,
            "nodad",
        ],
    ));
    steps.push(ip(router, &["link", "set", router_iface, "up"]));
    steps.push(ip(
        leaf,
        &["addr", "add", &format!("{ipv4}/32"), "dev", POD_IFACE],
    ));
    steps.push(ip(
        leaf,
        &[
            "addr",
            "add",
            &format!("{ipv6}/128"),
            "dev",
            POD_IFACE,
            "nodad",
        ],
    ));
    steps.push(ip(leaf, &["link", "set", POD_IFACE, "up"]));
    steps.push(ip(
        leaf,
        &[
            "route", "add", "default", "via", &gw4, "dev", POD_IFACE, "onlink",
        ],
    ));
    steps.push(ip(
        leaf,
        &[
            "-6", "route", "add", "default", "via", &gw6, "dev", POD_IFACE,
        ],
    ));
    steps.push(ip(
        router,
        &["route", "add", &format!("{ipv4}/32"), "dev", router_iface],
    ));
    steps.push(ip(
        router,
        &[
            "-6",
            "route",
            "add",
            &format!("{ipv6}/128"),
            "dev",
            router_iface,
        ],
    ));
}

fn plan_pods(
    topology: &Topology,
    prefix: &Prefix,
    nodes: &[NodePlan],
    names: &mut NameRegistry,
) -> Result<Vec<PodPlan>, PlanError> {
    let mut used: BTreeSet<Ipv4Addr> = topology.pods.iter().filter_map(|pod| pod.ip).collect();
    let mut ifaces: HashMap<String, String> = HashMap::new();
    let mut pods = Vec::with_capacity(topology.pods.len());
    for pod in &topology.pods {
        let node = nodes
            .iter()
            .find(|node| node.name == pod.node)
            .expect("validation checks pods' nodes");
        let ipv4 = match pod.ip {
            Some(ip) => ip,
            None => {
                let ip = next_free(node.pod_cidr, &used).ok_or_else(|| PlanError::PodCapacity {
                    node: node.name.clone(),
                    cidr: node.pod_cidr,
                })?;
                used.insert(ip);
                ip
            }
        };
        let key = format!("{}/{}", pod.namespace, pod.name);
        let host_iface = host_iface_name(prefix, &pod.namespace, &pod.name);
        debug_assert!(host_iface.len() <= MAX_IFNAME_LEN);
        if let Some(other) = ifaces.insert(host_iface.clone(), key.clone()) {
            return Err(PlanError::NameCollision {
                name: host_iface,
                first: format!("pod {other}"),
                second: format!("pod {key}"),
            });
        }
        let plan = PodPlan {
            name: pod.name.clone(),
            namespace: pod.namespace.clone(),
            node: pod.node.clone(),
            netns: format!("{prefix}-{}-{}", pod.namespace, pod.name),
            host_iface,
            ipv4,
            ipv6: cluster_ipv6(ipv4),
            labels: pod.labels.clone(),
            ports: pod.ports.clone(),
            serve: pod.serve.clone(),
            service_account: pod
                .service_account
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
        };
        names.claim(&plan.netns, &format!("pod {key}"))?;
        pods.push(plan);
    }
    Ok(pods)
}

fn plan_externals(
    topology: &Topology,
    prefix: &Prefix,
    names: &mut NameRegistry,
) -> Result<Vec<ExternalPlan>, PlanError> {
    let mut declared = topology.externals.clone();
    if !topology.declares_dns_host() {
        declared.push(crate::topology::External {
            name: DNS_HOST.to_owned(),
            ip: None,
            ip6: None,
            serve: Vec::new(),
        });
    }
    let mut used: BTreeSet<Ipv4Addr> = declared.iter().filter_map(|external| external.ip).collect();
    let mut externals = Vec::with_capacity(declared.len());
    for (index, external) in declared.iter().enumerate() {
        let ipv4 = match external.ip {
            Some(ip) => ip,
            // The implicit DNS host gets its well-known address unless a declared host took it.
            None if external.name == DNS_HOST && !used.contains(&DNS_HOST_IPV4) => DNS_HOST_IPV4,
            None => {
                next_free(EXTERNAL_RANGES[1], &used).ok_or_else(|| PlanError::ExternalCapacity {
                    name: external.name.clone(),
                })?
            }
        };
        used.insert(ipv4);
        let plan = ExternalPlan {
            name: external.name.clone(),
            netns: format!("{prefix}-{}", external.name),
            fabric_iface: format!("{prefix}-x{index}"),
            ipv4,
            ipv6: external.ip6.unwrap_or_else(|| external_ipv6(ipv4)),
            serve: external.serve.clone(),
        };
        names.claim(&plan.netns, &format!("external host {}", external.name))?;
        externals.push(plan);
    }
    Ok(externals)
}

/// The lowest unused address from `.10` up in a network.
fn next_free(net: Ipv4Net, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let base = u32::from(net.network());
    (u32::from(FIRST_AUTO_HOST)..)
        .map(|offset| Ipv4Addr::from(base + offset))
        .take_while(|ip| is_usable_host(net, *ip))
        .find(|ip| !used.contains(ip))
}

/// Namespace names already handed out, and to what.
#[derive(Debug, Default)]
struct NameRegistry(HashMap<String, String>);

impl NameRegistry {
    fn claim(&mut self, name: &str, owner: &str) -> Result<(), PlanError> {
        match self.0.insert(name.to_owned(), owner.to_owned()) {
            Some(first) => Err(PlanError::NameCollision {
                name: name.to_owned(),
                first,
                second: owner.to_owned(),
            }),
            None => Ok(()),
        }
    }
}
