//! The agent's control loop: watch the state directory, compile, attach, install, report.
//!
//! One reconcile = the manifests in force -> `PolicySet` -> `compile` for this node -> attach to
//! new local endpoint interfaces -> install the generation -> detach from interfaces that are
//! gone -> remember the generation's tables for labelling events -> write the status file.
//! A rejected manifest or an invalid set leaves the generation in force untouched.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::Context as _;
use serde::Serialize;
use tracing::{error, info, info_span, warn};
use vigil_policy::{PolicySet, compile};

use crate::{
    datapath::{Datapath, Interface, Stats},
    events::{self, CounterSnapshot, Counters, FlowRecord, Generations},
    sources::Sources,
    sys,
};

/// Everything the agent needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name: endpoints with `spec.node` equal to it are enforced here.
    pub node: String,
    /// The cluster state directory (`endpoints/`, `policies/`; the agent writes `status/`).
    pub state_dir: PathBuf,
    /// How often the state directory is re-read.
    pub poll_interval: Duration,
    /// Where flow records are appended as JSON lines, if anywhere.
    pub flow_log: Option<PathBuf>,
}

/// The status file: what is in force, what was rejected, and the counters.
#[derive(Debug, Serialize)]
struct Status<'a> {
    node: &'a str,
    generation: u32,
    policies_in_force: usize,
    endpoints: Vec<StatusEndpoint>,
    rejected: Vec<Rejected>,
    set_error: Option<String>,
    attach_errors: Vec<String>,
    warnings: Vec<String>,
    datapath: Stats,
    events: CounterSnapshot,
}

#[derive(Debug, Clone, Serialize)]
struct StatusEndpoint {
    namespace: String,
    name: String,
    interface: String,
    identity: u32,
    endpoint_id: u32,
}

#[derive(Debug, Serialize)]
struct Rejected {
    file: String,
    error: String,
}

/// Mutable state of the control loop.
struct Loop {
    settings: Settings,
    datapath: Datapath,
    sources: Sources,
    generations: Arc<RwLock<Generations>>,
    counters: Arc<Counters>,
    attached: BTreeMap<Interface, u32>,
    generation: u32,
    policies_in_force: usize,
    endpoints: Vec<StatusEndpoint>,
    set_error: Option<String>,
    attach_errors: Vec<String>,
}

impl Loop {
    fn reconcile(&mut self) -> anyhow::Result<()> {
        let (policies, tiers) = self.sources.policies();
        let count = policies.len();
        let set = match PolicySet::new(policies, tiers) {
            Ok(set) => set,
            Err(e) => {
                error!(error = %e, "policy set rejected; the generation in force stays");
                self.set_error = Some(e.to_string());
                return Ok(());
            }
        };
        self.set_error = None;
        let cluster = self.sources.cluster();
        let compiled = compile(&set, &cluster, &self.settings.node);

        // Attach to every local endpoint interface, (re)attaching when its ifindex changed.
        let mut wanted: BTreeMap<Interface, (String, String)> = BTreeMap::new();
        for ep in &compiled.endpoints {
            let netns = cluster
                .endpoints
                .iter()
                .find(|e| e.namespace == ep.namespace && e.name == ep.name)
                .and_then(|e| e.netns.clone());
            wanted.insert(
                (netns, ep.interface.clone()),
                (ep.namespace.clone(), ep.name.clone()),
            );
        }
        self.attach_errors.clear();
        let mut ifindex_by_endpoint: BTreeMap<(String, String), u32> = BTreeMap::new();
        for (iface, owner) in &wanted {
            let current = sys::run_in(iface.0.as_deref(), || sys::ifindex(&iface.1))
                .ok()
                .and_then(Result::ok);
            let ifindex = match (current, self.attached.get(iface)) {
                (Some(now), Some(&before)) if now == before => Some(now),
                (Some(_), _) => match self.datapath.attach(iface.0.as_deref(), &iface.1) {
                    Ok(ifindex) => {
                        info!(interface = %iface.1, netns = iface.0.as_deref().unwrap_or("-"), ifindex, "attached");
                        Some(ifindex)
                    }
                    Err(e) => {
                        self.attach_errors
                            .push(format!("{}/{}: {e:#}", owner.0, owner.1));
                        None
                    }
                },
                (None, _) => {
                    self.attach_errors.push(format!(
                        "{}/{}: interface {} not found (yet)",
                        owner.0, owner.1, iface.1
                    ));
                    None
                }
            };
            match ifindex {
                Some(i) => {
                    self.attached.insert(iface.clone(), i);
                    ifindex_by_endpoint.insert(owner.clone(), i);
                }
                None => {
                    self.attached.remove(iface);
                }
            }
        }
        self.attached.retain(|iface, _| wanted.contains_key(iface));

        let lookup = |ns: &str, name: &str| {
            ifindex_by_endpoint
                .get(&(ns.to_owned(), name.to_owned()))
                .copied()
        };
        let generation = self
            .datapath
            .install(&compiled, &lookup)
            .context("install the new generation")?;
        let keep: BTreeSet<Interface> = self.attached.keys().cloned().collect();
        for removed in self.datapath.detach_except(&keep)? {
            info!(link = %removed, "detached from an interface that is no longer a local endpoint");
        }
        info!(
            generation,
            policies = count,
            endpoints = compiled.endpoints.len(),
            decisions = compiled.decisions.len(),
            "generation installed"
        );
        for w in &compiled.warnings {
            warn!(warning = %w, "compile");
        }
        self.endpoints = compiled
            .endpoints
            .iter()
            .filter(|e| ifindex_by_endpoint.contains_key(&(e.namespace.clone(), e.name.clone())))
            .map(|e| StatusEndpoint {
                namespace: e.namespace.clone(),
                name: e.name.clone(),
                interface: e.interface.clone(),
                identity: e.identity,
                endpoint_id: e.endpoint_id,
            })
            .collect();
        self.generation = generation;
        self.policies_in_force = count;
        self.generations
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(generation, compiled, cluster);
        Ok(())
    }

    fn write_status(&self) -> anyhow::Result<()> {
        let rejected = self
            .sources
            .rejected()
            .into_iter()
            .map(|(file, error)| Rejected { file, error })
            .collect();
        let status = Status {
            node: &self.settings.node,
            generation: self.generation,
            policies_in_force: self.policies_in_force,
            endpoints: self.endpoints.clone(),
            rejected,
            set_error: self.set_error.clone(),
            attach_errors: self.attach_errors.clone(),
            warnings: self.sources.warnings(),
            datapath: self.datapath.stats().unwrap_or_default(),
            events: self.counters.snapshot(),
        };
        let dir = self.settings.state_dir.join("status");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join(format!("{}.json", self.settings.node));
        let tmp = dir.join(format!(".{}.json.tmp", self.settings.node));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&status)?)
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("rename to {}", path.display()))?;
        Ok(())
    }
}

/// Writes flow records as JSON lines.
async fn flow_log_writer(
    path: PathBuf,
    mut records: tokio::sync::mpsc::Receiver<FlowRecord>,
) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await
        .with_context(|| format!("open flow log {}", path.display()))?;
    let mut out = tokio::io::BufWriter::new(file);
    while let Some(record) = records.recv().await {
        let mut line = serde_json::to_vec(&record)?;
        line.push(b'\n');
        out.write_all(&line)
            .await
            .with_context(|| format!("write flow log {}", path.display()))?;
        if records.is_empty() {
            out.flush().await?;
        }
    }
    out.flush().await?;
    Ok(())
}

/// Runs the agent until SIGINT or SIGTERM. Enforcement stays in the kernel when it stops.
pub async fn run(settings: Settings, mut datapath: Datapath) -> anyhow::Result<()> {
    let span = info_span!("agent", node = %settings.node);
    let _enter = span.enter();
    let generations = Arc::new(RwLock::new(Generations::default()));
    let counters = Arc::new(Counters::default());
    let ring = datapath.take_events()?;
    let (tx, rx) = tokio::sync::mpsc::channel(65_536);
    let reader = tokio::spawn(events::read_ring(
        ring,
        settings.node.clone(),
        generations.clone(),
        counters.clone(),
        tx,
    ));
    let writer = match settings.flow_log.clone() {
        Some(path) => tokio::spawn(flow_log_writer(path, rx)),
        None => tokio::spawn(async move {
            let mut rx = rx;
            while rx.recv().await.is_some() {}
            Ok(())
        }),
    };
    let mut state = Loop {
        settings: settings.clone(),
        datapath,
        sources: Sources::default(),
        generations,
        counters,
        attached: BTreeMap::new(),
        generation: 0,
        policies_in_force: 0,
        endpoints: Vec::new(),
        set_error: None,
        attach_errors: Vec::new(),
    };
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut first = true;
    loop {
        let changed = tokio::task::block_in_place(|| state.sources.poll(&settings.state_dir))?;
        // Interfaces may appear after their manifest: retry while any attach failed.
        if changed || first || !state.attach_errors.is_empty() {
            first = false;
            if let Err(e) = tokio::task::block_in_place(|| state.reconcile()) {
                error!(
                    error = format!("{e:#}"),
                    "reconcile failed; the generation in force stays"
                );
            }
        }
        if let Err(e) = state.write_status() {
            warn!(error = format!("{e:#}"), "status file");
        }
        if reader.is_finished() || writer.is_finished() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll_interval) => {}
            _ = tokio::signal::ctrl_c() => { info!("interrupted; enforcement stays in the kernel"); return Ok(()); }
            _ = sigterm.recv() => { info!("terminated; enforcement stays in the kernel"); return Ok(()); }
        }
    }
    if reader.is_finished() {
        reader.await.context("event reader task")??;
    }
    writer.await.context("flow log task")??;
    Ok(())
}
