//! `node-agent`: enforce Vigil policies on this node's endpoints and report every verdict.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use vigil_node_agent::{abi, agent, datapath};

/// Enforce network policies in eBPF on this node's endpoints.
#[derive(Debug, Parser)]
#[command(name = "node-agent", version)]
struct Args {
    /// This node's name; endpoints whose `spec.node` matches are enforced here.
    #[arg(long)]
    node: String,
    /// Cluster state directory: manifests in `endpoints/` and `policies/`; status is written to
    /// `status/NODE.json`.
    #[arg(long)]
    state: PathBuf,
    /// bpffs mount under which this node's maps and links are pinned (in `vigil/NODE/`).
    #[arg(long, default_value = "/sys/fs/bpf")]
    bpffs: PathBuf,
    /// Event aggregation: `connection` (drops, Log/staged matches, first packet per direction,
    /// TCP FIN/RST) or `none` (one event per packet).
    #[arg(long, value_enum, default_value_t = Aggregation::Connection)]
    aggregation: Aggregation,
    /// Ring buffer size in bytes (power of two, at least a page); applies when the ring buffer is
    /// created, not to one already pinned.
    #[arg(long)]
    ring_buffer_size: Option<u32>,
    /// Append every flow record to this file as JSON lines.
    #[arg(long)]
    flow_log: Option<PathBuf>,
    /// Where the Hubble-compatible Observer gRPC service listens (`observe --server`, the
    /// `hubble` CLI, the relay). Port 0 picks a free port; the status file shows the address.
    #[arg(long, default_value = "127.0.0.1:4244")]
    listen: SocketAddr,
    /// Where Prometheus metrics are served (`GET /metrics`); `none` disables them.
    #[arg(long, default_value = "127.0.0.1:9965")]
    metrics: String,
    /// Flows kept in memory for `GetFlows` (a ring: the oldest are overwritten).
    #[arg(long, default_value_t = 65_536)]
    max_flows: usize,
    /// Capacity of the queue between the ring-buffer reader and the observer, in events; events
    /// arriving while it is full are reported as OBSERVER_EVENTS_QUEUE lost events.
    #[arg(long, default_value_t = 65_536)]
    events_queue: usize,
    /// How often the state directory is re-read, in milliseconds.
    #[arg(long, default_value_t = 250)]
    poll_ms: u64,
    /// Detach from every interface, remove this node's pinned maps and links, and exit.
    #[arg(long)]
    uninstall: bool,
}

/// Flows are allocation-heavy (tens of small allocations each, freed as the ring turns over):
/// mimalloc handles that churn faster and returns memory better than glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Aggregation {
    Connection,
    None,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let pin_dir = args.bpffs.join("vigil").join(&args.node);
    if args.uninstall {
        return datapath::uninstall(&pin_dir);
    }
    let datapath = datapath::Datapath::open(datapath::Options {
        pin_dir: pin_dir.clone(),
        ring_buffer_bytes: args.ring_buffer_size,
        aggregation: match args.aggregation {
            Aggregation::Connection => abi::AGG_CONNECTION,
            Aggregation::None => abi::AGG_NONE,
        },
    })
    .with_context(|| format!("open the datapath for node {}", args.node))?;
    let settings = agent::Settings {
        node: args.node,
        state_dir: args.state,
        poll_interval: Duration::from_millis(args.poll_ms),
        flow_log: args.flow_log,
        listen: args.listen,
        metrics: match args.metrics.as_str() {
            "none" | "" => None,
            addr => Some(
                addr.parse()
                    .with_context(|| format!("--metrics {addr}: expected ADDRESS:PORT or none"))?,
            ),
        },
        max_flows: args.max_flows.max(1),
        events_queue: args.events_queue.max(1),
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?
        .block_on(agent::run(settings, datapath))
}
