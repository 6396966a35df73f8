//! `networking.k8s.io/v1` NetworkPolicy (and Calico's StagedKubernetesNetworkPolicy, which has
//! the same spec plus `stagedAction`).

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::ManifestError;
use super::common::{
    Ignored, LabelSelectorDoc, Metadata, PolicyTypeDoc, PortValue, Problem, Sink, StagedActionDoc,
    kubernetes_protocol, parse_net, port_name, port_number,
};
use crate::policy::{
    DEFAULT_TIER, DirectionRules, KUBERNETES_ORDER, L4Match, LabelView, NamespaceScope, PeerMatch,
    Policy, PolicyKind, PortMatch, PortSpec, ProtocolMatch, Rule, RuleAction, Section,
    StagedAction,
};
use crate::selector::Selector;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: Metadata,
    spec: Spec,
    #[serde(default, rename = "status")]
    _status: Ignored,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    pod_selector: LabelSelectorDoc,
    #[serde(default)]
    policy_types: Option<Vec<PolicyTypeDoc>>,
    #[serde(default)]
    ingress: Option<Vec<IngressRule>>,
    #[serde(default)]
    egress: Option<Vec<EgressRule>>,
    #[serde(default)]
    staged_action: Option<StagedActionDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IngressRule {
    #[serde(default)]
    from: Option<Vec<PeerDoc>>,
    #[serde(default)]
    ports: Option<Vec<PortDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EgressRule {
    #[serde(default)]
    to: Option<Vec<PeerDoc>>,
    #[serde(default)]
    ports: Option<Vec<PortDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PeerDoc {
    #[serde(default)]
    pod_selector: Option<LabelSelectorDoc>,
    #[serde(default)]
    namespace_selector: Option<LabelSelectorDoc>,
    #[serde(default)]
    ip_block: Option<IpBlockDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IpBlockDoc {
    cidr: String,
    #[serde(default)]
    except: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PortDoc {
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    port: Option<PortValue>,
    #[serde(default)]
    end_port: Option<u64>,
}

/// Parses a Kubernetes NetworkPolicy (or, with `staged`, a StagedKubernetesNetworkPolicy).
pub(super) fn parse(sink: &mut Sink<'_>, staged: bool) -> Result<Policy, ManifestError> {
    let doc: Doc = sink.deserialize()?;
    let kind = if staged {
        PolicyKind::StagedKubernetesNetworkPolicy
    } else {
        PolicyKind::KubernetesNetworkPolicy
    };
    let namespace = doc
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let mut warnings = Vec::new();
    let policy = normalize(&doc, kind, &namespace, &mut warnings).map_err(|p| sink.error(p))?;
    let label = policy.id().to_string();
    for (path, message) in warnings {
        sink.warn(&label, &path, &message);
    }
    Ok(Policy {
        source: sink.source.to_owned(),
        ..policy
    })
}

fn normalize(
    doc: &Doc,
    kind: PolicyKind,
    namespace: &str,
    warnings: &mut Vec<(String, String)>,
) -> Result<Policy, Problem> {
    let spec = &doc.spec;
    if !kind.is_staged() && spec.staged_action.is_some() {
        return Err(Problem::new(
            "spec.stagedAction",
            "stagedAction is only valid in projectcalico.org/v3 StagedKubernetesNetworkPolicy",
        ));
    }
    let selector = spec
        .pod_selector
        .to_selector("spec.podSelector", |k| Ok(k.to_owned()))?;
    let has_egress = spec.egress.as_ref().is_some_and(|e| !e.is_empty());
    let types = spec.policy_types.clone().unwrap_or_else(|| {
        let mut t = vec![PolicyTypeDoc::Ingress];
        if has_egress {
            t.push(PolicyTypeDoc::Egress);
        }
        t
    });

    let mut ingress = None;
    if types.contains(&PolicyTypeDoc::Ingress) {
        let mut rules = Vec::new();
        for (i, rule) in spec.ingress.iter().flatten().enumerate() {
            let path = format!("spec.ingress[{i}]");
            rules.push(rule_of(
                i,
                peers(rule.from.as_deref(), namespace, &format!("{path}.from"))?,
                ports(rule.ports.as_deref(), &format!("{path}.ports"))?,
            ));
        }
        ingress = Some(DirectionRules {
            isolates: true,
            rules,
        });
    } else if spec.ingress.as_ref().is_some_and(|r| !r.is_empty()) {
        warnings.push((
            "spec.ingress".to_owned(),
            "ingress rules are ignored: policyTypes does not include Ingress".to_owned(),
        ));
    }

    let mut egress = None;
    if types.contains(&PolicyTypeDoc::Egress) {
        let mut rules = Vec::new();
        for (i, rule) in spec.egress.iter().flatten().enumerate() {
            let path = format!("spec.egress[{i}]");
            rules.push(rule_of(
                i,
                peers(rule.to.as_deref(), namespace, &format!("{path}.to"))?,
                ports(rule.ports.as_deref(), &format!("{path}.ports"))?,
            ));
        }
        egress = Some(DirectionRules {
            isolates: true,
            rules,
        });
    } else if has_egress {
        warnings.push((
            "spec.egress".to_owned(),
            "egress rules are ignored: policyTypes does not include Egress".to_owned(),
        ));
    }

    Ok(Policy {
        kind,
        namespace: Some(namespace.to_owned()),
        name: doc.metadata.name.clone(),
        tier: DEFAULT_TIER.to_owned(),
        order: Some(KUBERNETES_ORDER),
        staged_action: spec.staged_action.map_or(StagedAction::Set, Into::into),
        sections: vec![Section {
            subject: PeerMatch::Labels {
                view: LabelView::Kubernetes,
                selector,
                namespaces: NamespaceScope::Only(namespace.to_owned()),
            },
            ingress,
            egress,
        }],
        source: String::new(),
    })
}

fn rule_of(index: usize, peer: PeerMatch, l4: L4Match) -> Rule {
    Rule {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        action: RuleAction::Allow,
        peer,
        local: PeerMatch::Any,
        l4,
        ip_version: None,
    }
}

fn peers(list: Option<&[PeerDoc]>, namespace: &str, path: &str) -> Result<PeerMatch, Problem> {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(PeerMatch::Any);
    };
    let mut out = Vec::new();
    for (i, peer) in list.iter().enumerate() {
        let here = format!("{path}[{i}]");
        if let Some(block) = &peer.ip_block {
            if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
                return Err(Problem::new(
                    here,
                    "ipBlock cannot be combined with podSelector or namespaceSelector in one peer (write them as separate list items)",
                ));
            }
            let net = parse_net(&block.cidr, &format!("{here}.ipBlock.cidr"))?;
            let mut except = Vec::new();
            for (j, e) in block.except.iter().enumerate() {
                let epath = format!("{here}.ipBlock.except[{j}]");
                let e = parse_net(e, &epath)?;
                if !net.contains(&e) || e == net {
                    return Err(Problem::new(
                        epath,
                        format!("except {e} must be a strict subset of cidr {net}"),
                    ));
                }
                except.push(e);
            }
            out.push(PeerMatch::Cidr {
                net,
                except,
                endpoints: true,
            });
            continue;
        }
        let pods = match &peer.pod_selector {
            Some(s) => s.to_selector(&format!("{here}.podSelector"), |k| Ok(k.to_owned()))?,
            None => Selector::All,
        };
        let namespaces = match &peer.namespace_selector {
            Some(s) => NamespaceScope::Matching(
                s.to_selector(&format!("{here}.namespaceSelector"), |k| Ok(k.to_owned()))?,
            ),
            None if peer.pod_selector.is_some() => NamespaceScope::Only(namespace.to_owned()),
            // An entry with no selector at all: every peer.
            None => {
                out.push(PeerMatch::Any);
                continue;
            }
        };
        out.push(PeerMatch::Labels {
            view: LabelView::Kubernetes,
            selector: pods,
            namespaces,
        });
    }
    Ok(PeerMatch::any_of(out))
}

fn ports(list: Option<&[PortDoc]>, path: &str) -> Result<L4Match, Problem> {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(L4Match::Any);
    };
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let here = format!("{path}[{i}]");
        let protocol = kubernetes_protocol(p.protocol.as_deref(), &format!("{here}.protocol"))?;
        let number = match &p.port {
            None => None,
            Some(PortValue::Number(n)) => Some(port_number(*n, &format!("{here}.port"), false)?),
            Some(PortValue::Text(t)) => match t.parse::<u64>() {
                Ok(n) => Some(port_number(n, &format!("{here}.port"), false)?),
                Err(_) => {
                    if p.end_port.is_some() {
                        return Err(Problem::new(
                            format!("{here}.endPort"),
                            "endPort needs a numeric port, not a named one",
                        ));
                    }
                    let name = port_name(t, &format!("{here}.port"))?;
                    out.push(PortMatch {
                        protocol: ProtocolMatch::Is(protocol),
                        ports: PortSpec::Named(name),
                    });
                    continue;
                }
            },
        };
        let ports = match (number, p.end_port) {
            (None, None) => PortSpec::All,
            (None, Some(_)) => {
                return Err(Problem::new(
                    format!("{here}.endPort"),
                    "endPort needs a port",
                ));
            }
            (Some(n), None) => PortSpec::Range(n, n),
            (Some(n), Some(end)) => {
                let end = port_number(end, &format!("{here}.endPort"), false)?;
                if end < n {
                    return Err(Problem::new(
                        format!("{here}.endPort"),
                        format!("endPort {end} is below port {n}"),
                    ));
                }
                PortSpec::Range(n, end)
            }
        };
        out.push(PortMatch {
            protocol: ProtocolMatch::Is(protocol),
            ports,
        });
    }
    Ok(L4Match::AnyOf(out))
}
