//! End to end, as root: `lab up` a two-node topology with the real binary, check that pods
//! reach each other (IPv4 and IPv6, same node and across nodes), an external host's listener
//! and the DNS server; that a second `lab up` on the same state folder replaces the first
//! (crash-restart); and that `lab down` leaves no namespace, `/etc/netns` folder or manifest.
//!
//! Names carry a per-process prefix so parallel runs do not collide, and a guard runs
//! `lab down` even when an assertion fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const LAB: &str = env!("CARGO_BIN_EXE_lab");

const TOPOLOGY: &str = "
nodes:
  - name: node-1
  - name: node-2
    podCIDR: 10.201.2.0/24
namespaces:
  - name: shop
    labels: {team: web}
pods:
  - name: a
    namespace: shop
    node: node-1
    labels: {app: a}
  - name: b
    namespace: shop
    node: node-2
    serve: [tcp:8080, udp:5353]
  - name: c
    namespace: shop
    node: node-1
externals:
  - name: web
    ip: 198.51.100.10
    serve: [tcp:80]
dns:
  api.example.com: web
";

/// A lab under test: removed (with `lab down`) when dropped, even after a failed assertion.
struct Lab {
    root: PathBuf,
    state: PathBuf,
}

impl Lab {
    fn new() -> Self {
        let root = std::env::temp_dir().join(format!("vigil-lab-test-{}", std::process::id()));
        fs::create_dir_all(&root).expect("creating the test folder");
        let state = root.join("state");
        Lab { root, state }
    }

    fn up(&self, prefix: &str) {
        let topology = self.root.join("topology.yaml");
        fs::write(&topology, TOPOLOGY).expect("writing the topology");
        let mut command = Command::new(LAB);
        command
            .arg("up")
            .arg(&topology)
            .arg("--state")
            .arg(&self.state)
            .args(["--prefix", prefix]);
        succeed(&mut command);
    }

    fn down(&self) {
        succeed(
            Command::new(LAB)
                .arg("down")
                .arg("--state")
                .arg(&self.state),
        );
    }

    /// Runs a command inside a pod or host through `lab exec`.
    fn exec(&self, target: &str, command: &[&str]) -> Output {
        Command::new(LAB)
            .arg("exec")
            .arg("--state")
            .arg(&self.state)
            .arg(target)
            .arg("--")
            .args(command)
            .output()
            .expect("running lab exec")
    }

    /// `lab probe` from inside `target`; fails the test with the probe's message.
    fn probe(&self, target: &str, probe: &[&str]) {
        let mut command = vec![LAB, "probe", "--timeout-ms", "3000"];
        command.extend_from_slice(probe);
        let output = self.exec(target, &command);
        assert!(
            output.status.success(),
            "probe {probe:?} from {target} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn manifest(&self, name: &str) -> serde_yaml::Value {
        let path = self.state.join("endpoints").join(name);
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let down = Command::new(LAB)
            .arg("down")
            .arg("--state")
            .arg(&self.state)
            .output();
        if std::thread::panicking() {
            // Keep the logs of a failed run for whoever reads the test output.
            eprintln!("lab state and logs kept in {}", self.state.display());
            if let Ok(down) = down {
                eprintln!("lab down: {}", String::from_utf8_lossy(&down.stderr));
            }
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

fn succeed(command: &mut Command) -> String {
    let output = command.output().expect("starting the lab binary");
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn namespaces_with(prefix: &str) -> Vec<String> {
    let output = succeed(Command::new("ip").args(["netns", "list"]));
    output
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(&format!("{prefix}-")))
        .map(str::to_owned)
        .collect()
}

fn ips(endpoint: &serde_yaml::Value) -> (String, String) {
    let ips = endpoint["spec"]["ips"]
        .as_sequence()
        .expect("spec.ips is a list");
    let text = |i: usize| ips[i].as_str().expect("an IP string").to_owned();
    (text(0), text(1))
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|status| {
            status
                .lines()
                .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn lab_up_connects_pods_hosts_and_dns_and_lab_down_removes_everything() {
    assert!(
        is_root(),
        "this test builds network namespaces and must run as root"
    );
    let first = format!("vt{:05x}", std::process::id() & 0xf_ffff);
    let second = format!("vu{:05x}", std::process::id() & 0xf_ffff);
    let lab = Lab::new();
    lab.up(&first);

    // The manifests describe the pods, and name interfaces that exist where they say.
    let a = lab.manifest("shop-a.yaml");
    let b = lab.manifest("shop-b.yaml");
    let c = lab.manifest("shop-c.yaml");
    assert_eq!(a["kind"], "Endpoint");
    assert_eq!(a["metadata"]["labels"]["app"], "a");
    assert_eq!(b["spec"]["node"], "node-2");
    for endpoint in [&a, &b, &c] {
        let netns = endpoint["spec"]["netns"].as_str().unwrap();
        let iface = endpoint["spec"]["interface"].as_str().unwrap();
        assert!(netns.starts_with(&first) && iface.starts_with(&first));
        succeed(Command::new("ip").args(["-n", netns, "link", "show", iface]));
    }
    assert_eq!(
        lab.manifest("node-node-2.yaml")["spec"]["netns"],
        format!("{first}-node-2").as_str()
    );
    assert_eq!(
        lab.manifest("ns-shop.yaml")["metadata"]["labels"]["team"],
        "web"
    );
    let (b4, b6) = ips(&b);
    let (c4, _) = ips(&c);
    assert!(
        b4.starts_with("10.201.2."),
        "b's address {b4} comes from node-2's podCIDR"
    );

    // Pod to pod across nodes and on one node, both families; pod to external host; external
    // host to pod; UDP to a pod's listener.
    lab.probe("shop/a", &["icmp", &b4]);
    lab.probe("a", &["icmp", &c4]);
    lab.probe("shop/a", &["icmp", &b6]);
    lab.probe("shop/a", &["tcp", "198.51.100.10", "80"]);
    lab.probe("shop/c", &["tcp", "2001:db8:51:100::10", "80"]);
    lab.probe("web", &["tcp", &b4, "8080"]);
    lab.probe("shop/a", &["udp", &b6, "5353"]);
    lab.probe("shop/a", &["http", &b4, "8080", "--path", "/healthz"]);

    // The pod's resolver is the lab's DNS server, which knows the topology's names.
    let resolved = lab.exec("shop/a", &["getent", "ahosts", "api.example.com"]);
    let resolved_text = String::from_utf8_lossy(&resolved.stdout);
    assert!(
        resolved.status.success(),
        "getent failed: {}",
        String::from_utf8_lossy(&resolved.stderr)
    );
    assert!(
        resolved_text.contains("198.51.100.10"),
        "api.example.com resolved to {resolved_text}"
    );
    assert!(
        resolved_text.contains("2001:db8:51:100::10"),
        "api.example.com resolved to {resolved_text}"
    );
    let unknown = lab.exec("shop/a", &["getent", "hosts", "unknown.example.com"]);
    assert!(
        !unknown.status.success(),
        "names without a record do not resolve"
    );

    let status = succeed(
        Command::new(LAB)
            .arg("status")
            .arg("--state")
            .arg(&lab.state),
    );
    assert!(
        status.contains(&first) && !status.contains("STOPPED") && !status.contains("missing"),
        "{status}"
    );

    // A second `lab up` on the same folder (as after a crash) replaces the first lab.
    lab.up(&second);
    assert_eq!(
        namespaces_with(&first),
        Vec::<String>::new(),
        "the first lab was torn down"
    );
    assert_eq!(
        namespaces_with(&second).len(),
        3 + 2 + 2 + 1,
        "pods, externals, nodes, fabric"
    );
    lab.probe("shop/a", &["icmp", &b4]);

    lab.down();
    assert_eq!(namespaces_with(&second), Vec::<String>::new());
    for pod in ["shop-a", "shop-b", "shop-c"] {
        for prefix in [&first, &second] {
            let dir = Path::new("/etc/netns").join(format!("{prefix}-{pod}"));
            assert!(!dir.exists(), "{} is left", dir.display());
        }
    }
    assert!(
        !lab.state.join("endpoints").exists(),
        "manifests are removed"
    );
    assert!(
        !lab.state.join("lab.json").exists(),
        "the state record is removed"
    );
    // Down again: nothing to do, still a success.
    lab.down();
}
