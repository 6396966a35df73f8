//! Datapath cost per packet through `BPF_PROG_TEST_RUN`, all measured in one run so the ratios
//! are comparable: the allow-all program (the cost of a tc program that does nothing), and
//! Vigil's program with 10, 1,000 and 10,000 rules over 1,000 identities (see `bench_world`), on
//! the two paths a
//! packet can take: a new connection (conntrack miss, ipcache and decision lookups, an event)
//! and an established one (conntrack hit). Also the time to install a generation.
//!
//! Run as root: `cargo bench -p vigil-node-agent --bench datapath` (or `make bench`).

use std::{fmt::Write as _, path::PathBuf, time::Instant};

use aya::programs::{TestRun, TestRunOptions};
use vigil_node_agent::{
    abi,
    datapath::{Datapath, Options},
    packet::{self, Spec},
};
use vigil_policy::{
    Action, Cluster, Direction, PolicySet, compile, evaluate, parse_cluster_file, parse_policy_file,
};

const REPEAT: u32 = 200_000;
const ROUNDS: usize = 5;

struct Bench {
    datapath: Datapath,
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    pin_dir: PathBuf,
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

impl Bench {
    /// Median over rounds of the kernel-reported average ns per run.
    fn ns_per_packet(&mut self, program: &str, frame: &[u8]) -> f64 {
        let mut samples = Vec::new();
        for _ in 0..ROUNDS {
            let result = self
                .datapath
                .program(program)
                .unwrap()
                .test_run(TestRunOptions {
                    data_in: Some(frame),
                    repeat: REPEAT,
                    ..TestRunOptions::new()
                })
                .expect("BPF_PROG_TEST_RUN");
            samples.push(result.duration.as_nanos() as f64);
            // Keep the ring buffer drained so every run pays for a real event write.
            while self.ring.next().is_some() {}
        }
        samples.sort_by(f64::total_cmp);
        samples[ROUNDS / 2]
    }
}

struct Row {
    rules: usize,
    decisions: usize,
    compile_ms: f64,
    install_ms: f64,
    new_ns: f64,
    established_ns: f64,
}

fn main() {
    let pin_dir = PathBuf::from(format!("/sys/fs/bpf/vigil-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&pin_dir);
    let mut datapath = Datapath::open(Options {
        pin_dir: pin_dir.clone(),
        ring_buffer_bytes: None,
        aggregation: abi::AGG_CONNECTION,
    })
    .expect("open the datapath (run as root)");
    let ring = datapath.take_events().unwrap();
    let mut bench = Bench {
        datapath,
        ring,
        pin_dir,
    };

    let baseline_frame = packet::build(&Spec::tcp_syn(
        "10.0.0.1".parse().unwrap(),
        "10.0.0.2".parse().unwrap(),
        1000,
        80,
    ));
    let allow_all = bench.ns_per_packet(abi::programs::ALLOW_ALL, &baseline_frame);

    let mut rows = Vec::new();
    for rules in [10, 1_000, 10_000] {
        let (set, cluster) = bench_world(rules);
        let started = Instant::now();
        let compiled = compile(&set, &cluster, "n1");
        let compile_ms = started.elapsed().as_secs_f64() * 1e3;
        let subject = &cluster.endpoints[0];
        let local = subject.ips[0];
        let peer = cluster.endpoints[1].ips[0];
        // Rule 1 admits pod-1 on port 1000; nothing admits it on port 80.
        let denied = (peer, 80u16);
        let allowed = (peer, 1000u16);
        for (port, want) in [(denied.1, Action::Deny), (allowed.1, Action::Allow)] {
            let got = evaluate(&set, &cluster, subject, Direction::Ingress, peer, 6, port)
                .enforced
                .action;
            assert_eq!(got, want, "bench world: port {port}");
        }

        let started = Instant::now();
        bench
            .datapath
            .install(&compiled, &|ns, name| {
                (ns == subject.namespace && name == subject.name).then_some(1)
            })
            .expect("install");
        let install_ms = started.elapsed().as_secs_f64() * 1e3;

        let new_frame = packet::build(&Spec::tcp_syn(denied.0, local, 40_000, denied.1));
        let new_ns = bench.ns_per_packet(abi::programs::TO_ENDPOINT, &new_frame);
        // An allowed SYN creates the conntrack entry on the first run; the rest hit it.
        let frame = packet::build(&Spec::tcp_syn(allowed.0, local, 40_001, allowed.1));
        let established_ns = bench.ns_per_packet(abi::programs::TO_ENDPOINT, &frame);
        rows.push(Row {
            rules,
            decisions: compiled.decisions.len(),
            compile_ms,
            install_ms,
            new_ns,
            established_ns,
        });
    }

    println!(
        "BPF_PROG_TEST_RUN, {REPEAT} runs x {ROUNDS} rounds (median), 1,000 endpoints/identities\n"
    );
    println!(
        "| program | rules | decision entries | new connection ns/pkt | established ns/pkt | vs allow-all (new) | compile ms | install ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!("| allow-all | - | - | {allow_all:.1} | {allow_all:.1} | 1.00x | - | - |");
    for row in &rows {
        println!(
            "| vigil | {} | {} | {:.1} | {:.1} | {:.2}x | {:.0} | {:.0} |",
            row.rules,
            row.decisions,
            row.new_ns,
            row.established_ns,
            row.new_ns / allow_all,
            row.compile_ms,
            row.install_ms
        );
    }
    let (small, large) = (&rows[0], &rows[2]);
    println!(
        "\n10,000 rules vs 10 rules: new connection {:.2}x, established {:.2}x",
        large.new_ns / small.new_ns,
        large.established_ns / small.established_ns
    );
}

/// 1,000 endpoints with one identity each on node n1, and one Kubernetes NetworkPolicy selecting
/// pod-0 with `rules` ingress rules: rule k admits pod-(k mod 1000) on TCP port 1000 + k / 1000.
fn bench_world(rules: usize) -> (PolicySet, Cluster) {
    let mut endpoints = String::new();
    for i in 0..1_000u32 {
        writeln!(
            endpoints,
            "---\napiVersion: vigil.dev/v1\nkind: Endpoint\nmetadata: {{name: pod-{i}, namespace: bench, labels: {{app: a{i}}}}}\nspec: {{node: n1, interface: veth{i}, ips: [10.1.{}.{}]}}",
            i / 250,
            i % 250 + 1
        )
        .unwrap();
    }
    let mut policy = String::from(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bench, namespace: bench}\nspec:\n  podSelector: {matchLabels: {app: a0}}\n  ingress:\n",
    );
    for k in 0..rules {
        writeln!(
            policy,
            "    - from: [{{podSelector: {{matchLabels: {{app: a{}}}}}}}]\n      ports: [{{port: {}}}]",
            k % 1_000,
            1_000 + k / 1_000
        )
        .unwrap();
    }
    let parsed = parse_cluster_file("bench-endpoints.yaml", &endpoints).expect("bench endpoints");
    let policies = parse_policy_file("bench-policy.yaml", &policy).expect("bench policy");
    let cluster = Cluster {
        endpoints: parsed.endpoints,
        namespaces: parsed.namespaces,
        nodes: parsed.nodes,
    };
    (
        PolicySet::new(policies.policies, policies.tiers).expect("bench set"),
        cluster,
    )
}
