//! Vigil's node agent: loads the eBPF datapath, attaches it to this node's endpoints, installs
//! compiled policy generations and turns verdict events into flow records.
//!
//! The binary (`main.rs`) is a thin CLI over this library; tests and benchmarks use the library
//! directly to drive the real datapath (for example through `BPF_PROG_TEST_RUN`).

pub mod abi;
pub mod agent;
pub mod datapath;
pub mod events;
pub mod packet;
pub mod sources;
pub mod sys;
