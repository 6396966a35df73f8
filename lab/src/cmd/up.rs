//! `lab up`: builds a lab from a topology file and writes its state and manifests.
//!
//! Order matters for clean-up: the state record is written before anything is created and
//! updated as each process starts, so `lab down` (or the next `lab up` on the same folder)
//! can always remove whatever exists. A failure half-way tears down what was built.

use std::collections::hash_map::RandomState;
use std::fs::{self, File};
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use vigil_lab::dns;
use vigil_lab::manifest::{self, ManifestFile};
use vigil_lab::plan::{Plan, Prefix};
use vigil_lab::state::{ENDPOINTS_DIR, LabState, ProcessRecord};
use vigil_lab::topology::{self, Listener, Transport};

use crate::cmd::down;
use crate::sys;

/// Folder for process logs inside the state folder.
const LOGS_DIR: &str = "logs";

/// Builds the lab.
pub fn run(topology_path: &Path, state_dir: &Path, prefix: Option<&str>) -> Result<()> {
    let text = fs::read_to_string(topology_path)
        .with_context(|| format!("reading topology {}", topology_path.display()))?;
    let topology = topology::parse(&text)
        .with_context(|| format!("topology {} is not valid", topology_path.display()))?;

    fs::create_dir_all(state_dir)
        .with_context(|| format!("creating state folder {}", state_dir.display()))?;
    let state_dir = state_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", state_dir.display()))?;
    if let Some(previous) = sys::load_state(&state_dir)? {
        tracing::warn!(
            prefix = %previous.prefix,
            "{} holds a lab from an earlier run; tearing it down first",
            state_dir.display()
        );
        down::teardown(&state_dir, &previous)?;
    }

    let prefix = match prefix {
        Some(text) => Prefix::new(text)?,
        None => Prefix::from_seed(random_seed()),
    };
    let span = tracing::info_span!("up", %prefix);
    let _entered = span.enter();
    let plan = Plan::new(&topology, prefix)?;
    let manifests = manifest::render(&plan)?;
    check_free(&plan)?;

    let topology_path = topology_path
        .canonicalize()
        .with_context(|| format!("resolving {}", topology_path.display()))?;
    let names: Vec<String> = manifests
        .iter()
        .map(|file| file.file_name.clone())
        .collect();
    let mut state = LabState::planned(&plan, &topology_path, &state_dir, &names);
    sys::save_state(&state_dir, &state)?;

    if let Err(error) = build(&plan, &manifests, &state_dir, &mut state) {
        tracing::error!("lab up failed; removing what it created");
        if let Err(teardown_error) = down::teardown(&state_dir, &state) {
            tracing::error!(
                "clean-up failed too ({teardown_error:#}); run `lab down --state {}`",
                state_dir.display()
            );
        }
        return Err(error);
    }
    print_summary(&plan, &state_dir);
    Ok(())
}

/// A seed for the default prefix; the std hasher's keys are random per process.
fn random_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    RandomState::new().hash_one((std::process::id(), nanos))
}

/// Refuses to start when any planned name is taken: that is another lab with the same prefix,
/// and recording its namespaces would make our `lab down` delete them.
fn check_free(plan: &Plan) -> Result<()> {
    let existing = sys::netns_list()?;
    let taken: Vec<String> = plan
        .all_netns()
        .into_iter()
        .filter(|name| existing.contains(name))
        .collect();
    if !taken.is_empty() {
        bail!(
            "network namespaces {} already exist: another lab uses prefix {}; pick another \
             --prefix or run `lab down` on that lab's state folder",
            taken.join(", "),
            plan.prefix
        );
    }
    for pod in &plan.pods {
        let dir = Path::new(vigil_lab::state::ETC_NETNS).join(&pod.netns);
        if dir.exists() {
            bail!(
                "{} already exists: another lab uses prefix {}; pick another --prefix",
                dir.display(),
                plan.prefix
            );
        }
    }
    Ok(())
}

fn build(
    plan: &Plan,
    manifests: &[ManifestFile],
    state_dir: &Path,
    state: &mut LabState,
) -> Result<()> {
    let steps = plan.setup_steps();
    tracing::info!(
        namespaces = plan.all_netns().len(),
        commands = steps.len(),
        "creating namespaces, links and routes"
    );
    for step in &steps {
        sys::run(&step.argv())?;
    }

    let resolv_conf = plan.resolv_conf();
    for dir in &state.etc_netns {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        sys::write_atomic(&dir.join("resolv.conf"), resolv_conf.as_bytes())?;
    }

    let logs = state_dir.join(LOGS_DIR);
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let dnsmasq = start_dnsmasq(plan, state_dir, &logs)?;
    state.processes.push(dnsmasq);
    sys::save_state(state_dir, state)?;

    let exe = std::env::current_exe().context("finding the lab binary to run `lab serve`")?;
    let pods = plan
        .pods
        .iter()
        .map(|pod| (pod.key(), &pod.netns, &pod.serve));
    let externals = plan
        .externals
        .iter()
        .map(|e| (e.name.clone(), &e.netns, &e.serve));
    for (name, netns, listeners) in pods.chain(externals) {
        if listeners.is_empty() {
            continue;
        }
        let process = start_serve(&exe, &name, netns, listeners, &logs)?;
        state.processes.push(process);
        sys::save_state(state_dir, state)?;
    }

    let endpoints = state_dir.join(ENDPOINTS_DIR);
    fs::create_dir_all(&endpoints).with_context(|| format!("creating {}", endpoints.display()))?;
    for file in manifests {
        sys::write_atomic(&endpoints.join(&file.file_name), file.text.as_bytes())?;
    }
    Ok(())
}

fn start_dnsmasq(plan: &Plan, state_dir: &Path, logs: &Path) -> Result<ProcessRecord> {
    let pid_file = state_dir.join("dnsmasq.pid");
    let log = logs.join("dnsmasq.log");
    sys::remove_file_if_present(&pid_file)?;
    let mut argv = sys::argv(&["ip", "netns", "exec", &plan.dns.netns, dns::DNSMASQ]);
    argv.extend(dns::dnsmasq_args(&plan.dns, &pid_file, &log));
    // dnsmasq forks; its first process exits once the server listens and the pid file exists.
    sys::run(&argv).context("starting the DNS server (is dnsmasq-base installed?)")?;
    let pid_text = fs::read_to_string(&pid_file)
        .with_context(|| format!("reading dnsmasq's pid file {}", pid_file.display()))?;
    let pid: u32 = pid_text
        .trim()
        .parse()
        .with_context(|| format!("{} holds {pid_text:?}, not a pid", pid_file.display()))?;
    let stat = sys::proc_stat(pid)?
        .with_context(|| format!("dnsmasq (pid {pid}) exited at once; see {}", log.display()))?;
    tracing::info!(pid, address = %plan.dns.ipv4, records = plan.dns.records.len(), "DNS server started");
    Ok(ProcessRecord {
        role: "dnsmasq".to_owned(),
        netns: plan.dns.netns.clone(),
        pid,
        start_time: stat.start_time,
        log,
    })
}

/// Starts `lab serve` inside a namespace, detached in its own process group, and waits until
/// it reports that every socket is bound.
fn start_serve(
    exe: &Path,
    name: &str,
    netns: &str,
    listeners: &[Listener],
    logs: &Path,
) -> Result<ProcessRecord> {
    let log: PathBuf = logs.join(format!("serve-{netns}.log"));
    let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", netns])
        .arg(exe)
        .args(["serve", "--name", name]);
    for listener in listeners {
        let flag = match listener.transport {
            Transport::Tcp => "--tcp",
            Transport::Udp => "--udp",
        };
        command.args([flag, &listener.port.to_string()]);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        // Its own process group: a Ctrl-C aimed at `lab up` must not stop the listeners.
        .process_group(0);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting `lab serve` in {netns}"))?;
    let stdout = child
        .stdout
        .take()
        .context("lab serve's stdout is not piped")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .with_context(|| format!("waiting for `lab serve` in {netns}"))?;
    if line.trim() != "ready" {
        let status = child.wait().context("waiting for a failed `lab serve`")?;
        let tail = fs::read_to_string(&log).unwrap_or_default();
        bail!(
            "`lab serve` in {netns} did not start ({status}); {}: {}",
            log.display(),
            tail.trim()
        );
    }
    // `ip netns exec` execs the command, so the child's pid is the listener's.
    let pid = child.id();
    let stat =
        sys::proc_stat(pid)?.with_context(|| format!("`lab serve` in {netns} exited at once"))?;
    let served: Vec<String> = listeners.iter().map(ToString::to_string).collect();
    tracing::info!(pid, %name, listeners = %served.join(","), "listeners started");
    Ok(ProcessRecord {
        role: "serve".to_owned(),
        netns: netns.to_owned(),
        pid,
        start_time: stat.start_time,
        log,
    })
}

fn print_summary(plan: &Plan, state_dir: &Path) {
    println!(
        "lab {} is up; state in {}",
        plan.prefix,
        state_dir.display()
    );
    for pod in &plan.pods {
        println!(
            "  pod {:<28} {:<8} {:<15} {:<22} {}",
            pod.key(),
            pod.node,
            pod.ipv4,
            pod.ipv6,
            pod.host_iface
        );
    }
    for external in &plan.externals {
        println!(
            "  external {:<23} {:<8} {:<15} {}",
            external.name, "", external.ipv4, external.ipv6
        );
    }
    println!(
        "  DNS server {} ({} records)",
        plan.dns.ipv4,
        plan.dns.records.len()
    );
}
