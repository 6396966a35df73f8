//! `lab down`: removes exactly what the state record lists, tolerating anything already gone,
//! so it can be repeated and can finish a crashed `lab up`.
//!
//! It deletes only namespaces that carry the record's prefix, and signals only processes
//! whose start time matches the record (or that run inside the lab's own namespaces).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use vigil_lab::state::{ENDPOINTS_DIR, LabState};

use crate::sys;

/// Tears down the lab recorded in `state_dir`, if any.
pub fn run(state_dir: &Path) -> Result<()> {
    let Some(state) = sys::load_state(state_dir)? else {
        tracing::info!("{} records no lab; nothing to do", state_dir.display());
        return Ok(());
    };
    teardown(state_dir, &state)?;
    println!("lab {} is down", state.prefix);
    Ok(())
}

/// Removes everything `state` lists, then the record itself. Every step runs even when an
/// earlier one fails; the record is kept if anything failed, so a retry can finish the job.
pub fn teardown(state_dir: &Path, state: &LabState) -> Result<()> {
    let span = tracing::info_span!("down", prefix = %state.prefix);
    let _entered = span.enter();
    let mut failures: Vec<String> = Vec::new();
    let mut note = |what: &str, result: Result<()>| {
        if let Err(error) = result {
            tracing::error!("{what}: {error:#}");
            failures.push(format!("{what}: {error:#}"));
        }
    };

    for process in &state.processes {
        note(
            &format!(
                "stopping {} (pid {}) in {}",
                process.role, process.pid, process.netns
            ),
            sys::stop_process(process.pid, Some(process.start_time)),
        );
    }

    let existing = match sys::netns_list() {
        Ok(existing) => existing,
        Err(error) => {
            // Without the list nothing else can be judged safely; keep the record for a retry.
            return Err(error.context("listing network namespaces"));
        }
    };
    let ours = |name: &&String| {
        let owned = name.starts_with(&format!("{}-", state.prefix));
        if !owned {
            tracing::warn!(netns = %name, "not deleting a namespace without the lab's prefix");
        }
        owned
    };
    let present: Vec<&String> = state
        .netns
        .iter()
        .filter(ours)
        .filter(|name| existing.contains(*name))
        .collect();
    // Anything still running inside the lab's namespaces (a `lab exec` shell, say) would keep
    // the namespace and its veths alive after its name is gone.
    for netns in &present {
        note(
            &format!("stopping processes in {netns}"),
            stop_netns_processes(netns),
        );
    }
    for netns in &present {
        note(
            &format!("deleting namespace {netns}"),
            sys::run(&sys::argv(&["ip", "netns", "delete", netns])).map(drop),
        );
    }

    for dir in &state.etc_netns {
        note(
            &format!("removing {}", dir.display()),
            remove_etc_netns(dir),
        );
    }
    for file in &state.files {
        note(
            &format!("removing {}", file.display()),
            sys::remove_file_if_present(file),
        );
    }
    note(
        "removing the endpoints folder",
        sys::remove_dir_if_empty(&state_dir.join(ENDPOINTS_DIR)).map(drop),
    );
    note(
        "removing dnsmasq's pid file",
        sys::remove_file_if_present(&state_dir.join("dnsmasq.pid")),
    );

    if !failures.is_empty() {
        bail!(
            "could not remove all of lab {} ({} problems; the record stays in {} for a retry):\n  {}",
            state.prefix,
            failures.len(),
            sys::state_path(state_dir).display(),
            failures.join("\n  ")
        );
    }
    sys::remove_file_if_present(&sys::state_path(state_dir))?;
    tracing::info!(namespaces = present.len(), "lab removed");
    Ok(())
}

fn stop_netns_processes(netns: &str) -> Result<()> {
    let output = sys::run(&sys::argv(&["ip", "netns", "pids", netns]))?;
    let pids: BTreeSet<u32> = output
        .split_whitespace()
        .map(|pid| {
            pid.parse()
                .with_context(|| format!("`ip netns pids {netns}` printed {pid:?}"))
        })
        .collect::<Result<_>>()?;
    for pid in pids {
        tracing::info!(pid, %netns, "stopping a process left in the lab");
        sys::stop_process(pid, None)?;
    }
    Ok(())
}

/// Removes the `resolv.conf` the lab wrote and its folder when nothing else is in it.
fn remove_etc_netns(dir: &Path) -> Result<()> {
    sys::remove_file_if_present(&dir.join("resolv.conf"))?;
    if !sys::remove_dir_if_empty(dir)? {
        tracing::warn!(
            "{} holds files the lab did not write; leaving it",
            dir.display()
        );
    }
    Ok(())
}
