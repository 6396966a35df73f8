//! Relay merge throughput: two (fake, in-process) agents holding realistic flows (encoded, as
//! agents hold them), one client reading every flow through the relay's time-ordered merge over
//! gRPC, decoding every flow or keeping them encoded, in interleaved rounds:
//! `cargo bench -p vigil-relay --bench merge`.

use std::time::{Duration, Instant};

use vigil_proto::observer::{
    GetFlowsRequest, ServerStatusRequest, observer_client::ObserverClient,
};
use vigil_relay::fake::agents_and_relay;
use vigil_storage::testing::sample_flow;

/// The relay binary's allocator, so the numbers are the relay's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PER_NODE: u64 = 250_000;

fn flows(node: &str, offset: i32) -> Vec<vigil_proto::flow::Flow> {
    (0..PER_NODE)
        .map(|i| {
            sample_flow(
                node,
                1_700_000_000 + (i / 1000) as i64,
                (i % 1000) as i32 * 1000 + offset,
                &format!("{node}-{i}"),
                i,
            )
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let (addr, _stops) = agents_and_relay(vec![
        ("node-1".into(), flows("node-1", 0)),
        ("node-2".into(), flows("node-2", 1)),
    ])
    .await;
    let mut client = ObserverClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
        .max_decoding_message_size(16 << 20);
    loop {
        let s = client
            .server_status(ServerStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        if s.num_connected_nodes == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Two clients, interleaved: one that decodes every flow (like `observe`), and one that
    // keeps them encoded (like a relay above this one, or a store-and-forward consumer): the
    // second measures what the relay itself sustains.
    let mut raw = vigil_proto::raw::service::observer_client::ObserverClient::connect(format!(
        "http://{addr}"
    ))
    .await
    .unwrap()
    .max_decoding_message_size(16 << 20);
    for round in 0..6 {
        let decoding = round % 2 == 0;
        let started = Instant::now();
        let mut n = 0u64;
        if decoding {
            let mut stream = client
                .get_flows(GetFlowsRequest::default())
                .await
                .unwrap()
                .into_inner();
            while let Some(r) = stream.message().await.unwrap() {
                if matches!(
                    r.response_types,
                    Some(vigil_proto::observer::get_flows_response::ResponseTypes::Flow(_))
                ) {
                    n += 1;
                }
            }
        } else {
            let mut stream = raw
                .get_flows(GetFlowsRequest::default())
                .await
                .unwrap()
                .into_inner();
            while let Some(r) = stream.message().await.unwrap() {
                if matches!(r.body, vigil_proto::raw::Body::Flow(_)) {
                    n += 1;
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let who = if decoding {
            "a client decoding every flow"
        } else {
            "a client keeping flows encoded"
        };
        println!(
            "relay merge round {round}: {n} flows of 2 nodes to {who} in {secs:.2} s: {:.0} flows/s",
            n as f64 / secs
        );
    }
}
