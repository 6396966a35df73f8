//! Unit tests of `observer`: behaviour checked beside the code it tests.
use super::*;

fn flow(port: u32) -> Flow {
    Flow {
        policy_match_type: port,
        ..Flow::default()
    }
}

#[test]
fn lost_events_are_ring_entries_and_a_slow_reader_is_told_what_it_missed() {
    let hub = Hub::new("node-1", 4);
    hub.push_flows(vec![flow(1), flow(2)]);
    hub.push_lost(flow::LostEventSource::PerfEventRingBuffer, 5);
    let (snapshot, next) = hub.snapshot();
    assert_eq!((snapshot.len(), next.seq, next.weight), (3, 3, 7));
    assert_eq!(hub.counts(), (2, 4, 2));
    let r = response(&snapshot[2], "node-1");
    match r.body {
        raw::Body::Other(ResponseTypes::LostEvents(l)) => {
            assert_eq!(l.num_events_lost, 5);
            assert_eq!(l.source, flow::LostEventSource::PerfEventRingBuffer as i32);
        }
        other => panic!("{other:?}"),
    }
    // A reader at 0 while the writer pushes 6 more into a ring of 4.
    hub.push_flows((3..9).map(flow).collect());
    let (mut cursor, mut out) = (Cursor::default(), Vec::new());
    // Five entries were overwritten: four flows and the notice of 5 lost events.
    assert_eq!(hub.read_from(&mut cursor, 100, &mut out), 9);
    assert_eq!(out.len(), 4);
    assert_eq!(hub.counts(), (4, 4, 8));
    // Positions: the reader missed the stream's events [0, 9); the first entry it reads is 9.
    match overtaken(&hub, 9, 0) {
        Entry::Lost { event, .. } => {
            assert_eq!(event.source, flow::LostEventSource::HubbleRingBuffer as i32);
            assert_eq!(event.num_events_lost, 9);
            assert_eq!(event.vigil_position.map(|p| p.index), Some(0));
        }
        other => panic!("{other:?}"),
    }
    let indexes: Vec<u64> = out
        .iter()
        .map(|e| match &**e {
            Entry::Flow(f) => f
                .decode()
                .and_then(|f| f.vigil_position)
                .map_or(u64::MAX, |p| p.index),
            Entry::Lost { event, .. } => event.vigil_position.map_or(u64::MAX, |p| p.index),
        })
        .collect();
    assert_eq!(indexes, [9, 10, 11, 12]);
}

#[tokio::test]
async fn a_follower_that_stops_reading_never_blocks_the_writer() {
    let hub = Arc::new(Hub::new("node-1", 8));
    let (tx, mut rx) = mpsc::channel(1);
    let request = GetFlowsRequest {
        follow: true,
        ..GetFlowsRequest::default()
    };
    tokio::spawn(stream_flows(
        hub.clone(),
        Query::default(),
        request,
        None,
        tx,
    ));
    tokio::task::yield_now().await;
    // The client reads nothing while 100 flows are pushed: pushes never wait.
    for i in 0..100 {
        hub.push_flows(vec![flow(i)]);
    }
    let mut lost = 0;
    let mut seen = 0;
    while let Ok(Some(Ok(r))) =
        tokio::time::timeout(std::time::Duration::from_millis(200), rx.recv()).await
    {
        match r.body {
            raw::Body::Other(ResponseTypes::LostEvents(l)) => lost += l.num_events_lost,
            raw::Body::Flow(_) => seen += 1,
            _ => {}
        }
    }
    assert_eq!(seen + lost, 100, "every flow delivered or reported lost");
    assert!(lost > 0);
}
