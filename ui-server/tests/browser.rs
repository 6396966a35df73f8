//! The dashboard in a real browser, end to end: the demo lab (`lab/topologies/demo.yaml`) with one
//! real `node-agent` per node enforcing `demo/policies/`, probes sending allowed, denied and
//! audited traffic between its pods, the real `relay` storing every flow into SQLite, the real
//! `ui-server` serving the freshly built `web/`, and Debian's Chromium driven by
//! `web/tests/run.mjs` (playwright-core) through every page.
//!
//! Needs root (network namespaces, eBPF), Node.js >= 20.19 with npm, and /usr/bin/chromium;
//! `scripts/setup.sh` installs them. Screenshots land in `target/ui-screenshots/`. Every process,
//! namespace and pinned map is removed by `Drop`, also when the test fails.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde_json::Value;

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A binary of this workspace, built by `cargo build --workspace --bins` (`make test` does).
fn bin(name: &str) -> PathBuf {
    if name == "ui-server" {
        return PathBuf::from(env!("CARGO_BIN_EXE_ui-server"));
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

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").to_string()
}

/// Runs a command to completion, failing the test with its output when it fails.
fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `GET path` on `addr`; (status, body), or None while nothing answers.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `npm ci` when `node_modules` is missing or older than the lock file, then a type-checked
/// production build of the dashboard into `out`.
fn build_web(out: &Path) {
    let web = root().join("web");
    let version = run("node --version", Command::new("node").arg("--version"));
    let (major, minor) = {
        let mut it = version.trim().trim_start_matches('v').split('.');
        let major: u32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        let minor: u32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        (major, minor)
    };
    assert!(
        (major, minor) >= (20, 19),
        "the dashboard build needs Node.js >= 20.19 (Vite 7); found {}",
        version.trim()
    );
    let installed = web.join("node_modules/.package-lock.json");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&installed) < modified(&web.join("package-lock.json")) {
        run(
            "npm ci",
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&web),
        );
    }
    run(
        "npm run build",
        Command::new("npm")
            .args(["run", "build", "--", "--emptyOutDir", "--outDir"])
            .arg(out)
            .current_dir(&web),
    );
    assert!(
        out.join("index.html").exists(),
        "the build wrote no index.html"
    );
}

/// The probes `scripts/demo.sh` sends: allowed, denied (by policy and by default) and audited.
const PROBES: &[(&str, &str, &str, &str)] = &[
    ("shop/frontend", "tcp", "10.200.2.10", "80"),
    ("shop/frontend", "tcp", "10.200.2.11", "80"),
    ("shop/frontend", "tcp", "10.200.2.10", "8080"),
    ("ops/ssh-client", "tcp", "10.200.2.20", "22"),
    ("ops/ssh-client", "tcp", "10.200.1.11", "22"),
    ("ops/ssh-client", "tcp", "10.200.2.10", "80"),
    ("ops/ssh-client", "tcp", "10.200.1.11", "80"),
    ("ops/crawler", "udp", "198.51.100.53", "53"),
    ("ops/crawler", "tcp", "198.51.100.10", "443"),
    ("ops/mediabot", "udp", "10.200.2.53", "53"),
    ("ops/mediabot", "tcp", "198.51.100.40", "443"),
    ("shop/frontend", "tcp", "10.200.2.20", "5432"),
    ("payments/tradingapp", "tcp", "203.0.113.66", "80"),
];

/// Everything the test started; removed in reverse order on drop.
struct Stack {
    state: PathBuf,
    bpffs: PathBuf,
    nodes: Vec<String>,
    lab_up: bool,
    /// (name, process); killed last-started first.
    children: Vec<(String, Child)>,
    stop_traffic: Arc<AtomicBool>,
    traffic: Option<JoinHandle<()>>,
}

impl Stack {
    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.join(format!("{name}.log"))).unwrap_or_default()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (name, _) in &self.children {
            let log = self.log(name);
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            out.push_str(&format!("--- {name}.log (last lines)\n"));
            for l in tail.iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    fn spawn(&mut self, name: &str, cmd: &mut Command) {
        let log = std::fs::File::create(self.state.join(format!("{name}.log"))).expect("log file");
        let child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        self.children.push((name.to_owned(), child));
    }

    fn status(&self, node: &str) -> Value {
        std::fs::read(self.state.join("status").join(format!("{node}.json")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    /// Sends the demo's probes from inside the pods, round after round, until dropped.
    fn start_traffic(&mut self) {
        let stop = self.stop_traffic.clone();
        let state = self.state.clone();
        let lab = bin("lab");
        self.traffic = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (pod, proto, addr, port) in PROBES {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let _ = Command::new(&lab)
                        .args(["exec", "--state"])
                        .arg(&state)
                        .args([pod, "--"])
                        .arg(&lab)
                        .args(["probe", "--timeout-ms", "400", proto, addr, port])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }));
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_traffic.store(true, Ordering::Relaxed);
        if let Some(t) = self.traffic.take() {
            let _ = t.join();
        }
        while let Some((_, mut child)) = self.children.pop() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for node in &self.nodes {
            let _ = Command::new(bin("node-agent"))
                .args(["--node", node, "--uninstall", "--state"])
                .arg(&self.state)
                .arg("--bpffs")
                .arg(&self.bpffs)
                .output();
        }
        if self.lab_up {
            let _ = Command::new(bin("lab"))
                .args(["down", "--state"])
                .arg(&self.state)
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.bpffs);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}

/// The child that runs the browser tests, killed if the test gives up on it.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dashboard_in_chromium_against_the_demo_lab() {
    let root = root();
    let prefix = format!("u{:05x}", std::process::id() & 0xfffff);
    let state = std::env::temp_dir().join(format!("vigil-browser-{prefix}"));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(state.join("policies")).expect("state directory");
    let mut stack = Stack {
        bpffs: PathBuf::from("/sys/fs/bpf").join(&prefix),
        state: state.clone(),
        nodes: vec!["node-1".into(), "node-2".into()],
        lab_up: false,
        children: Vec::new(),
        stop_traffic: Arc::new(AtomicBool::new(false)),
        traffic: None,
    };

    // The dashboard, built from the working tree into this run's own folder.
    let dist = state.join("web-dist");
    build_web(&dist);

    // The demo lab and its policies.
    stack.lab_up = true;
    run(
        "lab up",
        Command::new(bin("lab"))
            .arg("up")
            .arg(root.join("lab/topologies/demo.yaml"))
            .arg("--state")
            .arg(&state)
            .args(["--prefix", &prefix]),
    );
    for entry in std::fs::read_dir(root.join("demo/policies")).expect("demo/policies") {
        let path = entry.expect("policy file").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(
                &path,
                state.join("policies").join(path.file_name().unwrap()),
            )
            .expect("copy policy");
        }
    }

    // One agent per node, on free ports (read back from their status files).
    for node in stack.nodes.clone() {
        stack.spawn(
            &format!("agent-{node}"),
            Command::new(bin("node-agent"))
                .args(["--node", &node, "--poll-ms", "100"])
                .arg("--state")
                .arg(&state)
                .arg("--bpffs")
                .arg(&stack.bpffs)
                .args(["--listen", "127.0.0.1:0", "--metrics", "none"]),
        );
    }
    for node in stack.nodes.clone() {
        wait_for(
            &format!("{node}'s agent: first generation and observer address"),
            Duration::from_secs(30),
            || {
                let s = stack.status(&node);
                s["generation"].as_u64().unwrap_or(0) > 0 && s["observer"].is_string()
            },
            &|| stack.logs(),
        );
    }

    // The relay, storing into SQLite.
    let relay = free_addr();
    stack.spawn(
        "relay",
        Command::new(bin("relay"))
            .arg("--state")
            .arg(&state)
            .args([
                "--listen",
                &relay,
                "--metrics",
                "none",
                "--flush-interval",
                "100ms",
            ])
            .arg("--store")
            .arg(format!("sqlite://{}", state.join("flows.db").display())),
    );
    wait_for(
        "the relay to listen",
        Duration::from_secs(30),
        || TcpStream::connect(&relay).is_ok(),
        &|| stack.logs(),
    );

    stack.start_traffic();

    // The ui-server under test.
    let ui = free_addr();
    stack.spawn(
        "ui-server",
        Command::new(bin("ui-server"))
            .args(["--listen", &ui, "--relay", &relay, "--store"])
            .arg(format!("sqlite://{}", state.join("flows.db").display()))
            .arg("--state")
            .arg(&state)
            .arg("--web")
            .arg(&dist),
    );
    wait_for(
        "the ui-server's /healthz",
        Duration::from_secs(30),
        || matches!(http_get(&ui, "/healthz"), Some((200, _))),
        &|| stack.logs(),
    );

    // A second ui-server over the same relay and store that requires a bearer token.
    let ui_token = free_addr();
    let secret = format!("vigil-browser-{prefix}");
    stack.spawn(
        "ui-server-token",
        Command::new(bin("ui-server"))
            .args(["--listen", &ui_token, "--relay", &relay, "--store"])
            .arg(format!("sqlite://{}", state.join("flows.db").display()))
            .arg("--state")
            .arg(&state)
            .arg("--web")
            .arg(&dist)
            .env("VIGIL_UI_TOKEN", &secret),
    );
    wait_for(
        "the token ui-server's /healthz",
        Duration::from_secs(30),
        || matches!(http_get(&ui_token, "/healthz"), Some((200, _))),
        &|| stack.logs(),
    );

    // The browser tests, with a generous deadline so a hung browser cannot hang the suite.
    let screenshots = root.join("target/ui-screenshots");
    let out_file = state.join("browser.out");
    let mut browser = Browser(
        Command::new("node")
            .arg(root.join("web/tests/run.mjs"))
            .args(["--url", &format!("http://{ui}")])
            .args(["--token-url", &format!("http://{ui_token}")])
            .args(["--token-value", &secret])
            .arg("--out")
            .arg(&screenshots)
            .current_dir(root.join("web"))
            .stdout(std::fs::File::create(&out_file).expect("output file"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node web/tests/run.mjs"),
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = browser.0.try_wait().expect("wait for the browser tests") {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(&out_file).unwrap_or_default();
    println!("{output}");
    let status = status.unwrap_or_else(|| {
        panic!(
            "the browser tests did not finish in 300 s:\n{output}\n{}",
            stack.logs()
        )
    });
    assert!(
        status.success(),
        "browser tests failed ({status}); screenshots in {}:\n{output}\n{}",
        screenshots.display(),
        stack.logs()
    );
    assert!(
        output.contains(" passed, 0 failed"),
        "the browser tests printed no summary:\n{output}"
    );
}
