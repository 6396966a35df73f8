//! `cilium.io/v2` CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy.
//!
//! Label keys may carry a source prefix: `k8s:` and `any:` are stripped, `reserved:` selects
//! reserved identities (`reserved:host`, ...). A namespaced policy's peer selectors are confined
//! to its namespace unless they name `io.kubernetes.pod.namespace` or a reserved label. A rule
//! with no L3 field but with `toPorts`/`icmps` applies to every peer; a rule with neither
//! (`{}`) selects no peer (it only puts the endpoint in default deny), as in Cilium.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::ManifestError;
use super::common::{
    Ignored, LabelSelectorDoc, Metadata, PortValue, Problem, Sink, parse_net, port_name,
    port_number,
};
use crate::model::proto;
use crate::policy::{
    DEFAULT_TIER, DirectionRules, Entity, KUBERNETES_ORDER, L4Match, LabelView, NamespaceScope,
    PeerMatch, Policy, PolicyKind, PortMatch, PortSpec, ProtocolMatch, Rule, RuleAction, Section,
    StagedAction,
};
use crate::selector::Selector;
use crate::universe::CILIUM_NAMESPACE_LABEL;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: Metadata,
    #[serde(default)]
    spec: Option<RuleDoc>,
    #[serde(default)]
    specs: Option<Vec<RuleDoc>>,
    #[serde(default, rename = "status")]
    _status: Ignored,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleDoc {
    #[serde(default)]
    endpoint_selector: Option<LabelSelectorDoc>,
    #[serde(default)]
    ingress: Vec<PeerRuleDoc>,
    #[serde(default)]
    ingress_deny: Vec<PeerRuleDoc>,
    #[serde(default)]
    egress: Vec<PeerRuleDoc>,
    #[serde(default)]
    egress_deny: Vec<PeerRuleDoc>,
    #[serde(default)]
    enable_default_deny: Option<DefaultDenyDoc>,
    #[serde(default, rename = "description")]
    _description: Option<String>,
    #[serde(default, rename = "labels")]
    _labels: Ignored,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultDenyDoc {
    #[serde(default)]
    ingress: Option<bool>,
    #[serde(default)]
    egress: Option<bool>,
}

/// One rule of any of the four lists; which fields are allowed where is checked afterwards so the
/// message can say why (`toFQDNs` on ingress, L7 rules on a deny rule).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerRuleDoc {
    #[serde(default, rename = "fromEndpoints")]
    from_endpoints: Option<Vec<LabelSelectorDoc>>,
    #[serde(default, rename = "toEndpoints")]
    to_endpoints: Option<Vec<LabelSelectorDoc>>,
    #[serde(default, rename = "fromCIDR")]
    from_cidr: Option<Vec<String>>,
    #[serde(default, rename = "toCIDR")]
    to_cidr: Option<Vec<String>>,
    #[serde(default, rename = "fromCIDRSet")]
    from_cidr_set: Option<Vec<CidrRuleDoc>>,
    #[serde(default, rename = "toCIDRSet")]
    to_cidr_set: Option<Vec<CidrRuleDoc>>,
    #[serde(default, rename = "fromEntities")]
    from_entities: Option<Vec<String>>,
    #[serde(default, rename = "toEntities")]
    to_entities: Option<Vec<String>>,
    #[serde(default, rename = "toFQDNs")]
    to_fqdns: Option<Vec<FqdnDoc>>,
    #[serde(default, rename = "toPorts")]
    to_ports: Option<Vec<PortRuleDoc>>,
    #[serde(default)]
    icmps: Option<Vec<IcmpRuleDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CidrRuleDoc {
    cidr: String,
    #[serde(default)]
    except: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FqdnDoc {
    #[serde(default)]
    match_name: Option<String>,
    #[serde(default)]
    match_pattern: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortRuleDoc {
    #[serde(default)]
    ports: Vec<PortProtocolDoc>,
    #[serde(default)]
    rules: Option<L7RulesDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PortProtocolDoc {
    #[serde(default)]
    port: Option<PortValue>,
    #[serde(default)]
    end_port: Option<u64>,
    #[serde(default)]
    protocol: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct L7RulesDoc {
    #[serde(default)]
    http: Option<Vec<HttpRuleDoc>>,
    #[serde(default)]
    kafka: Option<Vec<serde_yaml::Value>>,
    #[serde(default)]
    dns: Option<Vec<FqdnDoc>>,
    #[serde(default, rename = "l7proto")]
    l7proto: Option<String>,
    #[serde(default)]
    l7: Option<Vec<serde_yaml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HttpRuleDoc {
    #[serde(default, rename = "method")]
    _method: Option<String>,
    #[serde(default, rename = "path")]
    _path: Option<String>,
    #[serde(default, rename = "host")]
    _host: Option<String>,
    #[serde(default, rename = "headers")]
    _headers: Option<Vec<String>>,
    #[serde(default, rename = "headerMatches")]
    _header_matches: Option<Vec<serde_yaml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IcmpRuleDoc {
    fields: Vec<IcmpFieldDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IcmpFieldDoc {
    #[serde(rename = "type")]
    icmp_type: PortValue,
    #[serde(default)]
    family: Option<String>,
}

/// Parses a Cilium policy of `kind`.
pub(super) fn parse(sink: &mut Sink<'_>, kind: &str) -> Result<Policy, ManifestError> {
    let doc: Doc = sink.deserialize()?;
    let kind = if kind == "CiliumNetworkPolicy" {
        PolicyKind::CiliumNetworkPolicy
    } else {
        PolicyKind::CiliumClusterwideNetworkPolicy
    };
    let namespace = kind.is_namespaced().then(|| {
        doc.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned())
    });
    let mut n = Normalizer {
        namespace: namespace.clone(),
        warnings: Vec::new(),
        counters: [0; 4],
    };
    let mut sections = Vec::new();
    let mut parts: Vec<(String, &RuleDoc)> = Vec::new();
    if let Some(spec) = &doc.spec {
        parts.push(("spec".to_owned(), spec));
    }
    for (i, spec) in doc.specs.iter().flatten().enumerate() {
        parts.push((format!("specs[{i}]"), spec));
    }
    if parts.is_empty() {
        return Err(sink.error(Problem::new("spec", "a Cilium policy needs spec or specs")));
    }
    for (path, spec) in parts {
        sections.push(n.section(spec, &path).map_err(|p| sink.error(p))?);
    }
    let policy = Policy {
        kind,
        namespace,
        name: doc.metadata.name.clone(),
        tier: DEFAULT_TIER.to_owned(),
        order: Some(KUBERNETES_ORDER),
        staged_action: StagedAction::Set,
        sections,
        source: sink.source.to_owned(),
    };
    let label = policy.id().to_string();
    for (path, message) in n.warnings {
        sink.warn(&label, &path, &message);
    }
    Ok(policy)
}

struct Normalizer {
    namespace: Option<String>,
    warnings: Vec<(String, String)>,
    /// Rule index counters for ingress, ingressDeny, egress, egressDeny (across `specs`).
    counters: [u32; 4],
}

/// Strips Cilium's `k8s:`/`any:` label sources; keeps `reserved:`.
fn cilium_key(key: &str) -> Result<String, String> {
    match key.split_once(':') {
        None => Ok(key.to_owned()),
        Some(("k8s" | "any", rest)) => Ok(rest.to_owned()),
        Some(("reserved", _)) => Ok(key.to_owned()),
        Some((source, _)) => Err(format!(
            "label source {source:?} in key {key:?} is not supported (expected k8s:, any: or reserved:)"
        )),
    }
}

fn selects_reserved(selector: &Selector) -> bool {
    selector.keys().iter().any(|k| k.starts_with("reserved:"))
}

const L7_NOT_ENFORCED: &str = "rules are parsed but not yet enforced: the rule's ports are allowed at L4 and requests are not filtered";

impl Normalizer {
    fn section(&mut self, spec: &RuleDoc, path: &str) -> Result<Section, Problem> {
        let Some(selector_doc) = &spec.endpoint_selector else {
            return Err(Problem::new(
                path,
                "endpointSelector is required (nodeSelector host policies are not supported)",
            ));
        };
        let selector = selector_doc.to_selector(&format!("{path}.endpointSelector"), cilium_key)?;
        let subject = PeerMatch::Labels {
            view: LabelView::Cilium,
            selector,
            namespaces: match &self.namespace {
                Some(ns) => NamespaceScope::Only(ns.clone()),
                None => NamespaceScope::Any,
            },
        };
        let default_deny = spec.enable_default_deny.as_ref();
        let ingress = self.direction(
            &spec.ingress,
            &spec.ingress_deny,
            [format!("{path}.ingress"), format!("{path}.ingressDeny")],
            true,
            default_deny.and_then(|d| d.ingress).unwrap_or(true),
        )?;
        let egress = self.direction(
            &spec.egress,
            &spec.egress_deny,
            [format!("{path}.egress"), format!("{path}.egressDeny")],
            false,
            default_deny.and_then(|d| d.egress).unwrap_or(true),
        )?;
        Ok(Section {
            subject,
            ingress,
            egress,
        })
    }

    fn direction(
        &mut self,
        allow: &[PeerRuleDoc],
        deny: &[PeerRuleDoc],
        paths: [String; 2],
        ingress: bool,
        isolates: bool,
    ) -> Result<Option<DirectionRules>, Problem> {
        if allow.is_empty() && deny.is_empty() {
            return Ok(None);
        }
        let mut rules = Vec::new();
        for (list, path, action) in [
            (deny, &paths[1], RuleAction::Deny),
            (allow, &paths[0], RuleAction::Allow),
        ] {
            let counter = usize::from(!ingress) * 2 + usize::from(action == RuleAction::Deny);
            for (i, rule) in list.iter().enumerate() {
                let index = self.counters[counter];
                self.counters[counter] += 1;
                rules.push(self.rule(rule, &format!("{path}[{i}]"), index, action, ingress)?);
            }
        }
        Ok(Some(DirectionRules { isolates, rules }))
    }

    fn rule(
        &mut self,
        rule: &PeerRuleDoc,
        path: &str,
        index: u32,
        action: RuleAction,
        ingress: bool,
    ) -> Result<Rule, Problem> {
        let (ours, theirs) = if ingress {
            ("from", "to")
        } else {
            ("to", "from")
        };
        let misplaced = [
            (
                "Endpoints",
                rule.from_endpoints.is_some(),
                rule.to_endpoints.is_some(),
            ),
            ("CIDR", rule.from_cidr.is_some(), rule.to_cidr.is_some()),
            (
                "CIDRSet",
                rule.from_cidr_set.is_some(),
                rule.to_cidr_set.is_some(),
            ),
            (
                "Entities",
                rule.from_entities.is_some(),
                rule.to_entities.is_some(),
            ),
        ];
        for (field, from, to) in misplaced {
            if (ingress && to) || (!ingress && from) {
                return Err(Problem::new(
                    format!("{path}.{theirs}{field}"),
                    format!(
                        "{theirs}{field} is not valid in {} rules (use {ours}{field})",
                        if ingress { "ingress" } else { "egress" }
                    ),
                ));
            }
        }
        if ingress && rule.to_fqdns.is_some() {
            return Err(Problem::new(
                format!("{path}.toFQDNs"),
                "toFQDNs is only valid in egress rules",
            ));
        }
        let endpoints = if ingress {
            &rule.from_endpoints
        } else {
            &rule.to_endpoints
        };
        let cidrs = if ingress {
            &rule.from_cidr
        } else {
            &rule.to_cidr
        };
        let cidr_sets = if ingress {
            &rule.from_cidr_set
        } else {
            &rule.to_cidr_set
        };
        let entities = if ingress {
            &rule.from_entities
        } else {
            &rule.to_entities
        };

        let mut has_l3 = false;
        let mut peers = Vec::new();
        for (i, sel) in endpoints.iter().flatten().enumerate() {
            has_l3 = true;
            let selector = sel.to_selector(&format!("{path}.{ours}Endpoints[{i}]"), cilium_key)?;
            let confined =
                !selector.mentions_key(CILIUM_NAMESPACE_LABEL) && !selects_reserved(&selector);
            peers.push(PeerMatch::Labels {
                view: LabelView::Cilium,
                selector,
                namespaces: match (&self.namespace, confined) {
                    (Some(ns), true) => NamespaceScope::Only(ns.clone()),
                    _ => NamespaceScope::Any,
                },
            });
        }
        for (i, c) in cidrs.iter().flatten().enumerate() {
            has_l3 = true;
            peers.push(PeerMatch::Cidr {
                net: parse_net(c, &format!("{path}.{ours}CIDR[{i}]"))?,
                except: Vec::new(),
                endpoints: false,
            });
        }
        for (i, set) in cidr_sets.iter().flatten().enumerate() {
            has_l3 = true;
            let here = format!("{path}.{ours}CIDRSet[{i}]");
            let net = parse_net(&set.cidr, &format!("{here}.cidr"))?;
            let mut except = Vec::new();
            for (j, e) in set.except.iter().enumerate() {
                let epath = format!("{here}.except[{j}]");
                let e = parse_net(e, &epath)?;
                if !net.contains(&e) {
                    return Err(Problem::new(
                        epath,
                        format!("except {e} is not inside cidr {net}"),
                    ));
                }
                except.push(e);
            }
            peers.push(PeerMatch::Cidr {
                net,
                except,
                endpoints: false,
            });
        }
        for (i, name) in entities.iter().flatten().enumerate() {
            has_l3 = true;
            let entity = Entity::parse(name).ok_or_else(|| {
                Problem::new(
                    format!("{path}.{ours}Entities[{i}]"),
                    format!(
                        "unknown entity {name:?} (expected one of: {})",
                        Entity::NAMES.join(", ")
                    ),
                )
            })?;
            peers.push(PeerMatch::Entity(entity));
        }
        if let Some(fqdns) = &rule.to_fqdns {
            if action == RuleAction::Deny {
                return Err(Problem::new(
                    format!("{path}.toFQDNs"),
                    "toFQDNs is not valid in egressDeny rules",
                ));
            }
            has_l3 = true;
            for (i, f) in fqdns.iter().enumerate() {
                if f.match_name.is_none() && f.match_pattern.is_none() {
                    return Err(Problem::new(
                        format!("{path}.toFQDNs[{i}]"),
                        "a toFQDNs entry needs matchName or matchPattern",
                    ));
                }
            }
            self.warnings.push((
                format!("{path}.toFQDNs"),
                "toFQDNs is parsed but not yet enforced: the rule selects no peer until DNS-based enforcement exists (traffic to these names is not allowed by it)".to_owned(),
            ));
        }

        let mut l4 = Vec::new();
        for (i, pr) in rule.to_ports.iter().flatten().enumerate() {
            let here = format!("{path}.toPorts[{i}]");
            if pr.ports.is_empty() {
                l4.push(PortMatch {
                    protocol: ProtocolMatch::TcpUdpSctp,
                    ports: PortSpec::All,
                });
            }
            for (j, pp) in pr.ports.iter().enumerate() {
                l4.push(port_protocol(pp, &format!("{here}.ports[{j}]"))?);
            }
            if let Some(rules) = &pr.rules {
                if action == RuleAction::Deny {
                    return Err(Problem::new(
                        format!("{here}.rules"),
                        "L7 rules are not allowed in deny rules",
                    ));
                }
                let kinds = [
                    ("http", rules.http.is_some()),
                    ("kafka", rules.kafka.is_some()),
                    ("dns", rules.dns.is_some()),
                    ("l7", rules.l7.is_some() || rules.l7proto.is_some()),
                ];
                for (name, present) in kinds {
                    if present {
                        self.warnings.push((
                            format!("{here}.rules.{name}"),
                            format!("L7 {name} {L7_NOT_ENFORCED}"),
                        ));
                    }
                }
            }
        }
        for (i, icmp) in rule.icmps.iter().flatten().enumerate() {
            for (j, field) in icmp.fields.iter().enumerate() {
                l4.push(icmp_field(
                    field,
                    &format!("{path}.icmps[{i}].fields[{j}]"),
                )?);
            }
        }
        let has_l4 = rule.to_ports.is_some() || rule.icmps.is_some();
        let peer = if has_l3 {
            PeerMatch::any_of(peers)
        } else if has_l4 {
            PeerMatch::Any
        } else {
            PeerMatch::Nothing
        };
        Ok(Rule {
            index,
            action,
            peer,
            local: PeerMatch::Any,
            l4: if has_l4 {
                L4Match::AnyOf(l4)
            } else {
                L4Match::Any
            },
            ip_version: None,
        })
    }
}

fn port_protocol(pp: &PortProtocolDoc, path: &str) -> Result<PortMatch, Problem> {
    let protocol = match pp
        .protocol
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("ANY") => ProtocolMatch::TcpUdpSctp,
        Some("TCP") => ProtocolMatch::Is(proto::TCP),
        Some("UDP") => ProtocolMatch::Is(proto::UDP),
        Some("SCTP") => ProtocolMatch::Is(proto::SCTP),
        Some(other) => {
            return Err(Problem::new(
                format!("{path}.protocol"),
                format!(
                    "unknown protocol {other:?} (expected TCP, UDP, SCTP or ANY; ICMP goes in icmps)"
                ),
            ));
        }
    };
    let number = match &pp.port {
        None => 0,
        Some(PortValue::Number(n)) => port_number(*n, &format!("{path}.port"), true)?,
        Some(PortValue::Text(t)) => match t.parse::<u64>() {
            Ok(n) => port_number(n, &format!("{path}.port"), true)?,
            Err(_) => {
                if pp.end_port.is_some() {
                    return Err(Problem::new(
                        format!("{path}.endPort"),
                        "endPort needs a numeric port, not a named one",
                    ));
                }
                return Ok(PortMatch {
                    protocol,
                    ports: PortSpec::Named(port_name(t, &format!("{path}.port"))?),
                });
            }
        },
    };
    let ports = match (number, pp.end_port) {
        (0, None) => PortSpec::All,
        (0, Some(_)) => {
            return Err(Problem::new(
                format!("{path}.endPort"),
                "endPort needs a port",
            ));
        }
        (n, None) => PortSpec::Range(n, n),
        (n, Some(end)) => {
            let end = port_number(end, &format!("{path}.endPort"), false)?;
            if end < n {
                return Err(Problem::new(
                    format!("{path}.endPort"),
                    format!("endPort {end} is below port {n}"),
                ));
            }
            PortSpec::Range(n, end)
        }
    };
    Ok(PortMatch { protocol, ports })
}

fn icmp_field(field: &IcmpFieldDoc, path: &str) -> Result<PortMatch, Problem> {
    let v6 = match field.family.as_deref() {
        None | Some("IPv4") => false,
        Some("IPv6") => true,
        Some(other) => {
            return Err(Problem::new(
                format!("{path}.family"),
                format!("unknown family {other:?} (expected IPv4 or IPv6)"),
            ));
        }
    };
    let icmp_type = match &field.icmp_type {
        PortValue::Number(n) => u8::try_from(*n).ok(),
        PortValue::Text(t) => t.parse::<u8>().ok().or_else(|| icmp_type_name(t, v6)),
    }
    .ok_or_else(|| {
        Problem::new(
            format!("{path}.type"),
            "expected an ICMP type number (0-255) or a name such as EchoRequest",
        )
    })?;
    let base = u16::from(icmp_type) << 8;
    Ok(PortMatch {
        protocol: ProtocolMatch::Is(if v6 { proto::ICMPV6 } else { proto::ICMP }),
        ports: PortSpec::Range(base, base | 0xff),
    })
}

fn icmp_type_name(name: &str, v6: bool) -> Option<u8> {
    let v4 = [
        ("EchoReply", 0),
        ("DestinationUnreachable", 3),
        ("Redirect", 5),
        ("EchoRequest", 8),
        ("RouterAdvertisement", 9),
        ("RouterSelection", 10),
        ("TimeExceeded", 11),
        ("ParameterProblem", 12),
        ("Timestamp", 13),
        ("TimestampReply", 14),
    ];
    let v6_names = [
        ("DestinationUnreachable", 1),
        ("PacketTooBig", 2),
        ("TimeExceeded", 3),
        ("ParameterProblem", 4),
        ("EchoRequest", 128),
        ("EchoReply", 129),
        ("MulticastListenerQuery", 130),
        ("MulticastListenerReport", 131),
        ("MulticastListenerDone", 132),
        ("RouterSolicitation", 133),
        ("RouterAdvertisement", 134),
        ("NeighborSolicitation", 135),
        ("NeighborAdvertisement", 136),
    ];
    let table: &[(&str, u8)] = if v6 { &v6_names } else { &v4 };
    table.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
