//! Vigil's flow store: one [`Store`] trait and two backends holding the same logical schema,
//! SQLite (the embedded default, `sqlite://PATH`) and ClickHouse (`clickhouse://HOST:PORT/DB`).
//!
//! Three tables: `flows` (one row per flow), `policy_hits` (one row per policy contribution to
//! a verdict) and `lost_events` (events that never became stored flows, with where they were
//! lost, so history shows its own gaps). Flows and hits carry the flow's `uuid`, which makes a
//! repeated insert of the same flow harmless (SQLite ignores it; ClickHouse's ReplacingMergeTree folds it on merge, and every count
//! this crate makes reads `FINAL`). Time is stored as whole seconds (`time`, Unix seconds;
//! ClickHouse `DateTime`) plus `nanos` within the second, a form 18.16 and current servers accept.
//!
//! This crate converts flows to rows and talks to the databases; it serves nothing and batches
//! nothing (the relay's writer does). User SQL runs through [`Store::query`] on a connection the
//! engine itself keeps read-only.

#![forbid(unsafe_code)]

mod clickhouse;
mod examples;
mod rows;
mod sqlite;
pub mod testing;

use std::{future::Future, time::Duration};

pub use crate::{
    clickhouse::ClickHouseStore,
    examples::{EXAMPLES, Example},
    rows::{FlowRow, HitRow, LostRow, to_rows},
    sqlite::SqliteStore,
};
use vigil_proto::flow::Flow;

/// A failure of the store, with the context a user needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL names no backend we know or is malformed.
    #[error("store URL {url:?}: {message} (expected sqlite://PATH or clickhouse://HOST:PORT/DB)")]
    Url { url: String, message: String },
    /// The database refused a write because the query connection is read-only.
    #[error("the query connection is read-only: {0}")]
    ReadOnly(String),
    /// The engine rejected a query; its message is kept verbatim.
    #[error("{0}")]
    Engine(String),
    /// Anything else the backend reported (connection, I/O, migration), with what we were doing.
    #[error("{context}: {message}")]
    Backend { context: String, message: String },
}

impl Error {
    pub(crate) fn backend(context: impl Into<String>, e: impl std::fmt::Display) -> Error {
        Error::Backend {
            context: context.into(),
            message: e.to_string(),
        }
    }
}

/// The result of a read-only query: column names and rows of JSON values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// Row counts of both tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub flows: u64,
    pub policy_hits: u64,
}

/// The newest stored flow of a node and its place in the agent's stream: where a writer resumes
/// and from where it counts what the agent evicted meanwhile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResumePoint {
    /// The flow's time, Unix nanoseconds.
    pub time_ns: i64,
    /// When the agent that produced it started (Unix ns; 0 for flows without a position).
    pub agent_start: u64,
    /// Its index in that agent's stream.
    pub stream_index: u64,
}

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub flows: u64,
    pub policy_hits: u64,
}

/// The operations every backend provides. Implementations are cheap to clone and share.
pub trait Store: Send + Sync {
    /// Stores a batch of flows and their policy hits; flows already stored (same uuid) are
    /// ignored. Returns the number of flow rows submitted.
    fn insert(&self, flows: &[Flow]) -> impl Future<Output = Result<u64, Error>> + Send;
    /// Runs one read-only SQL statement.
    fn query(&self, sql: &str) -> impl Future<Output = Result<QueryResult, Error>> + Send;
    /// Row counts (duplicates folded).
    fn counts(&self) -> impl Future<Output = Result<Counts, Error>> + Send;
    /// Where the newest stored flow of `node` sits: the latest agent start, its highest stream
    /// index, and that flow's time.
    fn resume_point(
        &self,
        node: &str,
    ) -> impl Future<Output = Result<Option<ResumePoint>, Error>> + Send;
    /// Records events lost before they could be stored (same time, node and source: kept once).
    fn insert_lost(&self, rows: &[LostRow]) -> impl Future<Output = Result<(), Error>> + Send;
    /// The events recorded lost for `node` (all nodes when `None`).
    fn lost_total(&self, node: Option<&str>) -> impl Future<Output = Result<u64, Error>> + Send;
    /// Removes flows older than `max_age` and, beyond the newest `max_rows`, the oldest ones.
    fn retention(
        &self,
        max_age: Option<Duration>,
        max_rows: Option<u64>,
    ) -> impl Future<Output = Result<Removed, Error>> + Send;
    /// Which SQL dialect user queries are written in.
    fn dialect(&self) -> Dialect;
}

/// The SQL dialect of a backend, to pick the variant of an example query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    ClickHouse,
}

impl Dialect {
    /// Flows per insert that suit the backend, the relay writer's default batch.
    ///
    /// ClickHouse writes a new part, dozens of files, for every insert, and wants few large
    /// inserts: at 10,000 flows an insert, Debian's 18.16 spent most of its insert time in the
    /// kernel creating files and took 240-270k rows/s; at 50,000, 567k (BENCHMARKS.md). SQLite
    /// commits a transaction per insert, at the same speed from 10,000 flows up.
    pub const fn insert_batch(self) -> usize {
        match self {
            Dialect::Sqlite => 10_000,
            Dialect::ClickHouse => 50_000,
        }
    }

    /// `text` as a string literal of this dialect, safe to splice into a statement whatever it
    /// holds (quotes, backslashes, NUL, any byte sequence): for building read-only queries from
    /// user-supplied values where [`Store::query`] takes no bound parameters.
    ///
    /// SQLite doubles single quotes (backslashes are not special there); a value holding a
    /// control character (NUL would end the statement text) is written as a hex blob cast to
    /// TEXT instead. ClickHouse escapes backslash, quote and NUL with backslashes.
    pub fn quote(self, text: &str) -> String {
        match self {
            Dialect::Sqlite if text.chars().any(char::is_control) => {
                let mut out = String::with_capacity(text.len() * 2 + 16);
                out.push_str("CAST(X'");
                for b in text.bytes() {
                    out.push_str(&format!("{b:02X}"));
                }
                out.push_str("' AS TEXT)");
                out
            }
            Dialect::Sqlite => format!("'{}'", text.replace('\'', "''")),
            Dialect::ClickHouse => {
                let mut out = String::with_capacity(text.len() + 2);
                out.push('\'');
                for c in text.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\'' => out.push_str("\\'"),
                        '\0' => out.push_str("\\0"),
                        c => out.push(c),
                    }
                }
                out.push('\'');
                out
            }
        }
    }
}

/// Either backend, chosen by URL.
#[derive(Debug, Clone)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    // Boxed: the HTTP client is large and a store is cloned rarely.
    ClickHouse(Box<ClickHouseStore>),
}

/// Opens (and migrates) the store named by `url`: `sqlite://PATH` or `clickhouse://HOST:PORT/DB`.
pub async fn open(url: &str) -> Result<AnyStore, Error> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(AnyStore::Sqlite(SqliteStore::open(path).await?))
    } else if url.starts_with("clickhouse://") {
        Ok(AnyStore::ClickHouse(Box::new(
            ClickHouseStore::open(url).await?,
        )))
    } else {
        Err(Error::Url {
            url: url.to_owned(),
            message: "unknown scheme".into(),
        })
    }
}

/// Opens the store named by `url` for queries only: no migration, no write.
pub async fn open_for_query(url: &str) -> Result<AnyStore, Error> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(AnyStore::Sqlite(SqliteStore::open_read_only(path).await?))
    } else if url.starts_with("clickhouse://") {
        Ok(AnyStore::ClickHouse(Box::new(ClickHouseStore::connect(
            url,
        )?)))
    } else {
        Err(Error::Url {
            url: url.to_owned(),
            message: "unknown scheme".into(),
        })
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $e,
            AnyStore::ClickHouse($s) => $e,
        }
    };
}

impl Store for AnyStore {
    async fn insert(&self, flows: &[Flow]) -> Result<u64, Error> {
        dispatch!(self, s => s.insert(flows).await)
    }
    async fn query(&self, sql: &str) -> Result<QueryResult, Error> {
        dispatch!(self, s => s.query(sql).await)
    }
    async fn counts(&self) -> Result<Counts, Error> {
        dispatch!(self, s => s.counts().await)
    }
    async fn resume_point(&self, node: &str) -> Result<Option<ResumePoint>, Error> {
        dispatch!(self, s => s.resume_point(node).await)
    }
    async fn insert_lost(&self, rows: &[LostRow]) -> Result<(), Error> {
        dispatch!(self, s => s.insert_lost(rows).await)
    }
    async fn lost_total(&self, node: Option<&str>) -> Result<u64, Error> {
        dispatch!(self, s => s.lost_total(node).await)
    }
    async fn retention(
        &self,
        max_age: Option<Duration>,
        max_rows: Option<u64>,
    ) -> Result<Removed, Error> {
        dispatch!(self, s => s.retention(max_age, max_rows).await)
    }
    fn dialect(&self) -> Dialect {
        dispatch!(self, s => s.dialect())
    }
}

#[cfg(test)]
mod tests;

/// The current time in Unix seconds.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
