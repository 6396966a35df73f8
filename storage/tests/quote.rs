//! `Dialect::quote` against both real engines: every nasty value comes back exactly as written,
//! and none escapes its literal (a spliced statement never runs).

use vigil_storage::{ClickHouseStore, Store};

const NASTY: &[&str] = &[
    "",
    "plain",
    "o'clock",
    "''",
    "\\",
    "\\'",
    "x'; DROP TABLE flows; --",
    "a\0b",
    "line\nbreak\ttab",
    "?",
    "ünïcödé ✓",
    "%_ LIKE wildcards",
];

async fn round_trip(store: &impl Store) {
    for value in NASTY {
        let sql = format!("SELECT {} AS v", store.dialect().quote(value));
        let r = store
            .query(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(r.rows.len(), 1, "{sql}");
        assert_eq!(r.rows[0][0], serde_json::Value::from(*value), "{sql}");
    }
}

#[tokio::test]
async fn sqlite_literals_round_trip() {
    let path = std::env::temp_dir().join(format!("vigil-quote-{}.db", std::process::id()));
    let url = format!("sqlite://{}", path.display());
    let store = vigil_storage::open(&url).await.unwrap();
    round_trip(&store).await;
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}

#[tokio::test]
async fn clickhouse_literals_round_trip() {
    let db = format!("vigil_quote_{}", std::process::id());
    let store = ClickHouseStore::open(&format!("clickhouse://127.0.0.1:8123/{db}"))
        .await
        .unwrap();
    round_trip(&store).await;
    store.drop_database().await.unwrap();
}

#[tokio::test]
async fn unreachable_clickhouse_is_a_backend_error_naming_the_address() {
    let store = ClickHouseStore::connect("clickhouse://127.0.0.1:1/nowhere").unwrap();
    match store.query("SELECT 1").await {
        Err(vigil_storage::Error::Backend { context, .. }) => {
            assert!(context.contains("127.0.0.1:1"), "{context}")
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
}
