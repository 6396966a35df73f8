//! Unit tests of `policies`: dialects, staged kinds, and the merge with hit counts.

use super::*;

const FILE: &str = "apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.deny-ssh}
spec:
  tier: security
  order: 10
  selector: all()
  ingress:
  - action: Deny
    protocol: TCP
    destination: {ports: [22]}
---
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: lockdown, namespace: shop}
spec:
  selector: all()
  ingress:
  - action: Deny
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-web, namespace: shop}
spec:
  podSelector: {}
  ingress:
  - {}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: idle, namespace: shop}
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [world]
";

fn loaded() -> Vec<LoadedPolicy> {
    from_parsed(&vigil_policy::parse_policy_file("policies/x.yaml", FILE).unwrap())
}

fn count(kind: &str, ns: &str, name: &str, action: &str, enf: &str, n: u64) -> HitCount {
    HitCount {
        kind: kind.into(),
        namespace: ns.into(),
        name: name.into(),
        action: action.into(),
        enforcement: enf.into(),
        count: n,
        last: 1_795_692_125,
    }
}

#[test]
fn loaded_policies_carry_dialect_tier_order_and_staged() {
    let p = loaded();
    let find = |name: &str| p.iter().find(|x| x.name == name).unwrap();
    let d = find("deny-ssh");
    assert_eq!(
        (
            d.kind.as_str(),
            d.dialect,
            d.tier.as_str(),
            d.order,
            d.staged
        ),
        (
            "GlobalNetworkPolicy",
            "calico",
            "security",
            Some(10.0),
            false
        )
    );
    assert_eq!(d.file, "policies/x.yaml");
    let s = find("lockdown");
    assert_eq!(
        (s.kind.as_str(), s.namespace.as_str(), s.staged),
        ("StagedNetworkPolicy", "shop", true)
    );
    assert_eq!(find("allow-web").dialect, "kubernetes");
    assert_eq!(find("allow-web").kind, "NetworkPolicy");
    assert_eq!(find("idle").dialect, "cilium");
}

#[test]
fn merge_counts_hits_by_meaning_and_lists_unloaded_policies() {
    let counts = [
        count("GlobalNetworkPolicy", "", "deny-ssh", "deny", "enforced", 7),
        count(
            "StagedNetworkPolicy",
            "shop",
            "lockdown",
            "deny",
            "pending",
            3,
        ),
        count(
            "StagedNetworkPolicy",
            "shop",
            "lockdown",
            "allow",
            "pending",
            2,
        ),
        count(
            "NetworkPolicy",
            "shop",
            "allow-web",
            "allow",
            "enforced",
            11,
        ),
        count("GlobalNetworkPolicy", "", "retired", "log", "enforced", 1),
        count("", "", "", "allow", "enforced", 99),
    ];
    let views = merge(&loaded(), &counts);
    let find = |name: &str| views.iter().find(|v| v.policy.name == name).unwrap();
    assert_eq!(find("deny-ssh").hits.denied, 7);
    assert!(!find("deny-ssh").never_hit);
    assert_eq!(
        find("deny-ssh").last_hit.as_deref(),
        Some("2026-11-26T11:22:05.000000000Z")
    );
    let l = &find("lockdown").hits;
    assert_eq!(
        (l.staged_would_deny, l.staged_would_allow, l.denied),
        (3, 2, 0)
    );
    assert_eq!(find("allow-web").hits.allowed, 11);
    let idle = find("idle");
    assert!(idle.never_hit && idle.loaded && idle.last_hit.is_none());
    let retired = find("retired");
    assert!(!retired.loaded);
    assert_eq!(retired.hits.logged, 1);
    assert_eq!(views.len(), 5, "default allow (no name) is no policy");
    assert!(views[..4].iter().all(|v| v.loaded), "loaded ones first");
}
