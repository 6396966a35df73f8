//! `observer.GetFlowsResponse` with its flow kept as encoded bytes: what an agent serves from its
//! ring of encoded flows and what the relay passes from agents to clients, so a flow is encoded
//! once, where it is made, and decoded once, where it is read. Wire-identical to the generated
//! message: any Hubble client decodes it as usual.
//!
//! [`service`] is the observer service generated over this type (client and server); node status
//! and lost-event notices stay decoded, since they are rare and the relay makes them itself.
//! Pure: no I/O.

#[cfg(test)]
mod tests;

use prost::{
    DecodeError, Message,
    bytes::{Buf, BufMut, Bytes},
    encoding::{self, DecodeContext, WireType},
};

use crate::{
    flow::Flow,
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
};

/// The `observer.Observer` service over [`Response`] (every other type is the generated one).
pub mod service {
    include!(concat!(env!("OUT_DIR"), "/raw/observer.rs"));
}

/// Field numbers of `observer.GetFlowsResponse`.
const FLOW: u32 = 1;
const NODE_NAME: u32 = 1000;
const TIME: u32 = 1001;
/// `flow.Flow.uuid`.
const FLOW_UUID: u32 = 34;
/// `flow.Flow.vigil_position`.
const FLOW_POSITION: u32 = 900_002;

/// The most bytes [`append_position`] appends: a 4-byte key, a 1-byte length and two varint
/// fields of at most 11 bytes each.
pub const POSITION_MAX_LEN: usize = 27;

/// Appends `flow.Flow.vigil_position` to an encoded flow that has none (protobuf fields may come
/// in any order): an agent encodes a flow before it knows its place in the stream.
pub fn append_position(flow: &mut Vec<u8>, position: &crate::vigil::Position) {
    encoding::message::encode(FLOW_POSITION, position, flow);
}

/// An `observer.GetFlowsResponse` whose flow is kept encoded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response {
    pub time: Option<prost_types::Timestamp>,
    pub node_name: String,
    pub body: Body,
}

/// What a response carries.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Body {
    #[default]
    None,
    /// An encoded `flow.Flow`.
    Flow(Bytes),
    /// A node status event or a lost-event notice.
    Other(ResponseTypes),
}

impl Response {
    /// A response carrying the encoded flow `flow`.
    pub fn flow(flow: Bytes, time: Option<prost_types::Timestamp>, node_name: String) -> Response {
        Response {
            time,
            node_name,
            body: Body::Flow(flow),
        }
    }

    /// The response's time in Unix nanoseconds (0 when it has none).
    pub fn unix_ns(&self) -> i128 {
        self.time.as_ref().map_or(0, crate::time::unix_ns)
    }

    /// The flow's uuid, read from its encoding without decoding the rest.
    pub fn flow_uuid(&self) -> Option<&str> {
        let Body::Flow(bytes) = &self.body else {
            return None;
        };
        let mut buf = &bytes[..];
        while buf.has_remaining() {
            let (tag, wire_type) = encoding::decode_key(&mut buf).ok()?;
            if tag == FLOW_UUID && wire_type == WireType::LengthDelimited {
                let len = encoding::decode_varint(&mut buf).ok()? as usize;
                return std::str::from_utf8(buf.get(..len)?).ok();
            }
            encoding::skip_field(wire_type, tag, &mut buf, DecodeContext::default()).ok()?;
        }
        None
    }

    /// The flow, decoded (`None` for other responses).
    pub fn decode_flow(&self) -> Result<Option<Flow>, DecodeError> {
        match &self.body {
            Body::Flow(bytes) => Flow::decode(&bytes[..]).map(Some),
            _ => Ok(None),
        }
    }

    /// The generated message (decoding the flow).
    pub fn into_message(self) -> Result<GetFlowsResponse, DecodeError> {
        let response_types = match self.body {
            Body::None => None,
            Body::Flow(bytes) => Some(ResponseTypes::Flow(Flow::decode(bytes)?)),
            Body::Other(r) => Some(r),
        };
        Ok(GetFlowsResponse {
            response_types,
            node_name: self.node_name,
            time: self.time,
        })
    }
}

impl From<GetFlowsResponse> for Response {
    /// Encodes a flow; keeps other responses as they are.
    fn from(r: GetFlowsResponse) -> Response {
        let body = match r.response_types {
            None => Body::None,
            Some(ResponseTypes::Flow(f)) => Body::Flow(f.encode_to_vec().into()),
            Some(other) => Body::Other(other),
        };
        Response {
            time: r.time,
            node_name: r.node_name,
            body,
        }
    }
}

impl Message for Response {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match &self.body {
            Body::None => {}
            Body::Flow(flow) => {
                encoding::encode_key(FLOW, WireType::LengthDelimited, buf);
                encoding::encode_varint(flow.len() as u64, buf);
                buf.put_slice(flow);
            }
            Body::Other(other) => other.encode(buf),
        }
        if !self.node_name.is_empty() {
            encoding::string::encode(NODE_NAME, &self.node_name, buf);
        }
        if let Some(time) = &self.time {
            encoding::message::encode(TIME, time, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            FLOW => {
                let mut flow = Bytes::new();
                encoding::bytes::merge(wire_type, &mut flow, buf, ctx)?;
                self.body = Body::Flow(flow);
                Ok(())
            }
            2 | 3 => {
                let mut field = match std::mem::take(&mut self.body) {
                    Body::Other(other) => Some(other),
                    _ => None,
                };
                let merged = ResponseTypes::merge(&mut field, tag, wire_type, buf, ctx);
                self.body = field.map_or(Body::None, Body::Other);
                merged
            }
            NODE_NAME => encoding::string::merge(wire_type, &mut self.node_name, buf, ctx),
            TIME => encoding::message::merge(
                wire_type,
                self.time.get_or_insert_with(Default::default),
                buf,
                ctx,
            ),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let body = match &self.body {
            Body::None => 0,
            Body::Flow(flow) => {
                encoding::key_len(FLOW)
                    + encoding::encoded_len_varint(flow.len() as u64)
                    + flow.len()
            }
            Body::Other(other) => other.encoded_len(),
        };
        let name = if self.node_name.is_empty() {
            0
        } else {
            encoding::string::encoded_len(NODE_NAME, &self.node_name)
        };
        let time = self
            .time
            .as_ref()
            .map_or(0, |t| encoding::message::encoded_len(TIME, t));
        body + name + time
    }

    fn clear(&mut self) {
        *self = Response::default();
    }
}
