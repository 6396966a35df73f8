//! Compile-time benchmark: 10,000 rules over 1,000 endpoints (1,000 identities), all on the
//! compiled node. Prints the time of each phase and the size of the tables.
//!
//! `cargo run --release -p vigil-policy --example compile_bench [rules] [endpoints]`

use std::time::Instant;

use vigil_policy::compile;
use vigil_policy::testing::scale_world;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let rules = args.next().and_then(Result::ok).unwrap_or(10_000);
    let endpoints = args.next().and_then(Result::ok).unwrap_or(1_000);

    let start = Instant::now();
    let world = scale_world(rules, endpoints, 42);
    let generated = start.elapsed();
    let rule_count: usize = world
        .set
        .policies()
        .iter()
        .map(|p| {
            p.sections
                .iter()
                .flat_map(|s| s.ingress.iter().chain(&s.egress))
                .map(|d| d.rules.len())
                .sum::<usize>()
        })
        .sum();
    println!(
        "world: {} policies, {rule_count} rules, {} endpoints (generated and parsed in {generated:.2?})",
        world.set.policies().len(),
        world.cluster.endpoints.len()
    );

    let mut best = None;
    for run in 1..=3 {
        let start = Instant::now();
        let compiled = compile(&world.set, &world.cluster, &world.node);
        let took = start.elapsed();
        println!(
            "run {run}: compiled in {took:.2?}: {} identities, {} ipcache, {} endpoints, {} contexts, {} decisions, {} rules, {} traces",
            compiled.identities.len(),
            compiled.ipcache.len(),
            compiled.endpoints.len(),
            compiled
                .endpoints
                .iter()
                .map(|e| e.context)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            compiled.decisions.len(),
            compiled.rules.len(),
            compiled.traces.len(),
        );
        best = Some(best.map_or(took, |b: std::time::Duration| b.min(took)));
    }
    if let Some(best) = best {
        println!("best: {best:.2?}");
    }
}
