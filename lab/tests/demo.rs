//! `make demo`, the README's main command, end to end as root: `scripts/demo.sh` brings up the
//! lab, two node-agents, the relay and the dashboard with traffic; the dashboard's API returns
//! flows of every verdict (FORWARDED, DROPPED, AUDIT) and `observe` prints them through the
//! relay. The script is killed hard once and started again on the same state folder (it must
//! clean up after the crashed run and work again), then stopped with Ctrl-C (SIGINT to its
//! process group), after which no namespace, interface, pinned map or process of it is left.
//!
//! Every name, folder and port is unique to this test (the demo's VIGIL_DEMO_* settings), and
//! the binaries are the ones this test run built (VIGIL_BIN): no setup step, no release build.
//! A guard stops everything and runs `lab down` even when an assertion fails.

#[path = "support/workspace.rs"]
mod workspace;

use std::{
    fs,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use workspace::{bin, bin_dir, free_port, is_root, repo};

const NODES: [&str; 2] = ["node-1", "node-2"];
const VERDICTS: [&str; 3] = ["FORWARDED", "DROPPED", "AUDIT"];

/// One demo's settings, and the running script. Dropping it stops everything the demo
/// started, even after a failed assertion.
struct Demo {
    state: PathBuf,
    prefix: String,
    bpffs: PathBuf,
    relay: String,
    ui: String,
    env: Vec<(&'static str, String)>,
    script: Option<Child>,
    output: PathBuf,
    /// What earlier runs printed.
    earlier: String,
}

impl Demo {
    fn new() -> Demo {
        let id = std::process::id();
        let state = std::env::temp_dir().join(format!("vigil-demo-test-{id}"));
        let _ = fs::remove_dir_all(&state);
        let prefix = format!("vz{:05x}", id & 0xf_ffff);
        let bpffs = PathBuf::from(format!("/sys/fs/bpf/vigil-demo-test-{id}"));
        let (relay_port, ui_port) = (free_port(), free_port());
        let env = vec![
            ("VIGIL_BIN", bin_dir().display().to_string()),
            ("VIGIL_DEMO_STATE", state.display().to_string()),
            ("VIGIL_DEMO_PREFIX", prefix.clone()),
            ("VIGIL_DEMO_BPFFS", bpffs.display().to_string()),
            ("VIGIL_DEMO_AGENT_PORT", "0".to_owned()),
            ("VIGIL_DEMO_METRICS_PORT", "0".to_owned()),
            ("VIGIL_DEMO_RELAY_PORT", relay_port.to_string()),
            ("VIGIL_DEMO_RELAY_METRICS", free_port().to_string()),
            ("VIGIL_DEMO_UI_PORT", ui_port.to_string()),
        ];
        Demo {
            output: std::env::temp_dir().join(format!("vigil-demo-test-{id}.out")),
            state,
            prefix,
            bpffs,
            relay: format!("127.0.0.1:{relay_port}"),
            ui: format!("http://127.0.0.1:{ui_port}"),
            env,
            script: None,
            earlier: String::new(),
        }
    }

    /// Starts `scripts/demo.sh` in its own process group, as a terminal runs it. SIGINT is
    /// reset to its default first: a shell cannot trap a signal it was started ignoring, which
    /// is what a test harness run in the background would pass on.
    fn start(&mut self) {
        // A fresh output per run, so that readiness is this run's; the earlier one is kept.
        self.earlier.push_str(&self.printed());
        let output = fs::File::create(&self.output).expect("creating the demo's output file");
        let mut command = Command::new("env");
        command
            .args(["--default-signal=INT", "bash", "scripts/demo.sh"])
            .current_dir(repo())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .process_group(0);
        self.script = Some(command.spawn().expect("starting scripts/demo.sh"));
    }

    fn printed(&self) -> String {
        fs::read_to_string(&self.output).unwrap_or_default()
    }

    fn pgid(&self) -> Option<u32> {
        self.script.as_ref().map(Child::id)
    }

    /// Fails with the demo's output and logs when `ok` is false.
    fn check(&self, ok: bool, what: &str) {
        if ok {
            return;
        }
        let mut logs = String::new();
        if let Ok(entries) = fs::read_dir(self.state.join("logs")) {
            for entry in entries.flatten() {
                let text = fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                logs.push_str(&format!(
                    "--- {} (last lines) ---\n{}\n",
                    entry.path().display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
        }
        panic!(
            "{what}\n--- scripts/demo.sh printed (earlier runs) ---\n{}\n--- scripts/demo.sh printed (this run) ---\n{}\n{logs}",
            self.earlier,
            self.printed()
        );
    }

    /// Waits until the script has printed its "running" message and the dashboard answers.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let exited = self
                .script
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            self.check(
                exited.is_none(),
                &format!("scripts/demo.sh exited ({exited:?}) before it was running"),
            );
            if self.printed().contains("Ctrl-C stops the demo") && self.get("/healthz").is_some() {
                break;
            }
            self.check(
                Instant::now() < deadline,
                "scripts/demo.sh did not print its running message with the dashboard answering within 180 s",
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        self.check(
            self.printed().contains(&format!("{}/", self.ui)),
            "the demo does not print the dashboard's URL",
        );
    }

    /// `GET path` on the dashboard; None unless it answered 2xx.
    fn get(&self, path: &str) -> Option<String> {
        let output = Command::new("curl")
            .args(["-fsS", "--max-time", "5"])
            .arg(format!("{}{path}", self.ui))
            .output()
            .expect("running curl");
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Waits until the dashboard's history holds flows of every verdict.
    fn wait_for_verdicts(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut missing = Vec::new();
            for verdict in VERDICTS {
                let found = self
                    .get(&format!("/api/v1/flows?verdict={verdict}&limit=5"))
                    .and_then(|body| serde_json::from_str::<Value>(&body).ok())
                    .is_some_and(|json| {
                        json["flows"].as_array().is_some_and(|flows| {
                            !flows.is_empty() && flows.iter().all(|f| f["verdict"] == verdict)
                        })
                    });
                if !found {
                    missing.push(verdict);
                }
            }
            if missing.is_empty() {
                break;
            }
            let all = self.get("/api/v1/flows?limit=20").unwrap_or_default();
            self.check(
                Instant::now() < deadline,
                &format!(
                    "after 120 s the dashboard's GET /api/v1/flows has no {missing:?} flows; the latest flows are: {all}"
                ),
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// `observe --server RELAY --last 20` prints flows of the demo's pods.
    fn check_observe(&self) {
        let output = Command::new(bin("observe"))
            .args(["--server", &self.relay, "--last", "20", "--color", "never"])
            .output()
            .expect("running observe");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let flows = text
            .lines()
            .filter(|l| l.contains(" -> ") && VERDICTS.iter().any(|v| l.contains(v)))
            .count();
        self.check(
            output.status.success() && flows > 0,
            &format!(
                "`observe --server {} --last 20` prints no flows (status {}):\n{text}{}",
                self.relay,
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        );
    }

    /// Every process the demo started and recorded (its pid file and the lab's record), with
    /// its start time.
    fn processes(&self) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        if let Ok(text) = fs::read_to_string(self.state.join("demo.pids")) {
            for line in text.lines() {
                let mut words = line.split_whitespace();
                if let (Some(Ok(pid)), Some(Ok(start))) =
                    (words.next().map(str::parse), words.next().map(str::parse))
                {
                    out.push((pid, start));
                }
            }
        }
        if let Ok(text) = fs::read_to_string(self.state.join("lab.json")) {
            let lab: Value = serde_json::from_str(&text).unwrap_or_default();
            for p in lab["processes"].as_array().into_iter().flatten() {
                if let (Some(pid), Some(start)) = (p["pid"].as_u64(), p["startTime"].as_u64()) {
                    out.push((pid as u32, start));
                }
            }
        }
        out
    }

    /// Sends `signal` to the script's process group (or only the script).
    fn signal(&self, signal: &str, group: bool) {
        if let Some(pgid) = self.pgid() {
            let target = if group {
                format!("-{pgid}")
            } else {
                pgid.to_string()
            };
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), "--", &target])
                .status();
        }
    }

    /// Waits for the script to exit; true if it did within `limit`.
    fn wait_exit(&mut self, limit: Duration) -> bool {
        let Some(child) = self.script.as_mut() else {
            return true;
        };
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                self.script = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Ctrl-C first, as a user would; then force.
        let processes = self.processes();
        self.signal("INT", true);
        if !self.wait_exit(Duration::from_secs(60)) {
            self.signal("KILL", true);
            self.wait_exit(Duration::from_secs(5));
        }
        for (pid, start) in processes {
            if running(pid, start) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        for node in NODES {
            let _ = Command::new(bin("node-agent"))
                .args(["--node", node, "--state"])
                .arg(&self.state)
                .arg("--bpffs")
                .arg(&self.bpffs)
                .arg("--uninstall")
                .output();
        }
        let _ = fs::remove_dir_all(&self.bpffs);
        let _ = Command::new(bin("lab"))
            .args(["down", "--state"])
            .arg(&self.state)
            .output();
        if std::thread::panicking() {
            eprintln!(
                "demo state and logs kept in {}, its output in {}",
                self.state.display(),
                self.output.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.state);
            let _ = fs::remove_file(&self.output);
        }
    }
}

/// Whether `pid` still runs the process that started at `start` (field 22 of /proc/PID/stat).
/// A zombie has stopped: it only waits for its reaper, as `lab down` also judges.
fn running(pid: u32, start: u64) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    fields.first() != Some(&"Z") && fields.get(19).and_then(|f| f.parse().ok()) == Some(start)
}

fn lines_with(command: &[&str], needle: &str) -> Vec<String> {
    let output = Command::new(command[0])
        .args(&command[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Processes whose command line names `needle`.
fn processes_naming(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let me = std::process::id().to_string();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(raw) = fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmdline.contains(needle) {
                out.push(format!("{name}: {cmdline}"));
            }
        }
    }
    out
}

#[test]
fn make_demo_shows_every_verdict_survives_a_crash_and_ctrl_c_removes_everything() {
    assert!(
        is_root(),
        "the demo builds network namespaces and loads eBPF: this test must run as root"
    );
    for tool in ["lab", "node-agent", "relay", "ui-server", "observe"] {
        bin(tool);
    }
    let mut demo = Demo::new();

    // First run, then a crash: the script is killed, its agents, relay, dashboard and traffic
    // keep running.
    demo.start();
    demo.wait_ready();
    demo.wait_for_verdicts();
    let crashed = demo.processes();
    demo.signal("KILL", false);
    assert!(
        demo.wait_exit(Duration::from_secs(10)),
        "the demo script survived SIGKILL"
    );

    // The same command again: it stops what the crashed run left and works from scratch.
    demo.start();
    demo.wait_ready();
    demo.wait_for_verdicts();
    demo.check_observe();
    let survivors: Vec<u32> = crashed
        .iter()
        .filter(|(pid, start)| running(*pid, *start))
        .map(|(pid, _)| *pid)
        .collect();
    demo.check(
        survivors.is_empty(),
        &format!("the second run left the crashed run's processes running: {survivors:?}"),
    );
    let processes = demo.processes();
    demo.check(
        processes.len() >= 5,
        &format!("the demo recorded only {processes:?} as the processes it started"),
    );

    // Ctrl-C.
    demo.signal("INT", true);
    let stopped = demo.wait_exit(Duration::from_secs(90));
    demo.check(stopped, "the demo did not stop within 90 s of Ctrl-C");
    demo.check(
        demo.printed().contains("demo: everything removed"),
        "the demo did not report its cleanup after Ctrl-C",
    );

    let namespaces: Vec<String> = lines_with(&["ip", "netns", "list"], &demo.prefix)
        .into_iter()
        .filter(|l| l.starts_with(&format!("{}-", demo.prefix)))
        .collect();
    assert!(
        namespaces.is_empty(),
        "network namespaces left after Ctrl-C: {namespaces:?}"
    );
    let etc: Vec<String> = fs::read_dir("/etc/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{}-", demo.prefix)))
        .collect();
    assert!(
        etc.is_empty(),
        "/etc/netns folders left after Ctrl-C: {etc:?}"
    );
    let links = lines_with(&["ip", "-o", "link", "show"], &demo.prefix);
    assert!(links.is_empty(), "interfaces left after Ctrl-C: {links:?}");
    assert!(
        !Path::new(&demo.bpffs).exists(),
        "pinned maps and links left after Ctrl-C under {}",
        demo.bpffs.display()
    );
    let alive: Vec<u32> = processes
        .iter()
        .filter(|(pid, start)| running(*pid, *start))
        .map(|(pid, _)| *pid)
        .collect();
    assert!(
        alive.is_empty(),
        "processes the demo started still run after Ctrl-C: {alive:?}"
    );
    let state = demo.state.display().to_string();
    let naming = processes_naming(&state);
    assert!(
        naming.is_empty(),
        "processes naming the demo's state folder still run after Ctrl-C: {naming:?}"
    );
}
