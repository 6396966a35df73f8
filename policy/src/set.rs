//! The set of policies in force, and the order in which they are evaluated.
//!
//! [`PolicySet`] validates a complete set (no duplicate policy, every tier declared) and builds
//! both views of policy-semantics.md: the enforced view (every non-staged policy) and the staged
//! view (the enforced one with every Staged* policy replacing, adding or deleting its
//! counterpart). Each view is a list of tiers in evaluation order, each with its policies in
//! evaluation order; a Cilium policy appears twice, its deny rules ahead of every allow rule of the
//! same order. Evaluating packets is `evaluate`'s and `compile`'s job, not this module's.

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use ipnet::IpNet;

use crate::model::Direction;
use crate::policy::{
    DEFAULT_TIER, Policy, PolicyId, Rule, RuleAction, StagedAction, Tier, TierDefaultAction,
};

/// Why a set of policies cannot be put in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// Two policies with the same kind, namespace and name.
    #[error("duplicate policy {id}: defined in {first} and again in {second}")]
    DuplicatePolicy {
        /// The policy.
        id: PolicyId,
        /// Where it was first defined.
        first: String,
        /// Where it was defined again.
        second: String,
    },
    /// Two tiers with the same name.
    #[error("duplicate tier {name:?}: defined in {first} and again in {second}")]
    DuplicateTier {
        /// The tier name.
        name: String,
        /// Where it was first defined.
        first: String,
        /// Where it was defined again.
        second: String,
    },
    /// A policy names a tier no Tier resource declares.
    #[error("policy {id} (from {source_file}) is in tier {tier:?}, which no Tier declares")]
    UnknownTier {
        /// The policy.
        id: PolicyId,
        /// The file it came from.
        source_file: String,
        /// The missing tier.
        tier: String,
    },
}

/// Which of the two views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum View {
    Enforced,
    Staged,
}

/// A policy's part in a tier: all of its rules, or (for Cilium) only its deny or allow rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Every rule of a non-Cilium policy.
    All,
    /// A Cilium policy's deny rules.
    CiliumDeny,
    /// A Cilium policy's allow rules.
    CiliumAllow,
}

impl Phase {
    /// Whether a rule belongs to this part.
    pub fn includes(self, rule: &Rule) -> bool {
        match self {
            Phase::All => true,
            Phase::CiliumDeny => rule.action == RuleAction::Deny,
            Phase::CiliumAllow => rule.action != RuleAction::Deny,
        }
    }
}

/// One policy's part in a tier's evaluation order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// Index into [`PolicySet::policies`].
    pub policy: usize,
    pub phase: Phase,
}

/// A tier in evaluation order, with its policies in evaluation order.
#[derive(Debug, Clone)]
pub(crate) struct TierView {
    pub name: String,
    pub default_action: TierDefaultAction,
    pub entries: Vec<Entry>,
}

/// A validated set of policies and tiers, with both evaluation orders built.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: Vec<Policy>,
    tiers: Vec<Tier>,
    enforced: Vec<TierView>,
    staged: Vec<TierView>,
}

fn order_key(order: Option<f64>) -> f64 {
    order.unwrap_or(f64::INFINITY)
}

impl PolicySet {
    /// Validates and orders a complete set of policies and tiers (typically every file's
    /// [`crate::ParsedPolicies`] together).
    pub fn new(policies: Vec<Policy>, tiers: Vec<Tier>) -> Result<PolicySet, SetError> {
        let mut seen_tiers: HashMap<&str, &Tier> = HashMap::new();
        for tier in &tiers {
            if let Some(first) = seen_tiers.insert(&tier.name, tier) {
                return Err(SetError::DuplicateTier {
                    name: tier.name.clone(),
                    first: first.source.clone(),
                    second: tier.source.clone(),
                });
            }
        }
        let mut seen: HashMap<PolicyId, &Policy> = HashMap::new();
        for p in &policies {
            if let Some(first) = seen.insert(p.id(), p) {
                return Err(SetError::DuplicatePolicy {
                    id: p.id(),
                    first: first.source.clone(),
                    second: p.source.clone(),
                });
            }
            if p.tier != DEFAULT_TIER && !seen_tiers.contains_key(p.tier.as_str()) {
                return Err(SetError::UnknownTier {
                    id: p.id(),
                    source_file: p.source.clone(),
                    tier: p.tier.clone(),
                });
            }
        }
        let mut policies = policies;
        policies.sort_by_key(Policy::id);

        let enforced_members: Vec<usize> = (0..policies.len())
            .filter(|&i| !policies[i].kind.is_staged())
            .collect();
        let mut replaced: BTreeSet<PolicyId> = BTreeSet::new();
        let mut staged_members = Vec::new();
        for (i, p) in policies
            .iter()
            .enumerate()
            .filter(|(_, p)| p.kind.is_staged())
        {
            replaced.insert(PolicyId {
                kind: p.kind.enforced_counterpart(),
                ..p.id()
            });
            if p.staged_action == StagedAction::Set {
                staged_members.push(i);
            }
        }
        staged_members.extend(
            enforced_members
                .iter()
                .copied()
                .filter(|&i| !replaced.contains(&policies[i].id())),
        );

        let enforced = order_tiers(&policies, &tiers, &enforced_members);
        let staged = order_tiers(&policies, &tiers, &staged_members);
        Ok(PolicySet {
            policies,
            tiers,
            enforced,
            staged,
        })
    }

    /// Every policy (enforced and staged), sorted by kind, namespace and name.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Every declared tier.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The policy with this id.
    pub fn get(&self, id: &PolicyId) -> Option<&Policy> {
        self.policies
            .binary_search_by(|p| p.id().cmp(id))
            .ok()
            .map(|i| &self.policies[i])
    }

    /// Every prefix any rule names (nets and excepts), for the ipcache.
    pub fn prefixes(&self) -> BTreeSet<IpNet> {
        let mut out = BTreeSet::new();
        for p in &self.policies {
            for dir in Direction::ALL {
                for rule in p.rules(dir) {
                    rule.peer.prefixes(&mut out);
                }
            }
        }
        out
    }

    /// Tiers of a view in evaluation order.
    pub(crate) fn view(&self, view: View) -> &[TierView] {
        match view {
            View::Enforced => &self.enforced,
            View::Staged => &self.staged,
        }
    }
}

fn order_tiers(policies: &[Policy], tiers: &[Tier], members: &[usize]) -> Vec<TierView> {
    let mut declared: Vec<&Tier> = tiers.iter().filter(|t| t.name != DEFAULT_TIER).collect();
    declared.sort_by(|a, b| {
        order_key(a.order)
            .total_cmp(&order_key(b.order))
            .then_with(|| a.name.cmp(&b.name))
    });
    let default_action = tiers
        .iter()
        .find(|t| t.name == DEFAULT_TIER)
        .map_or(TierDefaultAction::Deny, |t| t.default_action);
    let mut out: Vec<TierView> = declared
        .iter()
        .map(|t| TierView {
            name: t.name.clone(),
            default_action: t.default_action,
            entries: Vec::new(),
        })
        .collect();
    out.push(TierView {
        name: DEFAULT_TIER.to_owned(),
        default_action,
        entries: Vec::new(),
    });
    for tier in &mut out {
        let mut entries: Vec<Entry> = Vec::new();
        for &i in members.iter().filter(|&&i| policies[i].tier == tier.name) {
            if policies[i].kind.is_cilium() {
                entries.push(Entry {
                    policy: i,
                    phase: Phase::CiliumDeny,
                });
                entries.push(Entry {
                    policy: i,
                    phase: Phase::CiliumAllow,
                });
            } else {
                entries.push(Entry {
                    policy: i,
                    phase: Phase::All,
                });
            }
        }
        entries.sort_by(|a, b| compare_entries(policies, a, b));
        tier.entries = entries;
    }
    out
}

/// Ascending order (none last), Cilium deny parts ahead of everything else of the same order,
/// then name; kind and namespace only make the order total.
fn compare_entries(policies: &[Policy], a: &Entry, b: &Entry) -> Ordering {
    let (pa, pb) = (&policies[a.policy], &policies[b.policy]);
    let phase = |e: &Entry| u8::from(e.phase != Phase::CiliumDeny);
    order_key(pa.order)
        .total_cmp(&order_key(pb.order))
        .then_with(|| phase(a).cmp(&phase(b)))
        .then_with(|| pa.name.cmp(&pb.name))
        .then_with(|| pa.kind.cmp(&pb.kind))
        .then_with(|| pa.namespace.cmp(&pb.namespace))
}
