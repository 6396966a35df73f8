//! Counting what a follower missed of one agent's stream, from the positions agents put on every
//! flow and lost-event notice (`vigil.Position`: the agent's start time and the entry's index in
//! its stream of events).
//!
//! The storage writer resumes a node from the last flow it stored; the agent replays what it still
//! holds from a little before that time. Entries already covered are duplicates; an entry whose
//! index lies beyond the next expected one means the agent's ring evicted the events in between
//! before the writer could read them: a gap, counted exactly. A new agent start means a new
//! stream, whose events before the first one seen were evicted too. Pure: no I/O, no clock.

#[cfg(test)]
mod tests;

use vigil_proto::vigil::Position;
use vigil_storage::ResumePoint;

/// What one entry of a stream means for the follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The entry covers events not seen before (store it / record it).
    pub fresh: bool,
    /// Events between the last entry seen and this one that the follower never got.
    pub gap: u64,
    /// The entry belongs to a newer agent start than the last one seen.
    pub restarted: bool,
}

/// The position a follower expects next: `(agent start, next index)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracker {
    expected: Option<(u64, u64)>,
}

impl Tracker {
    /// A tracker that resumes after the newest stored flow (none: nothing stored yet, or flows
    /// without positions).
    pub fn resume(point: Option<ResumePoint>) -> Tracker {
        Tracker {
            expected: point
                .filter(|p| p.agent_start != 0)
                .map(|p| (p.agent_start, p.stream_index + 1)),
        }
    }

    /// Takes the entry at `position` standing for `weight` events (1 for a flow, the count for a
    /// lost-event notice).
    pub fn step(&mut self, position: Position, weight: u64) -> Step {
        let (start, index) = (position.agent_start_ns, position.index);
        let end = index.saturating_add(weight);
        match self.expected {
            Some((s, _)) if start < s => Step {
                fresh: false,
                gap: 0,
                restarted: false,
            },
            Some((s, next)) if start == s => {
                if end <= next {
                    return Step {
                        fresh: false,
                        gap: 0,
                        restarted: false,
                    };
                }
                self.expected = Some((s, end));
                Step {
                    fresh: true,
                    gap: index.saturating_sub(next),
                    restarted: false,
                }
            }
            seen => {
                self.expected = Some((start, end));
                Step {
                    fresh: true,
                    gap: index,
                    restarted: seen.is_some(),
                }
            }
        }
    }
}
