//! Unit tests of `set`: behaviour checked beside the code it tests.
use super::*;
use crate::manifest::parse_policy_file;
use crate::policy::PolicyKind;

fn parse(text: &str, source: &str) -> (Vec<Policy>, Vec<Tier>) {
    let parsed = parse_policy_file(source, text).unwrap_or_else(|e| panic!("{e}"));
    (parsed.policies, parsed.tiers)
}

const GNP: &str = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: dup}\nspec: {selector: all()}\n";

#[test]
fn duplicates_and_unknown_tiers_are_refused() {
    let (mut a, _) = parse(GNP, "a.yaml");
    let (b, _) = parse(GNP, "b.yaml");
    a.extend(b);
    let e = PolicySet::new(a, Vec::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "duplicate policy GlobalNetworkPolicy/dup: defined in a.yaml and again in b.yaml"
    );

    let (p, _) = parse(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: x}\nspec: {tier: missing}\n",
        "t.yaml",
    );
    let e = PolicySet::new(p, Vec::new()).unwrap_err();
    assert!(
        matches!(e, SetError::UnknownTier { ref tier, .. } if tier == "missing"),
        "{e}"
    );

    let tier = "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t}\n";
    let (_, mut t1) = parse(tier, "1.yaml");
    let (_, t2) = parse(tier, "2.yaml");
    t1.extend(t2);
    assert!(matches!(
        PolicySet::new(Vec::new(), t1),
        Err(SetError::DuplicateTier { .. })
    ));
}

#[test]
fn same_name_in_different_kinds_or_namespaces_is_fine() {
    let (mut a, _) = parse(GNP, "a.yaml");
    let (b, _) = parse(
        "apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata: {name: dup}\nspec: {selector: all()}\n",
        "b.yaml",
    );
    a.extend(b);
    let set = PolicySet::new(a, Vec::new()).unwrap();
    assert_eq!(set.policies().len(), 2);
    // The staged one replaces its counterpart in the staged view only.
    let names = |view| -> Vec<PolicyKind> {
        set.view(view)
            .iter()
            .flat_map(|t| t.entries.iter().map(|e| set.policies()[e.policy].kind))
            .collect()
    };
    assert_eq!(names(View::Enforced), [PolicyKind::GlobalNetworkPolicy]);
    assert_eq!(names(View::Staged), [PolicyKind::StagedGlobalNetworkPolicy]);
}

#[test]
fn tiers_and_policies_are_ordered_as_specified() {
    let text = "\
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: default}
spec: {order: 1}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: unordered}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: second}
spec: {order: 20}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: first}
spec: {order: 10}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: z-early}
spec: {order: 5}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: a-late}
spec: {order: 2000}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: b-unordered}
spec: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: m-k8s}
spec: {podSelector: {}}
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: z-cilium}
spec: {endpointSelector: {}, ingress: [{}]}
";
    let (p, t) = parse(text, "order.yaml");
    let set = PolicySet::new(p, t).unwrap();
    let tiers: Vec<&str> = set
        .view(View::Enforced)
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(tiers, ["first", "second", "unordered", "default"]);
    let default = set.view(View::Enforced).last().unwrap();
    let order: Vec<(&str, Phase)> = default
        .entries
        .iter()
        .map(|e| (set.policies()[e.policy].name.as_str(), e.phase))
        .collect();
    assert_eq!(
        order,
        [
            ("z-early", Phase::All),
            ("z-cilium", Phase::CiliumDeny),
            ("m-k8s", Phase::All),
            ("z-cilium", Phase::CiliumAllow),
            ("a-late", Phase::All),
            ("b-unordered", Phase::All),
        ]
    );
}

#[test]
fn prefixes_come_from_every_rule() {
    let (p, _) = parse(
        "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: c}\nspec:\n  endpointSelector: {}\n  egress:\n    - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]\n",
        "p.yaml",
    );
    let set = PolicySet::new(p, Vec::new()).unwrap();
    let prefixes: Vec<String> = set.prefixes().iter().map(ToString::to_string).collect();
    assert_eq!(prefixes, ["10.0.0.0/8", "10.1.0.0/16"]);
}
