//! The agent's control loop: watch the state directory, compile, attach, install, report.
//!
//! One reconcile = the manifests in force -> `PolicySet` -> `compile` for this node -> attach to
//! new local endpoint interfaces -> install the generation -> detach from interfaces that are
//! gone -> remember the generation's tables for labelling events -> write the status file.
//! A rejected manifest or an invalid set leaves the generation in force untouched.
//!
//! Around the loop: the event reader and the observer (see `events`), the gRPC observer on
//! `--listen`, `/metrics` on `--metrics`, and the flow log writer. The loop also turns the
//! datapath's `events_lost` counter into `PERF_EVENT_RING_BUFFER` lost events. A listener that
//! cannot bind is logged and reported in the status file; enforcement goes on without it.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use anyhow::Context as _;
use serde::Serialize;
use tracing::{Instrument as _, error, info, info_span, warn};
use vigil_policy::{PolicySet, compile};

use crate::{
    datapath::{Datapath, Interface, Stats},
    events::{self, CounterSnapshot, Counters, Generations},
    flowlog::FlowRecord,
    flows,
    metrics::Gauges,
    observer::{self, Hub},
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
    /// Where the Hubble-compatible Observer gRPC service listens.
    pub listen: SocketAddr,
    /// Where `GET /metrics` is served, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Capacity of the in-memory flow ring.
    pub max_flows: usize,
    /// Capacity of the queue between the ring-buffer reader and the observer, in events.
    pub events_queue: usize,
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
    /// The observer's gRPC address (the port actually bound, also for `--listen ...:0`).
    observer: Option<String>,
    /// The `/metrics` address actually bound.
    metrics: Option<String>,
    /// Why a listener could not start.
    listener_errors: Vec<String>,
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
    /// Local endpoint interfaces not attached at the last reconcile.
    unattached: Vec<Interface>,
    /// No attach retry before this instant (a persistent failure must not spin).
    retry_after: std::time::Instant,
    hub: Arc<Hub>,
    gauges: Arc<Mutex<Gauges>>,
    lost_reported: Option<u64>,
    /// The last conntrack count and when it was taken (a key walk: see [`ct_count_every`]).
    conntrack: Option<(u64, std::time::Instant)>,
    observer_addr: Option<String>,
    metrics_addr: Option<String>,
    listener_errors: Vec<String>,
}

/// The least time between two attempts to attach to interfaces that failed.
const ATTACH_RETRY: Duration = Duration::from_secs(2);

/// How often `/metrics` recounts the conntrack map: every second while it is small (a walk of
/// a few thousand keys takes milliseconds), every 10 s once it is large.
fn ct_count_every(last: u64) -> Duration {
    if last < 4096 {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(10)
    }
}

impl Loop {
    /// Whether an interface that could not be attached has appeared since (checked no more
    /// often than [`ATTACH_RETRY`]), so a reconcile may now attach it.
    fn unattached_appeared(&self) -> bool {
        if self.unattached.is_empty() || std::time::Instant::now() < self.retry_after {
            return false;
        }
        self.unattached.iter().any(|(netns, ifname)| {
            sys::run_in(netns.as_deref(), || sys::ifindex(ifname)).is_ok_and(|r| r.is_ok())
        })
    }

    /// Reports growth of the datapath's `events_lost` counter as a lost-event notice, and
    /// refreshes the gauges `/metrics` shows.
    fn sample_datapath(&mut self) -> Stats {
        let stats = self.datapath.stats().unwrap_or_default();
        // The first sample is the baseline: losses of an earlier agent on adopted maps are not ours.
        let before = *self.lost_reported.get_or_insert(stats.events_lost);
        if stats.events_lost > before {
            self.hub.push_lost(
                vigil_proto::flow::LostEventSource::PerfEventRingBuffer,
                stats.events_lost - before,
            );
        }
        self.lost_reported = Some(stats.events_lost);
        let now = std::time::Instant::now();
        if self
            .conntrack
            .is_none_or(|(n, at)| now.duration_since(at) >= ct_count_every(n))
        {
            match self.datapath.conntrack_entries() {
                Ok(n) => self.conntrack = Some((n, now)),
                Err(e) => warn!(error = format!("{e:#}"), "count conntrack entries"),
            }
        }
        let maps = self
            .datapath
            .occupancy(self.conntrack.map(|(n, _)| n))
            .unwrap_or_else(|e| {
                warn!(error = format!("{e:#}"), "read map capacities");
                Vec::new()
            });
        let mut g = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        g.generation = self.generation;
        g.datapath = stats;
        g.maps = maps;
        stats
    }

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
        self.unattached.clear();
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
                    self.unattached.push(iface.clone());
                }
            }
        }
        self.attached.retain(|iface, _| wanted.contains_key(iface));
        self.retry_after = std::time::Instant::now() + ATTACH_RETRY;

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
            .insert(generation, &compiled, &cluster);
        Ok(())
    }

    fn write_status(&mut self) -> anyhow::Result<()> {
        let datapath = self.sample_datapath();
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
            datapath,
            events: self.counters.snapshot(),
            observer: self.observer_addr.clone(),
            metrics: self.metrics_addr.clone(),
            listener_errors: self.listener_errors.clone(),
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

/// Writes every flow of the ring as a JSON line, following the ring like a client does.
async fn flow_log_writer(
    path: PathBuf,
    hub: Arc<Hub>,
    counters: Arc<Counters>,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("open flow log {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut wake = hub.subscribe();
    let (mut cursor, mut batch) = (crate::ring::Cursor::default(), Vec::new());
    loop {
        wake.borrow_and_update();
        let lost = hub.read_from(&mut cursor, 1024, &mut batch);
        if lost > 0 {
            counters
                .flow_log_lost
                .fetch_add(lost, std::sync::atomic::Ordering::Relaxed);
            warn!(lost, "the flow log fell behind the flow ring");
        }
        if batch.is_empty() {
            out.flush()
                .with_context(|| format!("write flow log {}", path.display()))?;
            if wake.changed().await.is_err() {
                return Ok(());
            }
            continue;
        }
        for entry in batch.drain(..) {
            if let crate::ring::Entry::Flow(stored) = &*entry
                && let Some(f) = stored.decode()
            {
                let mut line = serde_json::to_vec(&FlowRecord::from_flow(&f))?;
                line.push(b'\n');
                out.write_all(&line)
                    .with_context(|| format!("write flow log {}", path.display()))?;
            }
        }
    }
}

/// Binds a listener, recording the address bound or the error.
async fn bind(
    what: &str,
    addr: SocketAddr,
    errors: &mut Vec<String>,
) -> Option<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Some(l),
        Err(e) => {
            let message = format!("{what}: listen on {addr}: {e}");
            error!(error = %message, "listener not started; enforcement goes on");
            errors.push(message);
            None
        }
    }
}

/// Runs the agent until SIGINT or SIGTERM. Enforcement stays in the kernel when it stops.
pub async fn run(settings: Settings, mut datapath: Datapath) -> anyhow::Result<()> {
    let span = info_span!("agent", node = %settings.node);
    let _enter = span.enter();
    let generations = Arc::new(RwLock::new(Generations::default()));
    let counters = Arc::new(Counters::default());
    let hub = Arc::new(Hub::new(&settings.node, settings.max_flows));
    let gauges = Arc::new(Mutex::new(Gauges::default()));
    let ring = datapath.take_events()?;
    let (tx, rx) = tokio::sync::mpsc::channel(settings.events_queue.max(1));
    let queue_probe = tx.clone();
    let reader =
        tokio::spawn(events::read_ring(ring, counters.clone(), tx).instrument(span.clone()));
    let ctx = flows::Context {
        node: settings.node.clone(),
        boot_offset_ns: sys::boot_to_unix_offset_ns(),
        uuid_prefix: {
            use std::hash::{BuildHasher as _, Hasher as _};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write(settings.node.as_bytes());
            h.finish()
        },
    };
    tokio::spawn(
        events::observe(rx, ctx, generations.clone(), counters.clone(), hub.clone())
            .instrument(span.clone()),
    );
    let writer = match settings.flow_log.clone() {
        Some(path) => tokio::spawn(
            flow_log_writer(path, hub.clone(), counters.clone()).instrument(span.clone()),
        ),
        None => tokio::spawn(std::future::pending()),
    };
    let mut listener_errors = Vec::new();
    let mut observer_addr = None;
    if let Some(listener) = bind("observer", settings.listen, &mut listener_errors).await {
        let addr = observer::local_addr(&listener).unwrap_or(settings.listen);
        info!(%addr, "observer gRPC listening");
        observer_addr = Some(addr.to_string());
        let service = observer::Service::new(hub.clone(), generations.clone(), addr.to_string());
        tokio::spawn(
            async move {
                if let Err(e) = observer::serve(listener, service).await {
                    error!(error = format!("{e:#}"), "observer gRPC server stopped");
                }
            }
            .instrument(span.clone()),
        );
    }
    let mut metrics_addr = None;
    if let Some(addr) = settings.metrics
        && let Some(listener) = bind("metrics", addr, &mut listener_errors).await
    {
        let addr = observer::local_addr(&listener).unwrap_or(addr);
        info!(%addr, "metrics listening");
        metrics_addr = Some(addr.to_string());
        let (hub, gauges) = (hub.clone(), gauges.clone());
        tokio::spawn(
            async move {
                let render = move || {
                    let sampled = gauges.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let g = Gauges {
                        generation: sampled.generation,
                        datapath: sampled.datapath,
                        queue_len: (queue_probe.max_capacity() - queue_probe.capacity()) as u64,
                        maps: sampled.maps,
                        ..hub.gauges()
                    };
                    hub.metrics.render(&g)
                };
                if let Err(e) = crate::metrics::serve(listener, render).await {
                    error!(error = format!("{e:#}"), "metrics server stopped");
                }
            }
            .instrument(span.clone()),
        );
    }
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
        unattached: Vec::new(),
        retry_after: std::time::Instant::now(),
        hub,
        gauges,
        lost_reported: None,
        conntrack: None,
        observer_addr,
        metrics_addr,
        listener_errors,
    };
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut first = true;
    loop {
        let changed = tokio::task::block_in_place(|| state.sources.poll(&settings.state_dir))?;
        // Interfaces may appear after their manifest: reconcile again when one does.
        if changed || first || state.unattached_appeared() {
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
