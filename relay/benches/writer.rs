//! The relay's storage writer end to end: two (fake, in-process) agents holding realistic flows
//! with stream positions, the writer following both (decoding each flow, batching, inserting
//! with the relay's default batch and queue) into SQLite and into ClickHouse, in one run:
//! `cargo bench -p vigil-relay --bench writer`. `VIGIL_BENCH_FLOWS` sets the flows per node
//! (default 250,000), `VIGIL_BENCH_QUEUE` the writer's queue (default the relay's, 65,536).
//! ClickHouse must listen on 127.0.0.1:8123 (`scripts/clickhouse.sh start`);
//! it is skipped with a note otherwise.
//!
//! Prints flows/s stored (from the writer's start until the store holds every flow) and how much
//! the process's peak RSS grew while the writer ran (the agents' flows are loaded before).

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use vigil_relay::{
    fake::FakeAgent,
    nodes::{Pool, Source},
    writer::{self, WriterConfig},
};
use vigil_storage::{AnyStore, Store as _, testing::sample_flow};

/// The relay binary's allocator, so the numbers are the relay's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn per_node() -> u64 {
    std::env::var("VIGIL_BENCH_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250_000)
}

fn flows(node: &str, start_ns: u64, base: i64, n: u64) -> Vec<vigil_proto::flow::Flow> {
    (0..n)
        .map(|i| {
            let mut f = sample_flow(
                node,
                base + (i / 1000) as i64,
                (i % 1000) as i32 * 1000,
                &format!("{node}-{i:012}"),
                i,
            );
            f.vigil_position = Some(vigil_proto::vigil::Position {
                agent_start_ns: start_ns,
                index: i,
            });
            f
        })
        .collect()
}

/// A `/proc/self/status` field in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn run(name: &str, store: AnyStore, agents: &[String], total: u64) {
    let config = WriterConfig {
        batch_size: store.dialect().insert_batch(),
        queue: std::env::var("VIGIL_BENCH_QUEUE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(WriterConfig::default().queue),
        ..WriterConfig::default()
    };
    // Peak RSS from here on (writing 5 to clear_refs resets VmHWM to the current RSS).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    let pool = Pool::start(Source::Agents(agents.to_vec()));
    let stats = writer::start(store.clone(), pool, config);
    while stats.stored.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "{name}: the writer stalled at {} of {total} flows",
            stats.stored.load(Ordering::Relaxed)
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let counts = store.counts().await.expect("counts");
    let peak = status_kib("VmHWM:");
    println!(
        "relay writer -> {name:<10} {total} flows ({} stored, {} hits) of 2 nodes in {secs:.2} s: \
         {:.0} flows/s, {:.0} rows/s; {} batches of at most {}; peak RSS grew {:.1} MiB",
        counts.flows,
        counts.policy_hits,
        total as f64 / secs,
        (counts.flows + counts.policy_hits) as f64 / secs,
        stats.batches.load(Ordering::Relaxed),
        config.batch_size,
        peak.saturating_sub(before) as f64 / 1024.0,
    );
}

#[tokio::main]
async fn main() {
    let n = per_node();
    let base = vigil_proto::time::now_unix_ns() / 1_000_000_000 - 86_400;
    let base = base as i64;
    let start = base as u64 * 1_000_000_000;
    let (a1, _t1) = FakeAgent::new("node-1", flows("node-1", start, base, n))
        .spawn()
        .await;
    let (a2, _t2) = FakeAgent::new("node-2", flows("node-2", start + 1, base, n))
        .spawn()
        .await;
    let agents = [a1.to_string(), a2.to_string()];

    let path = std::env::temp_dir().join(format!("vigil-writer-bench-{}.db", std::process::id()));
    let lite = vigil_storage::open(&format!("sqlite://{}", path.display()))
        .await
        .expect("open sqlite");
    run("sqlite", lite, &agents, 2 * n).await;
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }

    let db = format!("vigil_writer_bench_{}", std::process::id());
    match vigil_storage::open(&format!("clickhouse://127.0.0.1:8123/{db}")).await {
        Ok(store) => {
            run("clickhouse", store.clone(), &agents, 2 * n).await;
            if let AnyStore::ClickHouse(house) = store {
                let _ = house.drop_database().await;
            }
        }
        Err(e) => println!("clickhouse skipped: {e}"),
    }
}
