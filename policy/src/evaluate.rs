//! The reference evaluator: the executable form of policy-semantics.md.
//!
//! For one new connection of one endpoint in one direction, walk the tiers in order; inside a tier
//! walk the policies that apply to the endpoint in order, and their rules in order. `Allow` and
//! `Deny` end evaluation, `Log` records a hit and goes on, `Pass` skips to the next tier. A tier
//! in which some policy applied and nothing decided ends with the tier's default action
//! (end-of-tier); when no tier decides, the connection is allowed (default allow). Both views, the
//! enforced and the staged one, are evaluated.
//!
//! Peers are matched as identities (see `universe`), exactly as the compiled datapath sees them.
//! Calico's `ipVersion` is the one exception: it is matched on the packet's IP version (the family
//! of the peer address), which the datapath carries in the decision key of family-keyed contexts.
//! This module is written for reading, not speed; `compile` produces the same answers in bulk.

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

use crate::model::{Cluster, Direction, Endpoint, NamedPort, proto};
use crate::policy::{Policy, PolicyKind, Rule, RuleAction, TierDefaultAction};
use crate::set::{PolicySet, TierView, View};
use crate::universe::{Ident, Universe};

/// A final verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The connection is allowed.
    Allow,
    /// The connection is denied.
    Deny,
}

impl Action {
    /// `VIGIL_ACT_ALLOW` (1) or `VIGIL_ACT_DENY` (2).
    pub fn as_u8(self) -> u8 {
        match self {
            Action::Allow => 1,
            Action::Deny => 2,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        })
    }
}

/// Whether a [`RuleRef`] is a rule or one of the implicit outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Special {
    /// A rule written in a policy.
    None,
    /// The tier's default action after its policies applied and none decided.
    EndOfTier,
    /// No tier applied (or the last applying one passed): allowed.
    DefaultAllow,
}

/// A reference to what decided or was hit: a rule, an end-of-tier, or default allow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleRef {
    /// The policy's kind (`None` for default allow).
    pub kind: Option<PolicyKind>,
    /// The policy's namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// The policy's name (for end-of-tier: the last policy of the tier that applied; empty for
    /// default allow).
    pub name: String,
    /// The tier (empty for default allow).
    pub tier: String,
    /// The rule's index in the list it was written in (`ingress`, `ingressDeny`, ...: Cilium deny
    /// rules count in their own list, which `action: Deny` identifies); `None` for the specials.
    pub rule_index: Option<u32>,
    /// The direction evaluated.
    pub direction: Direction,
    /// The rule's action (end-of-tier: the tier's default action, Deny or Pass).
    pub action: RuleAction,
    /// Whether the policy is a staged one (its hits are "pending").
    pub staged: bool,
    /// Rule, end-of-tier or default allow.
    pub special: Special,
}

/// One entry of a trace: what was hit, in order.
pub type Hit = RuleRef;

impl RuleRef {
    /// A rule of a policy.
    pub(crate) fn rule(policy: &Policy, rule: &Rule, direction: Direction) -> RuleRef {
        RuleRef {
            kind: Some(policy.kind),
            namespace: policy.namespace.clone(),
            name: policy.name.clone(),
            tier: policy.tier.clone(),
            rule_index: Some(rule.index),
            direction,
            action: rule.action,
            staged: policy.kind.is_staged(),
            special: Special::None,
        }
    }

    /// The end of a tier, naming the last policy of it that applied.
    pub(crate) fn end_of_tier(tier: &TierView, last: &Policy, direction: Direction) -> RuleRef {
        RuleRef {
            kind: Some(last.kind),
            namespace: last.namespace.clone(),
            name: last.name.clone(),
            tier: tier.name.clone(),
            rule_index: None,
            direction,
            action: match tier.default_action {
                TierDefaultAction::Deny => RuleAction::Deny,
                TierDefaultAction::Pass => RuleAction::Pass,
            },
            staged: last.kind.is_staged(),
            special: Special::EndOfTier,
        }
    }

    /// Default allow for a direction.
    pub fn default_allow(direction: Direction) -> RuleRef {
        RuleRef {
            kind: None,
            namespace: None,
            name: String::new(),
            tier: String::new(),
            rule_index: None,
            direction,
            action: RuleAction::Allow,
            staged: false,
            special: Special::DefaultAllow,
        }
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pending = if self.staged { " (pending)" } else { "" };
        let Some(kind) = self.kind else {
            return write!(f, "{} default allow (no policy applies)", self.direction);
        };
        let ns = self
            .namespace
            .as_deref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default();
        match (self.special, self.rule_index) {
            (Special::EndOfTier, _) => write!(
                f,
                "{} end of tier {:?} after {kind} {ns}{}: {}{pending}",
                self.direction, self.tier, self.name, self.action
            ),
            (_, Some(i)) => write!(
                f,
                "{} {kind} {ns}{} (tier {}) rule {i}: {}{pending}",
                self.direction, self.name, self.tier, self.action
            ),
            (_, None) => write!(
                f,
                "{} {kind} {ns}{}: {}{pending}",
                self.direction, self.name, self.action
            ),
        }
    }
}

/// The outcome of one view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewResult {
    /// Allow or deny.
    pub action: Action,
    /// What decided.
    pub decided_by: RuleRef,
    /// Every hit in order, Log and Pass included, ending with the decisive one.
    pub hits: Vec<Hit>,
}

/// Both views' outcome for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The identity the peer address resolved to.
    pub peer_identity: u32,
    /// What the datapath does.
    pub enforced: ViewResult,
    /// What would happen with the staged policies applied.
    pub staged: ViewResult,
}

/// Evaluates one connection. `port` is the destination port for TCP, UDP and SCTP,
/// `(type << 8) | code` for ICMP (1) and ICMPv6 (58), and is ignored (taken as 0) for every other
/// protocol. The packet's IP version is the family of `peer` (Calico `ipVersion` matches on it).
/// For many connections over the same set and cluster, build an [`Evaluator`] once.
pub fn evaluate(
    set: &PolicySet,
    cluster: &Cluster,
    subject: &Endpoint,
    dir: Direction,
    peer: IpAddr,
    proto: u8,
    port: u16,
) -> Evaluation {
    Evaluator::new(set, cluster, &subject.node).evaluate(subject, dir, peer, proto, port)
}

/// Evaluates connections of endpoints on one node (the node decides which addresses are `host`).
#[derive(Debug)]
pub struct Evaluator<'a> {
    set: &'a PolicySet,
    universe: Universe,
}

/// The connection being evaluated, as the rules see it.
struct Packet<'a> {
    dir: Direction,
    peer: &'a Ident,
    /// The packet's IP version, 4 or 6 (the family of the peer address).
    family: u8,
    proto: u8,
    port: u16,
}

impl<'a> Evaluator<'a> {
    /// Prepares identities and the ipcache of `cluster` as seen from `node`.
    pub fn new(set: &'a PolicySet, cluster: &Cluster, node: &str) -> Evaluator<'a> {
        Evaluator {
            set,
            universe: Universe::new(cluster, &set.prefixes(), node),
        }
    }

    /// The identity an address resolves to.
    pub fn identity_of_ip(&self, ip: IpAddr) -> u32 {
        self.universe.idents[self.universe.resolve(ip)].id
    }

    /// Evaluates one connection of `subject` (see [`evaluate`] for `port`).
    pub fn evaluate(
        &self,
        subject: &Endpoint,
        dir: Direction,
        peer: IpAddr,
        proto: u8,
        port: u16,
    ) -> Evaluation {
        let family = if peer.is_ipv4() { 4 } else { 6 };
        let peer = &self.universe.idents[self.universe.resolve(peer)];
        let me = self.universe.subject(subject);
        let packet = Packet {
            dir,
            peer,
            family,
            proto,
            port: if proto::has_port(proto) { port } else { 0 },
        };
        Evaluation {
            peer_identity: peer.id,
            enforced: self.view(View::Enforced, &me, &subject.ports, &packet),
            staged: self.view(View::Staged, &me, &subject.ports, &packet),
        }
    }

    fn view(
        &self,
        view: View,
        me: &Ident,
        my_ports: &[NamedPort],
        packet: &Packet<'_>,
    ) -> ViewResult {
        let dir = packet.dir;
        let mut hits = Vec::new();
        let decided = |action, hit: RuleRef, mut hits: Vec<Hit>| {
            hits.push(hit.clone());
            ViewResult {
                action,
                decided_by: hit,
                hits,
            }
        };
        'tiers: for tier in self.set.view(view) {
            let mut last_applying = None;
            for entry in &tier.entries {
                let policy = &self.set.policies()[entry.policy];
                for section in &policy.sections {
                    if !self.universe.matches(&section.subject, me) {
                        continue;
                    }
                    let Some(rules) = section.rules(dir) else {
                        continue;
                    };
                    if rules.isolates {
                        last_applying = Some(policy);
                    }
                    for rule in rules.rules.iter().filter(|r| entry.phase.includes(r)) {
                        if !self.rule_matches(rule, me, my_ports, packet) {
                            continue;
                        }
                        let hit = RuleRef::rule(policy, rule, dir);
                        match rule.action {
                            RuleAction::Allow => return decided(Action::Allow, hit, hits),
                            RuleAction::Deny => return decided(Action::Deny, hit, hits),
                            RuleAction::Log => hits.push(hit),
                            RuleAction::Pass => {
                                hits.push(hit);
                                continue 'tiers;
                            }
                        }
                    }
                }
            }
            if let Some(last) = last_applying {
                let hit = RuleRef::end_of_tier(tier, last, dir);
                match tier.default_action {
                    TierDefaultAction::Deny => return decided(Action::Deny, hit, hits),
                    TierDefaultAction::Pass => hits.push(hit),
                }
            }
        }
        decided(Action::Allow, RuleRef::default_allow(dir), hits)
    }

    fn rule_matches(
        &self,
        rule: &Rule,
        me: &Ident,
        my_ports: &[NamedPort],
        packet: &Packet<'_>,
    ) -> bool {
        // Named ports name the destination's ports: ours on ingress, the peer's on egress.
        let named = match packet.dir {
            Direction::Ingress => my_ports,
            Direction::Egress => &packet.peer.ports,
        };
        self.universe.matches(&rule.local, me)
            && self.universe.matches(&rule.peer, packet.peer)
            && rule.ip_version.is_none_or(|v| v == packet.family)
            && rule.l4.matches(packet.proto, packet.port, named)
    }
}
