//! The proto3 JSON mapping of our messages, through prost-reflect and the embedded descriptors:
//! enums by name, 64-bit integers as strings, Timestamps in RFC 3339, wrappers as bare values,
//! fields by their proto names (as `hubble observe -o json` prints them), defaults omitted.
//!
//! Two implementations: [`to_json`], generic, through prost-reflect (re-encode, decode into a
//! `DynamicMessage`, serialize with serde), and [`fast`], a direct encoder of
//! `observer.GetFlowsResponse` with the same output byte for byte, ~19x cheaper on an enriched
//! flow (`benches/json.rs`). [`flows_response_to_json`] is the fast one, falling back to
//! reflection for the values it leaves out (an `Any` in `Flow.extensions`, an out-of-range
//! Timestamp).

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use crate::observer::GetFlowsResponse;

pub mod fast;

#[cfg(test)]
mod tests;

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET).expect("the embedded descriptor set decodes")
});

/// The descriptor pool of every message of this crate.
pub fn pool() -> &'static DescriptorPool {
    &POOL
}

/// Serializes `message` (whose full proto name is `full_name`, e.g. `observer.GetFlowsResponse`)
/// as one line of proto3 JSON.
pub fn to_json<M: prost::Message>(message: &M, full_name: &str) -> Result<String, JsonError> {
    let descriptor = POOL
        .get_message_by_name(full_name)
        .ok_or_else(|| JsonError(format!("unknown message {full_name}")))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|e| JsonError(format!("decode {full_name}: {e}")))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true);
    let mut out = Vec::with_capacity(512);
    let mut serializer = serde_json::Serializer::new(&mut out);
    dynamic
        .serialize_with_options(&mut serializer, &options)
        .map_err(|e| JsonError(format!("serialize {full_name}: {e}")))?;
    String::from_utf8(out).map_err(|e| JsonError(e.to_string()))
}

/// `response` as one line of proto3 JSON, through the direct encoder ([`fast`]), or through
/// [`to_json`] for what the direct encoder leaves out. The same text as
/// `to_json(response, "observer.GetFlowsResponse")`.
pub fn flows_response_to_json(response: &GetFlowsResponse) -> Result<String, JsonError> {
    match fast::get_flows_response_to_json(response) {
        Ok(json) => Ok(json),
        Err(_) => to_json(response, "observer.GetFlowsResponse"),
    }
}

/// A message that could not be mapped to JSON.
#[derive(Debug)]
pub struct JsonError(pub String);

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JsonError {}
