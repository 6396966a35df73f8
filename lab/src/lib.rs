//! Vigil's lab: a small Kubernetes-like cluster built from network namespaces on one machine
//! (a fabric router, nodes, pods, external hosts and a DNS server), for trying and testing
//! network policies end to end.
//!
//! This library is the pure part: the topology file, the address and name plan, the manifests
//! handed to node-agents, the state record and wire formats. It runs no commands and touches no
//! files; the `lab` binary does that.

#![forbid(unsafe_code)]

pub mod dns;
pub mod manifest;
pub mod plan;
pub mod state;
pub mod topology;
pub mod wire;
