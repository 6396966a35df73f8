//! Unit tests of `ring`: behaviour checked beside the code it tests.
use super::*;

#[test]
fn a_full_ring_evicts_the_oldest_and_readers_learn_what_they_missed() {
    let mut ring = Ring::new(3);
    for i in 0..3 {
        assert_eq!(ring.push(i, 1), None);
    }
    assert_eq!(ring.push(3, 1), Some(0));
    assert_eq!((ring.oldest_seq(), ring.next_seq(), ring.len()), (1, 4, 3));
    let (mut cursor, mut out) = (Cursor::default(), Vec::new());
    assert_eq!(
        ring.read_from(&mut cursor, 2, &mut out),
        1,
        "entry 0 was overwritten"
    );
    assert_eq!((out.as_slice(), cursor.seq), (&[1, 2][..], 3));
    out.clear();
    assert_eq!(ring.read_from(&mut cursor, 10, &mut out), 0);
    assert_eq!((out.as_slice(), cursor), (&[3][..], ring.end()));
    out.clear();
    assert_eq!(ring.read_from(&mut cursor, 10, &mut out), 0);
    assert!(out.is_empty());
}

#[test]
fn a_reader_overtaken_past_a_lost_notice_counts_the_events_it_stood_for() {
    let mut ring = Ring::new(2);
    let mut cursor = Cursor::default();
    ring.push("flow", 1);
    ring.push("lost 100", 100);
    ring.push("flow", 1);
    ring.push("flow", 1);
    let mut out = Vec::new();
    assert_eq!(
        ring.read_from(&mut cursor, 10, &mut out),
        101,
        "one flow and the 100 events of the overwritten notice"
    );
    assert_eq!(out, ["flow", "flow"]);
    assert_eq!(cursor, ring.end());
}

fn flow_at(secs: i64, port: u32) -> Arc<Entry> {
    use prost::Message as _;
    let flow = Flow {
        time: Some(prost_types::Timestamp {
            seconds: secs,
            nanos: 0,
        }),
        policy_match_type: port,
        ..Flow::default()
    };
    Arc::new(Entry::Flow(StoredFlow {
        bytes: flow.encode_to_vec().into(),
        unix_ns: i128::from(secs) * 1_000_000_000,
    }))
}

/// The test's id of a stored flow (kept in `policy_match_type`).
fn id(f: &StoredFlow) -> u32 {
    f.decode().unwrap().policy_match_type
}

fn lost_at(secs: i64) -> Arc<Entry> {
    Arc::new(Entry::Lost {
        event: LostEvent::default(),
        unix_ns: i128::from(secs) * 1_000_000_000,
    })
}

fn ids(entries: &[Arc<Entry>]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match &**e {
            Entry::Flow(f) => id(f).to_string(),
            Entry::Lost { .. } => "lost".into(),
        })
        .collect()
}

#[test]
fn select_takes_the_last_or_first_n_matching_with_lost_notices_in_between() {
    let entries = vec![
        flow_at(1, 1),
        flow_at(2, 2),
        lost_at(3),
        flow_at(4, 3),
        flow_at(5, 4),
    ];
    let odd = |f: &StoredFlow| id(f) % 2 == 1;
    let last = |n| Window {
        number: n,
        ..Window::default()
    };
    assert_eq!(
        ids(&select(&entries, last(0), |_| true)),
        ["1", "2", "lost", "3", "4"]
    );
    assert_eq!(ids(&select(&entries, last(2), |_| true)), ["3", "4"]);
    assert_eq!(
        ids(&select(&entries, last(3), |_| true)),
        ["2", "lost", "3", "4"]
    );
    assert_eq!(ids(&select(&entries, last(2), odd)), ["1", "lost", "3"]);
    let first = Window {
        number: 2,
        first: true,
        ..Window::default()
    };
    assert_eq!(ids(&select(&entries, first, |_| true)), ["1", "2"]);
    let window = Window {
        since: Some(2_000_000_000),
        until: Some(4_000_000_000),
        ..Window::default()
    };
    assert_eq!(ids(&select(&entries, window, |_| true)), ["2", "lost", "3"]);
}
