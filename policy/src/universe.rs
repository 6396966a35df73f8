//! Identities: who a peer is, and what a peer matcher means.
//!
//! Both the evaluator and the compiler resolve a peer address to an identity exactly as the
//! datapath does (longest-prefix match over the ipcache, no match = `world`) and then decide rule
//! matches on that identity, never on the address. That is what makes them agree by construction.
//! The consequences, which are deliberate:
//!
//! - Endpoint identities are per (namespace, labels, service account); every endpoint carrying one
//!   looks the same to a selector.
//! - CIDR matching is per identity. For a CIDR identity of prefix `P`, a net `N` matches when
//!   `P ⊆ N` and no `except` contains `P`; because every rule prefix is registered, this is exact
//!   for addresses outside the cluster. `world` (addresses in no registered prefix) is matched only
//!   by a `/0` net (of either family: the ipcache has one `world`).
//! - Cilium CIDR rules (`fromCIDR`, `toCIDRSet`, ...) never match endpoint or node identities, as
//!   in Cilium. Kubernetes `ipBlock` and Calico `nets`/`notNets` match an endpoint or node identity
//!   when EVERY address of every endpoint (node) carrying that identity lies inside the net and
//!   outside its excepts; `notNets` is the negation of that.
//! - Calico's `ipVersion` is not an identity property: it is matched on the packet's IP version
//!   (the evaluator's peer address family, the family byte of a family-keyed decision key), so a
//!   mixed-family identity matches `ipVersion: 6` for its IPv6 packets only.
//! - `host` is the subject's node, `remote-node` every other node.
//!
//! Identity numbers follow docs/datapath-contract.md. This module does no policy ordering.

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{Cluster, Endpoint, NamedPort};
use crate::policy::{Entity, LabelView, NamespaceScope, PeerMatch};
use crate::selector::Selector;

/// Reserved identity numbers (Cilium's numbering).
pub mod reserved {
    /// Never assigned.
    pub const UNKNOWN: u32 = 0;
    /// The local host.
    pub const HOST: u32 = 1;
    /// Anything outside the cluster that no rule prefix covers.
    pub const WORLD: u32 = 2;
    /// Unmanaged endpoints.
    pub const UNMANAGED: u32 = 3;
    /// Health endpoints.
    pub const HEALTH: u32 = 4;
    /// Endpoints whose identity is not resolved yet.
    pub const INIT: u32 = 5;
    /// Other nodes.
    pub const REMOTE_NODE: u32 = 6;
    /// The Kubernetes API server.
    pub const KUBE_APISERVER: u32 = 7;
    /// Cilium's ingress.
    pub const INGRESS: u32 = 8;
    /// First endpoint identity.
    pub const MIN_ENDPOINT: u32 = 1 << 16;
    /// First CIDR identity (`2^24 + n`, local to one compiled generation).
    pub const MIN_CIDR: u32 = 1 << 24;
}

/// The namespace label as Cilium shows it.
pub const CILIUM_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// The prefix under which Cilium shows namespace labels on endpoints.
pub const CILIUM_NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";
/// The namespace label as Calico shows it.
pub const CALICO_NAMESPACE_LABEL: &str = "projectcalico.org/namespace";
/// The service-account label as Calico shows it.
pub const CALICO_SERVICE_ACCOUNT_LABEL: &str = "projectcalico.org/serviceaccount";
/// The name label Calico gives namespaces and service accounts.
pub const CALICO_NAME_LABEL: &str = "projectcalico.org/name";
/// The name label Kubernetes gives every namespace.
pub const KUBERNETES_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The identity of an endpoint label set: a stable hash (FNV-1a, 64 bit) of the sorted strings
/// `k8s:<key>=<value>` for every label plus `k8s:io.kubernetes.pod.namespace=<namespace>`, joined
/// by newlines, folded into `[65536, 2^24)`. `labels` are the endpoint's identity labels
/// ([`Endpoint::identity_labels`]: pod labels plus the service account). Every node computes the
/// same number without coordination; collisions are resolved (and reported) by the compiler.
pub fn identity_of(namespace: &str, labels: &BTreeMap<String, String>) -> u32 {
    let key = identity_label_strings(namespace, labels).join("\n");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let span = u64::from(reserved::MIN_CIDR - reserved::MIN_ENDPOINT);
    // The remainder is below 2^24, so the cast cannot truncate.
    reserved::MIN_ENDPOINT + (hash % span) as u32
}

/// The sorted `k8s:` label strings of an endpoint identity.
pub fn identity_label_strings(namespace: &str, labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = labels.iter().map(|(k, v)| format!("k8s:{k}={v}")).collect();
    out.push(format!("k8s:{CILIUM_NAMESPACE_LABEL}={namespace}"));
    out.sort();
    out
}

/// What an identity stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdentKind {
    Host,
    World,
    RemoteNode,
    Endpoint,
    Cidr(IpNet),
}

/// One identity with everything a matcher may look at.
#[derive(Debug, Clone)]
pub(crate) struct Ident {
    pub id: u32,
    pub kind: IdentKind,
    pub namespace: Option<String>,
    pub pod_labels: BTreeMap<String, String>,
    pub service_account: Option<String>,
    pub cilium_labels: BTreeMap<String, String>,
    pub calico_labels: BTreeMap<String, String>,
    /// Addresses of every endpoint (node) carrying the identity.
    pub ips: Vec<IpAddr>,
    /// Union of the named ports of every endpoint carrying the identity.
    pub ports: Vec<NamedPort>,
    /// `k8s:app=web`-style labels for the compiler's identity table.
    pub labels: Vec<String>,
}

impl Ident {
    fn reserved(id: u32, kind: IdentKind, name: &str, ips: Vec<IpAddr>) -> Ident {
        Ident {
            id,
            kind,
            namespace: None,
            pod_labels: BTreeMap::new(),
            service_account: None,
            cilium_labels: BTreeMap::from([(format!("reserved:{name}"), String::new())]),
            calico_labels: BTreeMap::new(),
            ips,
            ports: Vec::new(),
            labels: vec![format!("reserved:{name}")],
        }
    }
}

/// Longest-prefix-match table from address to identity.
#[derive(Debug, Default)]
struct PrefixTable {
    /// (family is v4, prefix length) -> masked address -> identity, longest first.
    levels: Vec<(bool, u8, HashMap<u128, u32>)>,
}

fn addr_bits(ip: IpAddr) -> (bool, u128, u8) {
    match ip {
        IpAddr::V4(a) => (true, u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (false, u128::from(a), 128),
    }
}

fn mask(bits: u128, width: u8, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        let shift = width - len;
        (bits >> shift) << shift
    }
}

impl PrefixTable {
    fn new(entries: &[(IpNet, u32)]) -> PrefixTable {
        let mut levels: BTreeMap<(bool, u8), HashMap<u128, u32>> = BTreeMap::new();
        for (net, id) in entries {
            let (v4, bits, width) = addr_bits(net.network());
            levels
                .entry((v4, net.prefix_len()))
                .or_default()
                .insert(mask(bits, width, net.prefix_len()), *id);
        }
        let mut levels: Vec<_> = levels
            .into_iter()
            .map(|((v4, len), map)| (v4, len, map))
            .collect();
        levels.sort_by_key(|level| std::cmp::Reverse(level.1));
        PrefixTable { levels }
    }

    fn lookup(&self, ip: IpAddr) -> Option<u32> {
        let (v4, bits, width) = addr_bits(ip);
        self.levels
            .iter()
            .filter(|(fam, _, _)| *fam == v4)
            .find_map(|(_, len, map)| map.get(&mask(bits, width, *len)).copied())
    }
}

/// Every identity of a cluster as seen from one node, with the ipcache that maps addresses to them.
#[derive(Debug)]
pub(crate) struct Universe {
    pub idents: Vec<Ident>,
    by_id: HashMap<u32, usize>,
    by_labels: HashMap<Vec<String>, usize>,
    /// ipcache entries, sorted.
    pub ipcache: Vec<(IpNet, u32)>,
    table: PrefixTable,
    namespace_labels: HashMap<String, BTreeMap<String, String>>,
    pub warnings: Vec<String>,
}

/// Index of the `world` identity in [`Universe::idents`].
pub(crate) const WORLD_INDEX: usize = 1;

impl Universe {
    /// Builds the identities and ipcache of `cluster` as seen from `local_node`, registering every
    /// rule prefix in `prefixes` (`/0` prefixes are `world` and get no entry).
    pub fn new(cluster: &Cluster, prefixes: &BTreeSet<IpNet>, local_node: &str) -> Universe {
        let mut warnings = Vec::new();
        let mut namespace_labels: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        for ns in &cluster.namespaces {
            namespace_labels.insert(ns.name.clone(), with_implied_labels(&ns.name, &ns.labels));
        }
        for ep in &cluster.endpoints {
            namespace_labels
                .entry(ep.namespace.clone())
                .or_insert_with(|| with_implied_labels(&ep.namespace, &BTreeMap::new()));
        }

        let mut host_ips = Vec::new();
        let mut remote_ips = Vec::new();
        for node in &cluster.nodes {
            if node.name == local_node {
                host_ips.extend(node.ips.iter().copied());
            } else {
                remote_ips.extend(node.ips.iter().copied());
            }
        }
        let mut idents = vec![
            Ident::reserved(reserved::HOST, IdentKind::Host, "host", host_ips.clone()),
            Ident::reserved(reserved::WORLD, IdentKind::World, "world", Vec::new()),
            Ident::reserved(
                reserved::REMOTE_NODE,
                IdentKind::RemoteNode,
                "remote-node",
                remote_ips.clone(),
            ),
        ];

        // Endpoint identities, grouped by label set, numbered in label order so that collision
        // resolution is deterministic on every node.
        let mut groups: BTreeMap<Vec<String>, Vec<&Endpoint>> = BTreeMap::new();
        for ep in &cluster.endpoints {
            let key = identity_label_strings(&ep.namespace, &ep.identity_labels());
            groups.entry(key).or_default().push(ep);
        }
        let mut used: HashMap<u32, Vec<String>> = HashMap::new();
        for (key, eps) in &groups {
            let first = eps[0];
            let mut id = identity_of(&first.namespace, &first.identity_labels());
            if used.contains_key(&id) {
                let wanted = id;
                while used.contains_key(&id) {
                    id = if id + 1 >= reserved::MIN_CIDR {
                        reserved::MIN_ENDPOINT
                    } else {
                        id + 1
                    };
                }
                warnings.push(format!(
                    "identity collision: labels [{}] and [{}] both hash to {wanted}; the former keeps it, the latter uses {id} (numbers differ from nodes that do not see both)",
                    used[&wanted].join(", "),
                    key.join(", ")
                ));
            }
            used.insert(id, key.clone());
            let mut ips: Vec<IpAddr> = eps.iter().flat_map(|e| e.ips.iter().copied()).collect();
            ips.sort();
            ips.dedup();
            let mut ports: Vec<NamedPort> =
                eps.iter().flat_map(|e| e.ports.iter().cloned()).collect();
            ports.sort();
            ports.dedup();
            idents.push(endpoint_ident(
                id,
                first,
                ips,
                ports,
                key.clone(),
                &namespace_labels,
            ));
        }

        // CIDR identities.
        let mut cidr_ids = Vec::new();
        let mut n = 0u32;
        for net in prefixes.iter().map(IpNet::trunc).collect::<BTreeSet<_>>() {
            if net.prefix_len() == 0 {
                continue;
            }
            n += 1;
            let id = reserved::MIN_CIDR + n;
            cidr_ids.push((net, id));
            let mut ident = Ident::reserved(id, IdentKind::Cidr(net), "world", Vec::new());
            ident
                .cilium_labels
                .insert(format!("cidr:{net}"), String::new());
            ident.labels = vec![format!("cidr:{net}"), "reserved:world".to_owned()];
            idents.push(ident);
        }

        // ipcache: endpoints first (they win over nodes and rule prefixes with the same key).
        let mut entries: BTreeMap<IpNet, u32> = BTreeMap::new();
        for ident in idents.iter().filter(|i| i.kind == IdentKind::Endpoint) {
            for ip in &ident.ips {
                let net = IpNet::from(*ip);
                if let Some(other) = entries.get(&net) {
                    warnings.push(format!(
                        "address {ip} is claimed by identities {other} and {}; {other} keeps it",
                        ident.id
                    ));
                } else {
                    entries.insert(net, ident.id);
                }
            }
        }
        for (ips, id) in [
            (&host_ips, reserved::HOST),
            (&remote_ips, reserved::REMOTE_NODE),
        ] {
            for ip in ips {
                let net = IpNet::from(*ip);
                if let Some(other) = entries.get(&net) {
                    warnings.push(format!(
                        "node address {ip} is also claimed by identity {other}; {other} keeps it"
                    ));
                } else {
                    entries.insert(net, id);
                }
            }
        }
        for (net, id) in cidr_ids {
            entries.entry(net).or_insert(id);
        }
        let ipcache: Vec<(IpNet, u32)> = entries.into_iter().collect();
        let table = PrefixTable::new(&ipcache);

        let by_id = idents.iter().enumerate().map(|(i, x)| (x.id, i)).collect();
        let by_labels = idents
            .iter()
            .enumerate()
            .filter(|(_, x)| x.kind == IdentKind::Endpoint)
            .map(|(i, x)| (x.labels.clone(), i))
            .collect();
        Universe {
            idents,
            by_id,
            by_labels,
            ipcache,
            table,
            namespace_labels,
            warnings,
        }
    }

    /// The identity index an address resolves to (no ipcache match = `world`).
    pub fn resolve(&self, ip: IpAddr) -> usize {
        self.table
            .lookup(ip)
            .and_then(|id| self.by_id.get(&id).copied())
            .unwrap_or(WORLD_INDEX)
    }

    /// The identity of a subject endpoint: its cluster identity when the cluster has it, otherwise
    /// one built from the endpoint alone.
    pub fn subject(&self, ep: &Endpoint) -> Cow<'_, Ident> {
        let key = identity_label_strings(&ep.namespace, &ep.identity_labels());
        match self.by_labels.get(&key) {
            Some(&i) => Cow::Borrowed(&self.idents[i]),
            None => {
                let id = identity_of(&ep.namespace, &ep.identity_labels());
                let mut ports = ep.ports.clone();
                ports.sort();
                ports.dedup();
                Cow::Owned(endpoint_ident(
                    id,
                    ep,
                    ep.ips.clone(),
                    ports,
                    key,
                    &self.namespace_labels,
                ))
            }
        }
    }

    fn namespace_ok(&self, scope: &NamespaceScope, namespace: Option<&str>) -> bool {
        match (scope, namespace) {
            (NamespaceScope::Any, _) => true,
            (_, None) => false,
            (NamespaceScope::Only(wanted), Some(ns)) => wanted == ns,
            (NamespaceScope::Matching(sel), Some(ns)) => match self.namespace_labels.get(ns) {
                Some(labels) => sel.matches(labels),
                None => sel.matches(&with_implied_labels(ns, &BTreeMap::new())),
            },
        }
    }

    /// Whether an identity satisfies a peer matcher. This is the one definition of peer matching.
    pub fn matches(&self, m: &PeerMatch, who: &Ident) -> bool {
        match m {
            PeerMatch::Any => true,
            PeerMatch::Nothing => false,
            PeerMatch::Labels {
                view,
                selector,
                namespaces,
            } => match who.kind {
                IdentKind::Endpoint => {
                    self.namespace_ok(namespaces, who.namespace.as_deref())
                        && selector.matches(match view {
                            LabelView::Kubernetes => &who.pod_labels,
                            LabelView::Cilium => &who.cilium_labels,
                            LabelView::Calico => &who.calico_labels,
                        })
                }
                // Only Cilium selectors written with `reserved:` keys select reserved identities.
                _ => {
                    *view == LabelView::Cilium
                        && *namespaces == NamespaceScope::Any
                        && selects_reserved(selector)
                        && selector.matches(&who.cilium_labels)
                }
            },
            PeerMatch::Entity(entity) => match (entity, &who.kind) {
                (Entity::All, _) => true,
                (Entity::World, kind) => matches!(kind, IdentKind::World | IdentKind::Cidr(_)),
                (Entity::WorldIpv4, IdentKind::Cidr(net)) => net.network().is_ipv4(),
                (Entity::WorldIpv6, IdentKind::Cidr(net)) => net.network().is_ipv6(),
                (Entity::WorldIpv4 | Entity::WorldIpv6, kind) => *kind == IdentKind::World,
                (Entity::Cluster, kind) => matches!(
                    kind,
                    IdentKind::Endpoint | IdentKind::Host | IdentKind::RemoteNode
                ),
                (Entity::Host, kind) => *kind == IdentKind::Host,
                (Entity::RemoteNode, kind) => *kind == IdentKind::RemoteNode,
                (
                    Entity::Health
                    | Entity::Init
                    | Entity::Unmanaged
                    | Entity::KubeApiserver
                    | Entity::Ingress,
                    _,
                ) => false,
            },
            PeerMatch::Cidr {
                net,
                except,
                endpoints,
            } => match &who.kind {
                IdentKind::Cidr(p) => net.contains(p) && !except.iter().any(|e| e.contains(p)),
                IdentKind::World => {
                    net.prefix_len() == 0 && !except.iter().any(|e| e.prefix_len() == 0)
                }
                IdentKind::Endpoint | IdentKind::Host | IdentKind::RemoteNode => {
                    *endpoints
                        && !who.ips.is_empty()
                        && who
                            .ips
                            .iter()
                            .all(|ip| net.contains(ip) && !except.iter().any(|e| e.contains(ip)))
                }
            },
            PeerMatch::ServiceAccounts {
                names,
                selector,
                namespaces,
            } => {
                who.kind == IdentKind::Endpoint
                    && self.namespace_ok(namespaces, who.namespace.as_deref())
                    && who.service_account.as_ref().is_some_and(|sa| {
                        names.as_ref().is_none_or(|n| n.contains(sa))
                            && selector.as_ref().is_none_or(|s| {
                                s.matches(&BTreeMap::from([(
                                    CALICO_NAME_LABEL.to_owned(),
                                    sa.clone(),
                                )]))
                            })
                    })
            }
            PeerMatch::AnyOf(list) => list.iter().any(|x| self.matches(x, who)),
            PeerMatch::AllOf(list) => list.iter().all(|x| self.matches(x, who)),
            PeerMatch::Not(inner) => !self.matches(inner, who),
        }
    }
}

fn selects_reserved(selector: &Selector) -> bool {
    selector.keys().iter().any(|k| k.starts_with("reserved:"))
}

fn with_implied_labels(name: &str, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = labels.clone();
    out.insert(KUBERNETES_NAME_LABEL.to_owned(), name.to_owned());
    out.insert(CALICO_NAME_LABEL.to_owned(), name.to_owned());
    out
}

fn endpoint_ident(
    id: u32,
    ep: &Endpoint,
    ips: Vec<IpAddr>,
    ports: Vec<NamedPort>,
    labels: Vec<String>,
    namespace_labels: &HashMap<String, BTreeMap<String, String>>,
) -> Ident {
    let ns = &ep.namespace;
    let mut cilium_labels = ep.identity_labels();
    cilium_labels.insert(CILIUM_NAMESPACE_LABEL.to_owned(), ns.clone());
    let implied;
    let ns_labels = match namespace_labels.get(ns) {
        Some(l) => l,
        None => {
            implied = with_implied_labels(ns, &BTreeMap::new());
            &implied
        }
    };
    for (k, v) in ns_labels
        .iter()
        .filter(|(k, _)| k.as_str() != CALICO_NAME_LABEL)
    {
        cilium_labels.insert(format!("{CILIUM_NAMESPACE_LABELS_PREFIX}{k}"), v.clone());
    }
    let mut calico_labels = ep.labels.clone();
    calico_labels.insert(CALICO_NAMESPACE_LABEL.to_owned(), ns.clone());
    calico_labels.insert(
        "projectcalico.org/orchestrator".to_owned(),
        "k8s".to_owned(),
    );
    if let Some(sa) = &ep.service_account {
        calico_labels.insert(CALICO_SERVICE_ACCOUNT_LABEL.to_owned(), sa.clone());
    }
    Ident {
        id,
        kind: IdentKind::Endpoint,
        namespace: Some(ns.clone()),
        pod_labels: ep.labels.clone(),
        service_account: ep.service_account.clone(),
        cilium_labels,
        calico_labels,
        ips,
        ports,
        labels,
    }
}
