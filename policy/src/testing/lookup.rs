//! A simulator of the datapath's lookups over compiled tables: the ipcache LPM and the 4-probe
//! decision-table LPM of docs/datapath-contract.md.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::compile::{Compiled, DecisionValue};
use crate::model::Direction;
use crate::universe::reserved;

/// Decision entries grouped by their fixed key part (context, direction, proto, peer), each
/// list holding (port, prefix length, value), longest prefix first.
type DecisionIndex<'a> = HashMap<(u32, u8, u8, u32), Vec<(u16, u8, &'a DecisionValue)>>;

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
                .entry((d.context, d.direction, d.proto, d.peer))
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

    fn probe(&self, key: (u32, u8, u8, u32), port: u16) -> Option<&'a DecisionValue> {
        self.decisions.get(&key)?.iter().find_map(|&(p, len, v)| {
            let mask = if len == 0 { 0 } else { u16::MAX << (16 - len) };
            (port & mask == p).then_some(v)
        })
    }

    /// The datapath's decision: probes (proto, peer), (proto, 0), (0, peer), (0, 0), first hit
    /// wins; `port` must already be 0 for protocols without ports.
    pub fn decide(
        &self,
        context: u32,
        direction: Direction,
        proto: u8,
        peer: u32,
        port: u16,
    ) -> Option<&'a DecisionValue> {
        let dir = direction.as_u8();
        self.probe((context, dir, proto, peer), port)
            .or_else(|| self.probe((context, dir, proto, 0), port))
            .or_else(|| self.probe((context, dir, 0, peer), 0))
            .or_else(|| self.probe((context, dir, 0, 0), 0))
    }
}

/// One lookup without keeping the index: resolves `peer` through the ipcache and probes the
/// decision table of `context`. Returns the peer identity and the decision.
pub fn lookup(
    compiled: &Compiled,
    context: u32,
    direction: Direction,
    peer: IpAddr,
    proto: u8,
    port: u16,
) -> (u32, Option<DecisionValue>) {
    let tables = Lookup::new(compiled);
    let identity = tables.resolve(peer);
    let port = if crate::proto::has_port(proto) {
        port
    } else {
        0
    };
    (
        identity,
        tables
            .decide(context, direction, proto, identity, port)
            .copied(),
    )
}

/// Checks the tables' structural invariants: unique keys, port bits below the prefix clear,
/// prefix lengths in range, ids in range, every context covered for both directions.
pub fn validate(compiled: &Compiled) -> Result<(), String> {
    let mut keys = HashSet::new();
    for d in &compiled.decisions {
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
    for e in &compiled.endpoints {
        for dir in [1u8, 2] {
            if !keys.contains(&(e.context, dir, 0, 0, 0, 0)) {
                return Err(format!(
                    "context {} has no (0, 0) entry for direction {dir}",
                    e.context
                ));
            }
        }
    }
    Ok(())
}
