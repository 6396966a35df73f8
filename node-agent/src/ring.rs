//! The observer's bounded in-memory ring of recent flows and lost-event notices, and the
//! selection of what a `GetFlows` request returns from it.
//!
//! Writers never wait: a push into a full ring evicts the oldest entry. Every entry has a sequence
//! number and a weight (the events it stands for: 1 for a flow, the count for a lost-event
//! notice); a follower keeps a cursor and, when the writer has overtaken it, learns how many
//! events it missed, notices included, so a lagging reader's count of lost events stays exact
//! (Hubble's `HUBBLE_RING_BUFFER` lost events). Pure: no locks, no I/O (the observer wraps it in
//! a mutex).

#[cfg(test)]
mod tests;

use std::{collections::VecDeque, sync::Arc};

use prost::{Message as _, bytes::Bytes};
use vigil_proto::flow::{Flow, LostEvent};

/// A flow as the ring keeps it: encoded once, when it is made. The encoding takes about a quarter
/// of the memory of the decoded message and goes to every reader as is; a reader with filters
/// decodes what it tests.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFlow {
    /// The encoded `flow.Flow`.
    pub bytes: Bytes,
    /// The flow's time, Unix nanoseconds.
    pub unix_ns: i128,
}

impl StoredFlow {
    /// The flow, decoded (`None` only if the bytes are not a flow, which the ring never holds).
    pub fn decode(&self) -> Option<Flow> {
        Flow::decode(&self.bytes[..]).ok()
    }
}

/// One ring entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A flow.
    Flow(StoredFlow),
    /// Events lost before they became flows (reported to every reader in order).
    Lost {
        /// The notice.
        event: LostEvent,
        /// When it was recorded, in Unix nanoseconds.
        unix_ns: i128,
    },
}

impl Entry {
    /// The events this entry stands for: one flow, or the events a notice reports lost.
    pub fn weight(&self) -> u64 {
        match self {
            Entry::Flow(_) => 1,
            Entry::Lost { event, .. } => event.num_events_lost,
        }
    }

    /// The entry's time in Unix nanoseconds.
    pub fn unix_ns(&self) -> i128 {
        match self {
            Entry::Flow(f) => f.unix_ns,
            Entry::Lost { unix_ns, .. } => *unix_ns,
        }
    }
}

/// A bounded ring with sequence numbers and weights.
#[derive(Debug)]
pub struct Ring<T> {
    /// Each entry with the total weight pushed before it.
    entries: VecDeque<(T, u64)>,
    capacity: usize,
    next: u64,
    weight: u64,
}

/// A reader's place in a [`Ring`]: the next sequence number to read and the total weight pushed
/// before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The next sequence number to read.
    pub seq: u64,
    /// The weight pushed before `seq`.
    pub weight: u64,
}

impl<T: Clone> Ring<T> {
    /// An empty ring holding at most `capacity` (at least 1) entries.
    pub fn new(capacity: usize) -> Ring<T> {
        let capacity = capacity.max(1);
        Ring {
            entries: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
            next: 0,
            weight: 0,
        }
    }

    /// Appends an entry standing for `weight` events, returning the evicted oldest entry when
    /// full.
    pub fn push(&mut self, item: T, weight: u64) -> Option<T> {
        let evicted = (self.entries.len() == self.capacity)
            .then(|| self.entries.pop_front())
            .flatten()
            .map(|(item, _)| item);
        self.entries.push_back((item, self.weight));
        self.next += 1;
        self.weight += weight;
        evicted
    }

    /// The cursor just after the newest entry.
    pub fn end(&self) -> Cursor {
        Cursor {
            seq: self.next,
            weight: self.weight,
        }
    }

    /// The weight pushed before the entry at index `i` of `entries` (the total at the end).
    fn weight_before(&self, i: usize) -> u64 {
        self.entries.get(i).map_or(self.weight, |e| e.1)
    }

    /// The sequence number the next push gets.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// The sequence number of the oldest entry held.
    pub fn oldest_seq(&self) -> u64 {
        self.next - self.entries.len() as u64
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The maximum number of entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Every entry held, oldest first.
    pub fn snapshot(&self) -> Vec<T> {
        self.entries.iter().map(|(item, _)| item.clone()).collect()
    }

    /// Appends to `out` up to `max` entries from `cursor` on and advances it. Returns the weight
    /// of the entries the writer overwrote before this reader got to them (the cursor then jumps
    /// to the oldest entry held).
    pub fn read_from(&self, cursor: &mut Cursor, max: usize, out: &mut Vec<T>) -> u64 {
        let oldest = self.oldest_seq();
        let mut lost = 0;
        if cursor.seq < oldest {
            let oldest_weight = self.weight_before(0);
            lost = oldest_weight.saturating_sub(cursor.weight);
            *cursor = Cursor {
                seq: oldest,
                weight: oldest_weight,
            };
        }
        let start = (cursor.seq - oldest) as usize;
        let take = max.min(self.entries.len().saturating_sub(start));
        out.extend(
            self.entries
                .range(start..start + take)
                .map(|(item, _)| item.clone()),
        );
        cursor.seq += take as u64;
        cursor.weight = self.weight_before(start + take);
        lost
    }
}

/// What a request asks for, besides the filters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    /// The last (or first) N flows; 0 = no limit.
    pub number: u64,
    /// The first N instead of the last N.
    pub first: bool,
    /// Only entries at or after this Unix time (ns).
    pub since: Option<i128>,
    /// Only entries at or before this Unix time (ns).
    pub until: Option<i128>,
}

/// Picks, from a snapshot (oldest first), what a request returns, in order: the flows passing
/// `matches` inside the window, limited to the first or last `number`, plus the lost-event
/// notices in the window that lie within the span returned (all of them when there is no limit).
pub fn select(
    entries: &[Arc<Entry>],
    window: Window,
    matches: impl Fn(&StoredFlow) -> bool,
) -> Vec<Arc<Entry>> {
    let in_window = |e: &Entry| {
        let t = e.unix_ns();
        window.since.is_none_or(|s| t >= s) && window.until.is_none_or(|u| t <= u)
    };
    let mut out = Vec::new();
    let mut flows = 0u64;
    let mut take = |e: &Arc<Entry>| -> bool {
        if window.number != 0 && flows >= window.number {
            return false;
        }
        if !in_window(e) {
            return true;
        }
        match &**e {
            Entry::Flow(f) if matches(f) => {
                flows += 1;
                out.push(e.clone());
            }
            Entry::Flow(_) => {}
            Entry::Lost { .. } => out.push(e.clone()),
        }
        true
    };
    if window.first {
        for e in entries {
            if !take(e) {
                break;
            }
        }
    } else {
        for e in entries.iter().rev() {
            if !take(e) {
                break;
            }
        }
        out.reverse();
    }
    out
}
