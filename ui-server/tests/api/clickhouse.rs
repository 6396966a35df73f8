//! The same seeded flows in SQLite and in the real ClickHouse server: every history and
//! aggregate endpoint gives the same answer from both.

use crate::support::*;

#[tokio::test]
async fn sqlite_and_clickhouse_answer_alike() {
    let dir = TempDir::new();
    let house = TempClickHouse::new("vigil_ui");
    let base = now() - 3600;
    let flows = seeded_flows(base, 400);
    seed(&dir.sqlite_url(), &flows).await;
    seed(&house.url, &flows).await;
    write_policies(&dir.0);
    let relay = closed_port().await;
    let mut a = config(&dir.sqlite_url(), &relay, &dir.0);
    a.state = Some(dir.0.clone());
    a.watch_lost = false;
    let mut b = a.clone();
    b.store = house.url.clone();
    let (lite, click) = (ui(a).await, ui(b).await);
    let since = vigil_ui_server::convert::rfc3339(base - 60, 0);
    let until = vigil_ui_server::convert::rfc3339(base + 200, 500_000_000);
    let range = format!("since={since}&until={until}");
    for path in [
        format!("/api/v1/policies?{range}"),
        format!("/api/v1/policies/hits?{range}&bucket=60s"),
        format!("/api/v1/policies/hits?{range}&policy=shop/lockdown"),
        format!("/api/v1/staged?{range}"),
        format!("/api/v1/drops?{range}&bucket=30s"),
        format!("/api/v1/drops?{range}&namespace=ops&to_pod=shop/"),
        format!("/api/v1/servicemap?{range}"),
        format!("/api/v1/servicemap?{range}&namespace=shop&q=client"),
    ] {
        let (x, y) = (lite.ok(&path).await, click.ok(&path).await);
        assert_eq!(x, y, "{path}");
        assert_ne!(x.to_string().len(), 0);
    }
    for query in [
        "",
        "verdict=DROPPED",
        "pod=shop/api&port=80",
        "policy=StagedNetworkPolicy/shop/lockdown",
        "q=203.0.113&node=node-2",
        "from_pod=ops/client-1&verdict=AUDIT&verdict=FORWARDED",
        "ip=203.0.113.2",
        "drop_reason=POLICY_DENY&direction=INGRESS&protocol=tcp",
        &range,
    ] {
        let (x, y) = (
            lite.all_pages(query, 64).await,
            click.all_pages(query, 64).await,
        );
        assert!(!x.is_empty(), "{query}");
        assert_eq!(x, y, "{query}");
    }
    // Duplicates folded: 400 flows, not the 533 rows inserted.
    assert_eq!(click.all_pages("", 1000).await.len(), 400);
    let st = click.ok("/api/v1/status").await;
    assert_eq!(st["store"]["dialect"], "clickhouse");
    assert_eq!(st["store"]["flows"], 400);
    // Recorded losses: each row stored twice, counted once, the same from both stores.
    let want = serde_json::json!({"HUBBLE_RING_BUFFER": 45, "PERF_EVENT_RING_BUFFER": 2});
    assert_eq!(st["store"]["lost"], want, "{st}");
    assert_eq!(
        st["store"]["lost_by_node"]["node-2"],
        serde_json::json!({"HUBBLE_RING_BUFFER": 5})
    );
    let lite_st = lite.ok("/api/v1/status").await;
    assert_eq!(lite_st["store"]["lost"], want, "{lite_st}");
    assert_eq!(
        lite_st["store"]["lost_by_node"],
        st["store"]["lost_by_node"]
    );
    // A history page's range losses, the same from both.
    let first = format!("/api/v1/flows?{range}&limit=1");
    let (x, y) = (lite.ok(&first).await, click.ok(&first).await);
    assert_eq!(x["lost"], want, "{x}");
    assert_eq!(y["lost"], want, "{y}");
    let sql = click
        .request(
            "POST",
            "/api/v1/sql",
            Some(r#"{"sql":"DROP TABLE flows"}"#),
            None,
        )
        .await;
    assert_eq!(sql.status, 400, "{}", sql.body);
}

#[tokio::test]
async fn an_unreachable_clickhouse_is_a_502_naming_it() {
    let dir = TempDir::new();
    let port = closed_port().await;
    let mut c = config(
        &format!("clickhouse://{port}/vigil"),
        &closed_port().await,
        &dir.0,
    );
    c.watch_lost = false;
    let ui = ui(c).await;
    let r = ui.get("/api/v1/flows").await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(
        r.json()["error"].as_str().unwrap().contains(&port),
        "{}",
        r.body
    );
    let r = ui
        .request("POST", "/api/v1/sql", Some(r#"{"sql":"SELECT 1"}"#), None)
        .await;
    assert_eq!(r.status, 502, "{}", r.body);
}
