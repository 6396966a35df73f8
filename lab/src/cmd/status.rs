//! `lab status`: what the state record says, checked against what is running.

use std::path::Path;

use anyhow::Result;

use crate::sys;

/// Prints the lab's pods, hosts and processes, marking anything missing.
pub fn run(state_dir: &Path) -> Result<()> {
    let Some(state) = sys::load_state(state_dir)? else {
        println!("no lab recorded in {}", state_dir.display());
        return Ok(());
    };
    let existing = sys::netns_list()?;
    let mark = |netns: &str| {
        if existing.contains(netns) {
            ""
        } else {
            "  (namespace missing)"
        }
    };
    let ips = |ips: &[std::net::IpAddr]| {
        ips.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };

    println!(
        "lab {} (topology {})",
        state.prefix,
        state.topology.display()
    );
    println!("nodes:");
    for (name, node) in &state.nodes {
        println!(
            "  {name:<26} {:<40} {}{}",
            ips(&node.ips),
            node.netns,
            mark(&node.netns)
        );
    }
    println!("pods:");
    for (key, pod) in &state.pods {
        println!(
            "  {key:<26} {:<40} {:<8} {:<15} {}{}",
            ips(&pod.ips),
            pod.node,
            pod.interface,
            pod.netns,
            mark(&pod.netns)
        );
    }
    println!("external hosts:");
    for (name, host) in &state.externals {
        println!(
            "  {name:<26} {:<40} {}{}",
            ips(&host.ips),
            host.netns,
            mark(&host.netns)
        );
    }
    println!("processes:");
    for process in &state.processes {
        let running = if sys::is_running(process)? {
            "running"
        } else {
            "STOPPED"
        };
        println!(
            "  {:<8} pid {:<8} {:<8} {} (log {})",
            process.role,
            process.pid,
            running,
            process.netns,
            process.log.display()
        );
    }
    println!("DNS server: {}", ips(&state.dns));
    Ok(())
}
