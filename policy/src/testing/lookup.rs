//! A simulator of the datapath's lookups over compiled tables: the ipcache LPM and the 4-probe
//! decision-table LPM of docs/datapath-contract.md, with the key's family byte taken from the
//! packet for family-keyed endpoints.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::compile::{Compiled, DecisionValue, EndpointEntry};
use crate::model::Direction;
use crate::universe::reserved;

/// The fixed part of a decision key: (context, family, direction, proto, peer).
type FixedKey = (u32, u8, u8, u8, u32);

/// Decision entries grouped by their fixed key part, each list holding (port, prefix length,
/// value), longest prefix first.
type DecisionIndex<'a> = HashMap<FixedKey, Vec<(u16, u8, &'a DecisionValue)>>;

/// Lookup structures over one [`Compiled`].
#[derive(Debug)]
pub struct Lookup<'a> {
    ipcache: Vec<(IpNet, u32)>,
    decisions: DecisionIndex<'a>,
}

impl<'a> Lookup<'a> {
    /// Indexes the tables.
    pub fn new(compiled: &'a Compiled) -> Lookup<'a> {
        let mut ipcache: Vec<(IpNet, u32)> = compiled
            .ipcache
            .iter()
            .map(|e| (e.net, e.identity))
            .collect();
        ipcache.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        let mut decisions: DecisionIndex<'a> = HashMap::new();
        for d in &compiled.decisions {
            decisions
                .entry((d.context, d.family, d.direction, d.proto, d.peer))
                .or_default()
                .push((d.port, d.port_prefix_len, &d.value));
        }
        for list in decisions.values_mut() {
            list.sort_by_key(|(_, len, _)| std::cmp::Reverse(*len));
        }
        Lookup { ipcache, decisions }
    }

    /// The identity of an address: longest matching ipcache prefix, else `world`.
    pub fn resolve(&self, ip: IpAddr) -> u32 {
        self.ipcache
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map_or(reserved::WORLD, |(_, id)| *id)
    }

    fn probe(&self, key: FixedKey, port: u16) -> Option<&'a DecisionValue> {
        self.decisions.get(&key)?.iter().find_map(|&(p, len, v)| {
            let mask = if len == 0 { 0 } else { u16::MAX << (16 - len) };
            (port & mask == p).then_some(v)
        })
    }

    /// The datapath's decision for a key: probes (proto, peer), (proto, 0), (0, peer), (0, 0),
    /// first hit wins. `family` is the key's family byte as the datapath builds it (see
    /// [`EndpointEntry::key_family`]: the packet's IP version for a family-keyed endpoint, else
    /// 0) and is matched exactly; `port` must already be 0 for protocols without ports.
    pub fn decide(
        &self,
        context: u32,
        family: u8,
        direction: Direction,
        proto: u8,
        peer: u32,
        port: u16,
    ) -> Option<&'a DecisionValue> {
        let dir = direction.as_u8();
        self.probe((context, family, dir, proto, peer), port)
            .or_else(|| self.probe((context, family, dir, proto, 0), port))
            .or_else(|| self.probe((context, family, dir, 0, peer), 0))
            .or_else(|| self.probe((context, family, dir, 0, 0), 0))
    }

    /// Everything the datapath does for one packet of `endpoint`: resolves `peer` through the
    /// ipcache, builds the key's family byte from the endpoint's flag and the peer's family,
    /// zeroes the port of protocols without ports and probes. Returns the peer identity and the
    /// decision.
    pub fn decide_packet(
        &self,
        endpoint: &EndpointEntry,
        direction: Direction,
        peer: IpAddr,
        proto: u8,
        port: u16,
    ) -> (u32, Option<&'a DecisionValue>) {
        let identity = self.resolve(peer);
        let port = if crate::proto::has_port(proto) {
            port
        } else {
            0
        };
        let value = self.decide(
            endpoint.context,
            endpoint.key_family(peer),
            direction,
            proto,
            identity,
            port,
        );
        (identity, value)
    }
}

/// One packet's lookup without keeping the index ([`Lookup::decide_packet`]). Returns the peer
/// identity and the decision.
pub fn lookup(
    compiled: &Compiled,
    endpoint: &EndpointEntry,
    direction: Direction,
    peer: IpAddr,
    proto: u8,
    port: u16,
) -> (u32, Option<DecisionValue>) {
    let (identity, value) =
        Lookup::new(compiled).decide_packet(endpoint, direction, peer, proto, port);
    (identity, value.copied())
}

/// Checks the tables' structural invariants: unique keys, port bits below the prefix clear,
/// prefix lengths in range, ids in range, families 0, 4 or 6 with every context either all 0 or
/// all 4/6 as its endpoints' `family_keyed` says, and every context covered for both directions
/// (and, when family-keyed, both families).
pub fn validate(compiled: &Compiled) -> Result<(), String> {
    let mut keys = HashSet::new();
    let mut families: BTreeMap<u32, BTreeSet<u8>> = BTreeMap::new();
    for d in &compiled.decisions {
        if !matches!(d.family, 0 | 4 | 6) {
            return Err(format!("family {} is not 0, 4 or 6 in {d:?}", d.family));
        }
        families.entry(d.context).or_default().insert(d.family);
        if d.port_prefix_len > 16 {
            return Err(format!("prefix length {} > 16 in {d:?}", d.port_prefix_len));
        }
        let mask = if d.port_prefix_len == 0 {
            0
        } else {
            u16::MAX << (16 - d.port_prefix_len)
        };
        if d.port & !mask != 0 {
            return Err(format!("port bits below the prefix are set in {d:?}"));
        }
        if d.proto == 0 && d.port_prefix_len != 0 {
            return Err(format!("protocol 0 entry depends on the port: {d:?}"));
        }
        if !keys.insert((
            d.context,
            d.family,
            d.direction,
            d.proto,
            d.peer,
            d.port,
            d.port_prefix_len,
        )) {
            return Err(format!("duplicate key {d:?}"));
        }
        let v = &d.value;
        if v.rule_id as usize >= compiled.rules.len()
            || v.staged_rule_id as usize >= compiled.rules.len()
            || v.trace_id as usize >= compiled.traces.len()
        {
            return Err(format!("id out of range in {d:?}"));
        }
        if !matches!(v.action, 1 | 2) || !matches!(v.staged_action, 1 | 2) {
            return Err(format!("action out of range in {d:?}"));
        }
    }
    let mut keyed: BTreeMap<u32, bool> = BTreeMap::new();
    for e in &compiled.endpoints {
        if *keyed.entry(e.context).or_insert(e.family_keyed) != e.family_keyed {
            return Err(format!(
                "endpoints of context {} disagree on family_keyed ({}/{} says {})",
                e.context, e.namespace, e.name, e.family_keyed
            ));
        }
        let expected: BTreeSet<u8> = if e.family_keyed {
            [4, 6].into()
        } else {
            [0].into()
        };
        let found = families.get(&e.context).cloned().unwrap_or_default();
        if found != expected {
            return Err(format!(
                "context {} (family_keyed {}) has entries of families {found:?}, expected {expected:?}",
                e.context, e.family_keyed
            ));
        }
        for family in expected {
            for dir in [1u8, 2] {
                if !keys.contains(&(e.context, family, dir, 0, 0, 0, 0)) {
                    return Err(format!(
                        "context {} has no (0, 0) entry for family {family}, direction {dir}",
                        e.context
                    ));
                }
            }
        }
    }
    Ok(())
}
