//! The seed article's examples (shared/fixtures/seed-policies): every file must load or be refused
//! exactly as its README says, with the file, line and an actionable message.

use std::path::PathBuf;

use vigil_policy::{ManifestError, ParsedPolicies, PolicyKind, parse_policy_file};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/seed-policies")
}

fn load(name: &str) -> Result<ParsedPolicies, ManifestError> {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    parse_policy_file(name, &text)
}

fn refused(name: &str) -> ManifestError {
    match load(name) {
        Ok(p) => panic!("{name} should be refused, loaded {:?}", p.policies),
        Err(e) => e,
    }
}

fn loaded(name: &str) -> ParsedPolicies {
    load(name).unwrap_or_else(|e| panic!("{name} should load: {e}"))
}

fn assert_mentions(text: &str, words: &[&str]) {
    for w in words {
        assert!(text.contains(w), "{w:?} missing from: {text}");
    }
}

#[test]
fn every_fixture_is_covered() {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("fixture directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    let expected: Vec<String> = (1..=12).map(|i| format!("{i:02}-")).collect();
    assert_eq!(names.len(), 12, "{names:?}");
    for (name, prefix) in names.iter().zip(&expected) {
        assert!(name.starts_with(prefix.as_str()), "{name}");
        // Each file is either loaded or refused below; make sure parsing never panics.
        let _ = load(name);
    }
}

#[test]
fn fixture_01_apiversion_typo_and_structure_error() {
    let e = refused("01-calico-gnp-deny-ssh.yaml");
    assert_eq!(e.source, "01-calico-gnp-deny-ssh.yaml");
    assert_eq!((e.line, e.column), (Some(1), Some(13)));
    assert_eq!(e.field.as_deref(), Some("apiVersion"));
    assert_mentions(
        &e.message,
        &[
            "protectcalico.org/v3",
            "did you mean",
            "projectcalico.org/v3",
        ],
    );
    // The broken indentation further down is reported too.
    let structure = e
        .also
        .first()
        .expect("the structure error is reported as well");
    assert_eq!(structure.line, Some(9));
    assert_mentions(
        &structure.message,
        &["destination", "list item on line 8", "column 7", "action"],
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with("01-calico-gnp-deny-ssh.yaml:1:13: apiVersion: unknown apiVersion"),
        "{shown}"
    );
}

#[test]
fn fixture_02_rule_keys_indented_as_siblings() {
    let e = refused("02-calico-gnp-allow-egress-to-domains.yaml");
    assert_eq!(e.line, Some(11));
    assert_mentions(
        &e.message,
        &[
            "invalid YAML",
            "`protocol`",
            "list item on line 10",
            "belongs inside",
        ],
    );
}

#[test]
fn fixtures_03_04_pre_and_post_rules() {
    for name in [
        "03-calico-staged-log-all-ingress.yaml",
        "04-calico-staged-deny-ssh-after-log.yaml",
    ] {
        let e = refused(name);
        assert_eq!(e.line, Some(9), "{e}");
        assert_eq!(e.field.as_deref(), Some("spec.ingress"));
        assert_mentions(
            &e.message,
            &[
                "preRules/postRules",
                "staged policies",
                "ingress",
                "egress",
                "rule lists",
            ],
        );
    }
}

fn single(parsed: &ParsedPolicies) -> &vigil_policy::Policy {
    assert_eq!(parsed.policies.len(), 1, "{:?}", parsed.policies);
    &parsed.policies[0]
}

#[test]
fn cilium_l7_fixtures_load_with_warnings() {
    for (name, kind, line) in [
        (
            "05-cilium-cnp-allow-get-healthz.yaml",
            PolicyKind::CiliumNetworkPolicy,
            19,
        ),
        (
            "08-cilium-ccnp-allow-get-status.yaml",
            PolicyKind::CiliumClusterwideNetworkPolicy,
            18,
        ),
        (
            "12-cilium-cnp-allow-healthz-l7.yaml",
            PolicyKind::CiliumNetworkPolicy,
            19,
        ),
    ] {
        let parsed = loaded(name);
        assert_eq!(single(&parsed).kind, kind);
        assert_eq!(parsed.warnings.len(), 1, "{:?}", parsed.warnings);
        let w = &parsed.warnings[0];
        assert_eq!(w.line, Some(line), "{w}");
        assert_eq!(w.field, "spec.ingress[0].toPorts[0].rules.http");
        assert_mentions(&w.message, &["http", "not yet enforced"]);
    }
}

#[test]
fn fqdn_fixtures_load_with_warnings() {
    for name in [
        "06-cilium-cnp-allow-egress-to-openai.yaml",
        "07-cilium-ccnp-allow-openai-egress.yaml",
    ] {
        let parsed = loaded(name);
        single(&parsed);
        assert_eq!(parsed.warnings.len(), 1);
        assert_eq!(parsed.warnings[0].field, "spec.egress[0].toFQDNs");
        assert_eq!(parsed.warnings[0].line, Some(10));
        assert_mentions(
            &parsed.warnings[0].message,
            &["toFQDNs", "not yet enforced"],
        );
    }
    let parsed = loaded("10-cilium-cnp-fqdn-dns-pattern.yaml");
    assert_eq!(single(&parsed).name, "fqdn");
    let fields: Vec<&str> = parsed.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.egress[0].toFQDNs",
            "spec.egress[1].toPorts[0].rules.dns"
        ]
    );
}

#[test]
fn fixture_09_domains_load_with_a_warning() {
    let parsed = loaded("09-calico-gnp-allow-egress-to-domains-2.yaml");
    assert_eq!(single(&parsed).kind, PolicyKind::GlobalNetworkPolicy);
    assert_eq!(parsed.warnings.len(), 1);
    let w = &parsed.warnings[0];
    assert_eq!(w.field, "spec.egress[1].destination.domains");
    assert_eq!(w.policy, "GlobalNetworkPolicy/allow-egress-to-domains");
    assert_eq!(w.line, Some(18));
    assert_mentions(&w.message, &["domains", "not yet enforced"]);
}

#[test]
fn fixture_11_application_layer_is_skipped_and_the_gnp_loads() {
    let parsed = loaded("11-calico-application-layer-and-gnp-http.yaml");
    let policy = single(&parsed);
    assert_eq!(
        (policy.kind, policy.name.as_str()),
        (PolicyKind::GlobalNetworkPolicy, "customer")
    );
    assert_eq!(parsed.warnings.len(), 2, "{:?}", parsed.warnings);
    assert_eq!(parsed.warnings[0].line, Some(3));
    assert_mentions(
        &parsed.warnings[0].message,
        &["ApplicationLayer", "skipped"],
    );
    assert_eq!(parsed.warnings[1].field, "spec.ingress[0].http");
    assert_eq!(parsed.warnings[1].line, Some(18));
}
