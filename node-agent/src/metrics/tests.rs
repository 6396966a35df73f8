//! Unit tests of `metrics`: behaviour checked beside the code it tests.
use super::*;
use vigil_proto::vigil;

fn dropped_by(name: &str) -> Flow {
    Flow {
        verdict: flow::Verdict::Dropped as i32,
        traffic_direction: flow::TrafficDirection::Ingress as i32,
        drop_reason_desc: 181,
        vigil_trace: Some(vigil::PolicyTrace {
            decided_by: Some(vigil::PolicyHit {
                kind: "GlobalNetworkPolicy".into(),
                name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Flow::default()
    }
}

#[test]
fn renders_counters_with_bounded_policy_labels() {
    let m = Metrics::default();
    let flows: Vec<Flow> = (0..MAX_POLICIES + 5)
        .map(|i| dropped_by(&format!("p{i}")))
        .collect();
    m.record_flows(&flows);
    m.record_lost(flow::LostEventSource::PerfEventRingBuffer, 7);
    let text = m.render(&Gauges {
        generation: 3,
        ..Gauges::default()
    });
    assert!(
        text.contains("vigil_flows_total{verdict=\"DROPPED\",direction=\"INGRESS\"} 105"),
        "{text}"
    );
    assert!(text.contains("vigil_drops_total{reason=\"POLICY_DENY\"} 105"));
    assert!(text.contains("vigil_lost_events_total{source=\"PERF_EVENT_RING_BUFFER\"} 7"));
    assert!(text.contains("vigil_lost_events_total{source=\"HUBBLE_RING_BUFFER\"} 0"));
    assert!(text.contains("vigil_policy_generation 3"));
    assert!(
        text.contains("policy=\"other\",view=\"enforced\"} 5"),
        "{text}"
    );
    assert_eq!(
        text.matches("vigil_policy_verdicts_total{").count(),
        MAX_POLICIES + 1
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}
