//! Events decoded and enriched per second on one core, through the real code: `Event::decode`
//! of ring-buffer bytes, `observe_batch` (generation lookup, `flows::encode_flow`, verdict
//! counters, metrics) and the observer ring (`Hub::push_encoded`), with a full default-size ring.
//! Interleaved with it, the path it replaced (`flows::to_flow`, then `Hub::push_flows`, which
//! encodes the message), for a ratio measured in the same run.
//! No root needed: `cargo bench -p vigil-node-agent --bench observe`.

/// The same allocator as the `node-agent` binary, so the numbers are the agent's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    sync::{Arc, RwLock},
    time::Instant,
};

use vigil_node_agent::{
    abi::{self, Event},
    events::{self, Counters, Generations},
    flows,
    observer::Hub,
};
use vigil_policy::{Cluster, PolicySet, compile, parse_cluster_file, parse_policy_file};

const CLUSTER: &str = r#"
apiVersion: vigil.dev/v1
kind: Endpoint
metadata: {name: frontend, namespace: shop, labels: {app: frontend, tier: web}}
spec: {node: node-1, interface: veth1, ips: [10.0.0.1]}
---
apiVersion: vigil.dev/v1
kind: Endpoint
metadata: {name: my-api, namespace: shop, labels: {app: my-api, tier: api}}
spec: {node: node-1, interface: veth2, ips: [10.0.0.2]}
"#;

const POLICY: &str = r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-ssh}
spec:
  selector: all()
  types: [Ingress]
  ingress:
    - action: Log
    - action: Deny
      protocol: TCP
      destination: {ports: [22]}
    - action: Pass
"#;

fn main() {
    let parsed = parse_cluster_file("cluster.yaml", CLUSTER).expect("cluster");
    let cluster = Cluster {
        endpoints: parsed.endpoints,
        namespaces: parsed.namespaces,
        nodes: parsed.nodes,
    };
    let policies = parse_policy_file("policy.yaml", POLICY).expect("policy");
    let set = PolicySet::new(policies.policies, policies.tiers).expect("set");
    let compiled = compile(&set, &cluster, "node-1");
    let mut generations = Generations::default();
    generations.insert(1, &compiled, &cluster);
    let generations = RwLock::new(generations);
    let counters = Counters::default();
    let hub = Arc::new(Hub::new("node-1", 65_536));
    let ctx = flows::Context {
        node: "node-1".into(),
        boot_offset_ns: 1_700_000_000_000_000_000,
        uuid_prefix: 0x1234_5678_9abc_def0,
    };
    let identity = |ip: [u8; 4]| {
        compiled
            .endpoints
            .iter()
            .find(|e| {
                cluster
                    .endpoints
                    .iter()
                    .any(|c| c.name == e.name && c.ips.contains(&ip.into()))
            })
            .map_or(2, |e| e.identity)
    };
    // A mix: denied ssh (rule with trace), allowed established traffic.
    let events: Vec<Vec<u8>> = (0..1024u32)
        .map(|i| {
            let mut e = Event {
                r#type: abi::EVENT_VERDICT,
                version: abi::EVENT_VERSION,
                direction: 1,
                verdict: if i % 4 == 0 {
                    abi::VERDICT_DROPPED
                } else {
                    abi::VERDICT_FORWARDED
                },
                drop_reason: if i % 4 == 0 { 181 } else { 0 },
                ct_state: if i % 4 == 0 { 1 } else { 2 },
                proto: 6,
                family: 4,
                tcp_flags: 0x02,
                action: if i % 4 == 0 {
                    abi::ACT_DENY
                } else {
                    abi::ACT_ALLOW
                },
                staged_action: abi::ACT_ALLOW,
                ifindex: 7,
                ts_ns: u64::from(i) * 1000,
                endpoint_id: 2,
                local_identity: identity([10, 0, 0, 2]),
                peer_identity: identity([10, 0, 0, 1]),
                rule_id: (i % compiled.rules.len().max(1) as u32),
                trace_id: (i % compiled.traces.len().max(1) as u32),
                generation: 1,
                pkt_len: 60,
                sport: 40_000 + (i % 1000) as u16,
                dport: if i % 4 == 0 { 22 } else { 80 },
                ..Event::default()
            };
            e.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
            e.daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
            // SAFETY: Event is repr(C) plain old data; its bytes are what the ring buffer holds.
            unsafe {
                std::slice::from_raw_parts((&e as *const Event).cast::<u8>(), size_of::<Event>())
            }
            .to_vec()
        })
        .collect();
    let total: u64 = 2_000_000;
    let mut seq = 0u64;
    // The agent's path (direct encoding) and, interleaved for a side-by-side ratio, the reference
    // path it replaced: build the `flow.Flow` message (`flows::to_flow`), then encode it.
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..6 {
        let direct = round % 2 == 0;
        let start = Instant::now();
        let mut done = 0u64;
        let mut batch = Vec::with_capacity(1024);
        while done < total {
            batch.clear();
            for bytes in &events {
                batch.push(Event::decode(bytes).expect("decodes"));
            }
            if direct {
                events::observe_batch(&batch, &ctx, &generations, &counters, &hub, &mut seq);
            } else {
                let g = generations.read().unwrap();
                let index = g.get(1).map(|i| &**i);
                let flows: Vec<_> = batch
                    .iter()
                    .map(|e| {
                        seq += 1;
                        flows::to_flow(e, &ctx, index, seq)
                    })
                    .collect();
                drop(g);
                hub.push_flows(flows);
            }
            done += batch.len() as u64;
        }
        let rate = done as f64 / start.elapsed().as_secs_f64();
        let name = if direct {
            "direct encoding (the agent)"
        } else {
            "message, then encode"
        };
        println!("round {round}: {rate:>10.0} events/s decoded + enriched + in the ring, {name}");
        rates[usize::from(!direct)].push(rate);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (d, r) = (median(&mut rates[0]), median(&mut rates[1]));
    let (held, capacity, seen) = hub.counts();
    println!(
        "median: {d:.0} events/s on one core with direct encoding, {r:.0} building the message first ({:.2}x); ring {held}/{capacity}, {seen} seen",
        d / r
    );
}
