//! Cluster files: `vigil.dev/v1` Endpoint and Node, `v1` Namespace.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::ManifestError;
use super::common::{Ignored, Metadata, Problem, Sink, kubernetes_protocol};
use crate::model::{Endpoint, NamedPort, Namespace, Node};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: Metadata,
    spec: EndpointSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EndpointSpec {
    ips: Vec<IpAddr>,
    #[serde(default)]
    ports: Vec<NamedPortDoc>,
    node: String,
    interface: String,
    #[serde(default)]
    service_account: Option<String>,
    #[serde(default)]
    netns: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedPortDoc {
    name: String,
    port: u16,
    #[serde(default)]
    protocol: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: Metadata,
    spec: NodeSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeSpec {
    ips: Vec<IpAddr>,
    #[serde(default)]
    netns: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: Metadata,
    #[serde(default, rename = "spec")]
    _spec: Ignored,
    #[serde(default, rename = "status")]
    _status: Ignored,
}

/// Parses an Endpoint document.
pub(super) fn parse_endpoint(sink: &mut Sink<'_>) -> Result<Endpoint, ManifestError> {
    let doc: EndpointDoc = sink.deserialize()?;
    let mut ports = Vec::new();
    for (i, p) in doc.spec.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}].protocol");
        ports.push(NamedPort {
            name: p.name.clone(),
            port: p.port,
            protocol: kubernetes_protocol(p.protocol.as_deref(), &path)
                .map_err(|e| sink.error(e))?,
        });
    }
    if doc.spec.ips.is_empty() {
        return Err(sink.error(Problem::new(
            "spec.ips",
            "an endpoint needs at least one address",
        )));
    }
    Ok(Endpoint {
        name: doc.metadata.name,
        namespace: doc
            .metadata
            .namespace
            .unwrap_or_else(|| "default".to_owned()),
        labels: doc.metadata.labels,
        ips: doc.spec.ips,
        ports,
        node: doc.spec.node,
        interface: doc.spec.interface,
        service_account: doc.spec.service_account,
        netns: doc.spec.netns,
    })
}

/// Parses a Node document.
pub(super) fn parse_node(sink: &mut Sink<'_>) -> Result<Node, ManifestError> {
    let doc: NodeDoc = sink.deserialize()?;
    Ok(Node {
        name: doc.metadata.name,
        ips: doc.spec.ips,
        netns: doc.spec.netns,
    })
}

/// Parses a Namespace document.
pub(super) fn parse_namespace(sink: &mut Sink<'_>) -> Result<Namespace, ManifestError> {
    let doc: NamespaceDoc = sink.deserialize()?;
    let labels: BTreeMap<String, String> = doc.metadata.labels;
    Ok(Namespace {
        name: doc.metadata.name,
        labels,
    })
}
