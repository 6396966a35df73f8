//! The compiler: policies + cluster -> the datapath tables of one node
//! (docs/datapath-contract.md).
//!
//! For every local endpoint and direction it builds the ordered rule program of both views (the
//! same walk as `evaluate`, with the subject fixed), then:
//!
//! 1. groups peer identities into classes by which of the program's peer matchers they satisfy
//!    (plus their named ports when an egress rule names a port), so each class is evaluated once
//!    through a representative;
//! 2. for each class and protocol, cuts the port space at every rule port boundary, evaluates both
//!    views once per elementary interval, and merges adjacent intervals with equal outcome;
//! 3. emits LPM entries: the most common outcome as a port /0 entry, every other interval as its
//!    exact prefix decomposition. The largest class becomes peer 0; other identities get entries
//!    only for protocols where they differ from peer 0 (the lookup falls through to the peer-0
//!    entry, which carries the same value, otherwise).
//!
//! Calico `ipVersion` is the one rule field that looks at the packet rather than the peer
//! identity. A context is *family-keyed* when some rule of its programs (either direction, either
//! view) has an `ipVersion`: its entries are then emitted twice, with family 4 and with family 6,
//! each computed with only the rules that match that packet family, and the datapath puts the
//! packet's family in the key ([`EndpointEntry::key_family`]). Every other context's entries carry
//! family 0.
//!
//! Endpoints with equal programs (and equal named ports where they matter) share a context, and so
//! do endpoints whose tables come out identical. Rule ids index [`Compiled::rules`] and do not
//! depend on the cluster; trace ids index deduplicated [`Compiled::traces`].

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::evaluate::{Action, Hit, RuleRef, Special};
use crate::model::{Cluster, Direction, Endpoint, NamedPort, proto};
use crate::policy::{PeerMatch, Rule, RuleAction, TierDefaultAction};
use crate::set::{PolicySet, TierView, View};
use crate::universe::{Ident, Universe};

/// Decision-value flags (`VIGIL_F_*`).
pub mod flags {
    /// A Log rule matched on the way (in either view).
    pub const LOG: u8 = 0x01;
    /// The enforced view denied through a Deny rule (not end-of-tier).
    pub const EXPLICIT_DENY: u8 = 0x02;
    /// The staged view's action differs from the enforced one.
    pub const STAGED_DIFFERS: u8 = 0x04;
}

/// Endpoint flags (`VIGIL_EP_F_*`, `struct endpoint_value.flags`).
pub mod endpoint_flags {
    /// The endpoint's context is family-keyed: the datapath puts the packet's IP version (4 or
    /// 6) into the decision key's `family` byte instead of 0.
    pub const FAMILY_KEYED: u32 = 0x01;
}

/// An identity and its labels, for flow enrichment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityInfo {
    /// The identity number.
    pub id: u32,
    /// `k8s:app=web`, `k8s:io.kubernetes.pod.namespace=ns`, `reserved:host`, `cidr:10.0.0.0/8`...
    pub labels: Vec<String>,
    /// The namespace of endpoint identities.
    pub namespace: Option<String>,
}

/// One ipcache entry (`struct ipcache_key` -> `struct ipcache_value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcacheEntry {
    /// The prefix.
    pub net: IpNet,
    /// Its identity.
    pub identity: u32,
}

/// A local endpoint (`struct endpoint_key` -> `struct endpoint_value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointEntry {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Host-side interface (the agent resolves its ifindex).
    pub interface: String,
    /// Endpoint id: 1.. in (namespace, name) order of the node's endpoints.
    pub endpoint_id: u32,
    /// The endpoint's identity.
    pub identity: u32,
    /// The decision-table context.
    pub context: u32,
    /// Whether the context is family-keyed (some rule that can apply to the endpoint has a Calico
    /// `ipVersion`): its decision entries carry family 4 and 6 and the datapath keys lookups by
    /// the packet's family; otherwise they carry family 0. Shared by every endpoint of a context.
    pub family_keyed: bool,
}

impl EndpointEntry {
    /// `struct endpoint_value.flags`: [`endpoint_flags::FAMILY_KEYED`] when
    /// [`family_keyed`](Self::family_keyed).
    pub fn flags(&self) -> u32 {
        if self.family_keyed {
            endpoint_flags::FAMILY_KEYED
        } else {
            0
        }
    }

    /// The decision key's `family` byte for a packet of this endpoint with peer address `peer`:
    /// the packet's IP version (4 or 6) when the context is family-keyed, else 0.
    pub fn key_family(&self, peer: IpAddr) -> u8 {
        match (self.family_keyed, peer) {
            (false, _) => 0,
            (true, IpAddr::V4(_)) => 4,
            (true, IpAddr::V6(_)) => 6,
        }
    }
}

/// One decision-table entry (`struct policy_key` -> `struct policy_value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionEntry {
    /// Context.
    pub context: u32,
    /// `VIGIL_DIR_*`.
    pub direction: u8,
    /// IP protocol, 0 = any protocol not otherwise listed for this context and direction.
    pub proto: u8,
    /// Packet IP version: 4 or 6 in a family-keyed context ([`EndpointEntry::family_keyed`]),
    /// 0 (any family) otherwise. Part of the key's fixed prefix: matched exactly.
    pub family: u8,
    /// Peer identity, 0 = any identity not otherwise listed.
    pub peer: u32,
    /// Port (ICMP: `(type << 8) | code`), host bits below the prefix are zero.
    pub port: u16,
    /// Port prefix length, 0..=16.
    pub port_prefix_len: u8,
    /// The decision.
    pub value: DecisionValue,
}

/// A decision (`struct policy_value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DecisionValue {
    /// Enforced action: 1 allow, 2 deny.
    pub action: u8,
    /// Staged action: 1 allow, 2 deny.
    pub staged_action: u8,
    /// [`flags`].
    pub flags: u8,
    /// Proxy port for redirects (reserved for L7; always 0).
    pub proxy_port: u16,
    /// Index into [`Compiled::rules`] of what decided the enforced view.
    pub rule_id: u32,
    /// Index into [`Compiled::rules`] of what decided the staged view.
    pub staged_rule_id: u32,
    /// Index into [`Compiled::traces`].
    pub trace_id: u32,
}

/// Every hit of both views, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Trace {
    /// Hits of the enforced view.
    pub enforced: Vec<Hit>,
    /// Hits of the staged view.
    pub staged: Vec<Hit>,
}

/// The tables of one node.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// Every identity the ipcache can produce (reserved, endpoints, CIDRs), by id.
    pub identities: Vec<IdentityInfo>,
    /// Address -> identity, longest prefix wins; no match is `world` (2).
    pub ipcache: Vec<IpcacheEntry>,
    /// The node's endpoints.
    pub endpoints: Vec<EndpointEntry>,
    /// The decision table.
    pub decisions: Vec<DecisionEntry>,
    /// Rule table; `rule_id` indexes it.
    pub rules: Vec<RuleRef>,
    /// Trace table; `trace_id` indexes it.
    pub traces: Vec<Trace>,
    /// Things the operator should know (identity collisions, address conflicts).
    pub warnings: Vec<String>,
}

/// Compiles the tables of `node`.
pub fn compile(set: &PolicySet, cluster: &Cluster, node: &str) -> Compiled {
    let universe = Universe::new(cluster, &set.prefixes(), node);
    let mut c = Compiler::new(set, universe);

    let mut local: Vec<&Endpoint> = cluster
        .endpoints
        .iter()
        .filter(|e| e.node == node)
        .collect();
    local.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));

    let mut endpoints = Vec::new();
    let mut memo: HashMap<ContextKey, u32> = HashMap::new();
    let mut contexts: HashMap<Vec<Row>, u32> = HashMap::new();
    let mut decisions = Vec::new();
    for (n, ep) in local.iter().enumerate() {
        let subject = c.universe.subject(ep).into_owned();
        let mut ports = ep.ports.clone();
        ports.sort();
        ports.dedup();
        let programs = c.programs(&subject);
        let family_keyed = programs
            .iter()
            .flatten()
            .flat_map(|t| &t.steps)
            .any(|s| s.rule.ip_version.is_some());
        let key = ContextKey {
            programs: programs.iter().map(program_key).collect(),
            ports: if programs[0].iter().chain(&programs[1]).any(uses_named_ports) {
                ports.clone()
            } else {
                Vec::new()
            },
        };
        let context = match memo.get(&key) {
            Some(&id) => id,
            None => {
                let rows = c.rows(&programs, &ports, family_keyed);
                let next = u32::try_from(contexts.len() + 1).unwrap_or(u32::MAX);
                let id = *contexts.entry(rows).or_insert_with_key(|rows| {
                    decisions.extend(rows.iter().map(|r| r.entry(next)));
                    next
                });
                memo.insert(key, id);
                id
            }
        };
        endpoints.push(EndpointEntry {
            name: ep.name.clone(),
            namespace: ep.namespace.clone(),
            interface: ep.interface.clone(),
            endpoint_id: u32::try_from(n + 1).unwrap_or(u32::MAX),
            identity: subject.id,
            context,
            family_keyed,
        });
    }

    let mut identities: Vec<IdentityInfo> = c
        .universe
        .idents
        .iter()
        .map(|i| IdentityInfo {
            id: i.id,
            labels: i.labels.clone(),
            namespace: i.namespace.clone(),
        })
        .collect();
    identities.sort_by_key(|i| i.id);
    Compiled {
        identities,
        ipcache: c
            .universe
            .ipcache
            .iter()
            .map(|&(net, identity)| IpcacheEntry { net, identity })
            .collect(),
        endpoints,
        decisions,
        rules: c.rules,
        traces: c.traces,
        warnings: std::mem::take(&mut c.universe.warnings),
    }
}

/// What makes two endpoints' tables equal: their four programs and, when a program names ports
/// on ingress, their named ports.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ContextKey {
    programs: Vec<Vec<u32>>,
    ports: Vec<NamedPort>,
}

/// One rule of a program, with the ids the compiler resolved for it.
#[derive(Debug, Clone, Copy)]
struct Step<'a> {
    rule: &'a Rule,
    rule_id: u32,
    matcher: usize,
}

/// A tier of a program: its matching-subject rules and, when a policy of it applied, its end.
#[derive(Debug, Clone)]
struct TierProgram<'a> {
    steps: Vec<Step<'a>>,
    end: Option<(u32, TierDefaultAction)>,
}

type Program<'a> = Vec<TierProgram<'a>>;

/// Programs in this order: (enforced, ingress), (staged, ingress), (enforced, egress),
/// (staged, egress).
const SLOTS: [(View, Direction); 4] = [
    (View::Enforced, Direction::Ingress),
    (View::Staged, Direction::Ingress),
    (View::Enforced, Direction::Egress),
    (View::Staged, Direction::Egress),
];

fn program_key(p: &Program<'_>) -> Vec<u32> {
    let mut out = Vec::new();
    for tier in p {
        out.extend(tier.steps.iter().map(|s| s.rule_id));
        out.push(u32::MAX);
        out.push(tier.end.map_or(u32::MAX, |(id, _)| id));
    }
    out
}

fn uses_named_ports(tier: &TierProgram<'_>) -> bool {
    tier.steps.iter().any(|s| s.rule.l4.uses_named_ports())
}

/// A decision row before its context is known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Row {
    direction: u8,
    proto: u8,
    family: u8,
    peer: u32,
    port: u16,
    len: u8,
    value: DecisionValue,
}

impl Row {
    fn entry(&self, context: u32) -> DecisionEntry {
        DecisionEntry {
            context,
            direction: self.direction,
            proto: self.proto,
            family: self.family,
            peer: self.peer,
            port: self.port,
            port_prefix_len: self.len,
            value: self.value,
        }
    }
}

/// The outcome of one view for one packet shape.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    action: Action,
    rule_id: u32,
    hits: Vec<u32>,
}

/// Per-protocol outcome over the port space: (interval start, value), starts ascending from 0.
type PortMap = Vec<(u32, DecisionValue)>;

struct Compiler<'a> {
    set: &'a PolicySet,
    universe: Universe,
    rules: Vec<RuleRef>,
    rule_index: HashMap<RuleRef, u32>,
    /// [policy][direction][section][rule position] -> rule id / matcher id.
    rule_ids: Vec<[Vec<Vec<u32>>; 2]>,
    matcher_ids: Vec<[Vec<Vec<usize>>; 2]>,
    matchers: Vec<&'a PeerMatch>,
    matcher_sets: Vec<Option<MatcherSet>>,
    end_ids: HashMap<(String, usize, Direction), u32>,
    default_allow: [u32; 2],
    traces: Vec<Trace>,
    trace_index: HashMap<(Vec<u32>, Vec<u32>), u32>,
    port_maps: HashMap<MapKey, std::rc::Rc<PortMap>>,
}

/// The identities a peer matcher accepts, as a membership test and as a list.
#[derive(Debug)]
struct MatcherSet {
    contains: Vec<bool>,
    members: Vec<u32>,
}

/// What a port map depends on: the reduced programs, the protocol and the named ports they use.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MapKey {
    dir: Direction,
    protocol: u8,
    programs: [Vec<u32>; 2],
    named: Vec<NamedPort>,
}

fn dir_slot(dir: Direction) -> usize {
    match dir {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

impl<'a> Compiler<'a> {
    fn new(set: &'a PolicySet, universe: Universe) -> Compiler<'a> {
        let mut c = Compiler {
            set,
            universe,
            rules: Vec::new(),
            rule_index: HashMap::new(),
            rule_ids: Vec::new(),
            matcher_ids: Vec::new(),
            matchers: Vec::new(),
            matcher_sets: Vec::new(),
            end_ids: HashMap::new(),
            default_allow: [0; 2],
            traces: Vec::new(),
            trace_index: HashMap::new(),
            port_maps: HashMap::new(),
        };
        let mut matcher_index: HashMap<&'a PeerMatch, usize> = HashMap::new();
        for policy in set.policies() {
            let mut ids: [Vec<Vec<u32>>; 2] = Default::default();
            let mut mids: [Vec<Vec<usize>>; 2] = Default::default();
            for dir in Direction::ALL {
                for section in &policy.sections {
                    let rules = section.rules(dir).map_or(&[][..], |r| &r.rules[..]);
                    let mut sids = Vec::new();
                    let mut smids = Vec::new();
                    for rule in rules {
                        sids.push(c.intern_rule(RuleRef::rule(policy, rule, dir)));
                        let next = c.matchers.len();
                        let m = *matcher_index.entry(&rule.peer).or_insert(next);
                        if m == next {
                            c.matchers.push(&rule.peer);
                            c.matcher_sets.push(None);
                        }
                        smids.push(m);
                    }
                    ids[dir_slot(dir)].push(sids);
                    mids[dir_slot(dir)].push(smids);
                }
            }
            c.rule_ids.push(ids);
            c.matcher_ids.push(mids);
        }
        for dir in Direction::ALL {
            c.default_allow[dir_slot(dir)] = c.intern_rule(RuleRef::default_allow(dir));
        }
        // End-of-tier references for every policy that can be the last applying one, so rule ids
        // do not depend on the cluster.
        for view in [View::Enforced, View::Staged] {
            for tier in set.view(view) {
                for entry in &tier.entries {
                    for dir in Direction::ALL {
                        let policy = &set.policies()[entry.policy];
                        if policy
                            .sections
                            .iter()
                            .any(|s| s.rules(dir).is_some_and(|r| r.isolates))
                        {
                            c.end_id(tier, entry.policy, dir);
                        }
                    }
                }
            }
        }
        c
    }

    fn intern_rule(&mut self, r: RuleRef) -> u32 {
        if let Some(&id) = self.rule_index.get(&r) {
            return id;
        }
        let id = u32::try_from(self.rules.len()).unwrap_or(u32::MAX);
        self.rules.push(r.clone());
        self.rule_index.insert(r, id);
        id
    }

    fn end_id(&mut self, tier: &TierView, policy: usize, dir: Direction) -> u32 {
        let key = (tier.name.clone(), policy, dir);
        if let Some(&id) = self.end_ids.get(&key) {
            return id;
        }
        let id = self.intern_rule(RuleRef::end_of_tier(
            tier,
            &self.set.policies()[policy],
            dir,
        ));
        self.end_ids.insert(key, id);
        id
    }

    /// The four programs of a subject (see [`SLOTS`]).
    fn programs(&mut self, subject: &Ident) -> Vec<Program<'a>> {
        let set = self.set;
        let applies: Vec<Vec<bool>> = set
            .policies()
            .iter()
            .map(|p| {
                // A namespaced policy never applies outside its namespace: skip the selectors.
                let elsewhere = p.kind.is_namespaced() && p.namespace != subject.namespace;
                p.sections
                    .iter()
                    .map(|s| !elsewhere && self.universe.matches(&s.subject, subject))
                    .collect()
            })
            .collect();
        let mut out = Vec::new();
        for (view, dir) in SLOTS {
            let mut program = Vec::new();
            for tier in set.view(view) {
                let mut steps = Vec::new();
                let mut last = None;
                for entry in &tier.entries {
                    let policy = &set.policies()[entry.policy];
                    for (s, section) in policy.sections.iter().enumerate() {
                        if !applies[entry.policy][s] {
                            continue;
                        }
                        let Some(rules) = section.rules(dir) else {
                            continue;
                        };
                        if rules.isolates {
                            last = Some(entry.policy);
                        }
                        for (pos, rule) in rules.rules.iter().enumerate() {
                            if entry.phase.includes(rule)
                                && self.universe.matches(&rule.local, subject)
                            {
                                steps.push(Step {
                                    rule,
                                    rule_id: self.rule_ids[entry.policy][dir_slot(dir)][s][pos],
                                    matcher: self.matcher_ids[entry.policy][dir_slot(dir)][s][pos],
                                });
                            }
                        }
                    }
                }
                let end = last.map(|p| (self.end_id(tier, p, dir), tier.default_action));
                program.push(TierProgram { steps, end });
            }
            out.push(program);
        }
        out
    }

    /// Computes (once) which identities a peer matcher accepts.
    fn matcher_set(&mut self, m: usize) {
        if self.matcher_sets[m].is_none() {
            let contains: Vec<bool> = self
                .universe
                .idents
                .iter()
                .map(|i| self.universe.matches(self.matchers[m], i))
                .collect();
            let members = (0..contains.len())
                .filter(|&i| contains[i])
                .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
                .collect();
            self.matcher_sets[m] = Some(MatcherSet { contains, members });
        }
    }

    /// Every decision row of one context: once with family 0, or, for a family-keyed context,
    /// once per packet family with the rules whose `ipVersion` admits it.
    fn rows(
        &mut self,
        programs: &[Program<'a>],
        subject_ports: &[NamedPort],
        family_keyed: bool,
    ) -> Vec<Row> {
        let mut rows = Vec::new();
        if !family_keyed {
            for (d, dir) in Direction::ALL.into_iter().enumerate() {
                let pair = [&programs[2 * d], &programs[2 * d + 1]];
                self.direction_rows(dir, 0, pair, subject_ports, &mut rows);
            }
            return rows;
        }
        for family in [4u8, 6] {
            for (d, dir) in Direction::ALL.into_iter().enumerate() {
                let pair = self.filter([&programs[2 * d], &programs[2 * d + 1]], |_, s| {
                    s.rule.ip_version.is_none_or(|v| v == family)
                });
                self.direction_rows(dir, family, [&pair[0], &pair[1]], subject_ports, &mut rows);
            }
        }
        rows
    }

    /// The rows of one direction and packet family (`programs` hold only rules that match it).
    fn direction_rows(
        &mut self,
        dir: Direction,
        family: u8,
        programs: [&Program<'a>; 2],
        subject_ports: &[NamedPort],
        rows: &mut Vec<Row>,
    ) {
        let steps = || programs.into_iter().flatten().flat_map(|t| t.steps.iter());
        let mut protocols: BTreeSet<u8> = [
            proto::TCP,
            proto::UDP,
            proto::SCTP,
            proto::ICMP,
            proto::ICMPV6,
        ]
        .into();
        for s in steps() {
            s.rule.l4.protocols(&mut protocols);
        }
        protocols.remove(&0);
        let other_protocol = (1..=u8::MAX)
            .find(|p| !protocols.contains(p))
            .unwrap_or(u8::MAX);

        // Peer classes, by partition refinement: each matcher splits every class into its members
        // and the rest, so identities end up together exactly when they satisfy the same matchers
        // (and have the same named ports where rules look at those).
        let mut used: Vec<usize> = steps().map(|s| s.matcher).collect();
        used.sort_unstable();
        used.dedup();
        let n = self.universe.idents.len();
        let mut class = vec![0u32; n];
        let mut classes_seen = 1u32;
        let mut split: HashMap<(u32, u32), u32> = HashMap::new();
        let mut refine =
            |class: &mut [u32], i: usize, tag: u32, split: &mut HashMap<(u32, u32), u32>| {
                let key = (class[i], tag);
                let next = classes_seen;
                let c = *split.entry(key).or_insert(next);
                if c == next {
                    classes_seen += 1;
                }
                class[i] = c;
            };
        for &m in &used {
            self.matcher_set(m);
            split.clear();
            for &i in self.matcher_sets[m]
                .as_ref()
                .map_or(&[][..], |s| &s.members[..])
            {
                refine(&mut class, i as usize, 0, &mut split);
            }
        }
        if dir == Direction::Egress {
            let mut names = BTreeSet::new();
            steps().for_each(|s| s.rule.l4.port_names(&mut names));
            if !names.is_empty() {
                let mut profiles: HashMap<Vec<&NamedPort>, u32> = HashMap::new();
                split.clear();
                for (i, ident) in self.universe.idents.iter().enumerate() {
                    let profile: Vec<&NamedPort> = ident
                        .ports
                        .iter()
                        .filter(|p| names.contains(&p.name))
                        .collect();
                    let next = u32::try_from(profiles.len()).unwrap_or(u32::MAX);
                    let id = *profiles.entry(profile).or_insert(next);
                    refine(&mut class, i, id, &mut split);
                }
            }
        }
        let mut index_of: HashMap<u32, usize> = HashMap::new();
        let mut classes: Vec<Vec<usize>> = Vec::new();
        for (i, c) in class.iter().enumerate() {
            let next = classes.len();
            let k = *index_of.entry(*c).or_insert(next);
            if k == next {
                classes.push(Vec::new());
            }
            classes[k].push(i);
        }

        // Outcomes per class and protocol.
        let all_protocols: Vec<u8> = protocols.iter().copied().chain([0]).collect();
        let mut maps: Vec<Vec<std::rc::Rc<PortMap>>> = Vec::new();
        for members in &classes {
            let rep = members[0];
            let for_peer = self.filter(programs, |c, s| {
                c.matcher_sets[s.matcher]
                    .as_ref()
                    .is_some_and(|m| m.contains[rep])
            });
            let mut per_proto = Vec::new();
            for &p in &all_protocols {
                let actual = if p == 0 { other_protocol } else { p };
                let for_proto = self.filter([&for_peer[0], &for_peer[1]], |_, s| {
                    s.rule.l4.may_match_protocol(actual)
                });
                per_proto.push(self.port_map(dir, &for_proto, rep, actual, subject_ports));
            }
            maps.push(per_proto);
        }

        // Peer 0 is the largest class.
        let default_class = (0..classes.len())
            .max_by_key(|&c| (classes[c].len(), std::cmp::Reverse(c)))
            .unwrap_or(0);
        let dir_u8 = dir.as_u8();
        let push = |rows: &mut Vec<Row>, p: u8, peer: u32, layout: &[(u16, u8, DecisionValue)]| {
            rows.extend(layout.iter().map(|&(port, len, value)| Row {
                direction: dir_u8,
                proto: p,
                family,
                peer,
                port,
                len,
                value,
            }));
        };
        for (k, &p) in all_protocols.iter().enumerate() {
            push(rows, p, 0, &layout(&maps[default_class][k]));
        }
        for (c, members) in classes.iter().enumerate() {
            if c == default_class {
                continue;
            }
            for (k, &p) in all_protocols.iter().enumerate() {
                if maps[c][k] == maps[default_class][k] {
                    continue;
                }
                let layout = layout(&maps[c][k]);
                for &i in members {
                    push(rows, p, self.universe.idents[i].id, &layout);
                }
            }
        }
    }

    /// The programs restricted to the steps `keep` accepts.
    fn filter(
        &self,
        programs: [&Program<'a>; 2],
        keep: impl Fn(&Self, &Step<'a>) -> bool,
    ) -> [Program<'a>; 2] {
        programs.map(|program| {
            program
                .iter()
                .map(|tier| TierProgram {
                    steps: tier
                        .steps
                        .iter()
                        .filter(|s| keep(self, s))
                        .copied()
                        .collect(),
                    end: tier.end,
                })
                .collect()
        })
    }

    /// The outcome over the port space of `programs` (already restricted to one peer class,
    /// through its representative `rep`, and to `protocol`). Memoized: classes and contexts that
    /// reduce to the same steps share the result.
    fn port_map(
        &mut self,
        dir: Direction,
        programs: &[Program<'a>; 2],
        rep: usize,
        protocol: u8,
        subject_ports: &[NamedPort],
    ) -> std::rc::Rc<PortMap> {
        let uses_names = programs.iter().flatten().any(uses_named_ports);
        let named: Vec<NamedPort> = match (uses_names, dir) {
            (false, _) => Vec::new(),
            (true, Direction::Ingress) => subject_ports.to_vec(),
            (true, Direction::Egress) => self.universe.idents[rep].ports.clone(),
        };
        let key = MapKey {
            dir,
            protocol,
            programs: [program_key(&programs[0]), program_key(&programs[1])],
            named,
        };
        if let Some(map) = self.port_maps.get(&key) {
            return map.clone();
        }
        let named = &key.named;
        let mut starts = vec![0u32];
        if proto::has_port(protocol) {
            for s in programs.iter().flatten().flat_map(|t| t.steps.iter()) {
                s.rule.l4.port_boundaries(protocol, named, &mut starts);
            }
        }
        starts.retain(|&b| b <= u32::from(u16::MAX));
        starts.sort_unstable();
        starts.dedup();

        let default_allow = self.default_allow[dir_slot(dir)];
        let mut map: PortMap = Vec::new();
        for &start in &starts {
            let port = u16::try_from(start).unwrap_or(u16::MAX);
            let enforced = run(&programs[0], protocol, port, named, default_allow);
            let staged = run(&programs[1], protocol, port, named, default_allow);
            let value = self.value(enforced, staged);
            if map.last().is_none_or(|(_, v)| *v != value) {
                map.push((start, value));
            }
        }
        let map = std::rc::Rc::new(map);
        self.port_maps.insert(key, map.clone());
        map
    }

    fn value(&mut self, enforced: Outcome, staged: Outcome) -> DecisionValue {
        let logged = enforced.hits.iter().chain(&staged.hits).any(|&h| {
            self.rules[h as usize].action == RuleAction::Log
                && self.rules[h as usize].special == Special::None
        });
        let mut flags = 0;
        if logged {
            flags |= flags::LOG;
        }
        if enforced.action == Action::Deny
            && self.rules[enforced.rule_id as usize].special == Special::None
        {
            flags |= flags::EXPLICIT_DENY;
        }
        if enforced.action != staged.action {
            flags |= flags::STAGED_DIFFERS;
        }
        let key = (enforced.hits, staged.hits);
        let trace_id = match self.trace_index.get(&key) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.traces.len()).unwrap_or(u32::MAX);
                let hits = |ids: &[u32]| {
                    ids.iter()
                        .map(|&i| self.rules[i as usize].clone())
                        .collect()
                };
                self.traces.push(Trace {
                    enforced: hits(&key.0),
                    staged: hits(&key.1),
                });
                self.trace_index.insert(key, id);
                id
            }
        };
        DecisionValue {
            action: enforced.action.as_u8(),
            staged_action: staged.action.as_u8(),
            flags,
            proxy_port: 0,
            rule_id: enforced.rule_id,
            staged_rule_id: staged.rule_id,
            trace_id,
        }
    }
}

/// Walks a (peer- and protocol-filtered) program for one port: the same walk as the evaluator.
fn run(
    program: &Program<'_>,
    protocol: u8,
    port: u16,
    named: &[NamedPort],
    default_allow: u32,
) -> Outcome {
    let mut hits = Vec::new();
    'tiers: for tier in program {
        for step in &tier.steps {
            if !step.rule.l4.matches(protocol, port, named) {
                continue;
            }
            hits.push(step.rule_id);
            match step.rule.action {
                RuleAction::Allow | RuleAction::Deny => {
                    return Outcome {
                        action: if step.rule.action == RuleAction::Allow {
                            Action::Allow
                        } else {
                            Action::Deny
                        },
                        rule_id: step.rule_id,
                        hits,
                    };
                }
                RuleAction::Log => {}
                RuleAction::Pass => continue 'tiers,
            }
        }
        if let Some((end, action)) = tier.end {
            hits.push(end);
            if action == TierDefaultAction::Deny {
                return Outcome {
                    action: Action::Deny,
                    rule_id: end,
                    hits,
                };
            }
        }
    }
    hits.push(default_allow);
    Outcome {
        action: Action::Allow,
        rule_id: default_allow,
        hits,
    }
}

/// The LPM entries of a port map: the value covering most ports as /0, the other intervals as
/// their exact prefix decomposition.
fn layout(map: &PortMap) -> Vec<(u16, u8, DecisionValue)> {
    let intervals: Vec<(u32, u32, DecisionValue)> = map
        .iter()
        .enumerate()
        .map(|(i, &(start, v))| {
            let end = map
                .get(i + 1)
                .map_or(u32::from(u16::MAX), |&(next, _)| next - 1);
            (start, end, v)
        })
        .collect();
    let mut coverage: Vec<(DecisionValue, u32)> = Vec::new();
    for &(lo, hi, v) in &intervals {
        match coverage.iter_mut().find(|(x, _)| *x == v) {
            Some((_, n)) => *n += hi - lo + 1,
            None => coverage.push((v, hi - lo + 1)),
        }
    }
    // The first value wins ties, so the choice is deterministic.
    let mut background = coverage[0];
    for &c in &coverage[1..] {
        if c.1 > background.1 {
            background = c;
        }
    }
    let mut out = vec![(0, 0, background.0)];
    for &(lo, hi, v) in &intervals {
        if v != background.0 {
            for (port, len) in range_prefixes(lo, hi) {
                out.push((u16::try_from(port).unwrap_or(0), len, v));
            }
        }
    }
    out
}

/// The exact decomposition of the inclusive port range into (port, prefix length) blocks.
pub(crate) fn range_prefixes(lo: u32, hi: u32) -> Vec<(u32, u8)> {
    let mut out = Vec::new();
    let mut at = lo;
    while at <= hi {
        let mut size_log = if at == 0 {
            16
        } else {
            at.trailing_zeros().min(16)
        };
        while at + (1 << size_log) - 1 > hi {
            size_log -= 1;
        }
        out.push((at, 16 - u8::try_from(size_log).unwrap_or(16)));
        at += 1 << size_log;
    }
    out
}
