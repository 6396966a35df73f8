//! The relay: one Observer for every node agent, and the writer that keeps their flows in a store.
//!
//! `nodes` tracks the agents (connection, health, status events), `merge` orders responses in
//! time (pure), `service` answers `observer.Observer`, `writer` feeds the store, `gaps` counts
//! what a resumed follower missed (pure), `metrics` renders `/metrics`. The binary in
//! `main.rs` only parses flags and wires these together.

#![forbid(unsafe_code)]

/// A fake agent for tests and benchmarks.
pub mod fake;
pub mod gaps;
pub mod merge;
pub mod metrics;
pub mod nodes;
pub mod service;
pub mod writer;

/// Parses `250ms`, `30s`, `5m`, `2h`, `7d`, `1h30m` (or a bare number of seconds).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let ns = match s.parse::<u64>() {
        Ok(secs) => Some(i128::from(secs) * 1_000_000_000),
        Err(_) => vigil_proto::time::parse_duration_ns(s),
    };
    ns.and_then(|ns| u64::try_from(ns).ok())
        .map(std::time::Duration::from_nanos)
        .ok_or_else(|| format!("{s:?}: expected a number with a unit (250ms, 30s, 5m, 2h, 7d)"))
}

#[cfg(test)]
mod tests;
