//! The eBPF program against the reference evaluator: thousands of generated (policy set,
//! packet) cases are compiled, installed into a real datapath and pushed through the real
//! program with `BPF_PROG_TEST_RUN`; the program's verdict and the rule ids in its event must be
//! the evaluator's. Also the protocols the kernel here cannot carry (SCTP), by crafted packets.
//! Needs root (bpffs, BPF_PROG_TEST_RUN).

use std::{net::IpAddr, path::PathBuf};

use aya::{
    maps::{MapData, RingBuf},
    programs::{TestRun, TestRunOptions},
};
use vigil_node_agent::{
    abi::{self, Event},
    datapath::{Datapath, Options},
    packet::{self, Spec},
};
use vigil_policy::{
    Action, Direction, compile, evaluate, parse_cluster_file, parse_policy_file, testing,
};

/// skb->ifindex of a `BPF_PROG_TEST_RUN` packet without a context: the loopback device.
const TEST_RUN_IFINDEX: u32 = 1;
const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;

/// A datapath with its own pinned maps, removed on drop.
struct Harness {
    datapath: Datapath,
    ring: RingBuf<MapData>,
    pin_dir: PathBuf,
    next_port: u16,
}

impl Harness {
    fn new(name: &str) -> Harness {
        let pin_dir = PathBuf::from(format!(
            "/sys/fs/bpf/vigil-difftest-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&pin_dir);
        let mut datapath = Datapath::open(Options {
            pin_dir: pin_dir.clone(),
            ring_buffer_bytes: None,
            aggregation: abi::AGG_CONNECTION,
        })
        .expect("open the datapath (needs root and a bpffs)");
        let ring = datapath.take_events().unwrap();
        Harness {
            datapath,
            ring,
            pin_dir,
            next_port: 1024,
        }
    }

    /// A source port (or ICMP echo id) never used before in this harness, so every case is a new
    /// connection for conntrack.
    fn fresh_port(&mut self) -> u16 {
        self.next_port = if self.next_port == u16::MAX {
            1024
        } else {
            self.next_port + 1
        };
        self.next_port
    }

    /// Runs `spec` through the program for `dir`; returns the tc verdict and the event.
    fn run(&mut self, dir: Direction, spec: &Spec) -> (u32, Option<Event>) {
        let name = match dir {
            Direction::Egress => abi::programs::FROM_ENDPOINT,
            Direction::Ingress => abi::programs::TO_ENDPOINT,
        };
        let frame = packet::build(spec);
        let result = self
            .datapath
            .program(name)
            .unwrap()
            .test_run(TestRunOptions {
                data_in: Some(&frame),
                ..TestRunOptions::new()
            })
            .expect("BPF_PROG_TEST_RUN");
        let mut event = None;
        while let Some(item) = self.ring.next() {
            event = Some(Event::decode(&item).expect("event decodes"));
        }
        (result.return_value, event)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

/// The packet a probe describes, from or to the subject's address of the peer's family.
fn probe_packet(
    harness: &mut Harness,
    local: IpAddr,
    dir: Direction,
    peer: IpAddr,
    proto: u8,
    port: u16,
) -> Spec {
    let sport = harness.fresh_port();
    let (src, dst) = match dir {
        Direction::Egress => (local, peer),
        Direction::Ingress => (peer, local),
    };
    let icmp = (port >> 8, port & 0xff);
    Spec {
        src,
        dst,
        proto,
        sport,
        dport: port,
        tcp_flags: 0x02,
        icmp: (icmp.0 as u8, icmp.1 as u8),
        icmp_id: sport,
    }
}

#[test]
fn ebpf_program_agrees_with_the_reference_evaluator() {
    let mut harness = Harness::new("worlds");
    let mut checked = 0usize;
    let mut verdicts = [0usize; 2];
    for seed in 0..60u64 {
        let world = testing::random_world(seed);
        let compiled = compile(&world.set, &world.cluster, &world.node);
        let probes = testing::probes(&world, seed, 120);
        // One endpoint at a time sits on the test-run interface.
        let mut subjects: Vec<usize> = probes.iter().map(|p| p.endpoint).collect();
        subjects.sort_unstable();
        subjects.dedup();
        for subject_index in subjects {
            let subject = &world.cluster.endpoints[subject_index];
            let bind = |ns: &str, name: &str| {
                (ns == subject.namespace && name == subject.name).then_some(TEST_RUN_IFINDEX)
            };
            let generation = harness.datapath.install(&compiled, &bind).expect("install");
            for probe in probes.iter().filter(|p| p.endpoint == subject_index) {
                // IPv6 neighbour and multicast listener discovery are never subject to policy in
                // the datapath.
                let icmpv6_type = probe.port >> 8;
                if probe.proto == 58 && ((130..=137).contains(&icmpv6_type) || icmpv6_type == 143) {
                    continue;
                }
                let Some(local) = subject
                    .ips
                    .iter()
                    .copied()
                    .find(|ip| ip.is_ipv6() == probe.peer.is_ipv6())
                else {
                    continue;
                };
                let expected = evaluate(
                    &world.set,
                    &world.cluster,
                    subject,
                    probe.dir,
                    probe.peer,
                    probe.proto,
                    probe.port,
                );
                let spec = probe_packet(
                    &mut harness,
                    local,
                    probe.dir,
                    probe.peer,
                    probe.proto,
                    probe.port,
                );
                let (verdict, event) = harness.run(probe.dir, &spec);
                let case = format!(
                    "seed {seed}, {}/{} {:?} peer {} proto {} port {}: expected {:?} by {}",
                    subject.namespace,
                    subject.name,
                    probe.dir,
                    probe.peer,
                    probe.proto,
                    probe.port,
                    expected.enforced.action,
                    expected.enforced.decided_by
                );
                let want = match expected.enforced.action {
                    Action::Allow => TC_ACT_OK,
                    Action::Deny => TC_ACT_SHOT,
                };
                assert_eq!(verdict, want, "tc verdict, {case}");
                let event =
                    event.unwrap_or_else(|| panic!("no event for a new connection, {case}"));
                assert_eq!(event.generation, generation, "{case}");
                assert_eq!(
                    event.peer_identity, expected.peer_identity,
                    "peer identity, {case}"
                );
                assert_eq!(
                    compiled.rules[event.rule_id as usize], expected.enforced.decided_by,
                    "deciding rule, {case}"
                );
                assert_eq!(
                    compiled.rules[event.staged_rule_id as usize], expected.staged.decided_by,
                    "staged deciding rule, {case}"
                );
                assert_eq!(
                    event.staged_action,
                    expected.staged.action.as_u8(),
                    "staged action, {case}"
                );
                verdicts[usize::from(verdict == TC_ACT_SHOT)] += 1;
                checked += 1;
            }
        }
    }
    assert!(checked >= 3000, "only {checked} cases were checked");
    assert!(
        verdicts[0] > 300 && verdicts[1] > 300,
        "both verdicts must be well represented: {verdicts:?}"
    );
}

const SCTP_POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: sctp-in, namespace: telco}
spec:
  endpointSelector: {matchLabels: {app: amf}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: gnb}}]
      toPorts: [{ports: [{port: "38412", protocol: SCTP}]}]
"#;

const SCTP_CLUSTER: &str = r#"
apiVersion: vigil.dev/v1
kind: Endpoint
metadata: {name: amf, namespace: telco, labels: {app: amf}}
spec: {node: n1, interface: lo, ips: [10.9.0.1, "fd00:9::1"]}
---
apiVersion: vigil.dev/v1
kind: Endpoint
metadata: {name: gnb, namespace: telco, labels: {app: gnb}}
spec: {node: n2, interface: veth-gnb, ips: [10.9.0.2, "fd00:9::2"]}
---
apiVersion: vigil.dev/v1
kind: Endpoint
metadata: {name: other, namespace: telco, labels: {app: other}}
spec: {node: n2, interface: veth-other, ips: [10.9.0.3]}
"#;

/// The kernel here has no SCTP stack, so SCTP is checked with crafted packets.
#[test]
fn sctp_is_enforced_by_port_and_peer() {
    let mut harness = Harness::new("sctp");
    let policies = parse_policy_file("sctp.yaml", SCTP_POLICY).unwrap();
    let cluster = parse_cluster_file("cluster.yaml", SCTP_CLUSTER).unwrap();
    let cluster = vigil_policy::Cluster {
        endpoints: cluster.endpoints,
        namespaces: cluster.namespaces,
        nodes: cluster.nodes,
    };
    let set = vigil_policy::PolicySet::new(policies.policies, policies.tiers).unwrap();
    let compiled = compile(&set, &cluster, "n1");
    harness
        .datapath
        .install(&compiled, &|_, name| {
            (name == "amf").then_some(TEST_RUN_IFINDEX)
        })
        .unwrap();

    let amf: IpAddr = "10.9.0.1".parse().unwrap();
    let gnb: IpAddr = "10.9.0.2".parse().unwrap();
    let other: IpAddr = "10.9.0.3".parse().unwrap();
    let sctp = |src: IpAddr, dport: u16, sport: u16| Spec {
        src,
        dst: if src.is_ipv6() {
            "fd00:9::1".parse().unwrap()
        } else {
            amf
        },
        proto: 132,
        sport,
        dport,
        tcp_flags: 0,
        icmp: (0, 0),
        icmp_id: 0,
    };
    let (verdict, event) = harness.run(Direction::Ingress, &sctp(gnb, 38412, 5000));
    assert_eq!(verdict, TC_ACT_OK, "gnb -> amf:38412/SCTP is allowed");
    let event = event.expect("event");
    assert_eq!((event.proto, event.dport), (132, 38412));
    assert!(
        compiled.rules[event.rule_id as usize]
            .to_string()
            .contains("sctp-in")
    );
    assert_eq!(
        harness.run(Direction::Ingress, &sctp(gnb, 38413, 5001)).0,
        TC_ACT_SHOT,
        "another SCTP port"
    );
    assert_eq!(
        harness.run(Direction::Ingress, &sctp(other, 38412, 5002)).0,
        TC_ACT_SHOT,
        "another peer"
    );
    assert_eq!(
        harness
            .run(
                Direction::Ingress,
                &sctp("fd00:9::2".parse().unwrap(), 38412, 5003)
            )
            .0,
        TC_ACT_OK,
        "IPv6 SCTP from gnb"
    );
    // The same port over UDP is not SCTP.
    let mut udp = sctp(gnb, 38412, 5004);
    udp.proto = 17;
    assert_eq!(
        harness.run(Direction::Ingress, &udp).0,
        TC_ACT_SHOT,
        "UDP to the SCTP port"
    );

    // Established SCTP associations pass through conntrack without a new event.
    let (verdict, event) = harness.run(Direction::Ingress, &sctp(gnb, 38412, 5000));
    assert_eq!(verdict, TC_ACT_OK);
    assert!(
        event.is_none(),
        "an established association emits no event with connection aggregation"
    );
}
