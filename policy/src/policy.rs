//! The normalized policy model every dialect is parsed into.
//!
//! A [`Policy`] is a list of [`Section`]s (one per Cilium `specs` entry, one for everything else),
//! each with a subject matcher and, per direction, the rules it governs. A [`Rule`] is a
//! conjunction: a peer matcher, a matcher on the subject itself (Calico's `destination` on ingress
//! and `source` on egress), an L4 matcher and an optional IP version, with an action.
//!
//! This module holds data and the L4 (protocol/port) predicate, which needs no identities. Peer
//! matching is defined on identities and lives in `universe`; ordering lives in `set`.

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;

use ipnet::IpNet;

use crate::model::{NamedPort, proto};
use crate::selector::Selector;

/// The policy resource kinds Vigil accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    /// `networking.k8s.io/v1` NetworkPolicy.
    KubernetesNetworkPolicy,
    /// `cilium.io/v2` CiliumNetworkPolicy.
    CiliumNetworkPolicy,
    /// `cilium.io/v2` CiliumClusterwideNetworkPolicy.
    CiliumClusterwideNetworkPolicy,
    /// `projectcalico.org/v3` NetworkPolicy.
    CalicoNetworkPolicy,
    /// `projectcalico.org/v3` GlobalNetworkPolicy.
    GlobalNetworkPolicy,
    /// `projectcalico.org/v3` StagedNetworkPolicy.
    StagedNetworkPolicy,
    /// `projectcalico.org/v3` StagedGlobalNetworkPolicy.
    StagedGlobalNetworkPolicy,
    /// `projectcalico.org/v3` StagedKubernetesNetworkPolicy.
    StagedKubernetesNetworkPolicy,
}

impl PolicyKind {
    /// Every kind.
    pub const ALL: [PolicyKind; 8] = [
        PolicyKind::KubernetesNetworkPolicy,
        PolicyKind::CiliumNetworkPolicy,
        PolicyKind::CiliumClusterwideNetworkPolicy,
        PolicyKind::CalicoNetworkPolicy,
        PolicyKind::GlobalNetworkPolicy,
        PolicyKind::StagedNetworkPolicy,
        PolicyKind::StagedGlobalNetworkPolicy,
        PolicyKind::StagedKubernetesNetworkPolicy,
    ];

    /// The manifest's `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            PolicyKind::KubernetesNetworkPolicy => "networking.k8s.io/v1",
            PolicyKind::CiliumNetworkPolicy | PolicyKind::CiliumClusterwideNetworkPolicy => {
                "cilium.io/v2"
            }
            _ => "projectcalico.org/v3",
        }
    }

    /// The manifest's `kind`.
    pub fn kind_name(self) -> &'static str {
        match self {
            PolicyKind::KubernetesNetworkPolicy | PolicyKind::CalicoNetworkPolicy => {
                "NetworkPolicy"
            }
            PolicyKind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            PolicyKind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
            PolicyKind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
            PolicyKind::StagedNetworkPolicy => "StagedNetworkPolicy",
            PolicyKind::StagedGlobalNetworkPolicy => "StagedGlobalNetworkPolicy",
            PolicyKind::StagedKubernetesNetworkPolicy => "StagedKubernetesNetworkPolicy",
        }
    }

    /// Whether policies of this kind live in a namespace and apply only to its endpoints.
    pub fn is_namespaced(self) -> bool {
        !matches!(
            self,
            PolicyKind::CiliumClusterwideNetworkPolicy
                | PolicyKind::GlobalNetworkPolicy
                | PolicyKind::StagedGlobalNetworkPolicy
        )
    }

    /// Whether this is a staged (not enforced) kind.
    pub fn is_staged(self) -> bool {
        self.enforced_counterpart() != self
    }

    /// For a staged kind, the enforced kind it stands in for (StagedNetworkPolicy ->
    /// Calico NetworkPolicy, StagedGlobalNetworkPolicy -> GlobalNetworkPolicy,
    /// StagedKubernetesNetworkPolicy -> Kubernetes NetworkPolicy); otherwise the kind itself.
    pub fn enforced_counterpart(self) -> PolicyKind {
        match self {
            PolicyKind::StagedNetworkPolicy => PolicyKind::CalicoNetworkPolicy,
            PolicyKind::StagedGlobalNetworkPolicy => PolicyKind::GlobalNetworkPolicy,
            PolicyKind::StagedKubernetesNetworkPolicy => PolicyKind::KubernetesNetworkPolicy,
            other => other,
        }
    }

    /// Whether the kind is a Cilium kind (its deny rules precede all allow rules of its order).
    pub fn is_cilium(self) -> bool {
        matches!(
            self,
            PolicyKind::CiliumNetworkPolicy | PolicyKind::CiliumClusterwideNetworkPolicy
        )
    }
}

/// The kind as Hubble-style flow records name it: the manifest kind, except that Calico's
/// NetworkPolicy is shown as `CalicoNetworkPolicy` to tell it from Kubernetes' NetworkPolicy.
impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyKind::CalicoNetworkPolicy => f.write_str("CalicoNetworkPolicy"),
            other => f.write_str(other.kind_name()),
        }
    }
}

/// What identifies a policy: two policies with the same id cannot be in force together.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyId {
    /// The kind.
    pub kind: PolicyKind,
    /// The namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// The name (for Calico policies in a non-default tier, without the `tier.` prefix).
    pub name: String,
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// The name of the tier Kubernetes and Cilium policies (and Calico policies without `tier`) live in.
pub const DEFAULT_TIER: &str = "default";

/// The order Kubernetes and Cilium policies have inside the default tier.
pub const KUBERNETES_ORDER: f64 = 1000.0;

/// A normalized policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The kind.
    pub kind: PolicyKind,
    /// The namespace (namespaced kinds only).
    pub namespace: Option<String>,
    /// The name, without a Calico `tier.` prefix.
    pub name: String,
    /// The tier it lives in.
    pub tier: String,
    /// Order inside the tier; `None` sorts after every ordered policy.
    pub order: Option<f64>,
    /// For staged kinds: whether the staged view sets or deletes the policy it stands in for.
    pub staged_action: StagedAction,
    /// The policy's parts; one unless a Cilium policy uses `specs`.
    pub sections: Vec<Section>,
    /// The file the policy came from (for error messages).
    pub source: String,
}

impl Policy {
    /// The policy's identity.
    pub fn id(&self) -> PolicyId {
        PolicyId {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// Every rule of the policy for a direction, in written order, across sections.
    pub fn rules(&self, dir: crate::Direction) -> impl Iterator<Item = &Rule> {
        self.sections
            .iter()
            .filter_map(move |s| s.rules(dir))
            .flat_map(|d| d.rules.iter())
    }
}

/// Calico's `stagedAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StagedAction {
    /// The staged policy replaces (or adds) its enforced counterpart in the staged view.
    #[default]
    Set,
    /// The staged view removes the enforced counterpart.
    Delete,
}

/// One part of a policy: which endpoints it applies to and its rules per direction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Section {
    /// Which endpoints the section applies to (namespace confinement included).
    pub subject: PeerMatch,
    /// Ingress rules, when the section governs ingress.
    pub ingress: Option<DirectionRules>,
    /// Egress rules, when the section governs egress.
    pub egress: Option<DirectionRules>,
}

impl Section {
    /// The rules for a direction, when the section governs it.
    pub fn rules(&self, dir: crate::Direction) -> Option<&DirectionRules> {
        match dir {
            crate::Direction::Ingress => self.ingress.as_ref(),
            crate::Direction::Egress => self.egress.as_ref(),
        }
    }
}

/// The rules of a section for one direction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirectionRules {
    /// Whether the section isolates its endpoints in this direction (counts as "applying" for the
    /// end-of-tier action). False only for Cilium's `enableDefaultDeny: false`.
    pub isolates: bool,
    /// The rules in written order (Cilium: allow rules then deny rules, each with its own index).
    pub rules: Vec<Rule>,
}

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleAction {
    /// Allow the connection; evaluation ends.
    Allow,
    /// Deny the connection; evaluation ends.
    Deny,
    /// Record a hit and continue.
    Log,
    /// End the current tier and continue with the next tier that applies.
    Pass,
}

impl fmt::Display for RuleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleAction::Allow => "Allow",
            RuleAction::Deny => "Deny",
            RuleAction::Log => "Log",
            RuleAction::Pass => "Pass",
        })
    }
}

/// One normalized rule: it matches when every part matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Position in the list it was written in (`ingress`, `ingressDeny`, `egress`, ...); for
    /// Cilium `specs`, counted across the specs.
    pub index: u32,
    /// The action.
    pub action: RuleAction,
    /// Who the remote side must be.
    pub peer: PeerMatch,
    /// What the subject endpoint itself must be (Calico's `destination` on ingress, `source` on
    /// egress); [`PeerMatch::Any`] elsewhere.
    pub local: PeerMatch,
    /// Protocol and destination-port constraints.
    pub l4: L4Match,
    /// Calico's `ipVersion` (4 or 6), matched on the packet's IP version (the peer address's
    /// family), not on the peer identity.
    pub ip_version: Option<u8>,
}

/// Which labels a selector sees (each dialect exposes the namespace differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LabelView {
    /// Pod labels only (Kubernetes `podSelector`).
    Kubernetes,
    /// Pod labels, `io.kubernetes.pod.namespace`, `io.cilium.k8s.namespace.labels.*`, the service
    /// account label; reserved identities show `reserved:<entity>`.
    Cilium,
    /// Pod labels, `projectcalico.org/namespace`, `projectcalico.org/serviceaccount`,
    /// `projectcalico.org/orchestrator`.
    Calico,
}

/// Which namespaces an endpoint selector is confined to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NamespaceScope {
    /// Every namespace.
    Any,
    /// Exactly this namespace.
    Only(String),
    /// Namespaces whose labels match (plus the implied `kubernetes.io/metadata.name` and
    /// `projectcalico.org/name`).
    Matching(Selector),
}

/// Cilium's entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entity {
    /// Everything outside the cluster (world and CIDR identities).
    World,
    /// The IPv4 part of `world` (identity-level: CIDR identities of IPv4 prefixes, and world).
    WorldIpv4,
    /// The IPv6 part of `world` (identity-level: CIDR identities of IPv6 prefixes, and world).
    WorldIpv6,
    /// Every in-cluster identity: endpoints, host, remote nodes and the other reserved ones.
    Cluster,
    /// The local host.
    Host,
    /// Other nodes.
    RemoteNode,
    /// Everything.
    All,
    /// Cilium's health endpoints (never seen here).
    Health,
    /// Endpoints whose identity is not resolved yet (never seen here).
    Init,
    /// Unmanaged endpoints (never seen here).
    Unmanaged,
    /// The Kubernetes API server (its addresses are not known here).
    KubeApiserver,
    /// Cilium's ingress proxy (never seen here).
    Ingress,
}

impl Entity {
    /// Parses a Cilium entity name.
    pub fn parse(name: &str) -> Option<Entity> {
        Some(match name {
            "world" => Entity::World,
            "world-ipv4" => Entity::WorldIpv4,
            "world-ipv6" => Entity::WorldIpv6,
            "cluster" => Entity::Cluster,
            "host" => Entity::Host,
            "remote-node" => Entity::RemoteNode,
            "all" => Entity::All,
            "health" => Entity::Health,
            "init" => Entity::Init,
            "unmanaged" => Entity::Unmanaged,
            "kube-apiserver" => Entity::KubeApiserver,
            "ingress" => Entity::Ingress,
            _ => return None,
        })
    }

    /// Every accepted entity name.
    pub const NAMES: [&'static str; 12] = [
        "world",
        "world-ipv4",
        "world-ipv6",
        "cluster",
        "host",
        "remote-node",
        "all",
        "health",
        "init",
        "unmanaged",
        "kube-apiserver",
        "ingress",
    ];
}

/// A predicate on identities: who a rule's peer (or a section's subject) may be.
///
/// Its meaning per identity is defined in `universe`, once, for the evaluator and the compiler.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerMatch {
    /// Every identity.
    Any,
    /// No identity (Cilium `ingress: [{}]`, and FQDN/domain peers, which select no address until
    /// DNS-based enforcement exists).
    Nothing,
    /// Endpoints (or, for Cilium selectors with `reserved:` keys, reserved identities) whose
    /// labels match.
    Labels {
        /// Which labels the selector sees.
        view: LabelView,
        /// The label expression.
        selector: Selector,
        /// Namespace confinement.
        namespaces: NamespaceScope,
    },
    /// A Cilium entity.
    Entity(Entity),
    /// A CIDR with exceptions.
    Cidr {
        /// The prefix.
        net: IpNet,
        /// Prefixes carved out of it.
        except: Vec<IpNet>,
        /// Whether endpoint and node identities can match (Kubernetes `ipBlock`, Calico `nets`:
        /// yes, when every address of the identity is inside; Cilium CIDR rules: no).
        endpoints: bool,
    },
    /// Calico `serviceAccounts`: endpoints running as one of the service accounts.
    ServiceAccounts {
        /// Accepted names (any when `None`).
        names: Option<BTreeSet<String>>,
        /// Selector on the service account's labels (only `projectcalico.org/name` is known).
        selector: Option<Selector>,
        /// Namespace confinement.
        namespaces: NamespaceScope,
    },
    /// At least one matches.
    AnyOf(Vec<PeerMatch>),
    /// All match.
    AllOf(Vec<PeerMatch>),
    /// Negation.
    Not(Box<PeerMatch>),
}

impl PeerMatch {
    /// Conjunction that drops `Any` and flattens.
    pub fn all_of(parts: Vec<PeerMatch>) -> PeerMatch {
        let mut flat = Vec::new();
        for p in parts {
            match p {
                PeerMatch::Any => {}
                PeerMatch::AllOf(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => PeerMatch::Any,
            1 => flat.pop().unwrap_or(PeerMatch::Any),
            _ => PeerMatch::AllOf(flat),
        }
    }

    /// Disjunction that flattens; an empty list is `Nothing`.
    pub fn any_of(parts: Vec<PeerMatch>) -> PeerMatch {
        let mut flat = Vec::new();
        for p in parts {
            match p {
                PeerMatch::Nothing => {}
                PeerMatch::AnyOf(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => PeerMatch::Nothing,
            1 => flat.pop().unwrap_or(PeerMatch::Nothing),
            _ => PeerMatch::AnyOf(flat),
        }
    }

    /// Every prefix the matcher names (nets and excepts), for the ipcache.
    pub fn prefixes(&self, out: &mut BTreeSet<IpNet>) {
        match self {
            PeerMatch::Cidr { net, except, .. } => {
                out.insert(net.trunc());
                out.extend(except.iter().map(IpNet::trunc));
            }
            PeerMatch::AnyOf(list) | PeerMatch::AllOf(list) => {
                list.iter().for_each(|p| p.prefixes(out))
            }
            PeerMatch::Not(inner) => inner.prefixes(out),
            _ => {}
        }
    }
}

/// Protocol and destination-port constraints of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum L4Match {
    /// Any protocol, any port.
    Any,
    /// At least one entry matches (Kubernetes `ports`, Cilium `toPorts` and `icmps`).
    AnyOf(Vec<PortMatch>),
    /// Calico's rule-level criteria, all of which must hold.
    Calico(CalicoL4),
}

/// One protocol + port entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortMatch {
    /// Which protocols.
    pub protocol: ProtocolMatch,
    /// Which ports.
    pub ports: PortSpec,
}

/// A protocol constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolMatch {
    /// Exactly this IP protocol.
    Is(u8),
    /// TCP, UDP or SCTP (Cilium's `ANY`).
    TcpUdpSctp,
}

impl ProtocolMatch {
    /// Whether the protocol is accepted.
    pub fn includes(self, protocol: u8) -> bool {
        match self {
            ProtocolMatch::Is(p) => p == protocol,
            ProtocolMatch::TcpUdpSctp => {
                matches!(protocol, proto::TCP | proto::UDP | proto::SCTP)
            }
        }
    }
}

/// A destination-port constraint (for ICMP: `(type << 8) | code`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortSpec {
    /// Every port.
    All,
    /// An inclusive range.
    Range(u16, u16),
    /// A named port, resolved against the subject's ports on ingress and the peer's on egress.
    Named(String),
}

impl PortSpec {
    /// Whether the port is accepted; `named` are the ports a name resolves against.
    pub fn matches(&self, protocol: u8, port: u16, named: &[NamedPort]) -> bool {
        match self {
            PortSpec::All => true,
            PortSpec::Range(lo, hi) => (*lo..=*hi).contains(&port),
            PortSpec::Named(name) => named
                .iter()
                .any(|np| &np.name == name && np.protocol == protocol && np.port == port),
        }
    }

    /// Pushes the starts of the port intervals on which `matches` is constant.
    fn boundaries(&self, protocol: u8, named: &[NamedPort], out: &mut Vec<u32>) {
        match self {
            PortSpec::All => {}
            PortSpec::Range(lo, hi) => {
                out.push(u32::from(*lo));
                out.push(u32::from(*hi) + 1);
            }
            PortSpec::Named(name) => {
                for np in named {
                    if &np.name == name && np.protocol == protocol {
                        out.push(u32::from(np.port));
                        out.push(u32::from(np.port) + 1);
                    }
                }
            }
        }
    }
}

/// Calico's ICMP match: a type, optionally with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpMatch {
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code (any when `None`).
    pub code: Option<u8>,
}

impl IcmpMatch {
    /// The `(type << 8) | code` range it covers.
    pub fn range(self) -> (u16, u16) {
        let base = u16::from(self.icmp_type) << 8;
        match self.code {
            Some(code) => (base | u16::from(code), base | u16::from(code)),
            None => (base, base | 0xff),
        }
    }
}

/// Calico's rule-level protocol and port criteria.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CalicoL4 {
    /// `protocol`.
    pub protocol: Option<u8>,
    /// `notProtocol`.
    pub not_protocol: Option<u8>,
    /// `destination.ports` (requires a port protocol).
    pub ports: Option<Vec<PortSpec>>,
    /// `destination.notPorts`.
    pub not_ports: Vec<PortSpec>,
    /// `icmp`.
    pub icmp: Option<IcmpMatch>,
    /// `notICMP`.
    pub not_icmp: Option<IcmpMatch>,
}

impl L4Match {
    /// Whether a packet's protocol and port match; `named` are the ports named ports resolve
    /// against (the subject's on ingress, the peer's on egress).
    pub fn matches(&self, protocol: u8, port: u16, named: &[NamedPort]) -> bool {
        match self {
            L4Match::Any => true,
            L4Match::AnyOf(entries) => entries
                .iter()
                .any(|e| e.protocol.includes(protocol) && e.ports.matches(protocol, port, named)),
            L4Match::Calico(c) => {
                let icmp_hit = |m: IcmpMatch| {
                    let (lo, hi) = m.range();
                    proto::is_icmp(protocol) && (lo..=hi).contains(&port)
                };
                c.protocol.is_none_or(|p| p == protocol)
                    && c.not_protocol != Some(protocol)
                    && c.ports
                        .as_ref()
                        .is_none_or(|ps| ps.iter().any(|s| s.matches(protocol, port, named)))
                    && !c.not_ports.iter().any(|s| s.matches(protocol, port, named))
                    && c.icmp.is_none_or(icmp_hit)
                    && !c.not_icmp.is_some_and(icmp_hit)
            }
        }
    }

    /// Whether some port of this protocol can match (ignoring ports), to skip rules cheaply.
    pub fn may_match_protocol(&self, protocol: u8) -> bool {
        match self {
            L4Match::Any => true,
            L4Match::AnyOf(entries) => entries.iter().any(|e| e.protocol.includes(protocol)),
            L4Match::Calico(c) => {
                c.protocol.is_none_or(|p| p == protocol)
                    && c.not_protocol != Some(protocol)
                    && (c.icmp.is_none() || proto::is_icmp(protocol))
            }
        }
    }

    /// Pushes the starts of the port intervals (for this protocol) on which `matches` is constant.
    pub fn port_boundaries(&self, protocol: u8, named: &[NamedPort], out: &mut Vec<u32>) {
        match self {
            L4Match::Any => {}
            L4Match::AnyOf(entries) => {
                for e in entries.iter().filter(|e| e.protocol.includes(protocol)) {
                    e.ports.boundaries(protocol, named, out);
                }
            }
            L4Match::Calico(c) => {
                for s in c.ports.iter().flatten().chain(&c.not_ports) {
                    s.boundaries(protocol, named, out);
                }
                for m in c.icmp.iter().chain(&c.not_icmp) {
                    let (lo, hi) = m.range();
                    out.push(u32::from(lo));
                    out.push(u32::from(hi) + 1);
                }
            }
        }
    }

    /// Protocols the matcher names (Cilium `ANY` names TCP, UDP and SCTP).
    pub fn protocols(&self, out: &mut BTreeSet<u8>) {
        match self {
            L4Match::Any => {}
            L4Match::AnyOf(entries) => {
                for e in entries {
                    match e.protocol {
                        ProtocolMatch::Is(p) => {
                            out.insert(p);
                        }
                        ProtocolMatch::TcpUdpSctp => {
                            out.extend([proto::TCP, proto::UDP, proto::SCTP]);
                        }
                    }
                }
            }
            L4Match::Calico(c) => out.extend(c.protocol.iter().chain(&c.not_protocol)),
        }
    }

    /// Whether the matcher uses a named port.
    pub fn uses_named_ports(&self) -> bool {
        let named = |s: &PortSpec| matches!(s, PortSpec::Named(_));
        match self {
            L4Match::Any => false,
            L4Match::AnyOf(entries) => entries.iter().any(|e| named(&e.ports)),
            L4Match::Calico(c) => c.ports.iter().flatten().chain(&c.not_ports).any(named),
        }
    }

    /// Every port name the matcher uses.
    pub fn port_names(&self, out: &mut BTreeSet<String>) {
        let mut add = |s: &PortSpec| {
            if let PortSpec::Named(n) = s {
                out.insert(n.clone());
            }
        };
        match self {
            L4Match::Any => {}
            L4Match::AnyOf(entries) => entries.iter().for_each(|e| add(&e.ports)),
            L4Match::Calico(c) => c.ports.iter().flatten().chain(&c.not_ports).for_each(add),
        }
    }
}

/// A Calico Tier.
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    /// The tier name.
    pub name: String,
    /// Its order; `None` sorts after every ordered tier (the default tier is always last).
    pub order: Option<f64>,
    /// What happens when policies of the tier applied and none decided.
    pub default_action: TierDefaultAction,
    /// The file it came from.
    pub source: String,
}

/// A tier's `defaultAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TierDefaultAction {
    /// Deny (the default).
    #[default]
    Deny,
    /// Continue with the next tier.
    Pass,
}
