//! Unit tests of `manifest`: behaviour checked beside the code it tests.
use super::*;
use crate::policy::{PeerMatch, PolicyKind, TierDefaultAction};

fn refused(text: &str) -> ManifestError {
    match parse_policy_file("f.yaml", text) {
        Ok(p) => panic!("should be refused: {p:?}"),
        Err(e) => e,
    }
}

fn assert_mentions(e: &ManifestError, words: &[&str]) {
    let shown = e.to_string();
    for w in words {
        assert!(shown.contains(w), "{w:?} missing from: {shown}");
    }
}

#[test]
fn unknown_kind_lists_the_accepted_kinds_and_suggests() {
    let e = refused(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicies\nmetadata: {name: x}\n",
    );
    assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("kind")));
    assert_mentions(
        &e,
        &[
            "GlobalNetworkPolicy, StagedNetworkPolicy",
            "did you mean \"GlobalNetworkPolicy\"",
        ],
    );

    let e = refused(
        "apiVersion: networking.k8s.io/v1\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\n",
    );
    assert_mentions(&e, &["belongs to apiVersion cilium.io/v2"]);

    let e = refused("apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\n");
    assert_mentions(&e, &["not supported yet"]);

    let e = refused("apiVersion: example.com/v1\nkind: Thing\n");
    assert_mentions(
        &e,
        &["unknown apiVersion", "expected one of", "cilium.io/v2"],
    );
}

#[test]
fn unknown_fields_are_refused_with_a_suggestion() {
    let e = refused(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: x}\nspec:\n  ingress:\n    - action: Allow\n      protcol: TCP\n",
    );
    assert_eq!(e.line, Some(7));
    assert_eq!(e.field.as_deref(), Some("spec.ingress[0].protcol"));
    assert_mentions(&e, &["unknown field `protcol`", "did you mean `protocol`?"]);

    let e = refused(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: x}\nspec:\n  ingress:\n    - action: Alow\n",
    );
    assert_mentions(&e, &["unknown variant `Alow`", "did you mean `Allow`?"]);
}

#[test]
fn one_bad_document_refuses_the_whole_file_with_file_lines() {
    let text = "\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: good}
spec:
  selector: all()
---
# second document
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: bad}
spec:
  selector: app = 'web'
";
    let e = refused(text);
    assert_eq!(e.line, Some(12));
    assert_eq!(e.field.as_deref(), Some("spec.selector"));
    assert_mentions(&e, &["f.yaml:12:", "column 5", "did you mean =="]);
}

#[test]
fn semantic_errors_carry_field_and_line() {
    let cases: [(&str, &str, usize, &[&str]); 6] = [
        (
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: x}\nspec:\n  ingress:\n    - action: Deny\n      destination:\n        ports: [22]\n",
            "spec.ingress[0].destination.ports",
            8,
            &["needs the rule's protocol", "protocol: TCP"],
        ),
        (
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: x}\nspec:\n  ingress:\n    - action: Deny\n      protocol: TCP\n      source:\n        ports: [22]\n",
            "spec.ingress[0].source.ports",
            9,
            &["destination ports only"],
        ),
        (
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  podSelector: {}\n  ingress:\n    - from:\n        - ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}\n",
            "spec.ingress[0].from[0].ipBlock.except[0]",
            8,
            &["strict subset"],
        ),
        (
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\nspec:\n  endpointSelector: {}\n  egress:\n    - toEntities: [wrld]\n",
            "spec.egress[0].toEntities[0]",
            7,
            &["unknown entity \"wrld\"", "remote-node"],
        ),
        (
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\nspec:\n  endpointSelector:\n    matchLabels: {\"container:app\": x}\n",
            "spec.endpointSelector.matchLabels",
            6,
            &["label source \"container\""],
        ),
        (
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  podSelector: {}\n  ingress:\n    - ports: [{port: 8080, endPort: 80}]\n",
            "spec.ingress[0].ports[0].endPort",
            7,
            &["below port 8080"],
        ),
    ];
    for (text, field, line, words) in cases {
        let e = refused(text);
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
        assert_eq!(e.line, Some(line), "{e}");
        assert_mentions(&e, words);
    }
}

#[test]
fn calico_names_may_carry_the_tier_prefix() {
    let parsed = parse_policy_file(
        "f.yaml",
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: security.allow-dns}\nspec: {tier: security, order: 10.5}\n---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: security}\nspec: {order: 100, defaultAction: Pass}\n",
    )
    .unwrap();
    let p = &parsed.policies[0];
    assert_eq!(
        (p.name.as_str(), p.tier.as_str(), p.order),
        ("allow-dns", "security", Some(10.5))
    );
    assert_eq!(parsed.tiers[0].default_action, TierDefaultAction::Pass);
    assert_eq!(parsed.tiers[0].order, Some(100.0));
}

#[test]
fn empty_documents_and_markers_are_fine() {
    let parsed = parse_policy_file("f.yaml", "# only a comment\n---\n---\n...\n").unwrap();
    assert!(parsed.policies.is_empty() && parsed.warnings.is_empty());
    let parsed = parse_policy_file("f.yaml", "--- {apiVersion: cilium.io/v2, kind: CiliumClusterwideNetworkPolicy, metadata: {name: a}, spec: {endpointSelector: {}, ingress: [{}]}}\n").unwrap();
    assert_eq!(
        parsed.policies[0].kind,
        PolicyKind::CiliumClusterwideNetworkPolicy
    );
    assert_eq!(
        parsed.policies[0].sections[0]
            .ingress
            .as_ref()
            .unwrap()
            .rules[0]
            .peer,
        PeerMatch::Nothing
    );
}

#[test]
fn cluster_files_parse_endpoints_nodes_and_namespaces() {
    let text = "\
apiVersion: vigil.dev/v1
kind: Endpoint
metadata:
  name: web-1
  namespace: prod
  labels: {app: web}
spec:
  ips: [10.0.0.1, fd00::1]
  ports: [{name: http, port: 8080}, {name: dns, port: 53, protocol: UDP}]
  node: n1
  interface: veth1
  serviceAccount: sa-web
---
apiVersion: vigil.dev/v1
kind: Node
metadata: {name: n1}
spec: {ips: [192.168.0.1]}
---
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod}}
";
    let c = parse_cluster_file("cluster.yaml", text).unwrap();
    assert_eq!(c.endpoints[0].ips.len(), 2);
    assert_eq!(c.endpoints[0].ports[1].protocol, crate::proto::UDP);
    assert_eq!(c.endpoints[0].service_account.as_deref(), Some("sa-web"));
    assert_eq!(c.nodes[0].name, "n1");
    assert_eq!(c.namespaces[0].labels["env"], "prod");

    let e = parse_cluster_file(
        "c.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n",
    )
    .unwrap_err();
    assert_mentions(&e, &["load it as a policy file"]);
    let e = parse_policy_file("p.yaml", "apiVersion: vigil.dev/v1\nkind: Endpoint\n").unwrap_err();
    assert_mentions(&e, &["load it as a cluster file"]);
    let e = parse_cluster_file(
        "c.yaml",
        "apiVersion: vigil.dev/v1\nkind: Endpoint\nmetadata: {name: a}\nspec: {ips: [10.0.0.300], node: n, interface: i}\n",
    )
    .unwrap_err();
    assert_eq!(e.line, Some(4));
}

#[test]
fn edit_distance_and_closest() {
    assert_eq!(
        edit_distance("protectcalico.org/v3", "projectcalico.org/v3"),
        1
    );
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(
        closest("cillium.io/v2", ["cilium.io/v2", "v1"].into_iter()),
        Some("cilium.io/v2")
    );
    assert_eq!(
        closest("completely/else", ["cilium.io/v2"].into_iter()),
        None
    );
}

#[test]
fn documents_keep_their_line_offsets() {
    let docs = split_documents("a: 1\n---\nb: 2\n--- # c\nc: 3\n");
    assert_eq!(
        docs.iter().map(|d| d.first_line).collect::<Vec<_>>(),
        [0, 1, 3]
    );
    assert_eq!(docs[1].text, "   \nb: 2\n");
}
