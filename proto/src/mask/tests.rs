//! Unit tests of `mask`: behaviour checked beside the code it tests.
use prost::Message as _;

use super::*;
use crate::{flow::Flow, observer::get_flows_response::ResponseTypes};

fn sample() -> Flow {
    match crate::sample::enriched_flow().response_types {
        Some(ResponseTypes::Flow(f)) => f,
        _ => unreachable!("the sample is a flow"),
    }
}

fn masked(paths: &[&str], flow: &Flow) -> Flow {
    let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
    let mask = FlowMask::new(&paths).unwrap().unwrap();
    Flow::decode(mask.apply(&Bytes::from(flow.encode_to_vec()))).unwrap()
}

#[test]
fn only_the_named_fields_are_kept_whole_or_narrowed() {
    let flow = sample();
    let m = masked(
        &[
            "time",
            "verdict",
            "source.pod_name",
            "l4.TCP.destination_port",
        ],
        &flow,
    );
    assert_eq!(m.time, flow.time);
    assert_eq!(m.verdict, flow.verdict);
    let src = m.source.as_ref().unwrap();
    assert_eq!(src.pod_name, flow.source.as_ref().unwrap().pod_name);
    assert!(src.namespace.is_empty() && src.labels.is_empty() && src.identity == 0);
    assert!(m.destination.is_none() && m.ip.is_none() && m.uuid.is_empty());
    let Some(crate::flow::layer4::Protocol::Tcp(tcp)) = m.l4.unwrap().protocol else {
        panic!("TCP kept")
    };
    let Some(crate::flow::layer4::Protocol::Tcp(want)) = flow.l4.as_ref().unwrap().protocol.clone()
    else {
        unreachable!()
    };
    assert_eq!(tcp.destination_port, want.destination_port);
    assert_eq!(tcp.source_port, 0);
    assert!(tcp.flags.is_none());
}

#[test]
fn repeated_fields_keep_every_element_and_narrow_each() {
    let flow = sample();
    let m = masked(&["source.labels", "ingress_denied_by.name"], &flow);
    assert_eq!(m.source.unwrap().labels, flow.source.unwrap().labels);
    let want: Vec<&str> = flow
        .ingress_denied_by
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert!(!want.is_empty());
    let got: Vec<&str> = m
        .ingress_denied_by
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(got, want);
    assert!(m.ingress_denied_by.iter().all(|p| p.labels.is_empty()));
}

#[test]
fn a_whole_field_wins_over_a_narrower_path_and_no_paths_is_no_mask() {
    let flow = sample();
    let m = masked(&["source.pod_name", "source"], &flow);
    assert_eq!(m.source, flow.source);
    assert_eq!(FlowMask::new(&[]).unwrap(), None);
}

#[test]
fn unknown_paths_are_errors_naming_the_field() {
    for (path, want) in [
        ("sauce", "flow.Flow has no field \"sauce\""),
        ("source.nope", "flow.Endpoint has no field \"nope\""),
        ("verdict.name", "\"verdict\" is not a message"),
    ] {
        let e = FlowMask::new(&[path.to_owned()]).unwrap_err();
        assert!(e.0.contains(want), "{path}: {e}");
    }
}
