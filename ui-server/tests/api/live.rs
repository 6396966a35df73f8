//! Nodes, status and the live stream through the real relay service merging in-process agents.

use std::{collections::HashSet, time::Duration};

use serde_json::Value;
use vigil_storage::testing::sample_flow;

use crate::support::*;

async fn until_nodes(ui: &Ui, want: usize) -> Value {
    for _ in 0..200 {
        let r = ui.get("/api/v1/nodes").await;
        if r.status == 200 {
            let v = r.json();
            let connected = v["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["state"] == "NODE_CONNECTED")
                .count();
            if connected == want {
                return v;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{want} nodes never connected");
}

#[tokio::test]
async fn nodes_and_status_come_from_the_relay() {
    let dir = TempDir::new();
    let base = now() - 60;
    let one = (0..10)
        .map(|i| sample_flow("node-1", base + i, 0, &format!("a{i}"), i as u64))
        .collect();
    let two = (0..5)
        .map(|i| sample_flow("node-2", base + i, 1, &format!("b{i}"), i as u64))
        .collect();
    let (relay, mut stops) = relay(vec![("node-1".into(), one), ("node-2".into(), two)]).await;
    seed(&dir.sqlite_url(), &seeded_flows(base, 20)).await;
    let ui = ui(config(&dir.sqlite_url(), &relay, &dir.0)).await;
    let nodes = until_nodes(&ui, 2).await;
    let list = nodes["nodes"].as_array().unwrap();
    let mut names: Vec<_> = list.iter().map(|n| n["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["node-1", "node-2"]);
    let n1 = list.iter().find(|n| n["name"] == "node-1").unwrap();
    assert_eq!(n1["num_flows"], 10);
    assert_eq!(n1["seen_flows"], 10);
    assert!(n1["flow_rate"].is_number());
    assert!(n1["lost"].is_object());
    // The store's recorded losses for the node (seeded: two sources for node-1).
    assert_eq!(
        n1["stored_lost"],
        serde_json::json!({"HUBBLE_RING_BUFFER": 40, "PERF_EVENT_RING_BUFFER": 2}),
        "{n1}"
    );
    assert!(n1["address"].as_str().unwrap().starts_with("127.0.0.1:"));

    let st = ui.ok("/api/v1/status").await;
    assert_eq!(st["relay"]["reachable"], true, "{st}");
    assert_eq!(st["relay"]["address"], relay.as_str());
    assert_eq!(st["relay"]["num_connected_nodes"], 2);
    assert_eq!(st["relay"]["num_flows"], 15);
    assert_eq!(st["store"]["dialect"], "sqlite");
    assert_eq!(st["store"]["flows"], 20);
    assert_eq!(st["ui"]["stream_clients"], 0);

    // One agent gone: the status names it.
    drop(stops.pop());
    for _ in 0..200 {
        let st = ui.ok("/api/v1/status").await;
        if st["relay"]["unavailable_nodes"] == serde_json::json!(["node-2"]) {
            assert_eq!(st["relay"]["num_connected_nodes"], 1);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node-2 never reported unavailable");
}

/// Reads a client's frames until `done` says so (or a minute passes): flow uuids, lost counts by
/// source, and the frame kinds seen.
struct Seen {
    uuids: Vec<String>,
    verdicts: HashSet<String>,
    lost: std::collections::BTreeMap<String, i64>,
    last_total: i64,
    largest_batch: usize,
    node_frames: usize,
}

async fn read(ws: &mut Ws, done: impl Fn(&Seen) -> bool) -> Seen {
    let mut s = Seen {
        uuids: Vec::new(),
        verdicts: HashSet::new(),
        lost: Default::default(),
        last_total: 0,
        largest_batch: 0,
        node_frames: 0,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !done(&s) && tokio::time::Instant::now() < deadline {
        let Some(frame) = ws.next(Duration::from_secs(30)).await else {
            break;
        };
        match frame["type"].as_str().unwrap() {
            "flows" => {
                let flows = frame["flows"].as_array().unwrap();
                s.largest_batch = s.largest_batch.max(flows.len());
                for f in flows {
                    s.uuids.push(f["uuid"].as_str().unwrap().to_owned());
                    s.verdicts.insert(f["verdict"].as_str().unwrap().to_owned());
                }
            }
            "lost" => {
                let source = frame["source"].as_str().unwrap().to_owned();
                let count = frame["count"].as_i64().unwrap();
                let total = frame["total"].as_i64().unwrap();
                let sum = s.lost.entry(source).or_default();
                *sum += count;
                assert_eq!(total, *sum, "total is this client's running sum: {frame}");
                s.last_total = total;
            }
            "node" => s.node_frames += 1,
            other => panic!("unexpected frame {other}: {frame}"),
        }
    }
    s
}

#[tokio::test]
async fn a_slow_client_loses_flows_counted_while_a_fast_one_gets_every_flow() {
    // 40,000 flows: about 28 MB of JSON, more than loopback socket buffers and the queue hold,
    // so a client that reads nothing must overflow; the queue leaves a reading client room.
    const PER_NODE: u64 = 20_000;
    // Flows stamped a few seconds ahead: the relay's live follow (from now on) passes them once
    // their time comes, about 40,000 in one second.
    let start = now() + 6;
    let flows = |node: &str, offset: i32| -> Vec<_> {
        (0..PER_NODE)
            .map(|i| {
                let ns = i as i64 * 1_000_000_000 / PER_NODE as i64;
                sample_flow(
                    node,
                    start + ns / 1_000_000_000,
                    (ns % 1_000_000_000) as i32 + offset,
                    &format!("{node}-{i:06}"),
                    i,
                )
            })
            .collect()
    };
    let dropped_on_node_1 = flows("node-1", 0)
        .iter()
        .filter(|f| verdict(f) == vigil_proto::flow::Verdict::Dropped)
        .count();
    let (relay, _stops) = relay(vec![
        ("node-1".into(), flows("node-1", 0)),
        ("node-2".into(), flows("node-2", 1)),
    ])
    .await;
    let dir = TempDir::new();
    let mut c = config(&dir.sqlite_url(), &relay, &dir.0);
    c.stream_queue = 8192;
    let ui = ui(c).await;
    until_nodes(&ui, 2).await;
    let mut fast = ui.stream("").await;
    let mut slow = ui.stream("").await;
    let mut filtered = ui.stream("verdict=DROPPED&node=node-1").await;
    for ws in [&mut fast, &mut slow, &mut filtered] {
        let first = ws
            .next(Duration::from_secs(10))
            .await
            .expect("a first frame");
        assert_eq!(
            first["type"], "node",
            "the relay's node status comes first: {first}"
        );
    }
    assert_eq!(ui.ok("/api/v1/status").await["ui"]["stream_clients"], 3);
    let total = 2 * PER_NODE as usize;

    // The relay follows "from now on": flows stamped before a client's stream began (when the
    // setup ran slow) are not its to get. From its first flow of a node on, it gets every one.
    let expected_from_first = |uuids: &[String]| -> usize {
        ["node-1", "node-2"]
            .iter()
            .map(|node| {
                uuids
                    .iter()
                    .filter_map(|u| u.strip_prefix(&format!("{node}-")))
                    .map(|i| i.parse::<u64>().unwrap())
                    .min()
                    .map_or(0, |first| (PER_NODE - first) as usize)
            })
            .sum()
    };

    // The fast client reads everything while the slow one reads nothing.
    let f = read(&mut fast, |s| {
        s.uuids.len() >= total
            || (!s.uuids.is_empty() && s.uuids.len() >= expected_from_first(&s.uuids))
    })
    .await;
    assert!(
        f.lost.is_empty(),
        "the fast client lost nothing: {:?}",
        f.lost
    );
    assert!(
        f.uuids.len() > total / 2,
        "the stream began in time for most flows"
    );
    assert_eq!(
        f.uuids.len(),
        expected_from_first(&f.uuids),
        "the fast client got every flow from its first on"
    );
    assert_eq!(
        f.uuids.iter().collect::<HashSet<_>>().len(),
        f.uuids.len(),
        "once each"
    );
    assert!(f.largest_batch <= 500, "batches of at most 500 flows");

    // The filtered client: node-1's dropped flows (every third) from its first on, nothing else.
    let dropped_from_first = |uuids: &[String]| -> usize {
        let first = uuids
            .iter()
            .filter_map(|u| u.strip_prefix("node-1-"))
            .map(|i| i.parse::<u64>().unwrap())
            .min();
        first.map_or(usize::MAX, |first| {
            (first..PER_NODE).filter(|i| i % 3 == 0).count()
        })
    };
    let c = read(&mut filtered, |s| {
        s.uuids.len() >= dropped_from_first(&s.uuids)
    })
    .await;
    assert_eq!(c.uuids.len(), dropped_from_first(&c.uuids));
    assert!(c.uuids.len() <= dropped_on_node_1);
    assert_eq!(c.verdicts, HashSet::from(["DROPPED".to_owned()]));
    assert!(c.uuids.iter().all(|u| u.starts_with("node-1-")));

    // Now the slow one: what it did not get is reported, to the flow. (Its first flows never
    // find its queue full, so its first flow of each node marks where its stream began.)
    let queue_lost = |s: &Seen| s.lost.get("UI_CLIENT_QUEUE").copied().unwrap_or(0);
    let s = read(&mut slow, |s| {
        !s.uuids.is_empty()
            && s.uuids.len() as i64 + queue_lost(s) >= expected_from_first(&s.uuids) as i64
    })
    .await;
    let lost = queue_lost(&s);
    assert!(
        lost > 0,
        "the slow client's queue overflowed and it was told"
    );
    assert!(!s.uuids.is_empty());
    assert_eq!(
        s.uuids.len() as i64 + lost,
        expected_from_first(&s.uuids) as i64,
        "received + reported lost = sent"
    );
    let st = ui.ok("/api/v1/status").await;
    assert_eq!(st["ui"]["stream_lost"], lost);
    drop((fast, slow, filtered));
    for _ in 0..100 {
        if ui.ok("/api/v1/status").await["ui"]["stream_clients"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("clients that left are still counted");
}
