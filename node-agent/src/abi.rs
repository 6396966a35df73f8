//! The Rust mirror of `ebpf/vigil.h`: every struct the datapath shares with user space.
//!
//! Field names and order follow the C header exactly, padding is explicit, and sizes are
//! asserted at compile time. `abi/tests.rs` reads the BTF of the compiled object and compares
//! every size and field offset, so a change on one side only fails a test instead of
//! corrupting events or keys. This is the only module with `unsafe`: the `aya::Pod` impls.
//! LPM trie keys are mirrored without their leading `prefixlen` (aya's `lpm_trie::Key` adds it).

/// Map names in the object (pinned by name under the agent's pin directory).
pub mod maps {
    /// Array with one [`super::Config`].
    pub const CONFIG: &str = "vigil_config";
    /// Hash: [`super::EndpointKey`] -> [`super::EndpointValue`].
    pub const ENDPOINTS: &str = "vigil_endpoints";
    /// LPM trie: [`super::IpcacheKeyData`] -> [`super::IpcacheValue`].
    pub const IPCACHE: &str = "vigil_ipcache";
    /// LPM trie: [`super::PolicyKeyData`] -> [`super::PolicyValue`].
    pub const POLICY: &str = "vigil_policy";
    /// LRU hash: [`super::CtKey`] -> [`super::CtValue`].
    pub const CT: &str = "vigil_ct";
    /// Ring buffer of [`super::Event`].
    pub const EVENTS: &str = "vigil_events";
    /// Per-CPU array of u64 counters, indexed by `STAT_*`.
    pub const STATS: &str = "vigil_stats";
}

/// Program names in the object.
pub mod programs {
    /// tc ingress of the host-side veth (the endpoint's egress).
    pub const FROM_ENDPOINT: &str = "vigil_from_endpoint";
    /// tc egress of the host-side veth (the endpoint's ingress).
    pub const TO_ENDPOINT: &str = "vigil_to_endpoint";
    /// A program that passes everything: the benchmark baseline.
    pub const ALLOW_ALL: &str = "vigil_allow_all";
}

/// `VIGIL_EVENT_VERDICT`.
pub const EVENT_VERDICT: u8 = 1;
/// `VIGIL_EVENT_VERSION`: the event layout this agent decodes.
pub const EVENT_VERSION: u8 = 1;
/// `VIGIL_EP_F_FAMILY_KEYED`: the endpoint's decision entries are per IP family.
pub const EP_F_FAMILY_KEYED: u32 = 0x01;
/// `VIGIL_ACT_ALLOW`.
pub const ACT_ALLOW: u8 = 1;
/// `VIGIL_ACT_DENY`.
pub const ACT_DENY: u8 = 2;
/// `VIGIL_VERDICT_FORWARDED`.
pub const VERDICT_FORWARDED: u8 = 1;
/// `VIGIL_VERDICT_DROPPED`.
pub const VERDICT_DROPPED: u8 = 2;
/// `VIGIL_AGG_CONNECTION`.
pub const AGG_CONNECTION: u32 = 0;
/// `VIGIL_AGG_NONE`.
pub const AGG_NONE: u32 = 1;
/// Fixed bits of a policy key before the port (`VIGIL_POLICY_FIXED_BITS`).
pub const POLICY_FIXED_BITS: u32 = 96;
/// Per-CPU statistics slots.
pub const STAT_EVENTS: u32 = 0;
/// Events lost because the ring buffer was full.
pub const STAT_EVENTS_LOST: u32 = 1;
/// Packets seen on endpoint interfaces.
pub const STAT_PACKETS: u32 = 2;
/// Packets dropped by policy.
pub const STAT_DROPS: u32 = 3;
/// Connections created.
pub const STAT_CT_NEW: u32 = 4;
/// Number of statistics slots.
pub const STAT_MAX: u32 = 8;

/// `struct policy_key` without `prefixlen`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolicyKeyData {
    pub slot: u8,
    pub direction: u8,
    pub proto: u8,
    /// 0 = any family; 4 or 6 for endpoints with [`EP_F_FAMILY_KEYED`].
    pub family: u8,
    pub context_be: u32,
    pub peer_id_be: u32,
    pub port_be: u16,
    pub pad1: u16,
}

/// `struct policy_value`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyValue {
    pub action: u8,
    pub staged_action: u8,
    pub flags: u8,
    pub pad0: u8,
    pub proxy_port: u16,
    pub pad1: u16,
    pub rule_id: u32,
    pub staged_rule_id: u32,
    pub trace_id: u32,
}

/// `struct ipcache_key` without `prefixlen`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IpcacheKeyData {
    pub slot: u8,
    pub family: u8,
    pub pad0: [u8; 2],
    pub addr: [u8; 16],
}

/// `struct ipcache_value`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpcacheValue {
    pub identity: u32,
    pub flags: u32,
}

/// `struct endpoint_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    pub ifindex: u32,
    pub slot: u32,
}

/// `struct endpoint_value`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointValue {
    pub endpoint_id: u32,
    pub identity: u32,
    pub context: u32,
    pub flags: u32,
}

/// `struct vigil_config`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub slot: u32,
    pub generation: u32,
    pub aggregation: u32,
    pub pad0: u32,
}

/// `struct ct_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub direction: u8,
    pub family: u8,
    pub pad0: u8,
    pub ifindex: u32,
}

/// `struct ct_value`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtValue {
    pub created_ns: u64,
    pub last_seen_ns: u64,
    pub generation: u32,
    pub rule_id: u32,
    pub staged_rule_id: u32,
    pub trace_id: u32,
    pub peer_identity: u32,
    pub flags: u32,
    pub staged_action: u8,
    pub value_flags: u8,
    pub pad0: u16,
    pub pad1: u32,
}

/// `struct vigil_event`: one verdict from the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub r#type: u8,
    pub version: u8,
    pub direction: u8,
    pub verdict: u8,
    pub drop_reason: u8,
    pub ct_state: u8,
    pub proto: u8,
    pub family: u8,
    pub tcp_flags: u8,
    pub action: u8,
    pub staged_action: u8,
    pub value_flags: u8,
    pub ifindex: u32,
    pub ts_ns: u64,
    pub endpoint_id: u32,
    pub local_identity: u32,
    pub peer_identity: u32,
    pub rule_id: u32,
    pub staged_rule_id: u32,
    pub trace_id: u32,
    pub generation: u32,
    pub pkt_len: u32,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub pad0: u32,
}

const _: () = {
    assert!(size_of::<PolicyKeyData>() == 16);
    assert!(size_of::<PolicyValue>() == 20);
    assert!(size_of::<IpcacheKeyData>() == 20);
    assert!(size_of::<IpcacheValue>() == 8);
    assert!(size_of::<EndpointKey>() == 8);
    assert!(size_of::<EndpointValue>() == 16);
    assert!(size_of::<Config>() == 16);
    assert!(size_of::<CtKey>() == 44);
    assert!(size_of::<CtValue>() == 48);
    assert!(size_of::<Event>() == 96);
};

// SAFETY: every type below is #[repr(C)], made only of integers and integer arrays, with all
// padding spelled out as named fields, so every bit pattern is a valid value and there are no
// uninitialised bytes.
unsafe impl aya::Pod for PolicyKeyData {}
// SAFETY: as above.
unsafe impl aya::Pod for PolicyValue {}
// SAFETY: as above.
unsafe impl aya::Pod for IpcacheKeyData {}
// SAFETY: as above.
unsafe impl aya::Pod for IpcacheValue {}
// SAFETY: as above.
unsafe impl aya::Pod for EndpointKey {}
// SAFETY: as above.
unsafe impl aya::Pod for EndpointValue {}
// SAFETY: as above.
unsafe impl aya::Pod for Config {}
// SAFETY: as above.
unsafe impl aya::Pod for CtKey {}
// SAFETY: as above.
unsafe impl aya::Pod for CtValue {}

impl Event {
    /// Decodes one ring-buffer record, checking its type, version and length.
    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        if bytes.len() < size_of::<Event>() {
            return Err(DecodeError::Short { len: bytes.len() });
        }
        let (kind, version) = (bytes[0], bytes[1]);
        if kind != EVENT_VERDICT || version != EVENT_VERSION {
            return Err(DecodeError::Unknown { kind, version });
        }
        // SAFETY: the length was checked above, Event is plain old data (every bit pattern is
        // valid) and read_unaligned makes no alignment assumption about the ring buffer slot.
        Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
    }
}

/// A ring-buffer record this agent cannot decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than `struct vigil_event`.
    #[error("event record of {len} bytes is shorter than struct vigil_event")]
    Short { len: usize },
    /// Another event type or layout version.
    #[error("unknown event type {kind} version {version}")]
    Unknown { kind: u8, version: u8 },
}

#[cfg(test)]
mod tests;
