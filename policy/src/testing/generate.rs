//! Random worlds: a cluster and policies in all three dialects, written as manifests and parsed
//! with the real parser, so that the generator exercises the whole pipeline.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::manifest::parse_policy_file;
use crate::model::{Cluster, Endpoint, NamedPort, Namespace, Node, proto};
use crate::policy::{Policy, Tier};
use crate::set::PolicySet;

/// A small deterministic PRNG (SplitMix64), so worlds are reproducible from their seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A random element (`items` must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A cluster, the policy set in force, the node to compile for, and the manifests it came from.
#[derive(Debug, Clone)]
pub struct World {
    /// The policies.
    pub set: PolicySet,
    /// The cluster.
    pub cluster: Cluster,
    /// The local node.
    pub node: String,
    /// (file name, text) of every policy manifest.
    pub files: Vec<(String, String)>,
}

/// Addresses outside every endpoint and node, some inside rule prefixes.
pub const WORLD_ADDRESSES: [&str; 9] = [
    "8.8.8.8",
    "203.0.113.200",
    "203.0.113.5",
    "198.51.100.7",
    "10.0.9.9",
    "192.168.0.77",
    "2606:4700::1111",
    "2001:db8::5",
    "fd00::77",
];

/// A random address inside a prefix.
pub fn random_addr_in(rng: &mut Rng, net: &IpNet) -> IpAddr {
    match net {
        IpNet::V4(n) => {
            let host_bits = 32 - u32::from(n.prefix_len());
            let mask = if host_bits == 32 {
                u32::MAX
            } else {
                (1u32 << host_bits) - 1
            };
            IpAddr::V4(Ipv4Addr::from(
                u32::from(n.network()) | (rng.next_u64() as u32 & mask),
            ))
        }
        IpNet::V6(n) => {
            let host_bits = 128 - u32::from(n.prefix_len());
            let mask = if host_bits == 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            let r = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | (r & mask)))
        }
    }
}

/// A JSON value (YAML's flow subset), enough to write manifests.
#[derive(Debug, Clone)]
enum J {
    Obj(Vec<(String, J)>),
    Arr(Vec<J>),
    Str(String),
    Num(i64),
    Bool(bool),
}

fn s(v: impl AsRef<str>) -> J {
    J::Str(v.as_ref().to_owned())
}

fn obj(fields: Vec<(&str, J)>) -> J {
    J::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

impl fmt::Display for J {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            J::Obj(fields) => {
                f.write_str("{")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?}: {v}")?;
                }
                f.write_str("}")
            }
            J::Arr(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            J::Str(v) => write!(f, "{v:?}"),
            J::Num(n) => write!(f, "{n}"),
            J::Bool(b) => write!(f, "{b}"),
        }
    }
}

const APPS: [&str; 4] = ["web", "api", "db", "cache"];
const NAMESPACES: [&str; 3] = ["default", "prod", "dev"];
const SERVICE_ACCOUNTS: [&str; 3] = ["default", "sa-web", "sa-db"];
const CIDRS: [&str; 11] = [
    "10.0.0.0/16",
    "10.0.1.0/24",
    "10.0.0.3/32",
    "203.0.113.0/24",
    "203.0.113.128/25",
    "198.51.100.7/32",
    "0.0.0.0/0",
    "192.168.0.0/24",
    "fd00::/64",
    "2001:db8::/32",
    "::/0",
];
const CIDR_EXCEPTS: [(&str, &str); 4] = [
    ("10.0.0.0/16", "10.0.1.0/24"),
    ("203.0.113.0/24", "203.0.113.128/25"),
    ("0.0.0.0/0", "10.0.0.0/8"),
    ("fd00::/64", "fd00::/120"),
];
const CALICO_SELECTORS: [&str; 11] = [
    "app == 'web'",
    "app in {'api', 'db'}",
    "has(tier)",
    "!has(tier)",
    "tier != 'front'",
    "app starts with 'ca'",
    "all()",
    "version ends with '2'",
    "app == 'web' || tier == 'back'",
    "projectcalico.org/namespace == 'prod'",
    "(app == 'api' && has(version)) || app == 'cache'",
];
const CALICO_NAMESPACE_SELECTORS: [&str; 5] = [
    "team == 'a'",
    "env == 'dev'",
    "all()",
    "kubernetes.io/metadata.name == 'prod'",
    "global()",
];

fn random_cluster(rng: &mut Rng, node: &str) -> Cluster {
    let mut nodes = vec![Node {
        name: node.to_owned(),
        ips: vec![IpAddr::from([192, 168, 0, 1])],
        netns: None,
    }];
    if rng.chance(0.5) {
        nodes[0].ips.push(
            "fd00:ff::1"
                .parse()
                .unwrap_or(IpAddr::from([192, 168, 0, 9])),
        );
    }
    for (i, name) in ["node-b", "node-c"].iter().enumerate() {
        let mut ips = vec![IpAddr::from([192, 168, 0, 2 + i as u8])];
        if rng.chance(0.3) {
            ips.push(IpAddr::V6(Ipv6Addr::new(
                0xfd00,
                0xff,
                0,
                0,
                0,
                0,
                0,
                2 + i as u16,
            )));
        }
        nodes.push(Node {
            name: (*name).to_owned(),
            ips,
            netns: None,
        });
    }
    let namespaces = vec![
        Namespace {
            name: "default".to_owned(),
            labels: BTreeMap::from([("team".to_owned(), "a".to_owned())]),
        },
        Namespace {
            name: "prod".to_owned(),
            labels: BTreeMap::from([
                ("team".to_owned(), "a".to_owned()),
                ("env".to_owned(), "prod".to_owned()),
            ]),
        },
        Namespace {
            name: "dev".to_owned(),
            labels: BTreeMap::from([
                ("team".to_owned(), "b".to_owned()),
                ("env".to_owned(), "dev".to_owned()),
            ]),
        },
    ];
    let count = 5 + rng.below(8) as usize;
    let mut endpoints: Vec<Endpoint> = Vec::new();
    for k in 0..count {
        let mut ep = if !endpoints.is_empty() && rng.chance(0.3) {
            // Same identity as an earlier endpoint.
            let other = rng.pick(&endpoints).clone();
            Endpoint {
                ports: Vec::new(),
                ..other
            }
        } else {
            let mut labels = BTreeMap::from([("app".to_owned(), (*rng.pick(&APPS)).to_owned())]);
            if rng.chance(0.5) {
                labels.insert(
                    "tier".to_owned(),
                    (*rng.pick(&["front", "back"])).to_owned(),
                );
            }
            if rng.chance(0.3) {
                labels.insert("version".to_owned(), (*rng.pick(&["v1", "v2"])).to_owned());
            }
            Endpoint {
                namespace: (*rng.pick(&NAMESPACES)).to_owned(),
                labels,
                service_account: rng
                    .chance(0.7)
                    .then(|| (*rng.pick(&SERVICE_ACCOUNTS)).to_owned()),
                ..Endpoint::default()
            }
        };
        ep.name = format!("pod-{k}");
        ep.interface = format!("veth{k}");
        let k8 = k as u8;
        let v4 = IpAddr::from([10, 0, (k % 3) as u8, 1 + k8]);
        let v6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1 + k as u16));
        ep.ips = match rng.below(10) {
            0 => vec![v6],
            1..=3 => vec![v4, v6],
            _ => vec![v4],
        };
        if rng.chance(0.7) {
            ep.ports.push(NamedPort {
                name: "http".to_owned(),
                port: *rng.pick(&[80, 8080]),
                protocol: proto::TCP,
            });
        }
        if rng.chance(0.3) {
            ep.ports.push(NamedPort {
                name: "dns".to_owned(),
                port: 53,
                protocol: proto::UDP,
            });
        }
        if rng.chance(0.3) {
            ep.ports.push(NamedPort {
                name: "metrics".to_owned(),
                port: *rng.pick(&[9090, 9091]),
                protocol: proto::TCP,
            });
        }
        ep.node = if rng.chance(0.7) {
            node.to_owned()
        } else {
            (*rng.pick(&["node-b", "node-c"])).to_owned()
        };
        endpoints.push(ep);
    }
    Cluster {
        endpoints,
        namespaces,
        nodes,
    }
}

/// A random world: a small cluster on three nodes and 1-7 policies of every kind, plus tiers.
pub fn random_world(seed: u64) -> World {
    let mut rng = Rng::new(seed);
    let node = "node-a".to_owned();
    let cluster = random_cluster(&mut rng, &node);

    let mut files = Vec::new();
    let mut tiers = vec!["default".to_owned()];
    if rng.chance(0.5) {
        let action = *rng.pick(&["Deny", "Pass"]);
        files.push(tier_doc("security", Some(100), action));
        tiers.push("security".to_owned());
    }
    if rng.chance(0.3) {
        let action = *rng.pick(&["Deny", "Pass"]);
        let order = rng.chance(0.5).then_some(200);
        files.push(tier_doc("platform", order, action));
        tiers.push("platform".to_owned());
    }
    let mut used = BTreeSet::new();
    let count = 1 + rng.below(7);
    for i in 0..count {
        let kind = rng.below(8);
        let name = format!("p{}", rng.below(3));
        let ns = (*rng.pick(&NAMESPACES)).to_owned();
        let text = match kind {
            0 => k8s_policy(
                &mut rng,
                "networking.k8s.io/v1",
                "NetworkPolicy",
                &name,
                &ns,
            ),
            1 => k8s_policy(
                &mut rng,
                "projectcalico.org/v3",
                "StagedKubernetesNetworkPolicy",
                &name,
                &ns,
            ),
            2 => cilium_policy(&mut rng, "CiliumNetworkPolicy", &name, Some(&ns)),
            3 => cilium_policy(&mut rng, "CiliumClusterwideNetworkPolicy", &name, None),
            4 => calico_policy(&mut rng, "NetworkPolicy", &name, Some(&ns), &tiers),
            5 => calico_policy(&mut rng, "GlobalNetworkPolicy", &name, None, &tiers),
            6 => calico_policy(&mut rng, "StagedNetworkPolicy", &name, Some(&ns), &tiers),
            _ => calico_policy(&mut rng, "StagedGlobalNetworkPolicy", &name, None, &tiers),
        };
        let key = (
            kind,
            if matches!(kind, 3 | 5 | 7) {
                String::new()
            } else {
                ns
            },
            name,
        );
        if used.insert(key) {
            files.push((format!("policy-{i}.yaml"), text));
        }
    }
    let (policies, tier_list) = parse_all(&files);
    World {
        set: PolicySet::new(policies, tier_list)
            .unwrap_or_else(|e| panic!("generated set refused: {e}")),
        cluster,
        node,
        files,
    }
}

fn parse_all(files: &[(String, String)]) -> (Vec<Policy>, Vec<Tier>) {
    let mut policies = Vec::new();
    let mut tiers = Vec::new();
    for (name, text) in files {
        let parsed = parse_policy_file(name, text)
            .unwrap_or_else(|e| panic!("generated manifest refused: {e}\n{text}"));
        policies.extend(parsed.policies);
        tiers.extend(parsed.tiers);
    }
    (policies, tiers)
}

fn tier_doc(name: &str, order: Option<i64>, action: &str) -> (String, String) {
    let mut spec = vec![("defaultAction", s(action))];
    if let Some(o) = order {
        spec.push(("order", J::Num(o)));
    }
    let doc = obj(vec![
        ("apiVersion", s("projectcalico.org/v3")),
        ("kind", s("Tier")),
        ("metadata", obj(vec![("name", s(name))])),
        ("spec", obj(spec)),
    ]);
    (format!("tier-{name}.yaml"), doc.to_string())
}

fn label_selector(rng: &mut Rng, cilium: bool) -> J {
    let key = |k: &str, rng: &mut Rng| {
        if cilium && rng.chance(0.3) {
            format!("k8s:{k}")
        } else {
            k.to_owned()
        }
    };
    match rng.below(6) {
        0 => obj(vec![]),
        1 | 2 => {
            let mut labels = vec![(key("app", rng), s(rng.pick(&APPS)))];
            if cilium && rng.chance(0.3) {
                labels.push((
                    key("io.kubernetes.pod.namespace", rng),
                    s(rng.pick(&NAMESPACES)),
                ));
            }
            J::Obj(vec![("matchLabels".to_owned(), J::Obj(labels))])
        }
        3 => {
            let op = *rng.pick(&["In", "NotIn", "Exists", "DoesNotExist"]);
            let mut e = vec![("key", s(key("tier", rng))), ("operator", s(op))];
            if matches!(op, "In" | "NotIn") {
                e.push(("values", J::Arr(vec![s("front")])));
            }
            obj(vec![("matchExpressions", J::Arr(vec![obj(e)]))])
        }
        4 if cilium => obj(vec![(
            "matchLabels",
            obj(vec![(
                *rng.pick(&["reserved:host", "reserved:world", "reserved:remote-node"]),
                s(""),
            )]),
        )]),
        _ => obj(vec![(
            "matchExpressions",
            J::Arr(vec![obj(vec![
                ("key", s(key("app", rng))),
                ("operator", s("In")),
                ("values", J::Arr(vec![s("api"), s("db")])),
            ])]),
        )]),
    }
}

fn metadata(name: &str, ns: Option<&str>) -> J {
    let mut m = vec![("name", s(name))];
    if let Some(ns) = ns {
        m.push(("namespace", s(ns)));
    }
    obj(m)
}

fn k8s_policy(rng: &mut Rng, api: &str, kind: &str, name: &str, ns: &str) -> String {
    let mut spec = vec![("podSelector", label_selector(rng, false))];
    let mut has_ingress = false;
    let mut has_egress = false;
    for (field, peer_field) in [("ingress", "from"), ("egress", "to")] {
        if rng.chance(0.3) {
            continue;
        }
        let rules: Vec<J> = (0..rng.below(3))
            .map(|_| {
                let mut r = Vec::new();
                if rng.chance(0.8) {
                    let peers: Vec<J> = (0..1 + rng.below(2)).map(|_| k8s_peer(rng)).collect();
                    r.push((peer_field, J::Arr(peers)));
                }
                if rng.chance(0.6) {
                    r.push(("ports", J::Arr(vec![k8s_port(rng)])));
                }
                obj(r)
            })
            .collect();
        if field == "ingress" {
            has_ingress = true;
        } else {
            has_egress = !rules.is_empty() || rng.chance(0.5);
        }
        spec.push((field, J::Arr(rules)));
    }
    if rng.chance(0.5) {
        let mut types = Vec::new();
        if has_ingress || rng.chance(0.5) {
            types.push(s("Ingress"));
        }
        if has_egress || types.is_empty() {
            types.push(s("Egress"));
        }
        spec.push(("policyTypes", J::Arr(types)));
    }
    obj(vec![
        ("apiVersion", s(api)),
        ("kind", s(kind)),
        ("metadata", metadata(name, Some(ns))),
        ("spec", obj(spec)),
    ])
    .to_string()
}

fn k8s_peer(rng: &mut Rng) -> J {
    match rng.below(5) {
        0 => obj(vec![("podSelector", label_selector(rng, false))]),
        1 => obj(vec![(
            "namespaceSelector",
            obj(vec![(
                "matchLabels",
                obj(vec![(
                    *rng.pick(&["team", "env"]),
                    s(rng.pick(&["a", "dev"])),
                )]),
            )]),
        )]),
        2 => obj(vec![
            ("podSelector", label_selector(rng, false)),
            ("namespaceSelector", obj(vec![])),
        ]),
        _ => {
            if rng.chance(0.5) {
                let (cidr, except) = *rng.pick(&CIDR_EXCEPTS);
                if cidr.ends_with("/0") {
                    // Kubernetes wants except strictly inside; /0 with an except is fine too.
                }
                obj(vec![(
                    "ipBlock",
                    obj(vec![("cidr", s(cidr)), ("except", J::Arr(vec![s(except)]))]),
                )])
            } else {
                obj(vec![("ipBlock", obj(vec![("cidr", s(rng.pick(&CIDRS)))]))])
            }
        }
    }
}

fn k8s_port(rng: &mut Rng) -> J {
    match rng.below(6) {
        0 => obj(vec![("protocol", s("TCP")), ("port", J::Num(80))]),
        1 => obj(vec![("port", J::Num(8000)), ("endPort", J::Num(8080))]),
        2 => obj(vec![("port", s("http"))]),
        3 => obj(vec![("protocol", s("UDP")), ("port", J::Num(53))]),
        4 => obj(vec![("protocol", s("SCTP"))]),
        _ => obj(vec![("protocol", s("UDP")), ("port", s("dns"))]),
    }
}

fn cilium_policy(rng: &mut Rng, kind: &str, name: &str, ns: Option<&str>) -> String {
    let rule_doc = |rng: &mut Rng| {
        let mut spec = vec![("endpointSelector", label_selector(rng, true))];
        for (field, ingress, deny) in [
            ("ingress", true, false),
            ("ingressDeny", true, true),
            ("egress", false, false),
            ("egressDeny", false, true),
        ] {
            if rng.chance(if deny { 0.7 } else { 0.35 }) {
                continue;
            }
            let rules: Vec<J> = (0..1 + rng.below(2))
                .map(|_| cilium_rule(rng, ingress))
                .collect();
            spec.push((field, J::Arr(rules)));
        }
        if rng.chance(0.1) {
            spec.push(("enableDefaultDeny", obj(vec![("ingress", J::Bool(false))])));
        }
        obj(spec)
    };
    let body = if rng.chance(0.2) {
        ("specs", J::Arr(vec![rule_doc(rng), rule_doc(rng)]))
    } else {
        ("spec", rule_doc(rng))
    };
    obj(vec![
        ("apiVersion", s("cilium.io/v2")),
        ("kind", s(kind)),
        ("metadata", metadata(name, ns)),
        body,
    ])
    .to_string()
}

fn cilium_rule(rng: &mut Rng, ingress: bool) -> J {
    let dir = if ingress { "from" } else { "to" };
    let mut r: Vec<(String, J)> = Vec::new();
    match rng.below(6) {
        0 => r.push((
            format!("{dir}Endpoints"),
            J::Arr(vec![label_selector(rng, true)]),
        )),
        1 => r.push((format!("{dir}CIDR"), J::Arr(vec![s(rng.pick(&CIDRS))]))),
        2 => {
            let (cidr, except) = *rng.pick(&CIDR_EXCEPTS);
            r.push((
                format!("{dir}CIDRSet"),
                J::Arr(vec![obj(vec![
                    ("cidr", s(cidr)),
                    ("except", J::Arr(vec![s(except)])),
                ])]),
            ));
        }
        3 => r.push((
            format!("{dir}Entities"),
            J::Arr(vec![s(rng.pick(&[
                "world",
                "cluster",
                "host",
                "remote-node",
                "all",
            ]))]),
        )),
        4 => {}
        _ => {
            r.push((
                format!("{dir}Endpoints"),
                J::Arr(vec![label_selector(rng, true)]),
            ));
            r.push((format!("{dir}CIDR"), J::Arr(vec![s(rng.pick(&CIDRS))])));
        }
    }
    if rng.chance(0.6) {
        let port = match rng.below(6) {
            0 => obj(vec![("port", s("80")), ("protocol", s("TCP"))]),
            1 => obj(vec![("port", s("8000")), ("endPort", J::Num(8080))]),
            2 => obj(vec![("port", s("53")), ("protocol", s("ANY"))]),
            3 => obj(vec![("port", s("http"))]),
            4 => obj(vec![("port", s("0")), ("protocol", s("UDP"))]),
            _ => obj(vec![("port", s("metrics")), ("protocol", s("TCP"))]),
        };
        r.push((
            "toPorts".to_owned(),
            J::Arr(vec![obj(vec![("ports", J::Arr(vec![port]))])]),
        ));
    } else if rng.chance(0.2) {
        let field = if rng.chance(0.5) {
            obj(vec![("type", J::Num(8))])
        } else {
            obj(vec![("type", s("EchoRequest")), ("family", s("IPv6"))])
        };
        r.push((
            "icmps".to_owned(),
            J::Arr(vec![obj(vec![("fields", J::Arr(vec![field]))])]),
        ));
    }
    J::Obj(r)
}

fn calico_policy(
    rng: &mut Rng,
    kind: &str,
    name: &str,
    ns: Option<&str>,
    tiers: &[String],
) -> String {
    let tier = rng.pick(tiers).clone();
    let full_name = if tier != "default" && rng.chance(0.5) {
        format!("{tier}.{name}")
    } else {
        name.to_owned()
    };
    let mut spec = vec![("selector", s(rng.pick(&CALICO_SELECTORS)))];
    if tier != "default" || rng.chance(0.3) {
        spec.push(("tier", s(&tier)));
    }
    if rng.chance(0.7) {
        spec.push(("order", J::Num(*rng.pick(&[10, 100, 1000, 1000, 2000]))));
    }
    if ns.is_none() && rng.chance(0.2) {
        spec.push((
            "namespaceSelector",
            s(rng.pick(&CALICO_NAMESPACE_SELECTORS)),
        ));
    }
    if rng.chance(0.15) {
        spec.push((
            "serviceAccountSelector",
            s("projectcalico.org/name == 'sa-web'"),
        ));
    }
    let mut has = [false, false];
    for (k, field) in ["ingress", "egress"].iter().enumerate() {
        if rng.chance(0.3) {
            continue;
        }
        let rules: Vec<J> = (0..1 + rng.below(3))
            .map(|_| calico_rule(rng, k == 0))
            .collect();
        has[k] = true;
        spec.push((field, J::Arr(rules)));
    }
    if rng.chance(0.3) {
        let mut types: Vec<J> = Vec::new();
        if has[0] || rng.chance(0.5) {
            types.push(s("Ingress"));
        }
        if has[1] || types.is_empty() {
            types.push(s("Egress"));
        }
        spec.push(("types", J::Arr(types)));
    }
    if kind.starts_with("Staged") && rng.chance(0.15) {
        spec.push(("stagedAction", s("Delete")));
    }
    obj(vec![
        ("apiVersion", s("projectcalico.org/v3")),
        ("kind", s(kind)),
        ("metadata", metadata(&full_name, ns)),
        ("spec", obj(spec)),
    ])
    .to_string()
}

fn calico_entity(rng: &mut Rng, local: bool) -> Vec<(&'static str, J)> {
    let mut e = Vec::new();
    let p = if local { 0.1 } else { 1.0 };
    if rng.chance(0.3 * p) {
        let nets: Vec<J> = (0..1 + rng.below(2)).map(|_| s(rng.pick(&CIDRS))).collect();
        e.push(("nets", J::Arr(nets)));
    }
    if rng.chance(0.15 * p) {
        e.push(("notNets", J::Arr(vec![s(rng.pick(&CIDRS))])));
    }
    if rng.chance(0.3 * p + if local { 0.1 } else { 0.0 }) {
        e.push(("selector", s(rng.pick(&CALICO_SELECTORS))));
    }
    if rng.chance(0.1 * p) {
        e.push(("notSelector", s(rng.pick(&CALICO_SELECTORS))));
    }
    if rng.chance(0.15 * p) {
        e.push((
            "namespaceSelector",
            s(rng.pick(&CALICO_NAMESPACE_SELECTORS)),
        ));
    }
    if rng.chance(0.1 * p) {
        e.push((
            "serviceAccounts",
            obj(vec![(
                "names",
                J::Arr(vec![s(rng.pick(&SERVICE_ACCOUNTS))]),
            )]),
        ));
    }
    e
}

fn calico_rule(rng: &mut Rng, ingress: bool) -> J {
    let action = *rng.pick(&["Allow", "Allow", "Deny", "Log", "Pass"]);
    let mut r = vec![("action", s(action))];
    let mut destination_extra = Vec::new();
    // Calico's ipVersion on about one rule in five (the ICMP arm keeps it consistent with the
    // protocol), so that family-keyed contexts are common.
    let mut ip_version = rng.chance(0.12).then(|| *rng.pick(&[4, 6]));
    match rng.below(20) {
        0..=10 => {
            let tcp = rng.below(11) < 8;
            r.push(("protocol", s(if tcp { "TCP" } else { "UDP" })));
            if rng.chance(0.5) {
                let ports = match rng.below(5) {
                    0 => vec![J::Num(80)],
                    1 => vec![s("8000:8080")],
                    2 => vec![s("http")],
                    3 => vec![J::Num(53), s("dns")],
                    _ => vec![J::Num(22), s("metrics")],
                };
                destination_extra.push(("ports", J::Arr(ports)));
            }
            if rng.chance(0.2) {
                destination_extra.push(("notPorts", J::Arr(vec![J::Num(80)])));
            }
        }
        11 | 12 => {
            let v6 = rng.chance(0.3);
            r.push(("protocol", s(if v6 { "ICMPv6" } else { "ICMP" })));
            if rng.chance(0.5) {
                let icmp = if rng.chance(0.5) {
                    obj(vec![("type", J::Num(if v6 { 128 } else { 8 }))])
                } else {
                    obj(vec![("type", J::Num(3)), ("code", J::Num(1))])
                };
                r.push(("icmp", icmp));
            } else if rng.chance(0.3) {
                r.push(("notICMP", obj(vec![("type", J::Num(8))])));
            }
            ip_version = rng.chance(0.4).then_some(if v6 { 6 } else { 4 });
        }
        13 => r.push(("protocol", J::Num(47))),
        14 => r.push(("notProtocol", s("TCP"))),
        15 => ip_version = Some(*rng.pick(&[4, 6])),
        _ => {}
    }
    if let Some(v) = ip_version {
        r.push(("ipVersion", J::Num(v)));
    }
    let (peer_field, local_field) = if ingress {
        ("source", "destination")
    } else {
        ("destination", "source")
    };
    let mut peer = calico_entity(rng, false);
    let mut local = calico_entity(rng, true);
    if ingress {
        local.extend(destination_extra);
    } else {
        peer.extend(destination_extra);
    }
    if !peer.is_empty() {
        r.push((peer_field, obj(peer)));
    }
    if !local.is_empty() {
        r.push((local_field, obj(local)));
    }
    obj(r)
}

/// A large world for benchmarks: `endpoints` endpoints with one identity each, all on the local
/// node, in 20 namespaces, and about `rules` rules spread over policies of all three dialects.
/// Policies select one app (about ten pods), one pod, or a third of all pods, so endpoints have
/// distinct programs of a few to a few hundred rules.
pub fn scale_world(rules: usize, endpoints: usize, seed: u64) -> World {
    let mut rng = Rng::new(seed);
    let node = "node-0".to_owned();
    let apps = (endpoints / 10).max(1);
    let mut cluster = Cluster {
        nodes: vec![
            Node {
                name: node.clone(),
                ips: vec![IpAddr::from([192, 168, 0, 1])],
                netns: None,
            },
            Node {
                name: "node-1".to_owned(),
                ips: vec![IpAddr::from([192, 168, 0, 2])],
                netns: None,
            },
        ],
        ..Cluster::default()
    };
    for n in 0..20 {
        cluster.namespaces.push(Namespace {
            name: format!("ns-{n}"),
            labels: BTreeMap::from([("team".to_owned(), format!("t{}", n % 5))]),
        });
    }
    for k in 0..endpoints {
        let app = k % apps;
        cluster.endpoints.push(Endpoint {
            name: format!("pod-{k}"),
            namespace: format!("ns-{}", app % 20),
            labels: BTreeMap::from([
                ("app".to_owned(), format!("app-{app}")),
                ("pod-template-hash".to_owned(), format!("h{k}")),
                (
                    "tier".to_owned(),
                    (*rng.pick(&["front", "back", "data"])).to_owned(),
                ),
            ]),
            ips: vec![IpAddr::from([10, 1, (k / 250) as u8, (k % 250) as u8 + 1])],
            ports: vec![NamedPort {
                name: "http".to_owned(),
                port: *rng.pick(&[80, 8080]),
                protocol: proto::TCP,
            }],
            node: node.clone(),
            interface: format!("veth{k}"),
            service_account: Some("default".to_owned()),
            netns: None,
        });
    }
    let cidr = |rng: &mut Rng| format!("203.{}.{}.0/24", rng.below(4), rng.below(50));
    let port = |rng: &mut Rng| *rng.pick(&[22, 53, 80, 443, 5432, 6379, 8080, 9090]);
    let mut files = Vec::new();
    let mut made = 0;
    let mut i = 0;
    while made < rules {
        let per = 5;
        let app = rng.below(apps as u64);
        let ns = format!("ns-{}", app % 20);
        let text = match i % 5 {
            0 | 1 => {
                let mut ingress = Vec::new();
                for _ in 0..per {
                    let peer = if rng.chance(0.7) {
                        obj(vec![(
                            "podSelector",
                            obj(vec![(
                                "matchLabels",
                                obj(vec![("app", s(format!("app-{}", rng.below(apps as u64))))]),
                            )]),
                        )])
                    } else {
                        obj(vec![("ipBlock", obj(vec![("cidr", s(cidr(&mut rng)))]))])
                    };
                    ingress.push(obj(vec![
                        ("from", J::Arr(vec![peer])),
                        (
                            "ports",
                            J::Arr(vec![obj(vec![("port", J::Num(port(&mut rng)))])]),
                        ),
                    ]));
                }
                obj(vec![
                    ("apiVersion", s("networking.k8s.io/v1")),
                    ("kind", s("NetworkPolicy")),
                    ("metadata", metadata(&format!("np-{i}"), Some(&ns))),
                    (
                        "spec",
                        obj(vec![
                            (
                                "podSelector",
                                obj(vec![(
                                    "matchLabels",
                                    if rng.chance(0.5) {
                                        // One pod of the app: every endpoint ends up with its own program.
                                        let k = app as usize
                                            + apps * rng.below((endpoints / apps) as u64) as usize;
                                        obj(vec![("pod-template-hash", s(format!("h{k}")))])
                                    } else {
                                        obj(vec![("app", s(format!("app-{app}")))])
                                    },
                                )]),
                            ),
                            ("ingress", J::Arr(ingress)),
                        ]),
                    ),
                ])
            }
            2 | 3 => {
                let mut egress = Vec::new();
                for _ in 0..per {
                    let mut dest = vec![("ports", J::Arr(vec![J::Num(port(&mut rng))]))];
                    if rng.chance(0.5) {
                        dest.push((
                            "selector",
                            s(format!("app == 'app-{}'", rng.below(apps as u64))),
                        ));
                    } else {
                        dest.push(("nets", J::Arr(vec![s(cidr(&mut rng))])));
                    }
                    egress.push(obj(vec![
                        ("action", s(*rng.pick(&["Allow", "Allow", "Deny", "Log"]))),
                        ("protocol", s("TCP")),
                        ("destination", obj(dest)),
                    ]));
                }
                obj(vec![
                    ("apiVersion", s("projectcalico.org/v3")),
                    ("kind", s("GlobalNetworkPolicy")),
                    ("metadata", metadata(&format!("gnp-{i}"), None)),
                    (
                        "spec",
                        obj(vec![
                            ("order", J::Num(rng.below(100) as i64)),
                            (
                                "selector",
                                s(if rng.chance(0.1) {
                                    // A third of all pods.
                                    format!("tier == '{}'", rng.pick(&["front", "back", "data"]))
                                } else {
                                    format!("app == 'app-{app}'")
                                }),
                            ),
                            ("types", J::Arr(vec![s("Egress")])),
                            ("egress", J::Arr(egress)),
                        ]),
                    ),
                ])
            }
            _ => {
                let mut ingress = Vec::new();
                for _ in 0..per {
                    ingress.push(obj(vec![
                        (
                            "fromEndpoints",
                            J::Arr(vec![obj(vec![(
                                "matchLabels",
                                obj(vec![("app", s(format!("app-{}", rng.below(apps as u64))))]),
                            )])]),
                        ),
                        (
                            "toPorts",
                            J::Arr(vec![obj(vec![(
                                "ports",
                                J::Arr(vec![obj(vec![
                                    ("port", s(port(&mut rng).to_string())),
                                    ("protocol", s("TCP")),
                                ])]),
                            )])]),
                        ),
                    ]));
                }
                let deny = vec![obj(vec![("fromCIDR", J::Arr(vec![s(cidr(&mut rng))]))])];
                obj(vec![
                    ("apiVersion", s("cilium.io/v2")),
                    ("kind", s("CiliumNetworkPolicy")),
                    ("metadata", metadata(&format!("cnp-{i}"), Some(&ns))),
                    (
                        "spec",
                        obj(vec![
                            (
                                "endpointSelector",
                                obj(vec![(
                                    "matchLabels",
                                    obj(vec![("app", s(format!("app-{app}")))]),
                                )]),
                            ),
                            ("ingress", J::Arr(ingress)),
                            ("ingressDeny", J::Arr(deny)),
                        ]),
                    ),
                ])
            }
        };
        files.push((format!("scale-{i}.yaml"), text.to_string()));
        made += per + usize::from(i % 5 == 4);
        i += 1;
    }
    let (policies, tiers) = parse_all(&files);
    World {
        set: PolicySet::new(policies, tiers)
            .unwrap_or_else(|e| panic!("generated set refused: {e}")),
        cluster,
        node,
        files,
    }
}
