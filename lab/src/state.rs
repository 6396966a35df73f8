//! `STATE/lab.json`: the record of everything one `lab up` created, so that `lab down` removes
//! exactly that (and nothing of a parallel lab), even after a crash half-way through `lab up`.
//!
//! `lab up` writes the record before it creates anything and adds each process as it starts,
//! so the record always covers at least what exists. Pure: (de)serialization and look-ups; the
//! binary does the file I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::Plan;

#[cfg(test)]
mod tests;

/// Version of the record's format.
pub const STATE_VERSION: u32 = 1;
/// The record's file name inside the state directory.
pub const STATE_FILE: &str = "lab.json";
/// The manifests' folder inside the state directory.
pub const ENDPOINTS_DIR: &str = "endpoints";
/// Where `ip netns exec` finds per-namespace overrides of `/etc` files.
pub const ETC_NETNS: &str = "/etc/netns";

/// Everything one lab created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabState {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// The prefix of every name the lab created.
    pub prefix: String,
    /// The topology file `lab up` read.
    pub topology: PathBuf,
    /// Every network namespace, in the order to delete them.
    pub netns: Vec<String>,
    /// `/etc/netns/<netns>` folders holding the pods' `resolv.conf`.
    pub etc_netns: Vec<PathBuf>,
    /// Manifest files written under `STATE/endpoints/`.
    pub files: Vec<PathBuf>,
    /// Long-running processes: dnsmasq and `lab serve` listeners.
    pub processes: Vec<ProcessRecord>,
    /// The fabric namespace.
    pub fabric: String,
    /// Nodes by name.
    pub nodes: BTreeMap<String, HostRecord>,
    /// Pods by `namespace/name`.
    pub pods: BTreeMap<String, PodRecord>,
    /// External hosts by name, the DNS host included.
    pub externals: BTreeMap<String, HostRecord>,
    /// The DNS server's addresses.
    pub dns: Vec<IpAddr>,
}

/// A process the lab started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessRecord {
    /// What it is: `dnsmasq` or `serve`.
    pub role: String,
    /// The namespace it runs in.
    pub netns: String,
    /// Its process id.
    pub pid: u32,
    /// Its start time (field 22 of `/proc/PID/stat`), to tell it from a later process that
    /// reuses the pid.
    pub start_time: u64,
    /// Its log file.
    pub log: PathBuf,
}

/// A pod's place in the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    /// The pod's namespace.
    pub netns: String,
    /// The node it runs on.
    pub node: String,
    /// The host-side veth, in the node's namespace.
    pub interface: String,
    /// Its addresses.
    pub ips: Vec<IpAddr>,
}

/// A node's or external host's place in the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostRecord {
    /// Its namespace.
    pub netns: String,
    /// Its addresses.
    pub ips: Vec<IpAddr>,
}

/// Why `lab exec` could not pick a namespace.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Nothing has that name.
    #[error("no pod, external host or node is named {query:?}; known: {known}")]
    NotFound {
        /// What the user asked for.
        query: String,
        /// Every name the lab knows.
        known: String,
    },
    /// Several things have that name.
    #[error("{query:?} is ambiguous: it could be {candidates}; use namespace/name for pods")]
    Ambiguous {
        /// What the user asked for.
        query: String,
        /// What it could mean.
        candidates: String,
    },
}

impl LabState {
    /// The record of a planned lab, before any of it exists.
    pub fn planned(plan: &Plan, topology: &Path, state_dir: &Path, manifests: &[String]) -> Self {
        let ips =
            |v4: std::net::Ipv4Addr, v6: std::net::Ipv6Addr| vec![IpAddr::V4(v4), IpAddr::V6(v6)];
        LabState {
            version: STATE_VERSION,
            prefix: plan.prefix.to_string(),
            topology: topology.to_owned(),
            netns: plan.all_netns(),
            etc_netns: plan
                .pods
                .iter()
                .map(|pod| Path::new(ETC_NETNS).join(&pod.netns))
                .collect(),
            files: manifests
                .iter()
                .map(|name| state_dir.join(ENDPOINTS_DIR).join(name))
                .collect(),
            processes: Vec::new(),
            fabric: plan.fabric_netns.clone(),
            nodes: plan
                .nodes
                .iter()
                .map(|node| {
                    let record = HostRecord {
                        netns: node.netns.clone(),
                        ips: ips(node.ipv4, node.ipv6),
                    };
                    (node.name.clone(), record)
                })
                .collect(),
            pods: plan
                .pods
                .iter()
                .map(|pod| {
                    let record = PodRecord {
                        netns: pod.netns.clone(),
                        node: pod.node.clone(),
                        interface: pod.host_iface.clone(),
                        ips: ips(pod.ipv4, pod.ipv6),
                    };
                    (pod.key(), record)
                })
                .collect(),
            externals: plan
                .externals
                .iter()
                .map(|external| {
                    let record = HostRecord {
                        netns: external.netns.clone(),
                        ips: ips(external.ipv4, external.ipv6),
                    };
                    (external.name.clone(), record)
                })
                .collect(),
            dns: vec![plan.dns.ipv4.into(), plan.dns.ipv6.into()],
        }
    }

    /// The namespace `lab exec` should enter for `query`: `namespace/name` of a pod, a pod name
    /// that is unique across namespaces, an external host, a node, or `fabric`.
    pub fn resolve(&self, query: &str) -> Result<&str, TargetError> {
        if let Some(pod) = self.pods.get(query) {
            return Ok(&pod.netns);
        }
        let mut candidates: Vec<(String, &str)> = Vec::new();
        for (key, pod) in &self.pods {
            if key.split_once('/').is_some_and(|(_, name)| name == query) {
                candidates.push((format!("pod {key}"), &pod.netns));
            }
        }
        if let Some(external) = self.externals.get(query) {
            candidates.push((format!("external host {query}"), &external.netns));
        }
        if let Some(node) = self.nodes.get(query) {
            candidates.push((format!("node {query}"), &node.netns));
        }
        if query == "fabric" {
            candidates.push(("the fabric".to_owned(), &self.fabric));
        }
        match candidates.as_slice() {
            [(_, netns)] => Ok(netns),
            [] => {
                let known: Vec<&str> = self
                    .pods
                    .keys()
                    .chain(self.externals.keys())
                    .chain(self.nodes.keys())
                    .map(String::as_str)
                    .chain(["fabric"])
                    .collect();
                Err(TargetError::NotFound {
                    query: query.to_owned(),
                    known: known.join(", "),
                })
            }
            several => Err(TargetError::Ambiguous {
                query: query.to_owned(),
                candidates: several
                    .iter()
                    .map(|(what, _)| what.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

/// What `lab down` needs from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The state letter (`R`, `S`, `Z` for a zombie, ...).
    pub state: char,
    /// The start time in clock ticks since boot.
    pub start_time: u64,
}

/// Parses the text of `/proc/PID/stat`.
pub fn parse_proc_stat(stat: &str) -> Option<ProcStat> {
    // The command name (field 2) may hold spaces and parentheses: skip to the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state); the start time is field 22.
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(22 - 4)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}
