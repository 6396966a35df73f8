//! Test support for real-traffic enforcement tests: a lab built by the real `lab` binary, real
//! `node-agent` processes, policies written into the state directory, and TCP/UDP/ICMP traffic
//! sent from inside pod namespaces.
//!
//! Every resource is named with a unique prefix and removed by `Drop`, also when a test fails.

#![allow(dead_code)]

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;
use vigil_node_agent::sys;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A binary of this workspace, built by `cargo build --workspace --bins` (the Makefile does it).
pub fn bin(name: &str) -> PathBuf {
    if name == "node-agent" {
        return PathBuf::from(env!("CARGO_BIN_EXE_node-agent"));
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins, as `make test` does)",
        path.display()
    );
    path
}

/// A running lab with agents; everything is removed on drop.
pub struct Lab {
    _slot: Slot,
    pub state: PathBuf,
    pub bpffs: PathBuf,
    lab: Value,
    agents: Vec<(String, Child)>,
}

impl Lab {
    /// Builds the lab described by `topology` (YAML).
    pub fn up(topology: &str) -> Lab {
        let slot = Slot::take();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("t{:04x}{n}", std::process::id() & 0xffff);
        let state = std::env::temp_dir().join(format!("vigil-test-{prefix}"));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(state.join("policies")).unwrap();
        let topo_path = state.join("topology.yaml");
        std::fs::write(&topo_path, topology).unwrap();
        let bpffs = PathBuf::from("/sys/fs/bpf").join(&prefix);
        let mut lab = Lab {
            _slot: slot,
            state: state.clone(),
            bpffs,
            lab: Value::Null,
            agents: Vec::new(),
        };
        let out = Command::new(bin("lab"))
            .args(["up"])
            .arg(&topo_path)
            .arg("--state")
            .arg(&state)
            .args(["--prefix", &prefix])
            .output()
            .expect("run lab up");
        assert!(
            out.status.success(),
            "lab up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab.lab = serde_json::from_slice(&std::fs::read(state.join("lab.json")).unwrap()).unwrap();
        lab
    }

    /// Starts a node agent for `node` with extra flags.
    pub fn start_agent(&mut self, node: &str, extra: &[&str]) {
        let log = std::fs::File::create(self.state.join(format!("agent-{node}.log"))).unwrap();
        let child = Command::new(bin("node-agent"))
            .args(["--node", node, "--poll-ms", "100"])
            .arg("--state")
            .arg(&self.state)
            .arg("--bpffs")
            .arg(&self.bpffs)
            .arg("--flow-log")
            .arg(self.flow_log_path(node))
            // Agents run side by side: free ports, read back from the status file.
            .args(["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn node-agent");
        self.agents.push((node.to_owned(), child));
        self.wait_status(node, "the agent's first generation", |s| {
            s["generation"].as_u64().unwrap_or(0) > 0
        });
    }

    /// The address of `node`'s observer gRPC service (from its status file).
    pub fn observer_addr(&self, node: &str) -> String {
        let s = self.wait_status(node, "the observer address", |s| s["observer"].is_string());
        s["observer"].as_str().unwrap().to_owned()
    }

    /// The address of `node`'s `/metrics` (from its status file).
    pub fn metrics_addr(&self, node: &str) -> String {
        let s = self.wait_status(node, "the metrics address", |s| s["metrics"].is_string());
        s["metrics"].as_str().unwrap().to_owned()
    }

    /// Kills the agent of `node` with SIGKILL (no clean shutdown).
    pub fn kill_agent(&mut self, node: &str) {
        let i = self
            .agents
            .iter()
            .position(|(n, _)| n == node)
            .expect("agent running");
        let (_, mut child) = self.agents.remove(i);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn flow_log_path(&self, node: &str) -> PathBuf {
        self.state.join(format!("flows-{node}.jsonl"))
    }

    /// Every flow record the agent of `node` logged so far.
    pub fn flows(&self, node: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.flow_log_path(node)).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits (up to 5 s) for a flow record matching `pred` on `node`.
    pub fn wait_flow(&self, node: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(f) = self.flows(node).into_iter().find(|f| pred(f)) {
                return f;
            }
            assert!(
                Instant::now() < deadline,
                "no flow record on {node} for {what}; flows: {:#?}",
                self.flows(node)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The status file of `node`'s agent.
    pub fn status(&self, node: &str) -> Value {
        std::fs::read(self.state.join("status").join(format!("{node}.json")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    /// Waits (up to 10 s) until `node`'s status satisfies `pred`.
    pub fn wait_status(&self, node: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.status(node);
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.state.join(format!("agent-{node}.log")))
                    .unwrap_or_default();
                panic!("timed out waiting for {what} on {node}; status: {s:#}\nagent log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn generations(&self) -> Vec<(String, u64)> {
        self.agents
            .iter()
            .map(|(n, _)| {
                (
                    n.clone(),
                    self.status(n)["generation"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }

    /// Writes `policies/<file>` and waits until every running agent installed a new generation.
    pub fn apply(&self, file: &str, yaml: &str) {
        let before = self.generations();
        let path = self.state.join("policies").join(file);
        let tmp = self.state.join("policies").join(format!(".{file}.tmp"));
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        for (node, generation) in before {
            self.wait_status(
                &node,
                &format!("a generation after {generation} with {file}"),
                |s| s["generation"].as_u64().unwrap_or(0) > generation,
            );
        }
    }

    /// Removes `policies/<file>` and waits for the new generation.
    pub fn remove(&self, file: &str) {
        let before = self.generations();
        std::fs::remove_file(self.state.join("policies").join(file)).unwrap();
        for (node, generation) in before {
            self.wait_status(&node, &format!("a generation after removing {file}"), |s| {
                s["generation"].as_u64().unwrap_or(0) > generation
            });
        }
    }

    /// The network namespace of a pod (`ns/name`) or external host.
    pub fn netns(&self, target: &str) -> String {
        let record = self.lab["pods"]
            .get(target)
            .or_else(|| self.lab["externals"].get(target));
        record
            .and_then(|r| r["netns"].as_str())
            .unwrap_or_else(|| panic!("no pod or external {target}"))
            .to_owned()
    }

    /// The first address of a pod or external host of the given family.
    pub fn ip(&self, target: &str, v6: bool) -> IpAddr {
        let record = self.lab["pods"]
            .get(target)
            .or_else(|| self.lab["externals"].get(target));
        let ips = record
            .and_then(|r| r["ips"].as_array())
            .unwrap_or_else(|| panic!("no pod or external {target}"));
        ips.iter()
            .filter_map(|v| v.as_str()?.parse::<IpAddr>().ok())
            .find(|ip| ip.is_ipv6() == v6)
            .unwrap_or_else(|| {
                panic!(
                    "{target} has no {} address",
                    if v6 { "IPv6" } else { "IPv4" }
                )
            })
    }

    /// Opens a TCP connection from inside `from` to `to:port` (1 s timeout).
    pub fn connect(&self, from: &str, to: IpAddr, port: u16) -> std::io::Result<TcpStream> {
        let stream = sys::run_in(Some(&self.netns(from)), || {
            TcpStream::connect_timeout(&SocketAddr::new(to, port), Duration::from_secs(1))
        })
        .expect("join the pod's namespace")?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        Ok(stream)
    }

    /// Whether a TCP connection from `from` to `to:port` is established and echoes a line.
    pub fn tcp(&self, from: &str, to: &str, port: u16) -> bool {
        self.tcp_ip(from, self.ip(to, false), port)
    }

    /// [`Lab::tcp`] to an address.
    pub fn tcp_ip(&self, from: &str, to: IpAddr, port: u16) -> bool {
        match self.connect(from, to, port) {
            Ok(stream) => echo(&stream),
            Err(_) => false,
        }
    }

    /// Whether a UDP datagram from `from` to `to:port` is echoed.
    pub fn udp(&self, from: &str, to: &str, port: u16) -> bool {
        let to = self.ip(to, false);
        let socket = sys::run_in(Some(&self.netns(from)), || UdpSocket::bind("0.0.0.0:0"))
            .unwrap()
            .unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        socket.send_to(b"vigil-test", (to, port)).unwrap();
        let mut buf = [0u8; 64];
        matches!(socket.recv_from(&mut buf), Ok((10, _)))
    }

    /// Whether `from` gets an ICMP echo reply from `to` (uses `lab probe icmp`).
    pub fn ping(&self, from: &str, to: IpAddr) -> bool {
        Command::new(bin("lab"))
            .args(["exec", "--state"])
            .arg(&self.state)
            .arg(from)
            .arg("--")
            .arg(bin("lab"))
            .args(["probe", "--timeout-ms", "700", "icmp", &to.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

/// Runs the `observe` binary with `args`; returns (success, stdout, stderr).
pub fn observe(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("observe"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run observe");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sends a line on an established connection and expects it back.
pub fn echo(stream: &TcpStream) -> bool {
    let msg = b"vigil-test\n";
    if (&*stream).write_all(msg).is_err() {
        return false;
    }
    let mut line = String::new();
    matches!(BufReader::new(stream).read_line(&mut line), Ok(n) if n == msg.len())
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.agents {
            let _ = child.kill();
            let _ = child.wait();
        }
        let nodes: Vec<String> = self.lab["nodes"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for node in nodes {
            let _ = Command::new(bin("node-agent"))
                .args(["--node", &node, "--uninstall", "--state"])
                .arg(&self.state)
                .arg("--bpffs")
                .arg(&self.bpffs)
                .output();
        }
        let _ = Command::new(bin("lab"))
            .args(["down", "--state"])
            .arg(&self.state)
            .output();
        let _ = std::fs::remove_dir_all(&self.bpffs);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}

/// At most this many labs run at once in one test binary (2-core machines).
const MAX_LABS: usize = 3;
static RUNNING: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
static FREED: std::sync::Condvar = std::sync::Condvar::new();

/// A slot among [`MAX_LABS`]; released on drop.
pub struct Slot;

impl Slot {
    pub fn take() -> Slot {
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        while *running >= MAX_LABS {
            running = FREED.wait(running).unwrap_or_else(|p| p.into_inner());
        }
        *running += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        FREED.notify_one();
    }
}
