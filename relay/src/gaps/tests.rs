//! Unit tests of `gaps`: duplicates, gaps, lost notices and restarts.
use super::*;

fn at(start: u64, index: u64) -> Position {
    Position {
        agent_start_ns: start,
        index,
    }
}

fn point(start: u64, index: u64) -> Option<ResumePoint> {
    Some(ResumePoint {
        time_ns: 1,
        agent_start: start,
        stream_index: index,
    })
}

#[test]
fn a_resumed_stream_skips_what_is_stored_and_counts_what_was_evicted() {
    let mut t = Tracker::resume(point(7, 99));
    // The replay overlaps the stored flows: duplicates.
    for i in 95..100 {
        assert!(!t.step(at(7, i), 1).fresh, "index {i} is stored already");
    }
    // The agent evicted 100..=139 before the writer came back.
    assert_eq!(
        t.step(at(7, 140), 1),
        Step {
            fresh: true,
            gap: 40,
            restarted: false
        }
    );
    assert_eq!(t.step(at(7, 141), 1).gap, 0);
}

#[test]
fn lost_notices_cover_their_events_so_they_are_not_counted_twice() {
    let mut t = Tracker::resume(point(7, 9));
    // A notice of 5 lost events at 10..15, then the next flow at 15: no gap beyond the notice.
    assert_eq!(t.step(at(7, 10), 5).gap, 0);
    assert_eq!(t.step(at(7, 15), 1).gap, 0);
    // A notice replayed in the overlap is not fresh.
    assert!(!t.step(at(7, 10), 5).fresh);
}

#[test]
fn a_restarted_agent_is_a_new_stream_and_stale_entries_are_ignored() {
    let mut t = Tracker::resume(point(7, 9));
    let s = t.step(at(8, 3), 1);
    assert_eq!(
        s,
        Step {
            fresh: true,
            gap: 3,
            restarted: true
        }
    );
    assert!(!t.step(at(7, 50), 1).fresh, "an entry of the old stream");
    assert_eq!(t.step(at(8, 4), 1).gap, 0);
}

#[test]
fn nothing_stored_counts_what_the_agent_evicted_before_the_first_connect() {
    let mut t = Tracker::resume(None);
    assert_eq!(t.step(at(7, 12), 1).gap, 12);
    // Flows stored without positions resume like nothing was stored.
    let mut t = Tracker::resume(point(0, 0));
    assert_eq!(t.step(at(7, 0), 1).gap, 0);
}
