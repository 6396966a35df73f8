//! The direct proto3 JSON encoder of `observer.GetFlowsResponse`: walks the prost structs and
//! writes JSON text into a `String`, with no re-encoding, no `DynamicMessage` and no serde.
//!
//! Its output is byte for byte the output of the reflection path (`super::to_json` with
//! `use_proto_field_name` and `skip_default_fields`), which the differential tests in
//! `super::tests` check:
//!
//! - fields in field-number order, under their proto names (`IP`, `Type`, `ipVersion`, `TCP`…);
//! - scalars without presence omitted at their default (0, `false`, `""`, enum value 0, empty
//!   lists); message fields, oneof members, wrappers and proto3 `optional` written whenever set;
//! - enums by name (an unknown number as a bare number), 64-bit integers as strings;
//! - wrappers (`BoolValue`, `Int32Value`) as bare values, Timestamps in RFC 3339 through
//!   `prost_types::Timestamp`'s `Display` (the one prost-reflect uses);
//! - strings escaped as serde_json escapes them (`\"`, `\\`, `\b \t \n \f \r`, other control
//!   characters as lowercase `\u00xx`, everything else verbatim).
//!
//! Two inputs are left to the reflection path ([`Unsupported`]): a `google.protobuf.Any` in
//! `Flow.extensions` (its JSON needs the type registry) and a Timestamp outside years 1–9999
//! (which the reflection path rejects with an error).

use std::fmt::Write as _;

use prost_types::Timestamp;

use crate::{
    flow,
    observer::{self, get_flows_response::ResponseTypes},
    relay, vigil,
};

/// A value this encoder leaves to the reflection path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// `Flow.extensions` is set (a `google.protobuf.Any`).
    Any,
    /// A Timestamp outside 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z.
    TimestampOutOfRange,
}

type Result = std::result::Result<(), Unsupported>;

/// Appends `response` as one line of proto3 JSON to `out`. On `Err`, `out` holds a partial
/// object: callers truncate it back (see [`super::flows_response_to_json`]).
pub fn write_get_flows_response(out: &mut String, response: &observer::GetFlowsResponse) -> Result {
    let mut o = Obj::open(out);
    match &response.response_types {
        Some(ResponseTypes::Flow(f)) => o.msg("flow", f, write_flow)?,
        Some(ResponseTypes::NodeStatus(n)) => o.msg("node_status", n, write_node_status)?,
        Some(ResponseTypes::LostEvents(l)) => o.msg("lost_events", l, write_lost_event)?,
        None => {}
    }
    o.str("node_name", &response.node_name);
    o.opt_msg("time", response.time.as_ref(), write_timestamp)?;
    o.close();
    Ok(())
}

/// `response` as one line of proto3 JSON, or the value that needs the reflection path.
pub fn get_flows_response_to_json(
    response: &observer::GetFlowsResponse,
) -> std::result::Result<String, Unsupported> {
    let mut out = String::with_capacity(2048);
    write_get_flows_response(&mut out, response)?;
    Ok(out)
}

fn write_flow(out: &mut String, f: &flow::Flow) -> Result {
    let mut o = Obj::open(out);
    o.opt_msg("time", f.time.as_ref(), write_timestamp)?;
    o.enumeration("verdict", f.verdict, |v| {
        flow::Verdict::try_from(v).ok().map(|e| e.as_str_name())
    });
    o.opt_msg("ethernet", f.ethernet.as_ref(), write_ethernet)?;
    o.opt_msg("IP", f.ip.as_ref(), write_ip)?;
    o.opt_msg("l4", f.l4.as_ref(), write_layer4)?;
    o.opt_msg("source", f.source.as_ref(), write_endpoint)?;
    o.opt_msg("destination", f.destination.as_ref(), write_endpoint)?;
    o.enumeration("Type", f.r#type, |v| {
        flow::FlowType::try_from(v).ok().map(|e| e.as_str_name())
    });
    o.str("node_name", &f.node_name);
    o.strs("source_names", &f.source_names);
    o.strs("destination_names", &f.destination_names);
    o.opt_msg("l7", f.l7.as_ref(), write_layer7)?;
    o.opt_msg("event_type", f.event_type.as_ref(), write_cilium_event_type)?;
    o.opt_msg("source_service", f.source_service.as_ref(), write_service)?;
    o.opt_msg(
        "destination_service",
        f.destination_service.as_ref(),
        write_service,
    )?;
    o.enumeration("traffic_direction", f.traffic_direction, |v| {
        flow::TrafficDirection::try_from(v)
            .ok()
            .map(|e| e.as_str_name())
    });
    o.u32("policy_match_type", f.policy_match_type);
    o.enumeration("trace_observation_point", f.trace_observation_point, |v| {
        flow::TraceObservationPoint::try_from(v)
            .ok()
            .map(|e| e.as_str_name())
    });
    o.enumeration("drop_reason_desc", f.drop_reason_desc, |v| {
        flow::DropReason::try_from(v).ok().map(|e| e.as_str_name())
    });
    if let Some(reply) = f.is_reply {
        o.key("is_reply")
            .push_str(if reply { "true" } else { "false" });
    }
    o.opt_msg("interface", f.interface.as_ref(), write_interface)?;
    o.str("uuid", &f.uuid);
    o.msgs("egress_allowed_by", &f.egress_allowed_by, write_policy)?;
    o.msgs("ingress_allowed_by", &f.ingress_allowed_by, write_policy)?;
    o.msgs("egress_denied_by", &f.egress_denied_by, write_policy)?;
    o.msgs("ingress_denied_by", &f.ingress_denied_by, write_policy)?;
    o.strs("policy_log", &f.policy_log);
    if f.extensions.is_some() {
        return Err(Unsupported::Any);
    }
    o.opt_msg("vigil_trace", f.vigil_trace.as_ref(), write_policy_trace)?;
    o.opt_msg("vigil_position", f.vigil_position.as_ref(), write_position)?;
    o.close();
    Ok(())
}

fn write_ethernet(out: &mut String, e: &flow::Ethernet) -> Result {
    let mut o = Obj::open(out);
    o.str("source", &e.source);
    o.str("destination", &e.destination);
    o.close();
    Ok(())
}

fn write_ip(out: &mut String, ip: &flow::Ip) -> Result {
    let mut o = Obj::open(out);
    o.str("source", &ip.source);
    o.str("destination", &ip.destination);
    o.enumeration("ipVersion", ip.ip_version, |v| {
        flow::IpVersion::try_from(v).ok().map(|e| e.as_str_name())
    });
    o.bool("encrypted", ip.encrypted);
    o.close();
    Ok(())
}

fn write_layer4(out: &mut String, l4: &flow::Layer4) -> Result {
    use flow::layer4::Protocol;
    let mut o = Obj::open(out);
    match &l4.protocol {
        Some(Protocol::Tcp(t)) => o.msg("TCP", t, write_tcp)?,
        Some(Protocol::Udp(u)) => o.msg("UDP", u, |out, u| {
            write_ports(out, u.source_port, u.destination_port)
        })?,
        Some(Protocol::IcmPv4(i)) => {
            o.msg("ICMPv4", i, |out, i| write_icmp(out, i.r#type, i.code))?
        }
        Some(Protocol::IcmPv6(i)) => {
            o.msg("ICMPv6", i, |out, i| write_icmp(out, i.r#type, i.code))?
        }
        Some(Protocol::Sctp(s)) => o.msg("SCTP", s, |out, s| {
            write_ports(out, s.source_port, s.destination_port)
        })?,
        None => {}
    }
    o.close();
    Ok(())
}

fn write_tcp(out: &mut String, t: &flow::Tcp) -> Result {
    let mut o = Obj::open(out);
    o.u32("source_port", t.source_port);
    o.u32("destination_port", t.destination_port);
    o.opt_msg("flags", t.flags.as_ref(), write_tcp_flags)?;
    o.close();
    Ok(())
}

fn write_tcp_flags(out: &mut String, f: &flow::TcpFlags) -> Result {
    let mut o = Obj::open(out);
    o.bool("FIN", f.fin);
    o.bool("SYN", f.syn);
    o.bool("RST", f.rst);
    o.bool("PSH", f.psh);
    o.bool("ACK", f.ack);
    o.bool("URG", f.urg);
    o.bool("ECE", f.ece);
    o.bool("CWR", f.cwr);
    o.bool("NS", f.ns);
    o.close();
    Ok(())
}

/// UDP and SCTP.
fn write_ports(out: &mut String, source_port: u32, destination_port: u32) -> Result {
    let mut o = Obj::open(out);
    o.u32("source_port", source_port);
    o.u32("destination_port", destination_port);
    o.close();
    Ok(())
}

/// ICMPv4 and ICMPv6.
fn write_icmp(out: &mut String, r#type: u32, code: u32) -> Result {
    let mut o = Obj::open(out);
    o.u32("type", r#type);
    o.u32("code", code);
    o.close();
    Ok(())
}

fn write_endpoint(out: &mut String, e: &flow::Endpoint) -> Result {
    let mut o = Obj::open(out);
    o.u32("ID", e.id);
    o.u32("identity", e.identity);
    o.str("namespace", &e.namespace);
    o.strs("labels", &e.labels);
    o.str("pod_name", &e.pod_name);
    o.msgs("workloads", &e.workloads, write_workload)?;
    o.str("cluster_name", &e.cluster_name);
    o.close();
    Ok(())
}

fn write_workload(out: &mut String, w: &flow::Workload) -> Result {
    let mut o = Obj::open(out);
    o.str("name", &w.name);
    o.str("kind", &w.kind);
    o.close();
    Ok(())
}

fn write_service(out: &mut String, s: &flow::Service) -> Result {
    let mut o = Obj::open(out);
    o.str("name", &s.name);
    o.str("namespace", &s.namespace);
    o.close();
    Ok(())
}

fn write_interface(out: &mut String, i: &flow::NetworkInterface) -> Result {
    let mut o = Obj::open(out);
    o.u32("index", i.index);
    o.str("name", &i.name);
    o.close();
    Ok(())
}

fn write_cilium_event_type(out: &mut String, e: &flow::CiliumEventType) -> Result {
    let mut o = Obj::open(out);
    o.i32("type", e.r#type);
    o.i32("sub_type", e.sub_type);
    o.close();
    Ok(())
}

fn write_policy(out: &mut String, p: &flow::Policy) -> Result {
    let mut o = Obj::open(out);
    o.str("name", &p.name);
    o.str("namespace", &p.namespace);
    o.strs("labels", &p.labels);
    o.u64("revision", p.revision);
    o.str("kind", &p.kind);
    o.close();
    Ok(())
}

fn write_layer7(out: &mut String, l7: &flow::Layer7) -> Result {
    use flow::layer7::Record;
    let mut o = Obj::open(out);
    o.enumeration("type", l7.r#type, |v| {
        flow::L7FlowType::try_from(v).ok().map(|e| e.as_str_name())
    });
    o.u64("latency_ns", l7.latency_ns);
    match &l7.record {
        Some(Record::Dns(d)) => o.msg("dns", d, write_dns)?,
        Some(Record::Http(h)) => o.msg("http", h, write_http)?,
        Some(Record::Kafka(k)) => o.msg("kafka", k, write_kafka)?,
        None => {}
    }
    o.close();
    Ok(())
}

fn write_dns(out: &mut String, d: &flow::Dns) -> Result {
    let mut o = Obj::open(out);
    o.str("query", &d.query);
    o.strs("ips", &d.ips);
    o.u32("ttl", d.ttl);
    o.strs("cnames", &d.cnames);
    o.str("observation_source", &d.observation_source);
    o.u32("rcode", d.rcode);
    o.strs("qtypes", &d.qtypes);
    o.strs("rrtypes", &d.rrtypes);
    o.close();
    Ok(())
}

fn write_http(out: &mut String, h: &flow::Http) -> Result {
    let mut o = Obj::open(out);
    o.u32("code", h.code);
    o.str("method", &h.method);
    o.str("url", &h.url);
    o.str("protocol", &h.protocol);
    o.msgs("headers", &h.headers, |out, header: &flow::HttpHeader| {
        let mut o = Obj::open(out);
        o.str("key", &header.key);
        o.str("value", &header.value);
        o.close();
        Ok(())
    })?;
    o.close();
    Ok(())
}

fn write_kafka(out: &mut String, k: &flow::Kafka) -> Result {
    let mut o = Obj::open(out);
    o.i32("error_code", k.error_code);
    o.i32("api_version", k.api_version);
    o.str("api_key", &k.api_key);
    o.i32("correlation_id", k.correlation_id);
    o.str("topic", &k.topic);
    o.close();
    Ok(())
}

fn write_lost_event(out: &mut String, l: &flow::LostEvent) -> Result {
    let mut o = Obj::open(out);
    o.enumeration("source", l.source, |v| {
        flow::LostEventSource::try_from(v)
            .ok()
            .map(|e| e.as_str_name())
    });
    o.u64("num_events_lost", l.num_events_lost);
    if let Some(cpu) = l.cpu {
        push_i64(o.key("cpu"), i64::from(cpu));
    }
    o.opt_msg("first", l.first.as_ref(), write_timestamp)?;
    o.opt_msg("last", l.last.as_ref(), write_timestamp)?;
    o.opt_msg("vigil_position", l.vigil_position.as_ref(), write_position)?;
    o.close();
    Ok(())
}

fn write_node_status(out: &mut String, n: &relay::NodeStatusEvent) -> Result {
    let mut o = Obj::open(out);
    o.enumeration("state_change", n.state_change, |v| {
        relay::NodeState::try_from(v).ok().map(|e| e.as_str_name())
    });
    o.strs("node_names", &n.node_names);
    o.str("message", &n.message);
    o.close();
    Ok(())
}

fn write_policy_trace(out: &mut String, t: &vigil::PolicyTrace) -> Result {
    let mut o = Obj::open(out);
    o.opt_msg("decided_by", t.decided_by.as_ref(), write_policy_hit)?;
    o.opt_msg(
        "pending_decided_by",
        t.pending_decided_by.as_ref(),
        write_policy_hit,
    )?;
    o.enumeration("pending_action", t.pending_action, action_name);
    o.msgs("enforced", &t.enforced, write_policy_hit)?;
    o.msgs("pending", &t.pending, write_policy_hit)?;
    o.u32("generation", t.generation);
    o.enumeration("ct_state", t.ct_state, |v| {
        vigil::ConnectionState::try_from(v)
            .ok()
            .map(|e| e.as_str_name())
    });
    o.u32("packet_length", t.packet_length);
    o.u32("ip_protocol", t.ip_protocol);
    o.close();
    Ok(())
}

fn write_position(out: &mut String, p: &vigil::Position) -> Result {
    let mut o = Obj::open(out);
    o.u64("agent_start_ns", p.agent_start_ns);
    o.u64("index", p.index);
    o.close();
    Ok(())
}

fn write_policy_hit(out: &mut String, h: &vigil::PolicyHit) -> Result {
    let mut o = Obj::open(out);
    o.str("kind", &h.kind);
    o.str("namespace", &h.namespace);
    o.str("name", &h.name);
    o.str("tier", &h.tier);
    if let Some(index) = h.rule_index {
        push_u64(o.key("rule_index"), u64::from(index));
    }
    o.enumeration("action", h.action, action_name);
    o.enumeration("hit_kind", h.hit_kind, |v| {
        vigil::HitKind::try_from(v).ok().map(|e| e.as_str_name())
    });
    o.bool("pending", h.pending);
    o.str("description", &h.description);
    o.close();
    Ok(())
}

fn action_name(v: i32) -> Option<&'static str> {
    vigil::Action::try_from(v).ok().map(|e| e.as_str_name())
}

/// Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range prost-reflect accepts.
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

fn write_timestamp(out: &mut String, t: &Timestamp) -> Result {
    if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&t.seconds) {
        return Err(Unsupported::TimestampOutOfRange);
    }
    out.push('"');
    // Writing to a String cannot fail.
    let _ = write!(out, "{t}");
    out.push('"');
    Ok(())
}

/// One JSON object being written: the separator state between its members.
struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, first: true }
    }

    fn close(self) {
        self.out.push('}');
    }

    /// Writes `"key":` (keys are proto field names: nothing to escape) and returns the output
    /// for the value.
    fn key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    fn str(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            push_str_escaped(self.key(key), value);
        }
    }

    fn strs(&mut self, key: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        let out = self.key(key);
        out.push('[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_str_escaped(out, value);
        }
        out.push(']');
    }

    fn bool(&mut self, key: &str, value: bool) {
        if value {
            self.key(key).push_str("true");
        }
    }

    fn u32(&mut self, key: &str, value: u32) {
        if value != 0 {
            push_u64(self.key(key), u64::from(value));
        }
    }

    fn i32(&mut self, key: &str, value: i32) {
        if value != 0 {
            push_i64(self.key(key), i64::from(value));
        }
    }

    /// 64-bit integers are JSON strings.
    fn u64(&mut self, key: &str, value: u64) {
        if value != 0 {
            let out = self.key(key);
            out.push('"');
            push_u64(out, value);
            out.push('"');
        }
    }

    /// An enum by name; a number without a name as a bare number.
    fn enumeration(
        &mut self,
        key: &str,
        value: i32,
        name: impl FnOnce(i32) -> Option<&'static str>,
    ) {
        if value == 0 {
            return;
        }
        let out = self.key(key);
        match name(value) {
            Some(name) => {
                out.push('"');
                out.push_str(name);
                out.push('"');
            }
            None => push_i64(out, i64::from(value)),
        }
    }

    fn msg<T>(
        &mut self,
        key: &str,
        value: &T,
        write: impl FnOnce(&mut String, &T) -> Result,
    ) -> Result {
        write(self.key(key), value)
    }

    fn opt_msg<T>(
        &mut self,
        key: &str,
        value: Option<&T>,
        write: impl FnOnce(&mut String, &T) -> Result,
    ) -> Result {
        match value {
            Some(value) => self.msg(key, value, write),
            None => Ok(()),
        }
    }

    fn msgs<T>(
        &mut self,
        key: &str,
        values: &[T],
        write: impl Fn(&mut String, &T) -> Result,
    ) -> Result {
        if values.is_empty() {
            return Ok(());
        }
        let out = self.key(key);
        out.push('[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write(out, value)?;
        }
        out.push(']');
        Ok(())
    }
}

fn push_u64(out: &mut String, mut value: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

fn push_i64(out: &mut String, value: i64) {
    if value < 0 {
        out.push('-');
    }
    push_u64(out, value.unsigned_abs());
}

/// What serde_json writes after a backslash for each byte: 0 for none (the byte is written
/// as is), `u` for `\u00xx`.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// A JSON string literal, escaped exactly as serde_json escapes it.
fn push_str_escaped(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(value.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, &byte) in value.as_bytes().iter().enumerate() {
        let escape = ESCAPE[usize::from(byte)];
        if escape == 0 {
            continue;
        }
        // `i` is at an ASCII byte, so both slices end on character boundaries.
        out.push_str(&value[start..i]);
        start = i + 1;
        out.push('\\');
        out.push(char::from(escape));
        if escape == b'u' {
            out.push_str("00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
    out.push_str(&value[start..]);
    out.push('"');
}
