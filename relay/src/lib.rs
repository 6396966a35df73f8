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

/// Parses `250ms`, `30s`, `5m`, `2h`, `7d` (or a bare number of seconds).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with a unit (250ms, 30s, 5m, 2h, 7d)"))?;
    let ms = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h, d)")),
    };
    Ok(std::time::Duration::from_millis(n * ms))
}

#[cfg(test)]
mod tests;
