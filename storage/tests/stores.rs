//! The same scenario against both real backends: a temporary SQLite file and a real ClickHouse
//! server (`scripts/clickhouse.sh start`, run by `make test`), each test in its own database.

use std::time::Duration;

use vigil_storage::{
    AnyStore, Counts, EXAMPLES, Error, QueryResult, Store,
    testing::{TempClickHouse, sample_flow, unique_name},
};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A temporary SQLite file, removed on drop.
struct TempSqlite(std::path::PathBuf);

impl TempSqlite {
    fn new() -> TempSqlite {
        TempSqlite(std::env::temp_dir().join(format!("{}.db", unique_name("vigil-store"))))
    }
    fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }
}

impl Drop for TempSqlite {
    fn drop(&mut self) {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", self.0.display()));
        }
    }
}

/// A ClickHouse database of this test binary's own.
fn temp_clickhouse() -> TempClickHouse {
    TempClickHouse::new("vigil_test")
}

/// 100 recent flows over two nodes, each inserted twice, plus three old flows of a retired
/// policy; returns the newest time stored for node-1 (ns).
async fn fill(store: &AnyStore, base: i64) -> i64 {
    let flows: Vec<_> = (0..100u64)
        .map(|i| {
            let node = if i % 2 == 0 { "node-1" } else { "node-2" };
            sample_flow(
                node,
                base + i as i64,
                (i * 1000) as i32,
                &format!("uuid-{i}"),
                i,
            )
        })
        .collect();
    assert_eq!(store.insert(&flows[..60]).await.unwrap(), 60);
    assert_eq!(store.insert(&flows[40..]).await.unwrap(), 60);
    assert_eq!(
        store.insert(&flows[..50]).await.unwrap(),
        50,
        "a replay of stored flows"
    );
    let old: Vec<_> = (0..3u64)
        .map(|i| {
            let mut f = sample_flow(
                "node-1",
                base - 2 * 86400 - i as i64,
                0,
                &format!("old-{i}"),
                1,
            );
            let trace = f.vigil_trace.as_mut().unwrap();
            trace.enforced[0].name = "retired".into();
            f
        })
        .collect();
    store.insert(&old).await.unwrap();
    (base + 98) * 1_000_000_000 + 98_000
}

// 103 flows; one enforced hit each, plus a pending one on every fifth recent flow.
const EXPECTED: Counts = Counts {
    flows: 103,
    policy_hits: 123,
};

async fn scenario(store: &AnyStore) -> Vec<QueryResult> {
    let newest = fill(store, now() - 600).await;
    assert_eq!(
        store.counts().await.unwrap(),
        EXPECTED,
        "duplicates folded by uuid"
    );
    // Flows without a stream position resume from the newest time.
    let resume = store.resume_point("node-1").await.unwrap().unwrap();
    assert_eq!(
        (resume.time_ns, resume.agent_start, resume.stream_index),
        (newest, 0, 0)
    );
    assert_eq!(store.resume_point("nowhere").await.unwrap(), None);

    let denied = store
        .query("SELECT count(*) AS n FROM flows WHERE verdict = 'DROPPED'")
        .await
        .unwrap();
    assert_eq!(denied.columns, ["n"]);

    let mut answers = Vec::new();
    for example in EXAMPLES {
        let r = store
            .query(example.sql(store.dialect()))
            .await
            .unwrap_or_else(|e| panic!("example {}: {e}", example.name));
        assert!(
            !r.rows.is_empty(),
            "example {} returned nothing",
            example.name
        );
        answers.push(r);
    }
    let never = &answers[2];
    assert_eq!(never.rows.len(), 1);
    assert_eq!(never.rows[0][2], "retired");

    for write in [
        "DROP TABLE flows",
        "INSERT INTO flows (uuid) VALUES ('x')",
        match store.dialect() {
            vigil_storage::Dialect::Sqlite => "CREATE TABLE evil (x INTEGER)",
            vigil_storage::Dialect::ClickHouse => "CREATE TABLE evil (x UInt8) ENGINE = Memory",
        },
        match store.dialect() {
            vigil_storage::Dialect::Sqlite => "DELETE FROM flows",
            vigil_storage::Dialect::ClickHouse => "ALTER TABLE flows DELETE WHERE 1",
        },
    ] {
        match store.query(write).await {
            Err(Error::ReadOnly(m)) => assert!(!m.is_empty()),
            other => panic!("{write:?} was not refused as a write: {other:?}"),
        }
    }
    match store.query("SELECT x FROM nowhere_at_all").await {
        Err(Error::Engine(m)) => assert!(m.contains("nowhere_at_all"), "engine message: {m}"),
        other => panic!("bad SQL: {other:?}"),
    }
    assert_eq!(
        store.counts().await.unwrap(),
        EXPECTED,
        "nothing written by queries"
    );
    answers
}

async fn retention(store: &AnyStore) {
    let removed = store
        .retention(Some(Duration::from_secs(86400)), None)
        .await
        .unwrap();
    assert_eq!((removed.flows, removed.policy_hits), (3, 3));
    // Mutations are asynchronous on ClickHouse: wait for them to apply.
    let mut counts = store.counts().await.unwrap();
    for _ in 0..100 {
        if (counts.flows, counts.policy_hits) == (100, 120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        counts = store.counts().await.unwrap();
    }
    assert_eq!(counts.flows, 100);
    assert_eq!(counts.policy_hits, 120);
}

#[tokio::test]
async fn sqlite_store_dedupes_queries_read_only_and_retains() {
    let db = TempSqlite::new();
    let store = vigil_storage::open(&db.url()).await.unwrap();
    scenario(&store).await;
    // A second open finds the schema in place.
    let again = vigil_storage::open(&db.url()).await.unwrap();
    assert_eq!(again.counts().await.unwrap(), EXPECTED);
    // The query-only store refuses ATTACH of a new file (the connection cannot create one).
    let ro = vigil_storage::open_for_query(&db.url()).await.unwrap();
    let attach = format!("ATTACH DATABASE '{}-x' AS x", db.0.display());
    assert!(matches!(ro.query(&attach).await, Err(Error::ReadOnly(_))));
    assert!(!std::path::Path::new(&format!("{}-x", db.0.display())).exists());
    retention(&store).await;
    let removed = store.retention(None, Some(10)).await.unwrap();
    assert_eq!(removed.flows, 90);
    assert_eq!(store.counts().await.unwrap().flows, 10);
}

#[tokio::test]
async fn clickhouse_store_dedupes_queries_read_only_and_retains() {
    let db = temp_clickhouse();
    let store = vigil_storage::open(&db.url).await.unwrap();
    scenario(&store).await;
    let again = vigil_storage::open(&db.url).await.unwrap();
    assert_eq!(again.counts().await.unwrap(), EXPECTED);
    retention(&store).await;
}

/// Positions: the resume point is the highest stream index of the latest agent start (not the
/// newest time); lost events are kept once per (node, time, source) and summed per node.
async fn positions_and_lost(store: &AnyStore) {
    use vigil_proto::vigil::Position;
    use vigil_storage::LostRow;
    let base = now() - 300;
    let at = |start: u64, index: u64, secs: i64| {
        let mut f = sample_flow("node-3", secs, 0, &format!("p-{start}-{index}"), index);
        f.vigil_position = Some(Position {
            agent_start_ns: start,
            index,
        });
        f
    };
    // The first agent life; then a restarted agent whose clock reads a little earlier.
    let mut flows: Vec<_> = (0..10).map(|i| at(1_000, i, base + i as i64)).collect();
    flows.extend((0..3).map(|i| at(2_000, i, base + 5 + i as i64)));
    store.insert(&flows).await.unwrap();
    let resume = store.resume_point("node-3").await.unwrap().unwrap();
    assert_eq!((resume.agent_start, resume.stream_index), (2_000, 2));
    assert_eq!(resume.time_ns, (base + 7) * 1_000_000_000);

    let lost = |node: &str, secs: i64, source: &str, count: u64| LostRow {
        time: secs as u32,
        nanos: 5,
        node: node.into(),
        source: source.into(),
        count,
        detail: "test".into(),
    };
    let rows = [
        lost("node-3", base, "HUBBLE_RING_BUFFER", 7),
        lost("node-3", base + 1, "PERF_EVENT_RING_BUFFER", 3),
        lost("node-4", base, "HUBBLE_RING_BUFFER", 5),
    ];
    store.insert_lost(&rows).await.unwrap();
    store.insert_lost(&rows[..1]).await.unwrap();
    assert_eq!(store.lost_total(Some("node-3")).await.unwrap(), 10);
    assert_eq!(store.lost_total(None).await.unwrap(), 15);
    assert_eq!(store.lost_total(Some("nowhere")).await.unwrap(), 0);
}

#[tokio::test]
async fn sqlite_positions_and_lost_events() {
    let db = TempSqlite::new();
    positions_and_lost(&vigil_storage::open(&db.url()).await.unwrap()).await;
}

#[tokio::test]
async fn clickhouse_positions_and_lost_events() {
    let db = temp_clickhouse();
    positions_and_lost(&vigil_storage::open(&db.url).await.unwrap()).await;
}

#[tokio::test]
async fn both_backends_answer_the_examples_alike() {
    let lite = TempSqlite::new();
    let house = temp_clickhouse();
    let a = vigil_storage::open(&lite.url()).await.unwrap();
    let b = vigil_storage::open(&house.url).await.unwrap();
    // Same flows (with the same clock second) into both.
    let base = now() - 600;
    fill(&a, base).await;
    fill(&b, base).await;
    for example in EXAMPLES {
        let x = a.query(example.sql(a.dialect())).await.unwrap();
        let y = b.query(example.sql(b.dialect())).await.unwrap();
        assert_eq!(x.columns, y.columns, "example {}", example.name);
        assert_eq!(x.rows, y.rows, "example {}", example.name);
        assert!(!x.rows.is_empty(), "example {}", example.name);
    }
}
