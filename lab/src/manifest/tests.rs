//! Unit tests of `manifest`: behaviour checked beside the code it tests.
use serde_yaml::Value;

use super::*;
use crate::plan::Prefix;
use crate::topology;

fn plan(text: &str) -> Plan {
    Plan::new(
        &topology::parse(text).unwrap(),
        Prefix::new("vg3f2a").unwrap(),
    )
    .unwrap()
}

const TOPOLOGY: &str = "
nodes: [{name: node-1}]
namespaces: [{name: shop, labels: {team: web}}]
pods:
  - name: frontend-1
    namespace: shop
    node: node-1
    labels: {app: frontend}
    ports: [{name: http, port: 80, protocol: TCP}]
";

fn document(files: &[ManifestFile], name: &str) -> Value {
    let file = files.iter().find(|file| file.file_name == name).unwrap();
    serde_yaml::from_str(&file.text).unwrap()
}

#[test]
fn endpoints_follow_the_agent_contract() {
    let plan = plan(TOPOLOGY);
    let files = render(&plan).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(
        names,
        ["ns-shop.yaml", "node-node-1.yaml", "shop-frontend-1.yaml"]
    );

    let pod = &plan.pods[0];
    let expected = format!(
        "apiVersion: vigil.dev/v1
kind: Endpoint
metadata:
  name: frontend-1
  namespace: shop
  labels: {{app: frontend}}
spec:
  node: node-1
  interface: {}
  netns: vg3f2a-node-1
  ips: [10.200.1.10, \"fd00:10:200:1::10\"]
  ports: [{{name: http, port: 80, protocol: TCP}}]
  serviceAccount: default
",
        pod.host_iface
    );
    let expected: Value = serde_yaml::from_str(&expected).unwrap();
    assert_eq!(document(&files, "shop-frontend-1.yaml"), expected);
}

#[test]
fn nodes_and_namespaces_follow_the_agent_contract() {
    let files = render(&plan(TOPOLOGY)).unwrap();
    let node: Value = serde_yaml::from_str(
        "{apiVersion: vigil.dev/v1, kind: Node, metadata: {name: node-1},
          spec: {ips: [172.31.0.2, \"fd00:172:31::2\"], netns: vg3f2a-node-1}}",
    )
    .unwrap();
    assert_eq!(document(&files, "node-node-1.yaml"), node);
    let namespace: Value = serde_yaml::from_str(
        "{apiVersion: v1, kind: Namespace,
          metadata: {name: shop, labels: {team: web, kubernetes.io/metadata.name: shop}}}",
    )
    .unwrap();
    assert_eq!(document(&files, "ns-shop.yaml"), namespace);
}

#[test]
fn each_file_is_one_document() {
    for file in render(&plan(TOPOLOGY)).unwrap() {
        assert!(!file.text.contains("\n---"), "{}", file.file_name);
    }
}

#[test]
fn colliding_file_names_are_refused() {
    // Namespace "node" with pod "node-1" and node "node-1" both want node-node-1.yaml.
    let text = "
nodes: [{name: node-1}]
namespaces: [{name: node}]
pods: [{name: node-1, namespace: node, node: node-1}]
";
    let error = render(&plan(text)).unwrap_err();
    assert_eq!(error.file_name, "node-node-1.yaml");
    assert_eq!(error.first, "node node-1");
}
