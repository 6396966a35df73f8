//! Unit tests of `universe`: behaviour checked beside the code it tests.
use std::collections::BTreeMap;

use super::*;
use crate::model::Node;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn identity_of_is_stable_and_in_range() {
    let a = identity_of("prod", &labels(&[("app", "web"), ("tier", "front")]));
    assert_eq!(
        a,
        identity_of("prod", &labels(&[("tier", "front"), ("app", "web")]))
    );
    assert_ne!(
        a,
        identity_of("dev", &labels(&[("app", "web"), ("tier", "front")]))
    );
    assert!((reserved::MIN_ENDPOINT..reserved::MIN_CIDR).contains(&a));
    // Pinned so that a change of the hash (which would renumber every node) is noticed.
    assert_eq!(
        identity_label_strings("prod", &labels(&[("app", "web")])),
        ["k8s:app=web", "k8s:io.kubernetes.pod.namespace=prod"]
    );
    assert_eq!(
        identity_of("prod", &labels(&[("app", "web")])),
        identity_of("prod", &labels(&[("app", "web")]))
    );
}

fn cluster() -> Cluster {
    let ep = |name: &str, ns: &str, app: &str, ips: &[&str], node: &str| Endpoint {
        name: name.into(),
        namespace: ns.into(),
        labels: labels(&[("app", app)]),
        ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        node: node.into(),
        ..Endpoint::default()
    };
    Cluster {
        endpoints: vec![
            ep("a", "prod", "web", &["10.0.0.1"], "n1"),
            ep("b", "prod", "web", &["10.0.0.2", "fd00::2"], "n2"),
            ep("c", "dev", "web", &["10.1.0.3"], "n2"),
            ep("d", "dev", "db", &["192.168.0.2"], "n2"),
        ],
        namespaces: Vec::new(),
        nodes: vec![
            Node {
                name: "n1".into(),
                ips: vec!["192.168.0.1".parse().unwrap()],
                netns: None,
            },
            Node {
                name: "n2".into(),
                ips: vec!["192.168.0.2".parse().unwrap()],
                netns: None,
            },
        ],
    }
}

#[test]
fn ipcache_resolves_endpoints_nodes_prefixes_and_world() {
    let prefixes: BTreeSet<IpNet> = ["10.0.0.0/8", "10.0.0.0/16", "0.0.0.0/0"]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    let u = Universe::new(&cluster(), &prefixes, "n1");
    let id = |ip: &str| u.idents[u.resolve(ip.parse().unwrap())].id;
    // Endpoints with equal labels share an identity; namespaces separate them.
    assert_eq!(id("10.0.0.1"), id("10.0.0.2"));
    assert_eq!(id("10.0.0.2"), id("fd00::2"));
    assert_ne!(id("10.0.0.1"), id("10.1.0.3"));
    assert_eq!(id("192.168.0.1"), reserved::HOST);
    // An endpoint address wins over a node address, with a warning.
    assert_ne!(id("192.168.0.2"), reserved::REMOTE_NODE);
    assert!(
        u.warnings.iter().any(|w| w.contains("192.168.0.2")),
        "{:?}",
        u.warnings
    );
    // Longest rule prefix; /0 is world and gets no entry.
    let p16 = id("10.0.200.1");
    let p8 = id("10.200.0.1");
    assert!(p16 > reserved::MIN_CIDR && p8 > reserved::MIN_CIDR && p16 != p8);
    assert_eq!(id("8.8.8.8"), reserved::WORLD);
    assert!(u.ipcache.iter().all(|(net, _)| net.prefix_len() > 0));
}

#[test]
fn cidr_matching_is_per_identity() {
    let prefixes: BTreeSet<IpNet> = ["10.0.0.0/24", "10.0.0.0/8"]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    let u = Universe::new(&cluster(), &prefixes, "n1");
    let ident = |ip: &str| &u.idents[u.resolve(ip.parse().unwrap())];
    let net = |n: &str, endpoints| PeerMatch::Cidr {
        net: n.parse().unwrap(),
        except: Vec::new(),
        endpoints,
    };
    // The web identity has 10.0.0.1, 10.0.0.2 and fd00::2: not every address is in 10.0.0.0/24.
    assert!(!u.matches(&net("10.0.0.0/24", true), ident("10.0.0.1")));
    assert!(u.matches(&net("0.0.0.0/0", true), ident("10.1.0.3")));
    // Cilium-style CIDR rules never match endpoints.
    assert!(!u.matches(&net("10.0.0.0/8", false), ident("10.1.0.3")));
    // Outside addresses: exact via the registered prefixes.
    assert!(u.matches(&net("10.0.0.0/8", false), ident("10.0.0.77")));
    assert!(!u.matches(&net("10.0.0.0/24", false), ident("10.9.0.77")));
    assert!(u.matches(&net("0.0.0.0/0", false), ident("8.8.8.8")));
    assert!(!u.matches(&net("10.0.0.0/8", false), ident("8.8.8.8")));
    let except = PeerMatch::Cidr {
        net: "10.0.0.0/8".parse().unwrap(),
        except: vec!["10.0.0.0/24".parse().unwrap()],
        endpoints: false,
    };
    assert!(!u.matches(&except, ident("10.0.0.77")));
    assert!(u.matches(&except, ident("10.5.0.77")));
}

#[test]
fn label_views_expose_the_namespace_per_dialect() {
    let u = Universe::new(&cluster(), &BTreeSet::new(), "n1");
    let c = &u.idents[u.resolve("10.1.0.3".parse().unwrap())];
    assert_eq!(c.cilium_labels[CILIUM_NAMESPACE_LABEL], "dev");
    assert_eq!(
        c.cilium_labels["io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name"],
        "dev"
    );
    assert_eq!(c.calico_labels[CALICO_NAMESPACE_LABEL], "dev");
    assert!(!c.pod_labels.contains_key(CALICO_NAMESPACE_LABEL));
    let host = &u.idents[u.resolve("192.168.0.1".parse().unwrap())];
    assert!(host.cilium_labels.contains_key("reserved:host"));
    let reserved_host = PeerMatch::Labels {
        view: LabelView::Cilium,
        selector: Selector::Has("reserved:host".into()),
        namespaces: NamespaceScope::Any,
    };
    assert!(u.matches(&reserved_host, host));
    assert!(!u.matches(&reserved_host, c));
    let everything = PeerMatch::Labels {
        view: LabelView::Cilium,
        selector: Selector::All,
        namespaces: NamespaceScope::Any,
    };
    assert!(u.matches(&everything, c));
    assert!(
        !u.matches(&everything, host),
        "an empty selector selects endpoints only"
    );
}
