//! History, aggregates, SQL, errors and the token against a seeded SQLite store.

use std::collections::HashSet;

use serde_json::Value;
use vigil_proto::flow::Verdict;

use crate::support::*;

const N: u64 = 600;

struct Setup {
    _dir: TempDir,
    ui: Ui,
    flows: Vec<vigil_proto::flow::Flow>,
    base: i64,
}

async fn setup(token: Option<&str>) -> Setup {
    let dir = TempDir::new();
    let base = now() - 3600;
    let flows = seeded_flows(base, N);
    seed(&dir.sqlite_url(), &flows).await;
    write_policies(&dir.0);
    std::fs::create_dir_all(dir.0.join("web/assets")).unwrap();
    std::fs::write(
        dir.0.join("web/index.html"),
        "<!doctype html><title>Vigil</title>",
    )
    .unwrap();
    std::fs::write(dir.0.join("web/assets/app.js"), "console.log('vigil')").unwrap();
    let mut c = config(&dir.sqlite_url(), &closed_port().await, &dir.0.join("web"));
    c.state = Some(dir.0.clone());
    c.token = token.map(str::to_owned);
    c.watch_lost = false;
    let ui = ui(c).await;
    Setup {
        _dir: dir,
        ui,
        flows,
        base,
    }
}

fn uuids(flows: &[Value]) -> Vec<String> {
    flows
        .iter()
        .map(|f| f["uuid"].as_str().unwrap().to_owned())
        .collect()
}

/// The uuids of the seeded flows passing `keep`, newest first (time, nanos, uuid descending).
fn expected(
    flows: &[vigil_proto::flow::Flow],
    keep: impl Fn(&vigil_proto::flow::Flow) -> bool,
) -> Vec<String> {
    let mut v: Vec<_> = flows.iter().filter(|f| keep(f)).collect();
    v.sort_by_key(|f| {
        let t = f.time.unwrap();
        std::cmp::Reverse((t.seconds, t.nanos, f.uuid.clone()))
    });
    v.into_iter().map(|f| f.uuid.clone()).collect()
}

#[tokio::test]
async fn pages_cover_history_newest_first_without_duplicates_or_gaps() {
    let s = setup(None).await;
    assert_eq!(s.ui.ok("/healthz").await["status"], "ok");
    for limit in [1000, 37, 2] {
        let all = uuids(&s.ui.all_pages("", limit).await);
        assert_eq!(
            all.len(),
            N as usize,
            "limit {limit}: every stored flow once"
        );
        assert_eq!(
            all.iter().collect::<HashSet<_>>().len(),
            all.len(),
            "no duplicates"
        );
        assert_eq!(
            all,
            expected(&s.flows, |_| true),
            "limit {limit}: newest first, ties by uuid"
        );
    }
    // Older flows across every time slice the server reads pages in (1 h, 1 d, 7 d, the rest):
    // pages still list every flow once, newest first.
    let mut older: Vec<_> = (0..60u64)
        .map(|k| {
            let mut f = vigil_storage::testing::sample_flow(
                "node-3",
                s.base - (k as i64 * k as i64 * 700),
                (k % 3) as i32,
                &format!("old-{k:03}"),
                k,
            );
            f.node_name = "node-3".into();
            f
        })
        .collect();
    seed(&s._dir.sqlite_url(), &older).await;
    older.extend(s.flows.iter().cloned());
    let want = expected(&older, |_| true);
    for limit in [1000, 7, 1] {
        let all = uuids(&s.ui.all_pages("", limit).await);
        assert_eq!(all, want, "limit {limit}, flows over 30 days");
    }
    let old_only = uuids(&s.ui.all_pages("node=node-3", 9).await);
    assert_eq!(old_only, expected(&older, |f| f.node_name == "node-3"));
    let first = s.ui.ok("/api/v1/flows").await;
    assert_eq!(
        first["flows"].as_array().unwrap().len(),
        100,
        "default page"
    );
    assert!(first["next"].is_string());
}

#[tokio::test]
async fn filters_narrow_history_as_documented() {
    let s = setup(None).await;
    let fl = &s.flows;
    let src_ns = |f: &vigil_proto::flow::Flow| f.source.as_ref().unwrap().namespace.clone();
    let dst_pod = |f: &vigil_proto::flow::Flow| f.destination.as_ref().unwrap().pod_name.clone();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "verdict=DROPPED",
            expected(fl, |f| verdict(f) == Verdict::Dropped),
        ),
        (
            "verdict=dropped&verdict=AUDIT",
            expected(fl, |f| {
                matches!(verdict(f), Verdict::Dropped | Verdict::Audit)
            }),
        ),
        ("port=22", expected(fl, |f| verdict(f) == Verdict::Dropped)),
        (
            "pod=shop/api",
            expected(fl, |f| dst_pod(f).starts_with("api")),
        ),
        ("to_pod=shop/web", expected(fl, |f| dst_pod(f) == "web")),
        (
            "from_pod=ops/client-3",
            expected(fl, |f| f.source.as_ref().unwrap().pod_name == "client-3"),
        ),
        ("namespace=ops", expected(fl, |f| src_ns(f) == "ops")),
        ("node=node-2", expected(fl, |f| f.node_name == "node-2")),
        (
            "ip=203.0.113.2",
            expected(fl, |f| f.ip.as_ref().unwrap().source == "203.0.113.2"),
        ),
        (
            "policy=lockdown",
            expected(fl, |f| !f.vigil_trace.as_ref().unwrap().pending.is_empty()),
        ),
        (
            "policy=GlobalNetworkPolicy/deny-ssh&node=node-1",
            expected(fl, |f| {
                verdict(f) == Verdict::Dropped && f.node_name == "node-1"
            }),
        ),
        (
            "policy=shop/allow-web",
            expected(fl, |f| verdict(f) != Verdict::Dropped),
        ),
        (
            "drop_reason=POLICY_DENY",
            expected(fl, |f| verdict(f) == Verdict::Dropped),
        ),
        (
            "q=203.0.113",
            expected(fl, |f| {
                f.ip.as_ref().unwrap().source.starts_with("203.0.113")
            }),
        ),
        ("q=API%20node", Vec::new()),
        ("direction=EGRESS", Vec::new()),
        ("protocol=udp", Vec::new()),
    ];
    for (query, want) in cases {
        let got = uuids(&s.ui.all_pages(query, 50).await);
        assert!(
            got.len() < N as usize || query.is_empty(),
            "{query} must narrow"
        );
        assert_eq!(got, want, "{query}");
    }
    // A time range: the newest 10 minutes hold 4 flows per second.
    let since = vigil_ui_server::convert::rfc3339(s.base + 100, 0);
    let until = vigil_ui_server::convert::rfc3339(s.base + 109, 999_999_999);
    let got =
        s.ui.all_pages(&format!("since={since}&until={until}"), 7)
            .await;
    assert_eq!(got.len(), 40);
}

#[tokio::test]
async fn flows_carry_their_hits_and_the_documented_shape() {
    let s = setup(None).await;
    let page =
        s.ui.ok("/api/v1/flows?policy=lockdown&verdict=AUDIT&limit=1")
            .await;
    let f = &page["flows"][0];
    assert_eq!(f["verdict"], "AUDIT");
    let hits = f["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 2, "{f}");
    assert_eq!(hits[0]["name"], "allow-web");
    assert_eq!(hits[0]["enforcement"], "enforced");
    assert_eq!(hits[0]["action"], "allow");
    assert_eq!(hits[1]["kind"], "StagedNetworkPolicy");
    assert_eq!(hits[1]["enforcement"], "pending");
    assert_eq!(hits[1]["action"], "deny");
    assert_eq!(f["policy"], "NetworkPolicy/shop/allow-web");
    assert_eq!(f["summary"], "TCP Flags: SYN");
    assert_eq!(f["src"]["namespace"], "ops");
    assert_eq!(f["src"]["workload"], "client");
    assert!(f["time"].as_str().unwrap().ends_with('Z'));
    let world = &s.ui.ok("/api/v1/flows?ip=203.0.113.2&limit=1").await["flows"][0];
    assert_eq!(world["src"]["workload"], "203.0.113.2");
    let api = &s.ui.ok("/api/v1/flows?pod=api&limit=1").await["flows"][0];
    assert_eq!(
        api["dst"]["workload"], "api",
        "the Deployment's pod suffixes removed"
    );
}

#[tokio::test]
async fn aggregates_count_what_was_stored() {
    let s = setup(None).await;
    let fl = &s.flows;
    let dropped = fl.iter().filter(|f| verdict(f) == Verdict::Dropped).count() as i64;
    let audit = fl.iter().filter(|f| verdict(f) == Verdict::Audit).count() as i64;
    let staged = fl
        .iter()
        .filter(|f| !f.vigil_trace.as_ref().unwrap().pending.is_empty())
        .count() as i64;
    let range = "since=2h";

    let d = s.ui.ok(&format!("/api/v1/drops?{range}&bucket=5m")).await;
    assert_eq!(d["bucket_seconds"], 300);
    assert_eq!(
        d["by_reason"],
        serde_json::json!([{"reason": "POLICY_DENY", "count": dropped}])
    );
    assert_eq!(
        d["by_policy"],
        serde_json::json!([{"policy": "GlobalNetworkPolicy/deny-ssh", "count": dropped}])
    );
    let over: i64 = d["over_time"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_i64().unwrap())
        .sum();
    assert_eq!(over, dropped);
    let pairs: i64 = d["top_pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_i64().unwrap())
        .sum();
    assert!(pairs <= dropped && pairs > 0);
    assert_eq!(d["top_pairs"][0]["dst_port"], 22);
    // Drops narrowed by a filter.
    let d1 = s.ui.ok(&format!("/api/v1/drops?{range}&node=node-1")).await;
    let n1 = fl
        .iter()
        .filter(|f| verdict(f) == Verdict::Dropped && f.node_name == "node-1")
        .count();
    assert_eq!(d1["by_reason"][0]["count"], n1 as i64);

    let st = s.ui.ok(&format!("/api/v1/staged?{range}")).await;
    let pairs = st["would_deny"].as_array().unwrap();
    assert!(
        pairs
            .iter()
            .all(|p| p["policy"] == "StagedNetworkPolicy/shop/lockdown")
    );
    let total: i64 = pairs.iter().map(|p| p["count"].as_i64().unwrap()).sum();
    assert_eq!(total, staged);

    let h =
        s.ui.ok(&format!("/api/v1/policies/hits?{range}&bucket=10m"))
            .await;
    let series = h["series"].as_array().unwrap();
    let sum = |policy: &str, enforcement: &str| -> i64 {
        series
            .iter()
            .filter(|x| x["policy"] == policy && x["enforcement"] == enforcement)
            .flat_map(|x| {
                x["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p[1].as_i64().unwrap())
            })
            .sum()
    };
    assert_eq!(sum("GlobalNetworkPolicy/deny-ssh", "enforced"), dropped);
    assert_eq!(sum("StagedNetworkPolicy/shop/lockdown", "pending"), staged);
    let only =
        s.ui.ok(&format!("/api/v1/policies/hits?{range}&policy=deny-ssh"))
            .await;
    assert_eq!(only["series"].as_array().unwrap().len(), 1);

    let m = s.ui.ok(&format!("/api/v1/servicemap?{range}")).await;
    let edges = m["edges"].as_array().unwrap();
    let requests = fl.iter().filter(|f| f.is_reply != Some(true));
    let (mut fwd, mut drp, mut aud) = (0, 0, 0);
    for f in requests {
        match verdict(f) {
            Verdict::Forwarded => fwd += 1,
            Verdict::Dropped => drp += 1,
            _ => aud += 1,
        }
    }
    let total = |k: &str| edges.iter().map(|e| e[k].as_i64().unwrap()).sum::<i64>();
    assert_eq!(
        (total("forwarded"), total("dropped"), total("audit")),
        (fwd, drp, aud)
    );
    assert!(audit >= aud);
    let ids: HashSet<&str> = m["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    for id in ["ops/client", "shop/web", "shop/api", "world/203.0.113.2"] {
        assert!(ids.contains(id), "{id} in {ids:?}");
    }
    let ssh = edges
        .iter()
        .find(|e| e["source"] == "ops/client" && e["target"] == "shop/web" && e["port"] == 22)
        .unwrap();
    assert_eq!(
        ssh["policies"],
        serde_json::json!(["GlobalNetworkPolicy/deny-ssh"])
    );
    let narrowed =
        s.ui.ok(&format!("/api/v1/servicemap?{range}&namespace=nowhere"))
            .await;
    assert_eq!(narrowed["edges"], serde_json::json!([]));
}

#[tokio::test]
async fn policies_list_every_loaded_policy_with_hits() {
    let s = setup(None).await;
    let p = s.ui.ok("/api/v1/policies?since=2h").await;
    let list = p["policies"].as_array().unwrap();
    let find = |name: &str| {
        list.iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {p}"))
    };
    let dropped = s
        .flows
        .iter()
        .filter(|f| verdict(f) == Verdict::Dropped)
        .count() as i64;
    let deny = find("deny-ssh");
    assert_eq!(deny["dialect"], "calico");
    assert_eq!(deny["order"], 10.0);
    assert_eq!(deny["hits"]["denied"], dropped);
    assert_eq!(deny["loaded"], true);
    assert_eq!(deny["file"], "policies/01-deny-ssh.yaml");
    let lockdown = find("lockdown");
    assert_eq!(lockdown["staged"], true);
    assert!(lockdown["hits"]["staged_would_deny"].as_i64().unwrap() > 0);
    assert_eq!(find("allow-web")["dialect"], "kubernetes");
    let idle = find("idle");
    assert_eq!(
        (idle["never_hit"].as_bool(), idle["dialect"].as_str()),
        (Some(true), Some("cilium"))
    );
    assert_eq!(p["rejected"][0]["file"], "policies/03-broken.yaml");
    // Over a range with no hits at all, every loaded policy is never hit.
    let old =
        s.ui.ok("/api/v1/policies?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z")
            .await;
    assert!(
        old["policies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["never_hit"] == true)
    );
}

#[tokio::test]
async fn sql_console_is_read_only() {
    let s = setup(None).await;
    let post = |sql: &str| {
        let body = serde_json::json!({ "sql": sql }).to_string();
        let ui = &s.ui;
        async move { ui.request("POST", "/api/v1/sql", Some(&body), None).await }
    };
    let r =
        post("SELECT verdict, count(*) AS n FROM flows GROUP BY verdict ORDER BY verdict").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["columns"], serde_json::json!(["verdict", "n"]));
    assert_eq!(v["dialect"], "sqlite");
    let dropped = s
        .flows
        .iter()
        .filter(|f| verdict(f) == Verdict::Dropped)
        .count() as i64;
    assert!(
        v["rows"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["DROPPED", dropped]))
    );
    for write in [
        "DROP TABLE flows",
        "INSERT INTO flows (uuid) VALUES ('x')",
        "DELETE FROM flows",
        "CREATE TABLE x (y INTEGER)",
    ] {
        let r = post(write).await;
        assert_eq!(r.status, 400, "{write}: {}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains("read-only"),
            "{write}: {}",
            r.body
        );
    }
    let r = post("SELECT x FROM nowhere_at_all").await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("nowhere_at_all"),
        "{}",
        r.body
    );
    let r =
        s.ui.request("POST", "/api/v1/sql", Some("not json"), None)
            .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        s.ui.ok("/api/v1/flows?limit=1000").await["flows"]
            .as_array()
            .unwrap()
            .len(),
        600,
        "nothing written"
    );
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_parameter_and_unknown_routes_404() {
    let s = setup(None).await;
    for (path, what) in [
        ("/api/v1/flows?verdict=NOPE", "parameter verdict"),
        ("/api/v1/flows?limit=100000", "parameter limit"),
        ("/api/v1/flows?cursor=garbage", "parameter cursor"),
        ("/api/v1/flows?since=yesterday", "parameter since"),
        ("/api/v1/flows?colour=red", "unknown parameter \"colour\""),
        ("/api/v1/flows?pod=%00", "NUL"),
        ("/api/v1/drops?bucket=1s&since=30d", "parameter bucket"),
        ("/api/v1/policies/hits?policy=a/b/c/d", "parameter policy"),
    ] {
        let r = s.ui.get(path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let e = r.json()["error"].as_str().unwrap().to_owned();
        assert!(e.contains(what), "{path}: {e}");
    }
    let r = s.ui.get("/api/v1/nope").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("/api/v1/nope"));
    // Static files, and index.html for client-side routes.
    let r = s.ui.get("/assets/app.js").await;
    assert_eq!((r.status, r.body.as_str()), (200, "console.log('vigil')"));
    let r = s.ui.get("/flows/some/route").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<title>Vigil</title>"));
}

#[tokio::test]
async fn the_token_guards_the_api_but_not_health_or_files() {
    let s = setup(Some("s3cret")).await;
    let ui = &s.ui;
    assert_eq!(
        ui.request("GET", "/api/v1/flows", None, None).await.status,
        401
    );
    let wrong = ui
        .request("GET", "/api/v1/flows", None, Some("guess"))
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.json()["error"].as_str().unwrap().contains("token"));
    assert_eq!(
        ui.request("GET", "/api/v1/flows", None, Some("s3cret"))
            .await
            .status,
        200
    );
    assert_eq!(
        ui.request("POST", "/api/v1/sql", Some("{\"sql\":\"SELECT 1\"}"), None)
            .await
            .status,
        401
    );
    assert_eq!(
        ui.request("GET", "/api/v1/nope", None, None).await.status,
        401,
        "no route list for strangers"
    );
    assert_eq!(ui.request("GET", "/healthz", None, None).await.status, 200);
    assert_eq!(ui.request("GET", "/", None, None).await.status, 200);
    assert_eq!(
        ui.request("GET", "/api/v1/flows?token=s3cret", None, None)
            .await
            .status,
        401,
        "?token= is for the WebSocket only"
    );
    let url = format!("ws://{}/api/v1/stream", ui.addr);
    assert!(
        tokio_tungstenite::connect_async(url).await.is_err(),
        "stream without the token"
    );
    let mut ws = ui.stream("token=s3cret").await;
    // The relay is unreachable here: the stream says so and closes.
    let frame = ws.next(std::time::Duration::from_secs(10)).await.unwrap();
    assert_eq!(frame["type"], "error", "{frame}");
}

#[tokio::test]
async fn an_unreachable_store_or_relay_is_a_502_naming_it() {
    let dir = TempDir::new();
    let relay = closed_port().await;
    let url = format!("sqlite://{}/missing.db", dir.0.display());
    let mut c = config(&url, &relay, &dir.0);
    c.watch_lost = false;
    let ui = ui(c).await;
    let r = ui.get("/api/v1/flows").await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(
        r.json()["error"].as_str().unwrap().contains("missing.db"),
        "{}",
        r.body
    );
    let r = ui.get("/api/v1/nodes").await;
    assert_eq!(r.status, 502);
    assert!(
        r.json()["error"].as_str().unwrap().contains(&relay),
        "{}",
        r.body
    );
    let st = ui.ok("/api/v1/status").await;
    assert_eq!(st["relay"]["reachable"], false);
    assert_eq!(st["relay"]["address"], relay.as_str());
    assert!(
        st["store"]["error"]
            .as_str()
            .unwrap()
            .contains("missing.db")
    );
    let mut ws = ui.stream("").await;
    let frame = ws.next(std::time::Duration::from_secs(10)).await.unwrap();
    assert_eq!(frame["type"], "error");
    assert!(frame["error"].as_str().unwrap().contains(&relay), "{frame}");
    assert!(
        ws.next(std::time::Duration::from_secs(5)).await.is_none(),
        "closed after the error"
    );
    // The store appears later (the relay created it): the same server now answers.
    seed(
        &format!("sqlite://{}/missing.db", dir.0.display()),
        &seeded_flows(now() - 60, 10),
    )
    .await;
    assert_eq!(
        ui.ok("/api/v1/flows").await["flows"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
}

#[tokio::test]
async fn the_first_page_says_what_its_range_lost() {
    let s = setup(None).await;
    let at = |secs: i64| vigil_ui_server::convert::rfc3339(secs, 0);
    // The seeded losses: node-1 at base (40, ring) and base + 1 (2, perf), node-2 at base + 2.
    let page = |q: String| {
        let ui = &s.ui;
        async move { ui.ok(&format!("/api/v1/flows?limit=5&{q}")).await }
    };
    let all = page(format!("since={}", at(s.base - 10))).await;
    assert_eq!(
        all["lost"],
        serde_json::json!({"HUBBLE_RING_BUFFER": 45, "PERF_EVENT_RING_BUFFER": 2}),
        "{all}"
    );
    let node2 = page(format!("since={}&node=node-2", at(s.base - 10))).await;
    assert_eq!(node2["lost"], serde_json::json!({"HUBBLE_RING_BUFFER": 5}));
    let later = page(format!("since={}", at(s.base + 2))).await;
    assert_eq!(later["lost"], serde_json::json!({"HUBBLE_RING_BUFFER": 5}));
    let before = page(format!(
        "since={}&until={}",
        at(s.base - 10),
        at(s.base - 1)
    ))
    .await;
    assert_eq!(before["lost"], serde_json::json!({}));
    // Later pages carry only flows.
    let next = all["next"].as_str().unwrap();
    let second =
        s.ui.ok(&format!(
            "/api/v1/flows?limit=5&cursor={next}&since={}",
            at(s.base - 10)
        ))
        .await;
    assert!(second.get("lost").is_none(), "{second}");
}
