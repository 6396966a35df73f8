//! The binary's contact with the system: running `ip` and friends with their failures reported
//! in full, listing namespaces, writing files atomically, the state record, and stopping
//! processes the lab started. Everything that decides *what* to do lives in the library.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vigil_lab::state::{LabState, ProcStat, ProcessRecord, STATE_FILE, parse_proc_stat};

/// How long a process gets to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Runs a command to completion and returns its stdout; a failure names the exact command and
/// carries its stderr.
pub fn run(argv: &[String]) -> Result<String> {
    let (program, args) = argv.split_first().context("empty command")?;
    let shown = argv.join(" ");
    tracing::debug!(command = %shown, "running");
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("starting `{shown}`"))?;
    if !output.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{shown}` printed non-UTF-8 output"))
}

/// Builds an argv from string slices.
pub fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| (*part).to_owned()).collect()
}

/// The names of all network namespaces known to `ip netns`.
pub fn netns_list() -> Result<BTreeSet<String>> {
    let output = run(&argv(&["ip", "netns", "list"]))?;
    // Lines look like `name (id: 3)` or just `name`.
    Ok(output
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Writes a file through a temporary file and a rename, so readers never see half of it.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let file_name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let temp = path.with_file_name(format!(
        ".{}.tmp.{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    fs::write(&temp, contents).with_context(|| format!("writing {}", temp.display()))?;
    fs::rename(&temp, path)
        .with_context(|| format!("renaming {} to {}", temp.display(), path.display()))
}

/// Removes a file; a file that is already gone is fine.
pub fn remove_file_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Removes a folder if it exists and is empty; returns whether it is gone.
pub fn remove_dir_if_empty(path: &Path) -> Result<bool> {
    match fs::remove_dir(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(false),
        Err(error) => Err(error).with_context(|| format!("removing {}", path.display())),
    }
}

/// The state record's path.
pub fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join(STATE_FILE)
}

/// Reads the state record, if there is one.
pub fn load_state(state_dir: &Path) -> Result<Option<LabState>> {
    let path = state_path(state_dir);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let state = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a lab state record", path.display()))?;
    Ok(Some(state))
}

/// Writes the state record atomically.
pub fn save_state(state_dir: &Path, state: &LabState) -> Result<()> {
    let mut text = serde_json::to_string_pretty(state).context("serializing the lab state")?;
    text.push('\n');
    write_atomic(&state_path(state_dir), text.as_bytes())
}

/// `/proc/PID/stat` of a live process, or `None` when it is gone.
pub fn proc_stat(pid: u32) -> Result<Option<ProcStat>> {
    let path = format!("/proc/{pid}/stat");
    match fs::read_to_string(&path) {
        Ok(text) => parse_proc_stat(&text)
            .with_context(|| format!("{path} has an unexpected format"))
            .map(Some),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {path}")),
    }
}

/// Whether the recorded process still runs (and is the one recorded, not a pid reuse).
pub fn is_running(process: &ProcessRecord) -> Result<bool> {
    Ok(proc_stat(process.pid)?
        .is_some_and(|stat| stat.start_time == process.start_time && stat.state != 'Z'))
}

/// Stops a process: SIGTERM, then SIGKILL after a grace period. `expected_start` guards
/// against signalling an unrelated process that reused the pid.
pub fn stop_process(pid: u32, expected_start: Option<u64>) -> Result<()> {
    let alive = || -> Result<bool> {
        Ok(proc_stat(pid)?.is_some_and(|stat| {
            stat.state != 'Z' && expected_start.is_none_or(|start| start == stat.start_time)
        }))
    };
    if !alive()? {
        return Ok(());
    }
    signal(pid, "TERM")?;
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if !alive()? {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(20));
    }
    tracing::warn!(pid, "process ignored SIGTERM; sending SIGKILL");
    signal(pid, "KILL")
}

fn signal(pid: u32, signal: &str) -> Result<()> {
    let pid_text = pid.to_string();
    let output = Command::new("kill")
        .args([&format!("-{signal}"), &pid_text])
        .output()
        .context("starting `kill`")?;
    // A process that exited in the meantime is what we wanted.
    if !output.status.success() && proc_stat(pid)?.is_some() {
        bail!(
            "`kill -{signal} {pid}` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
