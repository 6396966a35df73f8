//! SQLite reads newest-first pages of flows from an index (migration 3), not by sorting the
//! table: what keeps the dashboard's history pages fast over millions of flows.

use vigil_storage::{Store as _, testing::sample_flow};

#[tokio::test]
async fn newest_first_pages_use_the_order_index() {
    let path = std::env::temp_dir().join(format!("vigil-plan-{}.db", std::process::id()));
    let url = format!("sqlite://{}", path.display());
    let store = vigil_storage::open(&url).await.unwrap();
    let flows: Vec<_> = (0..50)
        .map(|i| sample_flow("node-1", 1_700_000_000 + i, 0, &format!("u{i}"), i as u64))
        .collect();
    store.insert(&flows).await.unwrap();
    let plan = store
        .query(
            "EXPLAIN QUERY PLAN SELECT uuid FROM flows WHERE time <= 1700000040 \
             ORDER BY time DESC, nanos DESC, uuid DESC LIMIT 11",
        )
        .await
        .unwrap();
    let steps: Vec<String> = plan.rows.iter().map(|r| r[3].to_string()).collect();
    assert!(steps.iter().any(|s| s.contains("flows_order")), "{steps:?}");
    assert!(
        !steps.iter().any(|s| s.contains("TEMP B-TREE")),
        "{steps:?}"
    );
    let page = store
        .query("SELECT uuid FROM flows ORDER BY time DESC, nanos DESC, uuid DESC LIMIT 3")
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 3);
    assert_eq!(page.rows[0][0], "u49");
    drop(store);
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}
