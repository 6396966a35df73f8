//! The cluster-state manifests the lab hands to node-agents: one `Endpoint` per pod, one `Node`
//! per node and one `Namespace` per namespace, each a single YAML document in its own file
//! under `STATE/endpoints/`.
//!
//! The shapes here are a contract with the node-agent's parser; change both together.
//! Pure: this module renders text; the binary writes the files.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Serialize;

use crate::plan::Plan;
use crate::topology::Port;

#[cfg(test)]
mod tests;

/// `apiVersion` of the lab's own kinds.
pub const API_VERSION: &str = "vigil.dev/v1";
/// The label Kubernetes puts on every namespace (since 1.21); policies select namespaces by it.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// One manifest file: its name under `endpoints/` and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// The file name, such as `shop-frontend.yaml`.
    pub file_name: String,
    /// The YAML document.
    pub text: String,
}

/// Two objects whose manifests would have the same file name.
#[derive(Debug, thiserror::Error)]
#[error("{first} and {second} would both be written to endpoints/{file_name}; rename one of them")]
pub struct FileCollision {
    /// The shared file name.
    pub file_name: String,
    /// The first object.
    pub first: String,
    /// The second object.
    pub second: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<M, S> {
    api_version: &'static str,
    kind: &'static str,
    metadata: M,
    #[serde(skip_serializing_if = "Option::is_none")]
    spec: Option<S>,
}

#[derive(Debug, Serialize)]
struct Metadata<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<BTreeMap<&'a str, &'a str>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointSpec<'a> {
    node: &'a str,
    interface: &'a str,
    netns: &'a str,
    ips: [IpAddr; 2],
    ports: &'a [Port],
    service_account: &'a str,
}

#[derive(Debug, Serialize)]
struct NodeSpec<'a> {
    ips: [IpAddr; 2],
    netns: &'a str,
}

/// Renders every manifest of a lab.
pub fn render(plan: &Plan) -> Result<Vec<ManifestFile>, FileCollision> {
    let mut files = Vec::new();
    let mut owners: HashMap<String, String> = HashMap::new();
    let mut push = |file_name: String, owner: String, text: String| {
        if let Some(first) = owners.insert(file_name.clone(), owner.clone()) {
            return Err(FileCollision {
                file_name,
                first,
                second: owner,
            });
        }
        files.push(ManifestFile { file_name, text });
        Ok(())
    };

    for namespace in &plan.namespaces {
        let mut labels: BTreeMap<&str, &str> = namespace
            .labels
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        labels.insert(NAMESPACE_NAME_LABEL, &namespace.name);
        let document = Document::<_, ()> {
            api_version: "v1",
            kind: "Namespace",
            metadata: Metadata {
                name: &namespace.name,
                namespace: None,
                labels: Some(labels),
            },
            spec: None,
        };
        push(
            format!("ns-{}.yaml", namespace.name),
            format!("namespace {}", namespace.name),
            to_yaml(&document),
        )?;
    }

    for node in &plan.nodes {
        let document = Document {
            api_version: API_VERSION,
            kind: "Node",
            metadata: Metadata {
                name: &node.name,
                namespace: None,
                labels: None,
            },
            spec: Some(NodeSpec {
                ips: [node.ipv4.into(), node.ipv6.into()],
                netns: &node.netns,
            }),
        };
        push(
            format!("node-{}.yaml", node.name),
            format!("node {}", node.name),
            to_yaml(&document),
        )?;
    }

    for pod in &plan.pods {
        let node = plan.node_of(pod);
        let document = Document {
            api_version: API_VERSION,
            kind: "Endpoint",
            metadata: Metadata {
                name: &pod.name,
                namespace: Some(&pod.namespace),
                labels: Some(
                    pod.labels
                        .iter()
                        .map(|(key, value)| (key.as_str(), value.as_str()))
                        .collect(),
                ),
            },
            spec: Some(EndpointSpec {
                node: &pod.node,
                interface: &pod.host_iface,
                netns: &node.netns,
                ips: [pod.ipv4.into(), pod.ipv6.into()],
                ports: &pod.ports,
                service_account: &pod.service_account,
            }),
        };
        push(
            format!("{}-{}.yaml", pod.namespace, pod.name),
            format!("pod {}", pod.key()),
            to_yaml(&document),
        )?;
    }
    Ok(files)
}

fn to_yaml<T: Serialize>(document: &T) -> String {
    // The documents are plain maps, strings and numbers: serializing them cannot fail.
    serde_yaml::to_string(document).expect("manifests serialize to YAML")
}
