//! The relay against in-process fake agents (no root needed): merge order, `--last N` overall,
//! node status, and the storage writer's catch-up without duplicates.

use std::time::Duration;

use tokio_stream::StreamExt as _;
use vigil_proto::observer::{
    GetFlowsRequest, ServerStatusRequest, get_flows_response::ResponseTypes,
    observer_client::ObserverClient,
};
use vigil_relay::{
    fake::FakeAgent,
    nodes::{Pool, Source},
    writer::{self, WriterConfig},
};
use vigil_storage::{Store as _, testing::sample_flow};

/// A response's time in Unix nanoseconds, as a client reads it.
fn unix_ns(r: &vigil_proto::observer::GetFlowsResponse) -> i128 {
    r.time.as_ref().map_or(0, vigil_proto::time::unix_ns)
}

fn flows(node: &str, offset: i64, n: u64) -> Vec<vigil_proto::flow::Flow> {
    (0..n)
        .map(|i| {
            sample_flow(
                node,
                1_700_000_000 + 2 * i as i64 + offset,
                0,
                &format!("{node}-{i}"),
                i,
            )
        })
        .collect()
}

async fn relay(agents: Vec<String>) -> (String, std::sync::Arc<Pool>) {
    let (addr, pool) = vigil_relay::fake::relay(agents).await;
    (addr.to_string(), pool)
}

async fn client(addr: &str) -> ObserverClient<tonic::transport::Channel> {
    for _ in 0..50 {
        if let Ok(c) = ObserverClient::connect(format!("http://{addr}")).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("relay {addr} not reachable");
}

async fn wait_connected(c: &mut ObserverClient<tonic::transport::Channel>, n: u32) {
    for _ in 0..100 {
        let s = c
            .server_status(ServerStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        if s.num_connected_nodes == Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} nodes never connected");
}

#[tokio::test]
async fn merges_two_nodes_in_time_order_and_counts_last_n_overall() {
    let (a1, _t1) = FakeAgent::new("node-1", flows("node-1", 0, 100))
        .spawn()
        .await;
    let (a2, t2) = FakeAgent::new("node-2", flows("node-2", 1, 100))
        .spawn()
        .await;
    let (addr, _pool) = relay(vec![a1.to_string(), a2.to_string()]).await;
    let mut c = client(&addr).await;
    wait_connected(&mut c, 2).await;

    let all: Vec<_> = c
        .get_flows(GetFlowsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .filter_map(|r| r.ok())
        .filter(|r| matches!(r.response_types, Some(ResponseTypes::Flow(_))))
        .collect()
        .await;
    assert_eq!(all.len(), 200);
    assert!(
        all.windows(2).all(|w| unix_ns(&w[0]) <= unix_ns(&w[1])),
        "time order"
    );

    let last: Vec<_> = c
        .get_flows(GetFlowsRequest {
            number: 5,
            ..GetFlowsRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .filter_map(|r| r.ok())
        .filter(|r| matches!(r.response_types, Some(ResponseTypes::Flow(_))))
        .collect()
        .await;
    assert_eq!(last.len(), 5, "N overall, not N per node");
    assert_eq!(unix_ns(&last[4]), unix_ns(&all[199]));

    // A field mask: merged in time order from whole flows, then narrowed to the named fields.
    let masked: Vec<_> = c
        .get_flows(GetFlowsRequest {
            number: 10,
            field_mask: Some(prost_types::FieldMask {
                paths: vec!["uuid".into(), "source.pod_name".into()],
            }),
            ..GetFlowsRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .filter_map(|r| r.ok())
        .filter_map(|r| match r.response_types {
            Some(ResponseTypes::Flow(f)) => Some(f),
            _ => None,
        })
        .collect()
        .await;
    assert_eq!(masked.len(), 10);
    let want: Vec<_> = all[190..]
        .iter()
        .map(|r| match &r.response_types {
            Some(ResponseTypes::Flow(f)) => f.uuid.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        masked.iter().map(|f| f.uuid.clone()).collect::<Vec<_>>(),
        want
    );
    for f in &masked {
        let src = f.source.as_ref().unwrap();
        assert!(src.pod_name.starts_with("client-"), "{f:?}");
        assert!(src.namespace.is_empty() && src.labels.is_empty(), "{f:?}");
        assert!(
            f.time.is_none() && f.destination.is_none() && f.l4.is_none(),
            "{f:?}"
        );
    }
    let bad = c
        .get_flows(GetFlowsRequest {
            field_mask: Some(prost_types::FieldMask {
                paths: vec!["sauce".into()],
            }),
            ..GetFlowsRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("no field \"sauce\""), "{bad:?}");

    // One agent gone: ServerStatus names it.
    drop(t2);
    for _ in 0..100 {
        let s = c
            .server_status(ServerStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        if s.unavailable_nodes == ["node-2"] {
            assert_eq!(s.num_connected_nodes, Some(1));
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node-2 never reported unavailable");
}

#[tokio::test]
async fn writer_stores_every_flow_once_across_restarts() {
    let path = std::env::temp_dir().join(format!("vigil-relay-writer-{}.db", std::process::id()));
    let _cleanup = RemoveOnDrop(path.clone());
    let url = format!("sqlite://{}", path.display());
    let store = vigil_storage::open(&url).await.unwrap();
    let (a1, _t1) = FakeAgent::new("node-1", flows("node-1", 0, 300))
        .spawn()
        .await;
    let pool = Pool::start(Source::Agents(vec![a1.to_string()]));
    let config = WriterConfig {
        batch_size: 64,
        flush_interval: Duration::from_millis(50),
        queue: 16,
    };
    let stats = writer::start(store.clone(), pool.clone(), config);
    let wait = |n: u64| {
        let store = store.clone();
        async move {
            for _ in 0..200 {
                if store.counts().await.unwrap().flows == n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("store never reached {n} flows");
        }
    };
    wait(300).await;
    assert!(
        stats
            .backpressure
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "a 16-flow queue must push back"
    );
    // A second writer (a restarted relay) resumes from the last stored time: nothing doubles.
    let pool2 = Pool::start(Source::Agents(vec![a1.to_string()]));
    let again = writer::start(store.clone(), pool2, config);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.counts().await.unwrap().flows, 300);
    // Of the flows re-read inside the resume margin (2 s: the last two, 2 s apart), the older
    // is recognised as stored by its time; the last one (at the resume point's time, a uuid the
    // fresh cursor has not seen) is handed over again, and the store ignores it by uuid.
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&again.duplicates), 1);
    assert_eq!(load(&again.stored), 1);
}

/// Removes a SQLite file and its WAL and shared-memory files when dropped, also when the test
/// fails.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", self.0.display()));
        }
    }
}
