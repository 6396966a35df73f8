//! The eBPF datapath as seen from user space: load the object, pin its maps and links, attach to
//! endpoint interfaces, and install compiled generations of tables.
//!
//! Everything the kernel holds survives the agent: maps are pinned by name under the node's pin
//! directory, TCX links are pinned per interface and direction, so a restarted agent adopts them
//! (an atomic program replace on the existing link) and enforcement never lapses. A generation is
//! written into the idle slot of every table and switched in by one write of `vigil_config`.
//! This module must not decide policy: it writes what the compiler produced.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{
        Array, HashMap, MapData, PerCpuArray, RingBuf,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{
        LinkOrder, SchedClassifier, TcAttachType,
        links::{FdLink, PinnedLink},
        tc::{SchedClassifierLink, TcAttachOptions},
    },
};
use vigil_policy::{Compiled, DecisionEntry};

use crate::{
    abi::{
        self, Config, CtKey, CtValue, EndpointKey, EndpointValue, IpcacheKeyData, IpcacheValue,
        PolicyKeyData, PolicyValue,
    },
    sys,
};

/// The compiled datapath object, built from `ebpf/vigil.bpf.c` by the build script.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vigil.bpf.o"));

/// How long the previous generation's entries stay after a switch, so packets already past the
/// config lookup finish against the tables they started with.
const GRACE: Duration = Duration::from_millis(50);

/// Load-time options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directory (on a bpffs) holding this node's pinned maps and links.
    pub pin_dir: PathBuf,
    /// Ring buffer size in bytes (a power of two, multiple of the page size); `None` keeps the
    /// object's default, or the size of an already pinned ring buffer.
    pub ring_buffer_bytes: Option<u32>,
    /// `abi::AGG_CONNECTION` or `abi::AGG_NONE`.
    pub aggregation: u32,
}

/// An interface the datapath is attached to: (namespace, name).
pub type Interface = (Option<String>, String);

/// The loaded datapath of one node.
#[derive(Debug)]
pub struct Datapath {
    ebpf: Ebpf,
    options: Options,
    /// Entries of the generation in force, as installed (counting an LPM trie in the kernel
    /// walks it key by key; we know what we wrote).
    installed: Occupancy,
}

/// Entries of the datapath's maps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Occupancy {
    /// Local endpoints of the generation in force.
    pub endpoints: u64,
    /// Identity (ipcache) prefixes of the generation in force.
    pub ipcache: u64,
    /// Decision-table entries of the generation in force.
    pub policy: u64,
}

/// One map's entries against its capacity, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapUse {
    /// The map's name without the `vigil_` prefix.
    pub map: &'static str,
    pub entries: u64,
    pub capacity: u64,
}

/// Counters kept by the datapath, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Events written to the ring buffer.
    pub events: u64,
    /// Events lost because the ring buffer was full.
    pub events_lost: u64,
    /// Packets seen on endpoint interfaces.
    pub packets: u64,
    /// Packets dropped by policy.
    pub drops: u64,
    /// Connections created in conntrack.
    pub ct_new: u64,
}

impl Datapath {
    /// Loads the object, reusing the maps already pinned in `options.pin_dir`.
    pub fn open(options: Options) -> anyhow::Result<Datapath> {
        ensure_bpffs(&options.pin_dir)?;
        std::fs::create_dir_all(options.pin_dir.join("links"))
            .with_context(|| format!("create pin directory {}", options.pin_dir.display()))?;
        let mut loader = EbpfLoader::new();
        loader.default_map_pin_directory(&options.pin_dir);
        let events_pinned = options.pin_dir.join(abi::maps::EVENTS).exists();
        if let (Some(bytes), false) = (options.ring_buffer_bytes, events_pinned) {
            loader.map_max_entries(abi::maps::EVENTS, bytes);
        }
        let mut ebpf = loader.load(OBJECT).with_context(|| {
            format!(
                "load the eBPF datapath with maps pinned in {}",
                options.pin_dir.display()
            )
        })?;
        for name in [
            abi::programs::FROM_ENDPOINT,
            abi::programs::TO_ENDPOINT,
            abi::programs::ALLOW_ALL,
        ] {
            let program: &mut SchedClassifier = ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing from the object"))?
                .try_into()
                .with_context(|| format!("program {name} is not a tc classifier"))?;
            program
                .load()
                .with_context(|| format!("verifier rejected program {name}"))?;
        }
        let mut datapath = Datapath {
            ebpf,
            options,
            installed: Occupancy::default(),
        };
        datapath.set_aggregation()?;
        Ok(datapath)
    }

    fn set_aggregation(&mut self) -> anyhow::Result<()> {
        let mut config = self.config()?;
        config.aggregation = self.options.aggregation;
        self.config_map()?
            .set(0, config, 0)
            .context("write vigil_config")?;
        Ok(())
    }

    fn config_map(&mut self) -> anyhow::Result<Array<&mut MapData, Config>> {
        Array::try_from(
            self.ebpf
                .map_mut(abi::maps::CONFIG)
                .context("map vigil_config missing")?,
        )
        .context("open vigil_config")
    }

    /// The configuration in force: active slot, generation, aggregation.
    pub fn config(&mut self) -> anyhow::Result<Config> {
        self.config_map()?.get(&0, 0).context("read vigil_config")
    }

    /// A program of the object, for `BPF_PROG_TEST_RUN`.
    pub fn program(&mut self, name: &str) -> anyhow::Result<&mut SchedClassifier> {
        self.ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()
            .with_context(|| format!("program {name} is not a tc classifier"))
    }

    /// Attaches both programs to `ifname` (in `netns`), adopting pinned links from an earlier
    /// agent by replacing their program atomically. Returns the interface's ifindex.
    pub fn attach(&mut self, netns: Option<&str>, ifname: &str) -> anyhow::Result<u32> {
        let links_dir = self.options.pin_dir.join("links");
        let mut ifindex = 0;
        for (program_name, attach_type, dir) in [
            (
                abi::programs::FROM_ENDPOINT,
                TcAttachType::Ingress,
                "ingress",
            ),
            (abi::programs::TO_ENDPOINT, TcAttachType::Egress, "egress"),
        ] {
            let pin = links_dir.join(link_pin_name(netns, ifname, dir));
            let program = self.program(program_name)?;
            ifindex = sys::run_in(netns, || attach_one(program, &pin, ifname, attach_type))?
                .with_context(|| {
                    format!(
                        "attach {program_name} to {ifname} tc {dir} (netns {})",
                        netns.unwrap_or("-")
                    )
                })?;
        }
        Ok(ifindex)
    }

    /// Detaches from every pinned interface not in `keep` and removes those pins.
    pub fn detach_except(&mut self, keep: &BTreeSet<Interface>) -> anyhow::Result<Vec<String>> {
        let keep: BTreeSet<String> = keep
            .iter()
            .flat_map(|(ns, ifname)| {
                ["ingress", "egress"].map(|dir| link_pin_name(ns.as_deref(), ifname, dir))
            })
            .collect();
        let links_dir = self.options.pin_dir.join("links");
        let mut removed = Vec::new();
        for entry in std::fs::read_dir(&links_dir)
            .with_context(|| format!("list {}", links_dir.display()))?
        {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if keep.contains(&name) {
                continue;
            }
            // Unpinning drops the last reference: the kernel detaches the link.
            std::fs::remove_file(entry.path()).with_context(|| format!("unpin link {name}"))?;
            removed.push(name);
        }
        Ok(removed)
    }

    /// Installs `compiled` as the next generation and switches to it. `ifindex_of` maps each local
    /// endpoint to its attached interface index. Returns the new generation number.
    pub fn install(
        &mut self,
        compiled: &Compiled,
        ifindex_of: &dyn Fn(&str, &str) -> Option<u32>,
    ) -> anyhow::Result<u32> {
        let current = self.config()?;
        let next_slot = (current.slot ^ 1) as u8;
        let generation = current.generation.wrapping_add(1).max(1);

        // The idle slot may hold leftovers of a crash mid-install: clear it first.
        self.purge_slot(next_slot)?;
        let mut installed_endpoints = 0u64;

        {
            let mut endpoints: HashMap<&mut MapData, EndpointKey, EndpointValue> =
                HashMap::try_from(
                    self.ebpf
                        .map_mut(abi::maps::ENDPOINTS)
                        .context("map vigil_endpoints missing")?,
                )?;
            for ep in &compiled.endpoints {
                let Some(ifindex) = ifindex_of(&ep.namespace, &ep.name) else {
                    continue;
                };
                installed_endpoints += 1;
                let key = EndpointKey {
                    ifindex,
                    slot: u32::from(next_slot),
                };
                let value = EndpointValue {
                    endpoint_id: ep.endpoint_id,
                    identity: ep.identity,
                    context: ep.context,
                    flags: ep.flags(),
                };
                endpoints
                    .insert(key, value, 0)
                    .with_context(|| format!("write endpoint {}/{}", ep.namespace, ep.name))?;
            }
        }
        {
            let mut ipcache: LpmTrie<&mut MapData, IpcacheKeyData, IpcacheValue> =
                LpmTrie::try_from(
                    self.ebpf
                        .map_mut(abi::maps::IPCACHE)
                        .context("map vigil_ipcache missing")?,
                )?;
            for entry in &compiled.ipcache {
                let (family, addr) = match entry.net.addr() {
                    IpAddr::V4(a) => {
                        let mut addr = [0u8; 16];
                        addr[..4].copy_from_slice(&a.octets());
                        (4, addr)
                    }
                    IpAddr::V6(a) => (6, a.octets()),
                };
                let data = IpcacheKeyData {
                    slot: next_slot,
                    family,
                    pad0: [0; 2],
                    addr,
                };
                let key = Key::new(32 + u32::from(entry.net.prefix_len()), data);
                ipcache
                    .insert(
                        &key,
                        IpcacheValue {
                            identity: entry.identity,
                            flags: 0,
                        },
                        0,
                    )
                    .with_context(|| {
                        format!("write ipcache {} -> {}", entry.net, entry.identity)
                    })?;
            }
        }
        {
            let mut policy: LpmTrie<&mut MapData, PolicyKeyData, PolicyValue> = LpmTrie::try_from(
                self.ebpf
                    .map_mut(abi::maps::POLICY)
                    .context("map vigil_policy missing")?,
            )?;
            for entry in &compiled.decisions {
                let (key, value) = policy_entry(next_slot, entry);
                policy.insert(&key, value, 0).with_context(|| {
                    format!(
                        "write decision context {} dir {} proto {} peer {} port {}/{} (is the table full?)",
                        entry.context, entry.direction, entry.proto, entry.peer, entry.port, entry.port_prefix_len
                    )
                })?;
            }
        }

        let config = Config {
            slot: u32::from(next_slot),
            generation,
            aggregation: self.options.aggregation,
            pad0: 0,
        };
        self.config_map()?
            .set(0, config, 0)
            .context("switch vigil_config to the new generation")?;
        self.installed = Occupancy {
            endpoints: installed_endpoints,
            ipcache: compiled.ipcache.len() as u64,
            policy: compiled.decisions.len() as u64,
        };
        std::thread::sleep(GRACE);
        self.purge_slot(next_slot ^ 1)?;
        Ok(generation)
    }

    /// Each map's entries against its capacity: the generation in force as installed, and
    /// conntrack counted in the kernel when `conntrack` is set (a walk of up to its capacity in
    /// keys; callers do it rarely).
    pub fn occupancy(&self, conntrack: Option<u64>) -> anyhow::Result<Vec<MapUse>> {
        let capacity = |name: &str| -> anyhow::Result<u64> {
            let map = self
                .ebpf
                .map(name)
                .with_context(|| format!("map {name} missing"))?;
            let data: &MapData = match map {
                aya::maps::Map::Array(m)
                | aya::maps::Map::HashMap(m)
                | aya::maps::Map::LpmTrie(m)
                | aya::maps::Map::LruHashMap(m)
                | aya::maps::Map::RingBuf(m)
                | aya::maps::Map::PerCpuArray(m) => m,
                _ => anyhow::bail!("map {name}: unexpected type"),
            };
            Ok(u64::from(
                data.info()
                    .with_context(|| format!("map {name}: info"))?
                    .max_entries(),
            ))
        };
        let i = self.installed;
        let mut out = vec![
            MapUse {
                map: "endpoints",
                entries: i.endpoints,
                capacity: capacity(abi::maps::ENDPOINTS)?,
            },
            MapUse {
                map: "ipcache",
                entries: i.ipcache,
                capacity: capacity(abi::maps::IPCACHE)?,
            },
            MapUse {
                map: "policy",
                entries: i.policy,
                capacity: capacity(abi::maps::POLICY)?,
            },
        ];
        if let Some(entries) = conntrack {
            out.push(MapUse {
                map: "ct",
                entries,
                capacity: capacity(abi::maps::CT)?,
            });
        }
        Ok(out)
    }

    /// Connections in the conntrack map, counted key by key.
    pub fn conntrack_entries(&self) -> anyhow::Result<u64> {
        let map: HashMap<&MapData, CtKey, CtValue> = HashMap::try_from(
            self.ebpf
                .map(abi::maps::CT)
                .context("map vigil_ct missing")?,
        )
        .context("open vigil_ct")?;
        let mut n = 0u64;
        for key in map.keys() {
            // A key deleted while we walk ends the walk early; the count is a gauge.
            if key.is_err() {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Removes every table entry of `slot`.
    fn purge_slot(&mut self, slot: u8) -> anyhow::Result<()> {
        {
            let mut map: HashMap<&mut MapData, EndpointKey, EndpointValue> = HashMap::try_from(
                self.ebpf
                    .map_mut(abi::maps::ENDPOINTS)
                    .context("map vigil_endpoints missing")?,
            )?;
            let mut stale = Vec::new();
            for key in map.keys() {
                let key = key.context("list vigil_endpoints")?;
                if key.slot == u32::from(slot) {
                    stale.push(key);
                }
            }
            for key in stale {
                map.remove(&key).context("purge endpoint entry")?;
            }
        }
        purge_lpm::<IpcacheKeyData, IpcacheValue>(&mut self.ebpf, abi::maps::IPCACHE, |k| {
            k.slot == slot
        })?;
        purge_lpm::<PolicyKeyData, PolicyValue>(&mut self.ebpf, abi::maps::POLICY, |k| {
            k.slot == slot
        })?;
        Ok(())
    }

    /// Datapath counters summed over CPUs.
    pub fn stats(&self) -> anyhow::Result<Stats> {
        let map: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(
            self.ebpf
                .map(abi::maps::STATS)
                .context("map vigil_stats missing")?,
        )?;
        let sum = |slot: u32| -> anyhow::Result<u64> {
            Ok(map
                .get(&slot, 0)
                .with_context(|| format!("read stats slot {slot}"))?
                .iter()
                .sum())
        };
        Ok(Stats {
            events: sum(abi::STAT_EVENTS)?,
            events_lost: sum(abi::STAT_EVENTS_LOST)?,
            packets: sum(abi::STAT_PACKETS)?,
            drops: sum(abi::STAT_DROPS)?,
            ct_new: sum(abi::STAT_CT_NEW)?,
        })
    }

    /// Takes the event ring buffer (once) for the reader task.
    pub fn take_events(&mut self) -> anyhow::Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(abi::maps::EVENTS)
            .context("ring buffer already taken")?;
        RingBuf::try_from(map).context("open the event ring buffer")
    }
}

/// Removes every entry of the LPM trie `name` whose key data is `stale`.
fn purge_lpm<K: aya::Pod, V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &str,
    stale: impl Fn(&K) -> bool,
) -> anyhow::Result<()> {
    let mut map: LpmTrie<&mut MapData, K, V> = LpmTrie::try_from(
        ebpf.map_mut(name)
            .with_context(|| format!("map {name} missing"))?,
    )?;
    let mut keys = Vec::new();
    for key in map.keys() {
        let key = key.with_context(|| format!("list {name}"))?;
        if stale(&key.data()) {
            keys.push(key);
        }
    }
    for key in keys {
        map.remove(&key)
            .with_context(|| format!("purge an entry of {name}"))?;
    }
    Ok(())
}

/// The decision-table key and value for one compiled entry in `slot`.
pub fn policy_entry(slot: u8, entry: &DecisionEntry) -> (Key<PolicyKeyData>, PolicyValue) {
    let data = PolicyKeyData {
        slot,
        direction: entry.direction,
        proto: entry.proto,
        family: entry.family,
        context_be: entry.context.to_be(),
        peer_id_be: entry.peer.to_be(),
        port_be: entry.port.to_be(),
        pad1: 0,
    };
    let v = &entry.value;
    let value = PolicyValue {
        action: v.action,
        staged_action: v.staged_action,
        flags: v.flags,
        pad0: 0,
        proxy_port: v.proxy_port,
        pad1: 0,
        rule_id: v.rule_id,
        staged_rule_id: v.staged_rule_id,
        trace_id: v.trace_id,
    };
    (
        Key::new(
            abi::POLICY_FIXED_BITS + u32::from(entry.port_prefix_len),
            data,
        ),
        value,
    )
}

/// The pin file of one interface's link: the namespace is part of the name because interface
/// names repeat across namespaces.
fn link_pin_name(netns: Option<&str>, ifname: &str, dir: &str) -> String {
    match netns {
        Some(ns) => format!(
            "{}_{ifname}_{dir}",
            sys::path_of(ns)
                .file_name()
                .map_or(ns.into(), |n| n.to_string_lossy())
        ),
        None => format!("{ifname}_{dir}"),
    }
}

/// Attach (or adopt) one program on one interface; runs inside the interface's namespace.
fn attach_one(
    program: &mut SchedClassifier,
    pin: &Path,
    ifname: &str,
    attach_type: TcAttachType,
) -> anyhow::Result<u32> {
    let ifindex = sys::ifindex(ifname).with_context(|| format!("interface {ifname} not found"))?;
    if pin.exists() {
        match PinnedLink::from_pin(pin) {
            Ok(old) => {
                let link = SchedClassifierLink::try_from(FdLink::from(old))
                    .context("pinned link is not a tc link")?;
                // A link whose interface vanished cannot be updated: drop it and attach anew.
                if program.attach_to_link(link).is_ok() {
                    return Ok(ifindex);
                }
                std::fs::remove_file(pin)
                    .with_context(|| format!("remove stale link pin {}", pin.display()))?;
            }
            Err(e) => bail!("open pinned link {}: {e}", pin.display()),
        }
    }
    let id = program
        .attach_with_options(
            ifname,
            attach_type,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .context("tcx attach")?;
    let link = program.take_link(id)?;
    let fd_link: FdLink = link.try_into().context("tcx link has no fd")?;
    fd_link
        .pin(pin)
        .with_context(|| format!("pin link at {}", pin.display()))?;
    Ok(ifindex)
}

/// Makes sure `dir` is on a bpffs, mounting one at /sys/fs/bpf when nothing is mounted there.
fn ensure_bpffs(dir: &Path) -> anyhow::Result<()> {
    const BPF_FS_MAGIC: u64 = 0xcafe4a11;
    let root = Path::new("/sys/fs/bpf");
    if dir.starts_with(root) && !is_fs(root, BPF_FS_MAGIC) {
        let status = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
            .status()
            .context("run mount -t bpf")?;
        if !status.success() {
            bail!("/sys/fs/bpf is not a bpffs and mounting one failed");
        }
    }
    let mut probe = dir.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    if !is_fs(&probe, BPF_FS_MAGIC) {
        bail!(
            "{} is not on a bpffs (mount -t bpf bpf DIR, or pass --bpffs)",
            dir.display()
        );
    }
    Ok(())
}

fn is_fs(path: &Path, magic: u64) -> bool {
    sys::statfs_type(path).is_some_and(|t| t == magic)
}

/// Removes a node's pinned links (detaching the programs) and maps.
pub fn uninstall(pin_dir: &Path) -> anyhow::Result<()> {
    if !pin_dir.exists() {
        return Ok(());
    }
    std::fs::remove_dir_all(pin_dir).with_context(|| format!("remove {}", pin_dir.display()))?;
    tracing::info!(dir = %pin_dir.display(), "uninstalled: links detached, maps unpinned");
    Ok(())
}
