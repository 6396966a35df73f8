//! `lab`: builds, inspects and removes a small Kubernetes-like cluster made of network
//! namespaces on this machine, and runs traffic inside it. The topology file format is
//! documented in `vigil_lab::topology` and in README-topology.md.
//!
//! Everything the lab creates lives inside namespaces it names with its own prefix; it never
//! adds addresses or routes to the root namespace or changes the root namespace's sysctls.

#![forbid(unsafe_code)]

mod cmd;
mod sys;

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Network-namespace lab for Vigil: nodes, pods, external hosts and a DNS server.
#[derive(Debug, Parser)]
#[command(name = "lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the lab described by a topology file.
    Up {
        /// The topology file (YAML).
        topology: PathBuf,
        /// Folder for the lab's state: lab.json, endpoints/, logs/.
        #[arg(long)]
        state: PathBuf,
        /// Prefix of every namespace and interface name (2-7 lowercase letters or digits);
        /// default: `vg` and 5 random hex digits.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Remove everything `lab up` created for this state folder. Safe to repeat.
    Down {
        /// The state folder given to `lab up`.
        #[arg(long)]
        state: PathBuf,
    },
    /// Run a command inside a pod, external host or node.
    Exec {
        /// The state folder given to `lab up`.
        #[arg(long)]
        state: PathBuf,
        /// `namespace/pod`, a unique pod name, an external host, a node, or `fabric`.
        target: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Show the lab's pods, hosts and processes.
    Status {
        /// The state folder given to `lab up`.
        #[arg(long)]
        state: PathBuf,
    },
    /// Send one probe from the current namespace (combine with `lab exec`); exits 0 when the
    /// peer answered as expected.
    Probe {
        #[command(subcommand)]
        probe: Probe,
        /// How long to wait for an answer, in milliseconds.
        #[arg(long, default_value_t = 1000, global = true)]
        timeout_ms: u64,
    },
    /// Run listeners in the foreground (started by `lab up` inside namespaces).
    #[command(hide = true)]
    Serve {
        /// Name reported in HTTP answers, such as `shop/frontend`.
        #[arg(long)]
        name: String,
        /// TCP ports to listen on.
        #[arg(long)]
        tcp: Vec<u16>,
        /// UDP ports to echo on.
        #[arg(long)]
        udp: Vec<u16>,
    },
}

/// One probe of `lab probe`.
#[derive(Debug, Subcommand)]
enum Probe {
    /// ICMP echo (ping).
    Icmp {
        /// The address to ping.
        addr: IpAddr,
    },
    /// Connect over TCP, send a line and expect it echoed.
    Tcp {
        /// The listener's address.
        addr: IpAddr,
        /// The listener's port.
        port: u16,
    },
    /// Send a UDP datagram and expect it echoed.
    Udp {
        /// The listener's address.
        addr: IpAddr,
        /// The listener's port.
        port: u16,
    },
    /// Send one HTTP/1.1 request and expect a 2xx answer.
    Http {
        /// The server's address.
        addr: IpAddr,
        /// The server's port.
        port: u16,
        /// The request method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// The request path.
        #[arg(long, default_value = "/")]
        path: String,
    },
}

fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up {
            topology,
            state,
            prefix,
        } => cmd::up::run(&topology, &state, prefix.as_deref()).map(|()| ExitCode::SUCCESS),
        Command::Down { state } => cmd::down::run(&state).map(|()| ExitCode::SUCCESS),
        Command::Exec {
            state,
            target,
            command,
        } => cmd::exec::run(&state, &target, &command),
        Command::Status { state } => cmd::status::run(&state).map(|()| ExitCode::SUCCESS),
        Command::Probe { probe, timeout_ms } => {
            let timeout = Duration::from_millis(timeout_ms);
            match probe {
                Probe::Icmp { addr } => cmd::probe::icmp(addr, timeout),
                Probe::Tcp { addr, port } => cmd::probe::tcp(addr, port, timeout),
                Probe::Udp { addr, port } => cmd::probe::udp(addr, port, timeout),
                Probe::Http {
                    addr,
                    port,
                    method,
                    path,
                } => cmd::probe::http(addr, port, &method, &path, timeout),
            }
            .map(|()| ExitCode::SUCCESS)
        }
        Command::Serve { name, tcp, udp } => {
            cmd::serve::run(&name, &tcp, &udp).map(|()| ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("lab: {error:#}");
            ExitCode::FAILURE
        }
    }
}
