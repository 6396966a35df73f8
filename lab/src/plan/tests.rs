//! Unit tests of `plan`: behaviour checked beside the code it tests.
use super::*;
use crate::topology;

const TOPOLOGY: &str = "
nodes:
  - name: node-1
  - name: node-2
    podCIDR: 10.7.255.0/24
namespaces: [{name: shop}]
pods:
  - {name: a, namespace: shop, node: node-1}
  - {name: b, namespace: shop, node: node-1, ip: 10.200.1.10}
  - {name: c, namespace: shop, node: node-2, serve: [tcp:80]}
externals:
  - {name: web}
  - {name: pinned, ip: 198.51.100.11, ip6: '2001:db8::99'}
dns:
  web.example.com: web
  literal.example.com: 192.0.2.1
";

fn plan_with(prefix: &str) -> Plan {
    Plan::new(
        &topology::parse(TOPOLOGY).unwrap(),
        Prefix::new(prefix).unwrap(),
    )
    .unwrap()
}

fn plan() -> Plan {
    plan_with("vgabcde")
}

#[test]
fn prefixes_are_short_lowercase_and_start_with_a_letter() {
    assert!(Prefix::new("vg1").is_ok());
    assert!(Prefix::new("v").is_err());
    assert!(
        Prefix::new("vgabcdef").is_err(),
        "8 characters leave no room in interface names"
    );
    assert!(Prefix::new("1vg").is_err());
    assert!(Prefix::new("vg-1").is_err());
    assert!(Prefix::new("VG").is_err());
    let generated = Prefix::from_seed(u64::MAX);
    assert_eq!(generated.as_str(), "vgfffff");
    assert!(Prefix::new(generated.as_str()).is_ok());
    assert_eq!(Prefix::from_seed(0x1).as_str(), "vg00001");
}

#[test]
fn ipv6_addresses_mirror_ipv4_digit_for_digit() {
    assert_eq!(
        cluster_ipv6(Ipv4Addr::new(10, 200, 1, 10)),
        "fd00:10:200:1::10".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(
        cluster_ipv6(Ipv4Addr::new(172, 31, 0, 2)),
        "fd00:172:31:0::2".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(
        external_ipv6(Ipv4Addr::new(198, 51, 100, 10)),
        "2001:db8:51:100::10".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(
        external_ipv6(Ipv4Addr::new(203, 0, 113, 255)),
        "2001:db8:0:113::255".parse::<Ipv6Addr>().unwrap()
    );
}

#[test]
fn pods_get_free_addresses_from_their_node() {
    let plan = plan();
    let ips: Vec<String> = plan.pods.iter().map(|pod| pod.ipv4.to_string()).collect();
    // b asked for .10, so a (listed first) gets the next free one.
    assert_eq!(ips, ["10.200.1.11", "10.200.1.10", "10.7.255.10"]);
    assert_eq!(
        plan.pods[2].ipv6,
        "fd00:10:7:255::10".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(
        plan.nodes[1].pod_cidr6,
        "fd00:10:7:255::/64".parse::<Ipv6Net>().unwrap()
    );
    assert!(plan.nodes[1].pod_cidr6.contains(&plan.pods[2].ipv6));
    assert_eq!(plan.pods[0].service_account, "default");
}

#[test]
fn nodes_get_point_to_point_links() {
    let plan = plan();
    let node = &plan.nodes[1];
    assert_eq!(node.ipv4, Ipv4Addr::new(172, 31, 1, 2));
    assert_eq!(node.fabric_ipv4, Ipv4Addr::new(172, 31, 1, 1));
    assert_eq!(node.ipv6, "fd00:172:31:1::2".parse::<Ipv6Addr>().unwrap());
    assert_eq!(node.netns, "vgabcde-node-2");
}

#[test]
fn externals_and_the_implicit_dns_host_get_documentation_addresses() {
    let plan = plan();
    let by_name = |name: &str| plan.externals.iter().find(|e| e.name == name).unwrap();
    // .10 is free, .11 is pinned; the DNS host takes its well-known address.
    assert_eq!(by_name("web").ipv4, Ipv4Addr::new(198, 51, 100, 10));
    assert_eq!(
        by_name("pinned").ipv6,
        "2001:db8::99".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(by_name(DNS_HOST).ipv4, DNS_HOST_IPV4);
    assert_eq!(plan.dns.netns, "vgabcde-dns");
    assert_eq!(
        plan.dns.ipv6,
        "2001:db8:51:100::53".parse::<Ipv6Addr>().unwrap()
    );
}

#[test]
fn dns_records_resolve_hosts_to_both_addresses() {
    let plan = plan();
    let records: Vec<(&str, Vec<String>)> = plan
        .dns
        .records
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.addresses.iter().map(ToString::to_string).collect(),
            )
        })
        .collect();
    assert_eq!(
        records,
        [
            ("literal.example.com", vec!["192.0.2.1".to_owned()]),
            (
                "web.example.com",
                vec!["198.51.100.10".to_owned(), "2001:db8:51:100::10".to_owned()]
            ),
        ]
    );
}

#[test]
fn every_name_carries_the_prefix_and_interfaces_fit_ifnamsiz() {
    let plan = plan();
    for netns in plan.all_netns() {
        assert!(netns.starts_with("vgabcde-"), "{netns}");
    }
    let mut ifaces: Vec<&str> = plan.pods.iter().map(|p| p.host_iface.as_str()).collect();
    ifaces.extend(plan.externals.iter().map(|e| e.fabric_iface.as_str()));
    ifaces.extend(
        plan.nodes
            .iter()
            .flat_map(|n| [n.uplink.as_str(), n.fabric_iface.as_str()]),
    );
    for iface in &ifaces {
        assert!(iface.starts_with("vgabcde-"), "{iface}");
        assert!(iface.len() <= MAX_IFNAME_LEN, "{iface} is too long");
    }
    let host: BTreeSet<&str> = plan.pods.iter().map(|p| p.host_iface.as_str()).collect();
    assert_eq!(host.len(), plan.pods.len(), "host veths are unique");
}

#[test]
fn host_interface_names_are_stable() {
    assert_eq!(plan().pods[0].host_iface, plan().pods[0].host_iface);
    assert_eq!(
        plan_with("zz").pods[0].host_iface[3..],
        plan().pods[0].host_iface[8..],
        "the hash depends only on namespace/name"
    );
}

#[test]
fn colliding_namespace_names_are_refused() {
    // Node "shop-a" and pod shop/a would both be <prefix>-shop-a.
    let text = TOPOLOGY
        .replace("  - name: node-1\n", "  - name: shop-a\n")
        .replace("node: node-1", "node: shop-a");
    let topology = topology::parse(&text).unwrap();
    let error = Plan::new(&topology, Prefix::new("vg").unwrap()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "node shop-a and pod shop/a would both be named \"vg-shop-a\"; rename one of them"
    );
}

#[test]
fn a_full_node_is_reported() {
    let pods: String = (0..246)
        .map(|i| format!("  - {{name: p{i}, namespace: shop, node: node-1}}\n"))
        .collect();
    let text = format!("nodes: [{{name: node-1}}]\nnamespaces: [{{name: shop}}]\npods:\n{pods}");
    let error =
        Plan::new(&topology::parse(&text).unwrap(), Prefix::new("vg").unwrap()).unwrap_err();
    assert!(matches!(error, PlanError::PodCapacity { .. }), "{error}");
}

#[test]
fn setup_creates_namespaces_before_anything_inside_them() {
    let steps = plan().setup_steps();
    let mut created = BTreeSet::new();
    for step in &steps {
        match step {
            Step::AddNetns(name) => {
                assert!(created.insert(name.clone()), "{name} created twice");
            }
            Step::Ip { netns, args } => {
                assert!(
                    created.contains(netns),
                    "`{step}` runs before {netns} exists"
                );
                if let Some(peer) = args.iter().position(|arg| arg == "netns") {
                    assert!(
                        created.contains(&args[peer + 1]),
                        "`{step}` needs its peer namespace"
                    );
                }
            }
            Step::Sysctl { netns, .. } => assert!(created.contains(netns), "`{step}`"),
        }
    }
    assert_eq!(created.len(), plan().all_netns().len());
}

#[test]
fn setup_wires_a_pod_like_calico() {
    let plan = plan();
    let pod = &plan.pods[2];
    let lines: Vec<String> = plan.setup_steps().iter().map(ToString::to_string).collect();
    let has = |line: &str| {
        assert!(
            lines.iter().any(|l| l == line),
            "missing `{line}` in\n{}",
            lines.join("\n")
        )
    };
    let host = &pod.host_iface;
    has(&format!(
        "ip -n vgabcde-node-2 link add {host} type veth peer name eth0 netns vgabcde-shop-c"
    ));
    has("ip -n vgabcde-shop-c addr add 10.7.255.10/32 dev eth0");
    has("ip -n vgabcde-shop-c addr add fd00:10:7:255::10/128 dev eth0 nodad");
    has("ip -n vgabcde-shop-c route add default via 169.254.1.1 dev eth0 onlink");
    has("ip -n vgabcde-shop-c -6 route add default via fe80::1 dev eth0");
    has(&format!(
        "ip -n vgabcde-node-2 addr add fe80::1/64 dev {host} nodad"
    ));
    has(&format!(
        "ip -n vgabcde-node-2 route add 10.7.255.10/32 dev {host}"
    ));
    has(&format!(
        "ip -n vgabcde-node-2 -6 route add fd00:10:7:255::10/128 dev {host}"
    ));
    has(&format!(
        "ip netns exec vgabcde-node-2 sysctl -q -w net.ipv4.conf.{host}.proxy_arp=1 net.ipv4.neigh.{host}.proxy_delay=0"
    ));
    has("ip -n vgabcde-fabric route add 10.7.255.0/24 via 172.31.1.2");
    has("ip -n vgabcde-fabric -6 route add fd00:10:7:255::/64 via fd00:172:31:1::2");
    has("ip -n vgabcde-node-2 route add default via 172.31.1.1");
    has("ip -n vgabcde-fabric addr add 169.254.1.1/32 dev lo scope host");
    has(
        "ip netns exec vgabcde-node-2 sysctl -q -w net.ipv6.conf.all.accept_dad=0 \
         net.ipv6.conf.default.accept_dad=0 net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
    );
    has(
        "ip netns exec vgabcde-shop-c sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0",
    );
}

#[test]
fn setup_never_touches_the_root_namespace() {
    for step in plan().setup_steps() {
        let argv = step.argv();
        let in_netns =
            argv[1] == "-n" || (argv[1] == "netns" && matches!(argv[2].as_str(), "add" | "exec"));
        assert!(in_netns, "`{step}` would run in the root namespace");
        assert!(
            argv[2].starts_with("vgabcde-") || argv[3].starts_with("vgabcde-"),
            "`{step}`"
        );
    }
}

#[test]
fn resolv_conf_points_at_the_lab_dns_server() {
    assert!(
        plan()
            .resolv_conf()
            .contains("\nnameserver 198.51.100.53\n")
    );
}
