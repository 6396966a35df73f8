//! Hubble's `GetFlowsRequest.field_mask`: a reader that names fields (`time`, `verdict`,
//! `source.pod_name`, `l4.TCP.destination_port`, ...) gets flows holding only those fields.
//!
//! [`FlowMask::new`] checks each path against `flow.Flow`'s descriptor (embedded in this crate),
//! so an unknown field is an error naming it, as Hubble answers `InvalidArgument`.
//! [`FlowMask::apply`] works on the encoded flow, field by field on the wire format, without
//! decoding it: agents and the relay hold flows encoded. Pure: no I/O.

use std::{
    collections::{BTreeMap, HashMap},
    sync::LazyLock,
};

use prost::{
    Message as _,
    bytes::{Buf as _, Bytes},
    encoding::{self, DecodeContext, WireType},
};
use prost_types::{FileDescriptorSet, field_descriptor_proto::Type};

#[cfg(test)]
mod tests;

/// A field of a message: its number, and its message type when it is a message.
type Fields = HashMap<String, (u32, Option<String>)>;

/// Every message of the embedded descriptors by full name (`.flow.Flow`), with its fields.
static MESSAGES: LazyLock<HashMap<String, Fields>> = LazyLock::new(|| {
    let set = FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET)
        .expect("the embedded descriptor set decodes");
    let mut out = HashMap::new();
    fn add(out: &mut HashMap<String, Fields>, scope: &str, m: &prost_types::DescriptorProto) {
        let name = format!("{scope}.{}", m.name());
        let fields = m
            .field
            .iter()
            .map(|f| {
                let message = (f.r#type() == Type::Message).then(|| f.type_name().to_owned());
                (f.name().to_owned(), (f.number() as u32, message))
            })
            .collect();
        for nested in &m.nested_type {
            add(out, &name, nested);
        }
        out.insert(name, fields);
    }
    for file in &set.file {
        let scope = match file.package() {
            "" => String::new(),
            p => format!(".{p}"),
        };
        for m in &file.message_type {
            add(&mut out, &scope, m);
        }
    }
    out
});

/// A path of the mask that `flow.Flow` does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskError(pub String);

impl std::fmt::Display for MaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MaskError {}

/// The fields kept at one level: by number, each whole or narrowed to some of its own fields.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Node {
    whole: bool,
    fields: BTreeMap<u32, Node>,
}

/// A checked field mask over `flow.Flow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowMask {
    root: Node,
}

impl FlowMask {
    /// The mask of `paths` (proto field names joined by `.`); `None` when there are none (every
    /// field is sent).
    pub fn new(paths: &[String]) -> Result<Option<FlowMask>, MaskError> {
        if paths.is_empty() {
            return Ok(None);
        }
        let mut root = Node::default();
        for path in paths {
            let mut message = ".flow.Flow".to_owned();
            let mut node = &mut root;
            let segments: Vec<&str> = path.split('.').collect();
            for (i, segment) in segments.iter().enumerate() {
                let fields = MESSAGES.get(&message).ok_or_else(|| {
                    MaskError(format!("field mask {path:?}: no message {message}"))
                })?;
                let (number, sub) = fields.get(*segment).ok_or_else(|| {
                    MaskError(format!(
                        "field mask {path:?}: {} has no field {segment:?}",
                        message.trim_start_matches('.')
                    ))
                })?;
                node = node.fields.entry(*number).or_default();
                if i + 1 == segments.len() {
                    node.whole = true;
                } else {
                    message = sub.clone().ok_or_else(|| {
                        MaskError(format!(
                            "field mask {path:?}: {segment:?} is not a message, it has no fields"
                        ))
                    })?;
                }
            }
        }
        Ok(Some(FlowMask { root }))
    }

    /// The mask of a `GetFlowsRequest` (`None` when it asks for every field).
    pub fn of_request(
        request: &crate::observer::GetFlowsRequest,
    ) -> Result<Option<FlowMask>, MaskError> {
        FlowMask::new(request.field_mask.as_ref().map_or(&[], |m| &m.paths[..]))
    }

    /// `response` with its flow masked; other responses are unchanged.
    pub fn response(&self, mut response: crate::raw::Response) -> crate::raw::Response {
        if let crate::raw::Body::Flow(flow) = &response.body {
            response.body = crate::raw::Body::Flow(self.apply(flow));
        }
        response
    }

    /// The encoded flow with only the mask's fields. A flow that does not parse is returned as
    /// it is (the reader's decoder reports it).
    pub fn apply(&self, flow: &Bytes) -> Bytes {
        let mut out = Vec::with_capacity(flow.len() / 2);
        match keep(&self.root, flow, &mut out) {
            Ok(()) => Bytes::from(out),
            Err(_) => flow.clone(),
        }
    }
}

/// Copies the fields of `node` from the encoded message `buf` into `out`.
fn keep(node: &Node, mut buf: &[u8], out: &mut Vec<u8>) -> Result<(), prost::DecodeError> {
    while buf.has_remaining() {
        let field = buf;
        let (tag, wire_type) = encoding::decode_key(&mut buf)?;
        let value = buf;
        encoding::skip_field(wire_type, tag, &mut buf, DecodeContext::default())?;
        let Some(sub) = node.fields.get(&tag) else {
            continue;
        };
        let whole = &field[..field.len() - buf.len()];
        if sub.whole || wire_type != WireType::LengthDelimited {
            out.extend_from_slice(whole);
            continue;
        }
        // A message narrowed to some of its fields (each element, when repeated).
        let mut inner = value;
        let len = encoding::decode_varint(&mut inner)? as usize;
        let mut narrowed = Vec::new();
        keep(sub, &inner[..len], &mut narrowed)?;
        encoding::encode_key(tag, WireType::LengthDelimited, out);
        encoding::encode_varint(narrowed.len() as u64, out);
        out.extend_from_slice(&narrowed);
    }
    Ok(())
}
