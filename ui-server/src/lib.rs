//! `ui-server`: the dashboard's backend. It serves the HTTP API of `docs/ui-api.md` (REST over
//! the flow store and the relay, a WebSocket of live flows) and the built `web/` files.
//!
//! Pure logic lives in its own modules with unit tests beside them: [`params`] (query
//! parameters, filters, time ranges, cursors), [`sql`] (the statements, in both dialects),
//! [`convert`] (stored or live flows to the UI's JSON, workload names), [`policies`] (loaded
//! policies merged with hit counts). I/O sits at the edges: [`store`] (the read-only store),
//! [`relay`] (the relay's Observer client), [`stream`] (the WebSocket) and [`api`] (the router
//! and handlers). The binary in `main.rs` only parses flags and serves.

#![forbid(unsafe_code)]

pub mod api;
pub mod convert;
pub mod error;
pub mod params;
pub mod policies;
pub mod relay;
pub mod sql;
pub mod store;
pub mod stream;

pub use api::{Config, State, router, serve};
pub use error::ApiError;
