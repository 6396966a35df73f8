//! Unit tests of `topology`: behaviour checked beside the code it tests.
use super::*;

const SMALL: &str = "
nodes:
  - name: node-1
    podCIDR: 10.200.1.0/24
  - name: node-2
namespaces:
  - name: shop
    labels: {team: web}
pods:
  - name: frontend
    namespace: shop
    node: node-1
    labels: {app: frontend}
    ports: [{name: http, port: 80, protocol: TCP}, {port: 53, protocol: UDP}]
    serve: [tcp:80, udp:53]
  - name: db
    namespace: shop
    node: node-2
    ip: 10.200.2.50
externals:
  - name: api-example
    ip: 198.51.100.10
    serve: [tcp:443]
dns:
  api.example.com: api-example
  fixed.example.com: 203.0.113.7
";

fn invalid_message(text: &str) -> String {
    match parse(text) {
        Err(Error::Invalid { item, message }) => format!("{item}: {message}"),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// SMALL with one line replaced.
fn small_with(from: &str, to: &str) -> String {
    assert!(SMALL.contains(from), "test fixture lacks {from:?}");
    SMALL.replacen(from, to, 1)
}

#[test]
fn parses_a_full_topology() {
    let topology = parse(SMALL).unwrap();
    assert_eq!(topology.nodes.len(), 2);
    assert_eq!(topology.pod_cidr(0), "10.200.1.0/24".parse().unwrap());
    assert_eq!(
        topology.pod_cidr(1),
        "10.200.2.0/24".parse().unwrap(),
        "default CIDR"
    );
    let frontend = &topology.pods[0];
    assert_eq!(frontend.labels["app"], "frontend");
    assert_eq!(
        frontend.serve,
        vec![
            Listener {
                transport: Transport::Tcp,
                port: 80
            },
            Listener {
                transport: Transport::Udp,
                port: 53
            }
        ]
    );
    assert_eq!(frontend.ports[1].protocol, Protocol::Udp);
    assert_eq!(frontend.ports[1].name, None);
    assert_eq!(topology.pods[1].ip, Some(Ipv4Addr::new(10, 200, 2, 50)));
    assert_eq!(topology.dns["api.example.com"], "api-example");
    assert!(!topology.declares_dns_host());
}

#[test]
fn listeners_parse_and_print() {
    let listener: Listener = "TCP:8080".parse().unwrap();
    assert_eq!(listener.to_string(), "tcp:8080");
    assert!("tcp:0".parse::<Listener>().is_err());
    assert!("tcp:70000".parse::<Listener>().is_err());
    assert!(
        "sctp:80"
            .parse::<Listener>()
            .unwrap_err()
            .contains("expected `tcp:PORT`")
    );
    assert!("80".parse::<Listener>().is_err());
}

#[test]
fn syntax_errors_carry_the_line() {
    let text = "nodes:\n  - name: node-1\n    podCidr: 10.0.0.0/24\n";
    match parse(text) {
        Err(Error::Syntax { message, line }) => {
            assert_eq!(line, Some(3), "{message}");
            assert!(message.contains("podCidr"), "{message}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let bad_listener = small_with("serve: [tcp:443]", "serve: [http:443]");
    let Err(Error::Syntax { message, .. }) = parse(&bad_listener) else {
        panic!("expected a syntax error");
    };
    assert!(message.contains("expected `tcp:PORT`"), "{message}");
}

#[test]
fn requires_a_node() {
    assert!(invalid_message("nodes: []").contains("at least one node"));
}

#[test]
fn refuses_duplicate_names() {
    let text = small_with("  - name: node-2", "  - name: node-1");
    assert!(invalid_message(&text).contains("another node has the same name"));
    let text = small_with("  - name: db\n", "  - name: frontend\n");
    let message = invalid_message(&text);
    assert!(message.starts_with("pods[1] (shop/frontend)"), "{message}");
}

#[test]
fn refuses_names_that_are_not_dns_labels() {
    let text = small_with("  - name: frontend", "  - name: Front_End");
    assert!(invalid_message(&text).contains("must be a DNS label"));
}

#[test]
fn pods_must_use_declared_nodes_and_namespaces() {
    let text = small_with("node: node-2\n    ip", "node: node-3\n    ip");
    let message = invalid_message(&text);
    assert!(
        message.contains("node \"node-3\" is not declared (nodes: node-1, node-2)"),
        "{message}"
    );
    let text = small_with(
        "namespace: shop\n    node: node-2",
        "namespace: shpo\n    node: node-2",
    );
    assert!(invalid_message(&text).contains("add `- name: shpo` under `namespaces:`"));
}

#[test]
fn pod_cidrs_must_be_distinct_slash_24s_in_ten_slash_8() {
    let text = small_with("podCIDR: 10.200.1.0/24", "podCIDR: 10.200.0.0/16");
    assert!(invalid_message(&text).contains("must be a /24 inside 10.0.0.0/8"));
    let text = small_with("podCIDR: 10.200.1.0/24", "podCIDR: 192.168.1.0/24");
    assert!(invalid_message(&text).contains("must be a /24"));
    let text = small_with("podCIDR: 10.200.1.0/24", "podCIDR: 10.200.1.7/24");
    assert!(invalid_message(&text).contains("did you mean 10.200.1.0/24?"));
    // node-2's default is 10.200.2.0/24.
    let text = small_with("podCIDR: 10.200.1.0/24", "podCIDR: 10.200.2.0/24");
    assert!(invalid_message(&text).contains("is also node node-1's"));
}

#[test]
fn pod_ips_must_be_inside_their_nodes_cidr() {
    let text = small_with("ip: 10.200.2.50", "ip: 10.200.1.50");
    assert!(invalid_message(&text).contains("not a usable address of node node-2's podCIDR"));
    let text = small_with("ip: 10.200.2.50", "ip: 10.200.2.255");
    assert!(invalid_message(&text).contains("not a usable address"));
}

#[test]
fn external_addresses_must_be_documentation_addresses() {
    let text = small_with("ip: 198.51.100.10", "ip: 8.8.8.8");
    assert!(invalid_message(&text).contains("documentation range"));
    let text = small_with(
        "ip: 198.51.100.10",
        "ip: 198.51.100.10\n    ip6: \"2001:4860::8888\"",
    );
    assert!(invalid_message(&text).contains("must be inside 2001:db8::/32"));
}

#[test]
fn dns_targets_must_exist() {
    let text = small_with(
        "api.example.com: api-example",
        "api.example.com: api-exmaple",
    );
    let message = invalid_message(&text);
    assert!(
        message.contains("neither an external host (externals: api-example) nor an IP"),
        "{message}"
    );
    let text = small_with(
        "api.example.com: api-example",
        "bad_name.example.com: api-example",
    );
    assert!(invalid_message(&text).contains("not a valid DNS label"));
}

#[test]
fn a_declared_dns_host_must_leave_port_53_to_the_server() {
    let text = small_with("  - name: api-example", "  - name: dns");
    let text = text.replace("api.example.com: api-example", "api.example.com: dns");
    let topology = parse(&text).unwrap();
    assert!(topology.declares_dns_host());
    let text = text.replace("serve: [tcp:443]", "serve: [udp:53]");
    assert!(invalid_message(&text).contains("already listens on port 53"));
}

#[test]
fn listeners_must_not_repeat() {
    let text = small_with("serve: [tcp:443]", "serve: [tcp:443, tcp:443]");
    assert!(invalid_message(&text).contains("serve lists tcp:443 twice"));
}
