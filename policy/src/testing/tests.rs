//! Tests of the test support itself: the generator covers what the differential tests rely on
//! (ipVersion rules, mixed-family endpoints, every protocol class, IPv6 peers), and `validate`
//! refuses tables that break the family-keying invariants.

use std::collections::BTreeSet;

use super::*;
use crate::compile::DecisionEntry;

#[test]
fn worlds_and_probes_are_reproducible_from_their_seed() {
    let a = random_world(17);
    let b = random_world(17);
    assert_eq!(a.files, b.files);
    assert_eq!(a.cluster, b.cluster);
    assert_eq!(probes(&a, 5, 200), probes(&b, 5, 200));
    assert_ne!(probes(&a, 5, 200), probes(&a, 6, 200));
}

#[test]
fn probes_cover_every_protocol_class_both_families_and_local_subjects_only() {
    let mut protocols = BTreeSet::new();
    let mut families = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    for seed in 0..20 {
        let world = random_world(seed);
        for p in probes(&world, seed, 300) {
            assert_eq!(p.subject(&world).node, world.node, "{p:?}");
            if !proto::has_port(p.proto) {
                assert_eq!(p.port, 0, "{p:?}");
            }
            protocols.insert(p.proto);
            families.insert(p.peer.is_ipv6());
            dirs.insert(p.dir.as_u8());
        }
    }
    for wanted in [
        proto::TCP,
        proto::UDP,
        proto::SCTP,
        proto::ICMP,
        proto::ICMPV6,
        47,
    ] {
        assert!(protocols.contains(&wanted), "no probe of protocol {wanted}");
    }
    assert_eq!(families, BTreeSet::from([false, true]));
    assert_eq!(dirs, BTreeSet::from([1, 2]));
}

#[test]
fn random_worlds_have_ip_version_rules_and_mixed_family_endpoints() {
    let worlds: Vec<World> = (0..300).map(random_world).collect();
    let with_ip_version = worlds
        .iter()
        .filter(|w| {
            w.set.policies().iter().any(|p| {
                p.sections
                    .iter()
                    .flat_map(|s| s.ingress.iter().chain(&s.egress))
                    .flat_map(|d| &d.rules)
                    .any(|r| r.ip_version.is_some())
            })
        })
        .count();
    assert!(
        with_ip_version > 75,
        "{with_ip_version} of 300 worlds have ipVersion rules"
    );
    let dual_stack = worlds
        .iter()
        .flat_map(|w| &w.cluster.endpoints)
        .filter(|e| e.ips.iter().any(IpAddr::is_ipv4) && e.ips.iter().any(IpAddr::is_ipv6))
        .count();
    assert!(dual_stack > 300, "{dual_stack} dual-stack endpoints");
}

/// A compiled world with a family-keyed context and one without.
fn keyed_and_unkeyed() -> Compiled {
    (0..)
        .map(|seed| compile_world(&random_world(seed)))
        .find(|c| {
            c.endpoints.iter().any(|e| e.family_keyed)
                && c.endpoints.iter().any(|e| !e.family_keyed)
        })
        .expect("some world has both kinds of context")
}

fn compile_world(w: &World) -> Compiled {
    compile(&w.set, &w.cluster, &w.node)
}

fn entry_of(c: &Compiled, keyed: bool) -> (usize, DecisionEntry) {
    let context = c
        .endpoints
        .iter()
        .find(|e| e.family_keyed == keyed)
        .unwrap()
        .context;
    c.decisions
        .iter()
        .enumerate()
        .find(|(_, d)| d.context == context)
        .map(|(i, d)| (i, *d))
        .unwrap()
}

#[test]
fn validate_refuses_broken_family_keying() {
    let good = keyed_and_unkeyed();
    validate(&good).unwrap();

    // A family outside 0, 4, 6.
    let mut c = good.clone();
    let (i, _) = entry_of(&c, true);
    c.decisions[i].family = 5;
    assert!(validate(&c).unwrap_err().contains("family 5"));

    // A family-0 entry in a family-keyed context.
    let mut c = good.clone();
    let (_, mut extra) = entry_of(&c, true);
    extra.family = 0;
    c.decisions.push(extra);
    assert!(validate(&c).unwrap_err().contains("families"));

    // A family-keyed entry in a context without keying.
    let mut c = good.clone();
    let (_, mut extra) = entry_of(&c, false);
    extra.family = 4;
    c.decisions.push(extra);
    assert!(validate(&c).unwrap_err().contains("families"));

    // A family-keyed context whose IPv6 entries are missing.
    let mut c = good.clone();
    let (_, keyed) = entry_of(&c, true);
    c.decisions
        .retain(|d| !(d.context == keyed.context && d.family == 6));
    assert!(validate(&c).unwrap_err().contains("families"));

    // Endpoints of one context that disagree on the flag.
    let mut c = good.clone();
    let (_, keyed) = entry_of(&c, true);
    let mut twin = c
        .endpoints
        .iter()
        .find(|e| e.context == keyed.context)
        .unwrap()
        .clone();
    twin.name.push_str("-twin");
    twin.family_keyed = false;
    c.endpoints.push(twin);
    assert!(validate(&c).unwrap_err().contains("disagree"));

    // The same key twice.
    let mut c = good;
    let (_, dup) = entry_of(&c, true);
    c.decisions.push(dup);
    assert!(validate(&c).unwrap_err().contains("duplicate"));
}

#[test]
fn lookup_keys_by_the_packet_family_only_for_family_keyed_endpoints() {
    let c = keyed_and_unkeyed();
    let tables = Lookup::new(&c);
    let v4: IpAddr = "8.8.8.8".parse().unwrap();
    let v6: IpAddr = "2606:4700::1111".parse().unwrap();
    for e in &c.endpoints {
        for dir in Direction::ALL {
            for peer in [v4, v6] {
                let (id, value) = tables.decide_packet(e, dir, peer, proto::TCP, 80);
                let direct = tables.decide(e.context, e.key_family(peer), dir, proto::TCP, id, 80);
                assert_eq!(value, direct);
                assert!(value.is_some(), "{e:?} {dir:?} {peer}");
                // The other keying never hits: family is matched exactly.
                let wrong = if e.family_keyed {
                    0
                } else if peer.is_ipv4() {
                    4
                } else {
                    6
                };
                assert_eq!(
                    tables.decide(e.context, wrong, dir, proto::TCP, id, 80),
                    None
                );
            }
        }
    }
}
