//! Insert throughput of realistic flows (each with its policy hits) into SQLite and ClickHouse,
//! measured in one run: `cargo bench -p vigil-storage --bench insert`. ClickHouse must listen on
//! 127.0.0.1:8123 (`scripts/clickhouse.sh start`); it is skipped with a note otherwise.
//! Also: "hits per policy per hour" query latency over the stored rows, on both.
//! `VIGIL_BENCH_FLOWS=10000000` sets the number of flows (default 200,000);
//! `VIGIL_BENCH_STORES=sqlite` runs one backend (default `sqlite,clickhouse`).

use std::time::Instant;

use vigil_storage::{EXAMPLES, Store, testing::sample_flow};

/// As in the relay, which runs these inserts.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Flows per insert: `VIGIL_BENCH_BATCH`, default the relay's for the backend
/// ([`vigil_storage::Dialect::insert_batch`]).
fn batch_size(store: &impl Store) -> u64 {
    std::env::var("VIGIL_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(store.dialect().insert_batch() as u64)
}

async fn run(name: &str, store: &impl Store) -> (f64, f64) {
    let flows_n: u64 = std::env::var("VIGIL_BENCH_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 86_400;
    // Flows are built one batch at a time, outside the timed part: the benchmark holds one batch,
    // not the whole run (10 million flows would not fit in memory).
    let mut secs = 0.0;
    let mut next = 0u64;
    while next < flows_n {
        let end = (next + batch_size(store)).min(flows_n);
        let batch: Vec<_> = (next..end)
            .map(|i| {
                let node = if i % 2 == 0 { "node-1" } else { "node-2" };
                let mut f = sample_flow(
                    node,
                    base + (i / 10) as i64,
                    (i % 10) as i32,
                    &format!("{name}-{i:012}"),
                    i,
                );
                // Stream positions as the agents send them: the store indexes them.
                f.vigil_position = Some(vigil_proto::vigil::Position {
                    agent_start_ns: base as u64 * 1_000_000_000 + i % 2,
                    index: i / 2,
                });
                f
            })
            .collect();
        let started = Instant::now();
        store.insert(&batch).await.expect("insert");
        secs += started.elapsed().as_secs_f64();
        next = end;
    }
    let counts = store.counts().await.expect("counts");
    let rows = (counts.flows + counts.policy_hits) as f64;
    let q = EXAMPLES.iter().find(|e| e.name == "hits-per-hour").unwrap();
    let started = Instant::now();
    let r = store.query(q.sql(store.dialect())).await.expect("query");
    let q_ms = started.elapsed().as_secs_f64() * 1e3;
    println!(
        "{name:<10} {flows_n} flows + {} hits in {secs:.2} s: {:.0} flows/s, {:.0} rows/s; hits-per-hour over {} flows: {q_ms:.1} ms ({} rows)",
        counts.policy_hits,
        flows_n as f64 / secs,
        rows / secs,
        counts.flows,
        r.rows.len()
    );
    (flows_n as f64 / secs, rows / secs)
}

/// Whether `VIGIL_BENCH_STORES` (a comma-separated list, default `sqlite,clickhouse`) names
/// `store`.
fn wanted(store: &str) -> bool {
    std::env::var("VIGIL_BENCH_STORES")
        .map(|v| v.split(',').any(|s| s.trim() == store))
        .unwrap_or(true)
}

#[tokio::main]
async fn main() {
    if wanted("sqlite") {
        sqlite().await;
    }
    if wanted("clickhouse") {
        clickhouse().await;
    }
}

async fn sqlite() {
    let path = std::env::temp_dir().join(format!("vigil-bench-{}.db", std::process::id()));
    let url = format!("sqlite://{}", path.display());
    let lite = vigil_storage::open(&url).await.expect("open sqlite");
    run("sqlite", &lite).await;
    drop(lite);
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}

async fn clickhouse() {
    let db = format!("vigil_bench_{}", std::process::id());
    match vigil_storage::open(&format!("clickhouse://127.0.0.1:8123/{db}")).await {
        Ok(vigil_storage::AnyStore::ClickHouse(house)) => {
            run("clickhouse", &*house).await;
            let _ = house.drop_database().await;
        }
        Ok(_) => unreachable!(),
        Err(e) => println!("clickhouse skipped: {e}"),
    }
}
