//! Time-ordered merging of per-node response streams, pure and synchronous.
//!
//! [`SortWindow`] reorders responses that arrive from several nodes, each stream nearly ordered
//! by itself: a response leaves once it is older than the watermark (newest time seen minus the
//! window) or when the window holds `capacity` responses (then the oldest leaves first), so
//! memory stays bounded whatever the traffic. [`Newest`] keeps the last N of a merged sequence.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, VecDeque},
};

use vigil_proto::raw::Response;

/// The time of a response in Unix nanoseconds (agents, ours and Hubble's, give a flow's response
/// the flow's time).
pub fn unix_ns(r: &Response) -> i128 {
    r.unix_ns()
}

#[derive(Debug)]
struct Item {
    ns: i128,
    seq: u64,
    response: Response,
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        (self.ns, self.seq) == (other.ns, other.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Item {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ns, self.seq).cmp(&(other.ns, other.seq))
    }
}

/// A bounded reordering buffer (see the module docs).
#[derive(Debug)]
pub struct SortWindow {
    heap: BinaryHeap<Reverse<Item>>,
    capacity: usize,
    window_ns: i128,
    newest: i128,
    seq: u64,
    /// Responses that left because the window was full rather than by the watermark.
    pub forced: u64,
}

impl SortWindow {
    /// A window holding at most `capacity` responses, each at most `window_ns` behind the newest.
    pub fn new(capacity: usize, window_ns: i128) -> SortWindow {
        SortWindow {
            heap: BinaryHeap::with_capacity(capacity.min(1 << 16)),
            capacity: capacity.max(1),
            window_ns,
            newest: i128::MIN,
            seq: 0,
            forced: 0,
        }
    }

    /// Adds a response; pushes those that may leave now onto `out`, oldest first.
    pub fn push(&mut self, response: Response, out: &mut Vec<Response>) {
        let ns = unix_ns(&response);
        self.newest = self.newest.max(ns);
        self.seq += 1;
        self.heap.push(Reverse(Item {
            ns,
            seq: self.seq,
            response,
        }));
        while self.heap.len() > self.capacity {
            self.forced += 1;
            out.push(self.heap.pop().expect("non-empty").0.response);
        }
        self.release(self.newest - self.window_ns, out);
    }

    /// Pushes onto `out` every response at or before `watermark` (Unix ns).
    pub fn release(&mut self, watermark: i128, out: &mut Vec<Response>) {
        while self.heap.peek().is_some_and(|Reverse(i)| i.ns <= watermark) {
            out.push(self.heap.pop().expect("peeked").0.response);
        }
    }

    /// Every response held, oldest first.
    pub fn drain(&mut self, out: &mut Vec<Response>) {
        self.release(i128::MAX, out);
    }

    /// Responses held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// Keeps the newest `n` items of an ordered sequence (`n == 0`: all of them).
#[derive(Debug)]
pub struct Newest<T> {
    n: usize,
    items: VecDeque<T>,
}

impl<T> Newest<T> {
    pub fn new(n: usize) -> Newest<T> {
        Newest {
            n,
            items: VecDeque::new(),
        }
    }
    pub fn push(&mut self, item: T) {
        if self.n > 0 && self.items.len() == self.n {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }
    pub fn into_vec(self) -> Vec<T> {
        self.items.into()
    }
}

/// Index of the oldest head among `heads` (a k-way merge step); ties go to the lower index.
pub fn oldest(heads: &[Option<Response>]) -> Option<usize> {
    heads
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.as_ref().map(|h| (unix_ns(h), i)))
        .min()
        .map(|(_, i)| i)
}

#[cfg(test)]
mod tests;
