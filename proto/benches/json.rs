//! Flows per second rendered as proto3 JSON (`observe -o json`) on one core, for a realistic
//! enriched flow: the direct encoder (`json::fast`, what `flows_response_to_json` uses) against
//! the prost-reflect path (`json::to_json`: re-encode, decode into a `DynamicMessage`, serde).
//! `cargo bench -p vigil-proto --features json --bench json`.

use std::{hint::black_box, time::Instant};

use vigil_proto::json;

/// Renders `response` for about `seconds` and returns flows per second and the output length.
fn measure(seconds: f64, render: impl Fn() -> String) -> (f64, usize) {
    let len = render().len();
    // Warm up, then size the batch to ~50 ms.
    let mut batch = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..batch {
            black_box(render());
        }
        if start.elapsed().as_secs_f64() > 0.05 {
            break;
        }
        batch *= 2;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        for _ in 0..batch {
            black_box(render());
        }
        n += batch;
    }
    (n as f64 / start.elapsed().as_secs_f64(), len)
}

fn main() {
    let response = vigil_proto::sample::enriched_flow();
    assert_eq!(
        json::flows_response_to_json(&response).unwrap(),
        json::to_json(&response, "observer.GetFlowsResponse").unwrap(),
        "the two paths disagree",
    );
    let (reflect, len) = measure(2.0, || {
        json::to_json(black_box(&response), "observer.GetFlowsResponse").unwrap()
    });
    let (fast, _) = measure(2.0, || {
        json::flows_response_to_json(black_box(&response)).unwrap()
    });
    println!("enriched flow, {len} bytes of JSON");
    println!(
        "prost-reflect (json::to_json):           {reflect:>12.0} flows/s  {:>7.0} ns/flow",
        1e9 / reflect
    );
    println!(
        "direct (json::flows_response_to_json):   {fast:>12.0} flows/s  {:>7.0} ns/flow",
        1e9 / fast
    );
    println!("speedup: {:.1}x", fast / reflect);
}
