//! `ui-server`: serves the dashboard's API and files. Parses flags, opens nothing eagerly (the
//! store and the relay are reached on demand, so either may come up later) and serves.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use tracing::info;
use vigil_ui_server::{Config, api::Inner};

/// The dashboard's backend: REST and WebSocket over the relay and the flow store.
#[derive(Debug, Parser)]
#[command(name = "ui-server", version)]
struct Args {
    /// The relay's Observer address (live flows, nodes, status).
    #[arg(long, default_value = "127.0.0.1:4245")]
    relay: String,
    /// The flow store the relay writes: sqlite://PATH or clickhouse://HOST:PORT/DB.
    #[arg(long)]
    store: String,
    /// The agents' state directory; policies are read from its policies/ folder.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Where to serve HTTP.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// The built dashboard (index.html and assets).
    #[arg(long, default_value = "web/dist")]
    web: PathBuf,
    /// Require `Authorization: Bearer TOKEN` on every /api/* request.
    #[arg(long, env = "VIGIL_UI_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Flows queued per WebSocket client; a client that falls further behind loses flows
    /// (counted and reported to it).
    #[arg(long, default_value_t = 4096)]
    stream_queue: usize,
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
    if !args.web.join("index.html").exists() {
        tracing::warn!(web = %args.web.display(), "no index.html there: the dashboard is not built (the API works)");
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let state = Inner::new(Config {
        relay: args.relay.clone(),
        store: args.store.clone(),
        state: args.state.clone(),
        web: args.web.clone(),
        token: args.token.filter(|t| !t.is_empty()),
        stream_queue: args.stream_queue,
        watch_lost: true,
    });
    info!(
        listen = %listener.local_addr().context("listener address")?,
        relay = %args.relay,
        store = %args.store,
        "ui-server serving"
    );
    tokio::select! {
        served = vigil_ui_server::serve(listener, state) => served.context("serve HTTP")?,
        _ = tokio::signal::ctrl_c() => info!("interrupted"),
    }
    Ok(())
}
