//! Test support: random policy worlds, a simulator of the datapath's table lookups, and the
//! differential check between the compiled tables and the evaluator.
//!
//! Always compiled (plain code, no extra dependencies), so every crate builds the same
//! `vigil-policy`. Nothing here is used by the library itself.
//!
//! The eBPF differential test reuses [`random_world`] and [`probes`], replacing [`Lookup`] with
//! the real datapath: for each [`Probe`], the subject is `world.cluster.endpoints[probe.endpoint]`
//! (its [`EndpointEntry`](crate::EndpointEntry) in the compiled tables has the same namespace and
//! name), the packet goes in direction `dir` between the subject and `peer`, and the expected
//! decision is the evaluator's (or the [`Lookup::decide_packet`] of the compiled tables, which
//! [`check_world`] proves equal).

#[cfg(test)]
mod tests;

mod generate;
mod lookup;

pub use generate::{Rng, World, random_world, scale_world};
pub use lookup::{Lookup, lookup, validate};

use std::net::IpAddr;

use crate::evaluate::Evaluator;
use crate::model::{Direction, proto};
use crate::{Compiled, compile};

/// One connection to check: a new connection of a local endpoint, as [`evaluate`](crate::evaluate)
/// takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The subject: index into the world's `cluster.endpoints`, always an endpoint on the
    /// world's node.
    pub endpoint: usize,
    /// Direction from the subject's point of view (ingress: `peer` is the source).
    pub dir: Direction,
    /// Peer address, IPv4 or IPv6; its family is the packet's IP version.
    pub peer: IpAddr,
    /// IP protocol: TCP, UDP, SCTP, ICMP, ICMPv6 or another number (47, 99).
    pub proto: u8,
    /// Destination port for TCP, UDP and SCTP, `(type << 8) | code` for ICMP and ICMPv6, 0 for
    /// every other protocol.
    pub port: u16,
}

impl Probe {
    /// The subject endpoint.
    pub fn subject<'w>(&self, world: &'w World) -> &'w crate::Endpoint {
        &world.cluster.endpoints[self.endpoint]
    }
}

/// `count` random connections of the world's local endpoints, biased towards addresses the world
/// knows (endpoints, nodes, rule prefixes, IPv4 and IPv6) and ports at rule boundaries.
/// Deterministic for a (world, seed).
pub fn probes(world: &World, seed: u64, count: usize) -> Vec<Probe> {
    let mut rng = Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15);
    let local: Vec<usize> = (0..world.cluster.endpoints.len())
        .filter(|&i| world.cluster.endpoints[i].node == world.node)
        .collect();
    if local.is_empty() {
        return Vec::new();
    }
    let mut peers: Vec<IpAddr> = world
        .cluster
        .endpoints
        .iter()
        .flat_map(|e| e.ips.iter().copied())
        .chain(
            world
                .cluster
                .nodes
                .iter()
                .flat_map(|n| n.ips.iter().copied()),
        )
        .collect();
    for net in world.set.prefixes() {
        peers.push(net.network());
        peers.push(generate::random_addr_in(&mut rng, &net));
        peers.push(net.broadcast());
    }
    peers.extend(
        generate::WORLD_ADDRESSES
            .iter()
            .map(|a| a.parse::<IpAddr>().unwrap_or(IpAddr::from([8, 8, 8, 8]))),
    );
    const PROTOS: [u8; 8] = [
        proto::TCP,
        proto::TCP,
        proto::UDP,
        proto::SCTP,
        proto::ICMP,
        proto::ICMPV6,
        47,
        99,
    ];
    const PORTS: [u16; 16] = [
        0, 1, 22, 52, 53, 54, 79, 80, 81, 443, 7999, 8000, 8080, 8081, 9090, 65535,
    ];
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let protocol = *rng.pick(&PROTOS);
        let port = match protocol {
            proto::ICMP | proto::ICMPV6 => {
                if rng.chance(0.7) {
                    let t = *rng.pick(&[0u16, 3, 8, 11, 128, 129]);
                    (t << 8) | rng.below(4) as u16
                } else {
                    rng.below(65536) as u16
                }
            }
            proto::TCP | proto::UDP | proto::SCTP => {
                if rng.chance(0.75) {
                    *rng.pick(&PORTS)
                } else {
                    rng.below(65536) as u16
                }
            }
            _ => 0,
        };
        out.push(Probe {
            endpoint: *rng.pick(&local),
            dir: if rng.chance(0.5) {
                Direction::Ingress
            } else {
                Direction::Egress
            },
            peer: *rng.pick(&peers),
            proto: protocol,
            port,
        });
    }
    out
}

/// Compiles the world and checks every probe: the lookup simulated over the compiled tables must
/// give the evaluator's decision (rules, actions, flags and trace) in both views. Returns the
/// number of probes checked, or a description of the first disagreement.
pub fn check_world(world: &World, probes: &[Probe]) -> Result<usize, String> {
    let compiled = compile(&world.set, &world.cluster, &world.node);
    validate(&compiled)?;
    let evaluator = Evaluator::new(&world.set, &world.cluster, &world.node);
    let tables = Lookup::new(&compiled);
    for probe in probes {
        check_probe(world, &compiled, &tables, &evaluator, probe)?;
    }
    Ok(probes.len())
}

fn check_probe(
    world: &World,
    compiled: &Compiled,
    tables: &Lookup<'_>,
    evaluator: &Evaluator<'_>,
    probe: &Probe,
) -> Result<(), String> {
    let ep = probe.subject(world);
    let ev = evaluator.evaluate(ep, probe.dir, probe.peer, probe.proto, probe.port);
    let fail = |what: String| {
        Err(format!(
            "{what}\nprobe: {probe:?} on endpoint {}/{}\nevaluator: {ev:#?}",
            ep.namespace, ep.name
        ))
    };
    let Some(entry) = compiled
        .endpoints
        .iter()
        .find(|e| e.name == ep.name && e.namespace == ep.namespace)
    else {
        return fail("endpoint missing from the compiled endpoint table".to_owned());
    };
    let (identity, value) =
        tables.decide_packet(entry, probe.dir, probe.peer, probe.proto, probe.port);
    if identity != ev.peer_identity {
        return fail(format!("ipcache gives identity {identity}"));
    }
    let Some(value) = value else {
        return fail(format!(
            "no decision entry for context {} family {}",
            entry.context,
            entry.key_family(probe.peer)
        ));
    };
    let rule = |id: u32| compiled.rules.get(id as usize);
    if rule(value.rule_id) != Some(&ev.enforced.decided_by) {
        return fail(format!("table decided by {:?}", rule(value.rule_id)));
    }
    if rule(value.staged_rule_id) != Some(&ev.staged.decided_by) {
        return fail(format!(
            "table staged decision by {:?}",
            rule(value.staged_rule_id)
        ));
    }
    if value.action != ev.enforced.action.as_u8() || value.staged_action != ev.staged.action.as_u8()
    {
        return fail(format!(
            "table actions {}/{}",
            value.action, value.staged_action
        ));
    }
    let trace = compiled.traces.get(value.trace_id as usize);
    if trace.is_none_or(|t| t.enforced != ev.enforced.hits || t.staged != ev.staged.hits) {
        return fail(format!("table trace {trace:#?}"));
    }
    let mut flags = 0;
    if ev
        .enforced
        .hits
        .iter()
        .chain(&ev.staged.hits)
        .any(|h| h.action == crate::RuleAction::Log && h.special == crate::Special::None)
    {
        flags |= crate::flags::LOG;
    }
    if ev.enforced.action == crate::Action::Deny
        && ev.enforced.decided_by.special == crate::Special::None
    {
        flags |= crate::flags::EXPLICIT_DENY;
    }
    if ev.enforced.action != ev.staged.action {
        flags |= crate::flags::STAGED_DIFFERS;
    }
    if value.flags != flags {
        return fail(format!(
            "table flags {:#x}, expected {flags:#x}",
            value.flags
        ));
    }
    Ok(())
}
