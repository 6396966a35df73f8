//! `projectcalico.org/v3` NetworkPolicy, GlobalNetworkPolicy, StagedNetworkPolicy,
//! StagedGlobalNetworkPolicy and Tier.
//!
//! On ingress a rule's `source` is the peer and its `destination` the subject endpoint; on egress
//! the other way round. `destination.ports` is the packet's destination port either way, so named
//! ports resolve against the subject on ingress and the peer on egress. `source.ports` (the
//! peer's or our ephemeral source port) cannot be enforced by the datapath, which keys on the
//! destination port, and is refused rather than silently widened.

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Unexpected, Visitor};

use super::ManifestError;
use super::common::{
    Ignored, Metadata, PolicyTypeDoc, PortValue, Problem, Sink, StagedActionDoc, calico_protocol,
    parse_net, port_name, port_number,
};
use crate::model::proto;
use crate::policy::{
    CalicoL4, DEFAULT_TIER, DirectionRules, IcmpMatch, L4Match, LabelView, NamespaceScope,
    PeerMatch, Policy, PolicyKind, PortSpec, Rule, RuleAction, Section, StagedAction, Tier,
    TierDefaultAction,
};
use crate::selector::{Selector, parse_calico_selector};

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
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    order: Option<f64>,
    #[serde(default)]
    selector: Option<String>,
    #[serde(default)]
    namespace_selector: Option<String>,
    #[serde(default)]
    service_account_selector: Option<String>,
    #[serde(default)]
    types: Option<Vec<PolicyTypeDoc>>,
    #[serde(default)]
    ingress: Option<RuleList>,
    #[serde(default)]
    egress: Option<RuleList>,
    #[serde(default)]
    staged_action: Option<StagedActionDoc>,
    #[serde(default, rename = "performanceHints")]
    _performance_hints: Option<Vec<String>>,
}

/// A rule list. A mapping with `preRules`/`postRules` (as in the seed article) gets a message
/// saying what Calico's schema actually is.
struct RuleList(Vec<RuleDoc>);

const PRE_POST_RULES: &str = "preRules/postRules are not part of Calico's schema: staged policies, like every Calico policy, use the ordinary `ingress`/`egress` rule lists. Write the rules as list items directly under `ingress:` (or `egress:`), in the order they should apply";

impl<'de> Deserialize<'de> for RuleList {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<RuleList, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RuleList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of rules")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RuleList, A::Error> {
                let mut rules = Vec::new();
                while let Some(rule) = seq.next_element::<RuleDoc>()? {
                    rules.push(rule);
                }
                Ok(RuleList(rules))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RuleList, A::Error> {
                match map.next_key::<String>()?.as_deref() {
                    Some("preRules" | "postRules") => Err(de::Error::custom(PRE_POST_RULES)),
                    _ => Err(de::Error::invalid_type(Unexpected::Map, &self)),
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<RuleList, E> {
                Ok(RuleList(Vec::new()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleDoc {
    action: ActionDoc,
    #[serde(default)]
    protocol: Option<PortValue>,
    #[serde(default)]
    not_protocol: Option<PortValue>,
    #[serde(default)]
    icmp: Option<IcmpDoc>,
    #[serde(default, rename = "notICMP")]
    not_icmp: Option<IcmpDoc>,
    #[serde(default)]
    ip_version: Option<u8>,
    #[serde(default)]
    source: Option<EntityDoc>,
    #[serde(default)]
    destination: Option<EntityDoc>,
    #[serde(default)]
    http: Option<HttpDoc>,
    #[serde(default, rename = "metadata")]
    _metadata: Ignored,
}

#[derive(Deserialize, Clone, Copy)]
enum ActionDoc {
    #[serde(alias = "allow")]
    Allow,
    #[serde(alias = "deny")]
    Deny,
    #[serde(alias = "log")]
    Log,
    #[serde(alias = "pass")]
    Pass,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IcmpDoc {
    #[serde(default, rename = "type")]
    icmp_type: Option<u8>,
    #[serde(default)]
    code: Option<u8>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EntityDoc {
    #[serde(default)]
    nets: Option<Vec<String>>,
    #[serde(default)]
    not_nets: Option<Vec<String>>,
    #[serde(default)]
    selector: Option<String>,
    #[serde(default)]
    not_selector: Option<String>,
    #[serde(default)]
    namespace_selector: Option<String>,
    #[serde(default)]
    ports: Option<Vec<PortValue>>,
    #[serde(default)]
    not_ports: Option<Vec<PortValue>>,
    #[serde(default)]
    service_accounts: Option<ServiceAccountsDoc>,
    #[serde(default)]
    domains: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceAccountsDoc {
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    selector: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpDoc {
    #[serde(default, rename = "methods")]
    _methods: Option<Vec<String>>,
    #[serde(default, rename = "paths")]
    _paths: Option<Vec<HttpPathDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpPathDoc {
    #[serde(default, rename = "exact")]
    _exact: Option<String>,
    #[serde(default, rename = "prefix")]
    _prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: Metadata,
    #[serde(default)]
    spec: TierSpec,
    #[serde(default, rename = "status")]
    _status: Ignored,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TierSpec {
    #[serde(default)]
    order: Option<f64>,
    #[serde(default)]
    default_action: Option<TierActionDoc>,
}

#[derive(Deserialize, Clone, Copy)]
enum TierActionDoc {
    Deny,
    Pass,
}

/// Parses a Calico Tier.
pub(super) fn parse_tier(sink: &mut Sink<'_>) -> Result<Tier, ManifestError> {
    let doc: TierDoc = sink.deserialize()?;
    if doc.spec.order.is_some_and(|o| !o.is_finite()) {
        return Err(sink.error(Problem::new("spec.order", "order must be a finite number")));
    }
    Ok(Tier {
        name: doc.metadata.name,
        order: doc.spec.order,
        default_action: match doc.spec.default_action {
            None | Some(TierActionDoc::Deny) => TierDefaultAction::Deny,
            Some(TierActionDoc::Pass) => TierDefaultAction::Pass,
        },
        source: sink.source.to_owned(),
    })
}

/// Parses a Calico policy of `kind` (anything but Tier and StagedKubernetesNetworkPolicy).
pub(super) fn parse(sink: &mut Sink<'_>, kind: &str) -> Result<Policy, ManifestError> {
    let doc: Doc = sink.deserialize()?;
    let kind = match kind {
        "NetworkPolicy" => PolicyKind::CalicoNetworkPolicy,
        "GlobalNetworkPolicy" => PolicyKind::GlobalNetworkPolicy,
        "StagedNetworkPolicy" => PolicyKind::StagedNetworkPolicy,
        _ => PolicyKind::StagedGlobalNetworkPolicy,
    };
    let mut warnings = Vec::new();
    let policy = normalize(&doc, kind, &mut warnings).map_err(|p| sink.error(p))?;
    let label = policy.id().to_string();
    for (path, message) in warnings {
        sink.warn(&label, &path, &message);
    }
    Ok(Policy {
        source: sink.source.to_owned(),
        ..policy
    })
}

fn selector(text: &str, path: &str) -> Result<Selector, Problem> {
    parse_calico_selector(text).map_err(|e| Problem::new(path, e.to_string()))
}

/// A namespace selector; `None` for `global()` (non-namespaced resources only: no endpoint).
fn namespace_scope(text: &str, path: &str) -> Result<Option<NamespaceScope>, Problem> {
    Ok(match selector(text, path)? {
        Selector::Global => None,
        s => Some(NamespaceScope::Matching(s)),
    })
}

fn normalize(
    doc: &Doc,
    kind: PolicyKind,
    warnings: &mut Vec<(String, String)>,
) -> Result<Policy, Problem> {
    let spec = &doc.spec;
    let tier = spec.tier.clone().unwrap_or_else(|| DEFAULT_TIER.to_owned());
    let name = doc
        .metadata
        .name
        .strip_prefix(&format!("{tier}."))
        .unwrap_or(&doc.metadata.name)
        .to_owned();
    if spec.order.is_some_and(|o| !o.is_finite()) {
        return Err(Problem::new("spec.order", "order must be a finite number"));
    }
    if !kind.is_staged() && spec.staged_action.is_some() {
        return Err(Problem::new(
            "spec.stagedAction",
            "stagedAction is only valid in staged policies",
        ));
    }
    let namespace = kind.is_namespaced().then(|| {
        doc.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned())
    });

    let default_scope = match &namespace {
        Some(ns) => NamespaceScope::Only(ns.clone()),
        None => NamespaceScope::Any,
    };
    let scope = match (&spec.namespace_selector, &namespace) {
        (Some(_), Some(_)) => {
            return Err(Problem::new(
                "spec.namespaceSelector",
                "namespaceSelector is only valid in global policies (a namespaced policy applies to its own namespace)",
            ));
        }
        (Some(text), None) => namespace_scope(text, "spec.namespaceSelector")?,
        (None, _) => Some(default_scope.clone()),
    };
    let subject = match scope {
        None => PeerMatch::Nothing,
        Some(scope) => {
            let mut parts = vec![PeerMatch::Labels {
                view: LabelView::Calico,
                selector: selector(spec.selector.as_deref().unwrap_or("all()"), "spec.selector")?,
                namespaces: scope.clone(),
            }];
            if let Some(text) = &spec.service_account_selector {
                parts.push(PeerMatch::ServiceAccounts {
                    names: None,
                    selector: Some(selector(text, "spec.serviceAccountSelector")?),
                    namespaces: scope,
                });
            }
            PeerMatch::all_of(parts)
        }
    };

    let ingress_rules = spec.ingress.as_ref().map_or(&[][..], |r| &r.0[..]);
    let egress_rules = spec.egress.as_ref().map_or(&[][..], |r| &r.0[..]);
    let types = spec.types.clone().unwrap_or_else(|| {
        match (!ingress_rules.is_empty(), !egress_rules.is_empty()) {
            (_, false) => vec![PolicyTypeDoc::Ingress],
            (false, true) => vec![PolicyTypeDoc::Egress],
            (true, true) => vec![PolicyTypeDoc::Ingress, PolicyTypeDoc::Egress],
        }
    });
    let mut directions = [None, None];
    for (slot, (list, ty, field)) in [
        (ingress_rules, PolicyTypeDoc::Ingress, "ingress"),
        (egress_rules, PolicyTypeDoc::Egress, "egress"),
    ]
    .into_iter()
    .enumerate()
    {
        if !types.contains(&ty) {
            if !list.is_empty() {
                return Err(Problem::new(
                    format!("spec.{field}"),
                    format!("{field} rules are given but spec.types does not include {ty:?}"),
                ));
            }
            continue;
        }
        let mut rules = Vec::new();
        for (i, rule) in list.iter().enumerate() {
            let path = format!("spec.{field}[{i}]");
            rules.push(normalize_rule(
                rule,
                i,
                ty == PolicyTypeDoc::Ingress,
                &default_scope,
                &path,
                warnings,
            )?);
        }
        directions[slot] = Some(DirectionRules {
            isolates: true,
            rules,
        });
    }
    let [ingress, egress] = directions;
    Ok(Policy {
        kind,
        namespace,
        name,
        tier,
        order: spec.order,
        staged_action: spec.staged_action.map_or(StagedAction::Set, Into::into),
        sections: vec![Section {
            subject,
            ingress,
            egress,
        }],
        source: String::new(),
    })
}

fn normalize_rule(
    rule: &RuleDoc,
    index: usize,
    ingress: bool,
    default_scope: &NamespaceScope,
    path: &str,
    warnings: &mut Vec<(String, String)>,
) -> Result<Rule, Problem> {
    let empty = EntityDoc::default();
    let source = rule.source.as_ref().unwrap_or(&empty);
    let destination = rule.destination.as_ref().unwrap_or(&empty);
    for (field, present) in [
        ("ports", source.ports.is_some()),
        ("notPorts", source.not_ports.is_some()),
    ] {
        if present {
            return Err(Problem::new(
                format!("{path}.source.{field}"),
                format!(
                    "source.{field} is not supported: the datapath matches destination ports only (use destination.{field})"
                ),
            ));
        }
    }
    if source.domains.is_some() {
        return Err(Problem::new(
            format!("{path}.source.domains"),
            "domains is only valid in the destination of egress rules",
        ));
    }
    if ingress && destination.domains.is_some() {
        return Err(Problem::new(
            format!("{path}.destination.domains"),
            "domains is only valid in the destination of egress rules",
        ));
    }

    let protocol = rule
        .protocol
        .as_ref()
        .map(|p| calico_protocol(p, &format!("{path}.protocol")))
        .transpose()?;
    let not_protocol = rule
        .not_protocol
        .as_ref()
        .map(|p| calico_protocol(p, &format!("{path}.notProtocol")))
        .transpose()?;
    let has_ports = destination.ports.is_some() || destination.not_ports.is_some();
    if has_ports
        && !protocol
            .is_some_and(|p| matches!(p, proto::TCP | proto::UDP | proto::SCTP | proto::UDPLITE))
    {
        let field = if destination.ports.is_some() {
            "ports"
        } else {
            "notPorts"
        };
        return Err(Problem::new(
            format!("{path}.destination.{field}"),
            format!(
                "destination.{field} needs the rule's protocol to be TCP, UDP, SCTP or UDPLite (add e.g. `protocol: TCP` to the rule)"
            ),
        ));
    }
    let mut icmps = [None, None];
    for (slot, (doc, field)) in [(&rule.icmp, "icmp"), (&rule.not_icmp, "notICMP")]
        .into_iter()
        .enumerate()
    {
        let Some(doc) = doc else { continue };
        let here = format!("{path}.{field}");
        if !protocol.is_some_and(proto::is_icmp) {
            return Err(Problem::new(
                here,
                format!("{field} needs the rule's protocol to be ICMP or ICMPv6"),
            ));
        }
        let Some(icmp_type) = doc.icmp_type else {
            return Err(Problem::new(
                format!("{here}.type"),
                format!("{field} needs a type (a code alone matches nothing)"),
            ));
        };
        icmps[slot] = Some(IcmpMatch {
            icmp_type,
            code: doc.code,
        });
    }
    if let Some(v) = rule.ip_version
        && v != 4
        && v != 6
    {
        return Err(Problem::new(
            format!("{path}.ipVersion"),
            format!("ipVersion {v} is not 4 or 6"),
        ));
    }

    let (peer_doc, peer_field, local_doc, local_field) = if ingress {
        (source, "source", destination, "destination")
    } else {
        (destination, "destination", source, "source")
    };
    let mut peer = entity(peer_doc, default_scope, &format!("{path}.{peer_field}"))?;
    let local = entity(local_doc, default_scope, &format!("{path}.{local_field}"))?;
    if let Some(domains) = &destination.domains {
        if domains.is_empty() {
            return Err(Problem::new(
                format!("{path}.destination.domains"),
                "domains is empty",
            ));
        }
        peer = PeerMatch::Nothing;
        warnings.push((
            format!("{path}.destination.domains"),
            "domains is parsed but not yet enforced: the rule matches no destination until DNS-based enforcement exists (traffic to these names is not allowed by it)".to_owned(),
        ));
    }
    if rule.http.is_some() {
        warnings.push((
            format!("{path}.http"),
            "http match is parsed but not yet enforced: the rule applies at L4 and requests are not filtered".to_owned(),
        ));
    }
    let ports = destination
        .ports
        .as_ref()
        .map(|ps| port_specs(ps, &format!("{path}.destination.ports")))
        .transpose()?;
    let not_ports = destination
        .not_ports
        .as_ref()
        .map(|ps| port_specs(ps, &format!("{path}.destination.notPorts")))
        .transpose()?
        .unwrap_or_default();
    let l4 = CalicoL4 {
        protocol,
        not_protocol,
        ports,
        not_ports,
        icmp: icmps[0],
        not_icmp: icmps[1],
    };
    Ok(Rule {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        action: match rule.action {
            ActionDoc::Allow => RuleAction::Allow,
            ActionDoc::Deny => RuleAction::Deny,
            ActionDoc::Log => RuleAction::Log,
            ActionDoc::Pass => RuleAction::Pass,
        },
        peer,
        local,
        l4: if l4 == CalicoL4::default() {
            L4Match::Any
        } else {
            L4Match::Calico(l4)
        },
        ip_version: rule.ip_version,
    })
}

fn nets(list: &[String], path: &str) -> Result<PeerMatch, Problem> {
    let mut out = Vec::new();
    for (i, n) in list.iter().enumerate() {
        out.push(PeerMatch::Cidr {
            net: parse_net(n, &format!("{path}[{i}]"))?,
            except: Vec::new(),
            endpoints: true,
        });
    }
    Ok(PeerMatch::any_of(out))
}

/// One side of a Calico rule as a matcher; every given criterion must hold.
fn entity(
    doc: &EntityDoc,
    default_scope: &NamespaceScope,
    path: &str,
) -> Result<PeerMatch, Problem> {
    let mut parts = Vec::new();
    if let Some(list) = doc.nets.as_ref().filter(|l| !l.is_empty()) {
        parts.push(nets(list, &format!("{path}.nets"))?);
    }
    if let Some(list) = doc.not_nets.as_ref().filter(|l| !l.is_empty()) {
        parts.push(PeerMatch::Not(Box::new(nets(
            list,
            &format!("{path}.notNets"),
        )?)));
    }
    let scope = match &doc.namespace_selector {
        Some(text) => namespace_scope(text, &format!("{path}.namespaceSelector"))?,
        None => Some(default_scope.clone()),
    };
    let labels =
        |text: &str, field: &str, scope: &Option<NamespaceScope>| -> Result<PeerMatch, Problem> {
            let sel = selector(text, &format!("{path}.{field}"))?;
            Ok(match scope {
                Some(scope) => PeerMatch::Labels {
                    view: LabelView::Calico,
                    selector: sel,
                    namespaces: scope.clone(),
                },
                None => PeerMatch::Nothing,
            })
        };
    if doc.selector.is_some() || doc.namespace_selector.is_some() {
        parts.push(labels(
            doc.selector.as_deref().unwrap_or("all()"),
            "selector",
            &scope,
        )?);
    }
    if let Some(text) = &doc.not_selector {
        parts.push(PeerMatch::Not(Box::new(labels(
            text,
            "notSelector",
            &scope,
        )?)));
    }
    if let Some(sa) = &doc.service_accounts {
        let selector = sa
            .selector
            .as_deref()
            .map(|t| selector(t, &format!("{path}.serviceAccounts.selector")))
            .transpose()?;
        parts.push(match &scope {
            Some(scope) => PeerMatch::ServiceAccounts {
                names: sa
                    .names
                    .as_ref()
                    .map(|n| n.iter().cloned().collect::<BTreeSet<_>>()),
                selector,
                namespaces: scope.clone(),
            },
            None => PeerMatch::Nothing,
        });
    }
    Ok(PeerMatch::all_of(parts))
}

fn port_specs(list: &[PortValue], path: &str) -> Result<Vec<PortSpec>, Problem> {
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let here = format!("{path}[{i}]");
        out.push(match p {
            PortValue::Number(n) => {
                let n = port_number(*n, &here, false)?;
                PortSpec::Range(n, n)
            }
            PortValue::Text(t) => {
                if let Some((lo, hi)) = t.split_once(':') {
                    let parse = |s: &str| {
                        s.trim().parse::<u64>().map_err(|_| {
                            Problem::new(&here, format!("{t:?} is not a port range (expected \"from:to\", e.g. \"8000:8080\")"))
                        })
                    };
                    let lo = port_number(parse(lo)?, &here, false)?;
                    let hi = port_number(parse(hi)?, &here, false)?;
                    if hi < lo {
                        return Err(Problem::new(&here, format!("port range {t:?} ends below its start")));
                    }
                    PortSpec::Range(lo, hi)
                } else if let Ok(n) = t.trim().parse::<u64>() {
                    let n = port_number(n, &here, false)?;
                    PortSpec::Range(n, n)
                } else {
                    PortSpec::Named(port_name(t, &here)?)
                }
            }
        });
    }
    Ok(out)
}
