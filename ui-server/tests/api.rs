//! The ui-server's API end to end, against real parts only: a real SQLite file and a real
//! ClickHouse server (`scripts/clickhouse.sh start`, run by `make test`) seeded with realistic
//! flows, the real relay service (`vigil_relay`) merging in-process agents, and real HTTP and
//! WebSocket clients. Each test starts its own servers on free loopback ports.

// A test crate's root resolves modules beside it: the submodules live in `api/`.
#[path = "api/support.rs"]
mod support;

#[path = "api/clickhouse.rs"]
mod clickhouse;
#[path = "api/history.rs"]
mod history;
#[path = "api/live.rs"]
mod live;
