//! Vigil's node agent: loads the eBPF datapath, attaches it to this node's endpoints, installs
//! compiled policy generations and turns verdict events into Hubble-compatible flows, served over
//! gRPC (`observer.Observer`), as `/metrics` and as a JSON-lines flow log.
//!
//! The binary (`main.rs`) is a thin CLI over this library; tests and benchmarks use the library
//! directly to drive the real datapath (for example through `BPF_PROG_TEST_RUN`).

pub mod abi;
pub mod agent;
pub mod datapath;
pub mod events;
pub mod filter;
pub mod flowlog;
pub mod flows;
pub mod metrics;
pub mod observer;
pub mod packet;
pub mod ring;
pub mod sources;
pub mod sys;
