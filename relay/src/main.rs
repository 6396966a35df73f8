//! `relay`: serves one Hubble-compatible Observer over every node agent and, with `--store`,
//! keeps every flow and policy hit in SQLite or ClickHouse.

#![forbid(unsafe_code)]

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use tracing::info;
use vigil_relay::{
    nodes::{Pool, Source},
    parse_duration,
    service::{MergeConfig, Service},
    writer::{self, WriterConfig},
};
use vigil_storage::Store as _;

/// Flows are decoded, merged, re-encoded and turned into rows: tens of small allocations each.
/// mimalloc handles that churn much faster than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Merge every node's flows into one stream; store them.
#[derive(Debug, Parser)]
#[command(name = "relay", version)]
struct Args {
    /// Agent observer addresses, comma-separated (HOST:PORT).
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "state",
        conflicts_with = "state"
    )]
    agents: Vec<String>,
    /// A state directory: the agents are read from DIR/status/*.json ("observer" field).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Where to serve observer.Observer.
    #[arg(long, default_value = "127.0.0.1:4245")]
    listen: String,
    /// Keep every flow in a store: sqlite://PATH or clickhouse://HOST:PORT/DB.
    #[arg(long)]
    store: Option<String>,
    /// Remove stored flows older than this (7d, 12h, ...).
    #[arg(long, value_parser = parse_duration)]
    retention: Option<Duration>,
    /// Keep at most this many stored flows (the oldest go first).
    #[arg(long)]
    max_rows: Option<u64>,
    /// How often retention runs.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    retention_interval: Duration,
    /// Flows per insert at most [default: 10000 for SQLite, 50000 for ClickHouse, which wants
    /// few large inserts].
    #[arg(long)]
    batch_size: Option<usize>,
    /// A partial batch is written after this long.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    flush_interval: Duration,
    /// Flows queued for the store at most (a full queue slows the followers, counted).
    #[arg(long, default_value_t = 65536)]
    queue: usize,
    /// How long a live flow waits for older ones from other nodes.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    sort_window: Duration,
    /// Flows the live sort window holds at most.
    #[arg(long, default_value_t = 65536)]
    sort_capacity: usize,
    /// Where to serve Prometheus `/metrics` (node health, the storage writer's counters), or
    /// `none`.
    #[arg(long, default_value = "127.0.0.1:9967")]
    metrics: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let source = match &args.state {
        Some(dir) => Source::State(dir.clone()),
        None => Source::Agents(args.agents.clone()),
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let metrics_listener = match args.metrics.as_str() {
        "none" => None,
        addr => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listen for /metrics on {addr}"))?,
        ),
    };
    let pool = Pool::start(source);
    let mut sources = vigil_relay::metrics::Sources {
        pool: pool.clone(),
        writer: None,
        retention_removed: None,
    };
    if let Some(url) = &args.store {
        let store = vigil_storage::open(url)
            .await
            .with_context(|| format!("open the store {url}"))?;
        let batch_size = args
            .batch_size
            .unwrap_or_else(|| store.dialect().insert_batch());
        let stats = writer::start(
            store.clone(),
            pool.clone(),
            WriterConfig {
                batch_size: batch_size.max(1),
                flush_interval: args.flush_interval,
                queue: args.queue,
            },
        );
        sources.writer = Some((stats, args.queue));
        sources.retention_removed = Some(writer::start_retention(
            store,
            args.retention,
            args.max_rows,
            args.retention_interval,
        ));
        info!(store = %url, "storing flows");
    }
    if let Some(l) = metrics_listener {
        info!(metrics = %l.local_addr().context("metrics address")?, "serving /metrics");
        tokio::spawn(async move {
            if let Err(e) = vigil_relay::metrics::serve(l, sources).await {
                tracing::error!(error = %e, "/metrics server stopped");
            }
        });
    }
    info!(listen = %listener.local_addr().context("listener address")?, "relay serving observer.Observer");
    let service = Service::new(
        pool,
        MergeConfig {
            capacity: args.sort_capacity,
            window: args.sort_window,
        },
    );
    tokio::select! {
        served = vigil_relay::service::serve(listener, service) => served.context("serve observer")?,
        _ = tokio::signal::ctrl_c() => info!("interrupted"),
    }
    Ok(())
}
