//! Encodes a datapath event straight into the protobuf bytes of its `flow.Flow`, from the parts
//! the generation index keeps encoded (endpoint names and labels, rules, traces, log lines): no
//! message tree is built and nothing is cloned, which is most of what converting an event cost.
//! The bytes must decode to exactly what [`super::to_flow`] builds; a test holds them to it.

use prost::encoding::{self, WireType};

use crate::metrics::FlowSummary;

use super::{
    Context, Derived, Event, GenerationIndex, IpAddr, flow, ip_version, layer4, timestamp,
    uuid_bytes,
};

/// `flow.Endpoint.labels`.
pub(super) const ENDPOINT_LABELS: u32 = 4;
/// `vigil.PolicyTrace.enforced` and `.pending`.
pub(super) const TRACE_ENFORCED: u32 = 4;
pub(super) const TRACE_PENDING: u32 = 5;
/// `flow.Flow.policy_log`.
pub(super) const FLOW_POLICY_LOG: u32 = 21006;

fn put_bytes(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    encoding::encode_key(tag, WireType::LengthDelimited, out);
    encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A singular string field (proto3: omitted when empty).
fn put_str(out: &mut Vec<u8>, tag: u32, s: &str) {
    if !s.is_empty() {
        put_bytes(out, tag, s.as_bytes());
    }
}

/// A singular varint field (uint32, or an enum/int32 sign-extended as protobuf does).
fn put_varint(out: &mut Vec<u8>, tag: u32, value: u64) {
    if value != 0 {
        encoding::encode_key(tag, WireType::Varint, out);
        encoding::encode_varint(value, out);
    }
}

fn put_i32(out: &mut Vec<u8>, tag: u32, value: i32) {
    put_varint(out, tag, i64::from(value) as u64);
}

/// `namespace` and `pod_name` of a `flow.Endpoint`.
pub(super) fn endpoint_names(namespace: &str, pod_name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_str(&mut out, 3, namespace);
    put_str(&mut out, 5, pod_name);
    out
}

/// A repeated string field.
pub(super) fn repeated_strings(tag: u32, items: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in items {
        put_bytes(&mut out, tag, s.as_bytes());
    }
    out
}

/// A repeated message field.
pub(super) fn repeated_messages<M: prost::Message>(tag: u32, items: &[M]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in items {
        encoding::message::encode(tag, m, &mut out);
    }
    out
}

/// A `flow.Endpoint` field: ids, then the pre-encoded names and labels.
fn endpoint(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    tag: u32,
    index: Option<&GenerationIndex>,
    ip: IpAddr,
    identity: u32,
    local_id: u32,
) {
    let meta = index.and_then(|i| i.endpoints.get(&ip));
    scratch.clear();
    let id = if local_id != 0 {
        local_id
    } else {
        meta.map_or(0, |m| m.id)
    };
    put_varint(scratch, 1, u64::from(id));
    put_varint(scratch, 2, u64::from(identity));
    if let Some(m) = meta {
        scratch.extend_from_slice(&m.encoded);
    }
    match index.and_then(|i| i.labels_bytes.get(&identity)) {
        Some(labels) if !labels.is_empty() => scratch.extend_from_slice(labels),
        _ if identity == 2 => put_bytes(scratch, ENDPOINT_LABELS, b"reserved:world"),
        _ => {}
    }
    put_bytes(out, tag, scratch);
}

/// What [`encode_flow`] tells besides the bytes.
#[derive(Debug, Clone, Copy)]
pub struct Encoded<'a> {
    /// The flow's time, Unix nanoseconds.
    pub unix_ns: i128,
    /// What `/metrics` counts of it.
    pub summary: FlowSummary<'a>,
}

/// Appends the encoded flow of `event` to `out` (see [`super::to_flow`] for the arguments).
/// `scratch` is working space, reused across calls.
pub fn encode_flow<'a>(
    event: &Event,
    ctx: &Context,
    index: Option<&'a GenerationIndex>,
    seq: u64,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Encoded<'a> {
    let d = Derived::of(event);
    let unix_ns = i128::from(event.ts_ns) + ctx.boot_offset_ns;
    encoding::message::encode(1, &timestamp(unix_ns), out);
    put_i32(out, 2, d.verdict as i32);

    scratch.clear();
    for (tag, ip) in [(1, d.src_ip), (2, d.dst_ip)] {
        match index.and_then(|i| i.endpoints.get(&ip)) {
            Some(m) => put_str(scratch, tag, &m.ip),
            None => put_str(scratch, tag, &ip.to_string()),
        }
    }
    put_i32(scratch, 3, ip_version(event) as i32);
    put_bytes(out, 5, scratch);

    if let Some(l4) = layer4(event) {
        encoding::message::encode(6, &l4, out);
    }
    endpoint(out, scratch, 8, index, d.src_ip, d.src_id, d.src_local);
    endpoint(out, scratch, 9, index, d.dst_ip, d.dst_id, d.dst_local);
    put_i32(out, 10, flow::FlowType::L3L4 as i32);
    put_str(out, 11, &ctx.node);
    encoding::message::encode(
        19,
        &flow::CiliumEventType {
            r#type: d.event_type,
            sub_type: d.sub_type,
        },
        out,
    );
    put_i32(out, 22, d.traffic_direction() as i32);
    put_i32(out, 24, d.observation_point() as i32);
    if d.dropped {
        put_i32(out, 25, i32::from(event.drop_reason));
    }
    encoding::message::encode(26, &d.reply, out);
    encoding::message::encode(
        28,
        &flow::NetworkInterface {
            index: event.ifindex,
            name: String::new(),
        },
        out,
    );
    put_bytes(out, 34, &uuid_bytes(ctx.uuid_prefix, seq));

    let rule = index.and_then(|i| i.rules.get(event.rule_id as usize));
    let staged_rule = index.and_then(|i| i.rules.get(event.staged_rule_id as usize));
    let trace = index.and_then(|i| i.traces.get(event.trace_id as usize));
    if let Some(policy) = rule.and_then(|r| r.policy_bytes.as_ref()) {
        let tag = match (d.ingress, d.dropped) {
            (false, false) => 21001,
            (true, false) => 21002,
            (false, true) => 21004,
            (true, true) => 21005,
        };
        put_bytes(out, tag, policy);
    }
    if let Some(t) = trace {
        out.extend_from_slice(&t.log_bytes);
    }

    scratch.clear();
    if let Some(r) = rule {
        put_bytes(scratch, 1, &r.hit_bytes);
    }
    if let Some(r) = staged_rule {
        put_bytes(scratch, 2, &r.hit_bytes);
    }
    put_i32(scratch, 3, d.pending_action as i32);
    if let Some(t) = trace {
        scratch.extend_from_slice(&t.enforced_bytes);
        scratch.extend_from_slice(&t.pending_bytes);
    }
    put_varint(scratch, 6, u64::from(event.generation));
    put_i32(scratch, 7, d.ct_state as i32);
    put_varint(scratch, 8, u64::from(event.pkt_len));
    put_varint(scratch, 9, u64::from(event.proto));
    put_bytes(out, 900_001, scratch);
    Encoded {
        unix_ns,
        summary: FlowSummary {
            verdict: d.verdict as i32,
            direction: d.traffic_direction() as i32,
            drop_reason: if d.dropped {
                i32::from(event.drop_reason)
            } else {
                0
            },
            decided_by: rule.map(|r| &r.hit),
            pending_decided_by: staged_rule.map(|r| &r.hit),
        },
    }
}
