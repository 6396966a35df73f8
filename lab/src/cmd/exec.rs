//! `lab exec`: runs a command inside a pod, external host or node of a lab, with the
//! terminal's stdin/stdout/stderr, and exits with the command's status.
//!
//! It goes through `ip netns exec`, which also bind-mounts the pod's `resolv.conf` from
//! `/etc/netns/<netns>/` so that names resolve through the lab's DNS server.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

use crate::sys;

/// Runs `command` in `target`'s namespace.
pub fn run(state_dir: &Path, target: &str, command: &[String]) -> Result<ExitCode> {
    let state = sys::load_state(state_dir)?.with_context(|| {
        format!(
            "{} records no lab; run `lab up TOPOLOGY --state {}` first",
            state_dir.display(),
            state_dir.display()
        )
    })?;
    let netns = state.resolve(target)?;
    let status = Command::new("ip")
        .args(["netns", "exec", netns])
        .args(command)
        .status()
        .with_context(|| format!("running `ip netns exec {netns} {}`", command.join(" ")))?;
    // A command killed by a signal has no code; report it as a plain failure.
    let code = status
        .code()
        .map_or(1, |code| u8::try_from(code).unwrap_or(1));
    Ok(ExitCode::from(code))
}
