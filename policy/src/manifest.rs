//! Manifests: YAML text in, normalized policies and cluster objects out.
//!
//! A file may hold several documents (`---`); it is accepted or refused as a whole, so one bad
//! document never half-applies a file. Every document is deserialized into typed serde structs
//! with `deny_unknown_fields` straight from its text, so serde_yaml's line/column survive, and
//! `serde_path_to_error` supplies the field path. Checks that need more than one field run after
//! deserialization on the typed structs; their errors carry a field path, and the line/column of
//! that path is looked up in the document text (`locate`). Fields that are parsed but not
//! enforced yet produce [`Warning`]s naming the policy and field.
//!
//! This module only reads text handed to it; it never opens files.

mod calico;
mod cilium;
mod cluster;
mod common;
mod k8s;
mod locate;
#[cfg(test)]
mod tests;

use std::fmt;

use serde_yaml::Value;

use crate::Endpoint;
use crate::model::{Namespace, Node};
use crate::policy::{Policy, Tier};

use common::{Problem, Sink};

/// The policies and tiers of one policy file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedPolicies {
    /// Every policy, in file order.
    pub policies: Vec<Policy>,
    /// Every Calico Tier, in file order.
    pub tiers: Vec<Tier>,
    /// Fields that were parsed but are not enforced, and skipped documents.
    pub warnings: Vec<Warning>,
}

/// The cluster objects of one cluster file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedCluster {
    /// `vigil.dev/v1` Endpoint documents.
    pub endpoints: Vec<Endpoint>,
    /// `v1` Namespace documents.
    pub namespaces: Vec<Namespace>,
    /// `vigil.dev/v1` Node documents.
    pub nodes: Vec<Node>,
}

/// Why a file was refused: where, which field, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The file name given to the parser.
    pub source: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The field path, e.g. `spec.ingress[0].destination`.
    pub field: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
    /// Further problems found in the same file, in line order (boxed to keep `Result`s small).
    pub also: Box<[ManifestError]>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)?;
        for other in &self.also {
            write!(f, "\n{other}")?;
        }
        Ok(())
    }
}

// Not derived with thiserror: its `source` field is the file name, not an error cause.
impl std::error::Error for ManifestError {}

/// A field that was accepted but is not (fully) enforced, or a document that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file name given to the parser.
    pub source: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The policy (`Kind/namespace/name` or `Kind/name`).
    pub policy: String,
    /// The field path.
    pub field: String,
    /// What is and is not enforced.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}: {}: {}", self.policy, self.field, self.message)
    }
}

/// The apiVersions and kinds of policy files.
const POLICY_KINDS: &[(&str, &[&str])] = &[
    ("networking.k8s.io/v1", &["NetworkPolicy"]),
    (
        "cilium.io/v2",
        &["CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"],
    ),
    (
        "projectcalico.org/v3",
        &[
            "NetworkPolicy",
            "GlobalNetworkPolicy",
            "StagedNetworkPolicy",
            "StagedGlobalNetworkPolicy",
            "StagedKubernetesNetworkPolicy",
            "Tier",
        ],
    ),
    ("operator.tigera.io/v1", &["ApplicationLayer"]),
];

/// The apiVersions and kinds of cluster files.
const CLUSTER_KINDS: &[(&str, &[&str])] = &[
    ("vigil.dev/v1", &["Endpoint", "Node"]),
    ("v1", &["Namespace"]),
];

/// Parses a policy file (one or more YAML documents). `source` names the file in errors.
///
/// Accepted: `networking.k8s.io/v1` NetworkPolicy; `cilium.io/v2` CiliumNetworkPolicy and
/// CiliumClusterwideNetworkPolicy; `projectcalico.org/v3` NetworkPolicy, GlobalNetworkPolicy,
/// StagedNetworkPolicy, StagedGlobalNetworkPolicy, StagedKubernetesNetworkPolicy and Tier.
/// `operator.tigera.io/v1` ApplicationLayer is recognised and skipped with a warning. Any error
/// refuses the whole file.
pub fn parse_policy_file(source: &str, text: &str) -> Result<ParsedPolicies, ManifestError> {
    let mut out = ParsedPolicies::default();
    let mut errors = Vec::new();
    for doc in split_documents(text) {
        let Some(header) = read_header(source, &doc, POLICY_KINDS, &mut errors) else {
            continue;
        };
        let mut sink = Sink::new(source, &doc.text, doc.first_line);
        let result = match (header.api_version.as_str(), header.kind.as_str()) {
            ("networking.k8s.io/v1", "NetworkPolicy") => {
                k8s::parse(&mut sink, false).map(|p| out.policies.push(p))
            }
            ("projectcalico.org/v3", "StagedKubernetesNetworkPolicy") => {
                k8s::parse(&mut sink, true).map(|p| out.policies.push(p))
            }
            ("cilium.io/v2", kind) => cilium::parse(&mut sink, kind).map(|p| out.policies.push(p)),
            ("projectcalico.org/v3", "Tier") => {
                calico::parse_tier(&mut sink).map(|t| out.tiers.push(t))
            }
            ("projectcalico.org/v3", kind) => {
                calico::parse(&mut sink, kind).map(|p| out.policies.push(p))
            }
            ("operator.tigera.io/v1", kind) => {
                let name = doc_name(&doc);
                sink.warn(
                    &format!("{kind}/{name}"),
                    "kind",
                    "operator.tigera.io/v1 ApplicationLayer only switches on Calico's L7 (HTTP) support; it is recognised and skipped. Vigil parses L7 rules but does not enforce them yet",
                );
                Ok(())
            }
            _ => Err(unsupported_kind(&sink, &header)),
        };
        match result {
            Ok(()) => out.warnings.append(&mut sink.warnings),
            Err(e) => errors.push(e),
        }
    }
    finish(errors, out)
}

/// Parses a cluster file: `vigil.dev/v1` Endpoint and Node, `v1` Namespace documents.
pub fn parse_cluster_file(source: &str, text: &str) -> Result<ParsedCluster, ManifestError> {
    let mut out = ParsedCluster::default();
    let mut errors = Vec::new();
    for doc in split_documents(text) {
        let Some(header) = read_header(source, &doc, CLUSTER_KINDS, &mut errors) else {
            continue;
        };
        let mut sink = Sink::new(source, &doc.text, doc.first_line);
        let result = match header.kind.as_str() {
            "Endpoint" => cluster::parse_endpoint(&mut sink).map(|e| out.endpoints.push(e)),
            "Node" => cluster::parse_node(&mut sink).map(|n| out.nodes.push(n)),
            "Namespace" => cluster::parse_namespace(&mut sink).map(|n| out.namespaces.push(n)),
            _ => Err(unsupported_kind(&sink, &header)),
        };
        if let Err(e) = result {
            errors.push(e);
        }
    }
    finish(errors, out)
}

fn unsupported_kind(sink: &Sink<'_>, header: &Header) -> ManifestError {
    // read_header only lets listed kinds through; this keeps the match total without a panic.
    sink.error(Problem::new(
        "kind",
        format!(
            "unsupported kind {:?} for apiVersion {}",
            header.kind, header.api_version
        ),
    ))
}

fn finish<T>(mut errors: Vec<ManifestError>, out: T) -> Result<T, ManifestError> {
    if errors.is_empty() {
        return Ok(out);
    }
    let mut flat = Vec::new();
    for mut e in errors.drain(..) {
        flat.extend(std::mem::take(&mut e.also));
        flat.push(e);
    }
    flat.sort_by_key(|e| (e.line.unwrap_or(usize::MAX), e.column.unwrap_or(0)));
    let mut first = flat.remove(0);
    first.also = flat.into_boxed_slice();
    Err(first)
}

/// One YAML document of a file.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// The document's text; document markers are blanked so columns stay right.
    pub text: String,
    /// Lines of the file before the document's first line.
    pub first_line: usize,
}

/// Splits a file at `---` (and `...`) lines, keeping every document's line offset.
pub(crate) fn split_documents(text: &str) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut first_line = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let is_marker = |m: &str| {
            line.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
        };
        if is_marker("---") || is_marker("...") {
            docs.push(Document {
                text: std::mem::take(&mut current),
                first_line,
            });
            first_line = i;
            current.push_str("   ");
            current.push_str(&line[3..]);
        } else {
            current.push_str(line);
        }
    }
    docs.push(Document {
        text: current,
        first_line,
    });
    docs
}

/// What a document says it is.
#[derive(Debug, Clone)]
struct Header {
    api_version: String,
    kind: String,
}

/// A top-level `key: value` line, found textually (used to place errors when the YAML itself is
/// broken, and to point at apiVersion/kind values).
fn top_level_value(doc: &Document, key: &str) -> Option<(usize, usize, String)> {
    doc.text.lines().enumerate().find_map(|(i, line)| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let value = rest.split(" #").next().unwrap_or("").trim();
        let offset = line.len() - rest.len() + (rest.len() - rest.trim_start().len());
        let value = value.trim_matches(|c| c == '"' || c == '\'').to_owned();
        Some((doc.first_line + i + 1, offset + 1, value))
    })
}

fn doc_name(doc: &Document) -> String {
    serde_yaml::from_str::<Value>(&doc.text)
        .ok()
        .and_then(|v| v.get("metadata")?.get("name")?.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Reads apiVersion and kind and checks them against `accepted`; `None` skips the document
/// (empty, or refused with an error pushed to `errors`).
fn read_header(
    source: &str,
    doc: &Document,
    accepted: &[(&str, &[&str])],
    errors: &mut Vec<ManifestError>,
) -> Option<Header> {
    let sink = Sink::new(source, &doc.text, doc.first_line);
    let mut problems = Vec::new();
    let textual_api = top_level_value(doc, "apiVersion");
    // The apiVersion is checked textually first so that a typo is reported even when the YAML
    // further down is broken (the seed article's first example has both).
    if let Some((line, column, api)) = &textual_api
        && !accepted.iter().any(|(a, _)| a == api)
    {
        problems.push(sink.error_at(
            *line,
            *column,
            "apiVersion",
            api_version_message(api, accepted),
        ));
    }
    let value = match serde_yaml::from_str::<Value>(&doc.text) {
        Ok(v) => v,
        Err(e) => {
            let mut error = sink.yaml_error(&e, None);
            error.message = format!("invalid YAML: {}", error.message);
            problems.push(error);
            errors.push(combine(problems));
            return None;
        }
    };
    if !problems.is_empty() {
        errors.push(combine(problems));
        return None;
    }
    if value.is_null() {
        return None;
    }
    let field = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
        let missing = if field("apiVersion").is_none() {
            "apiVersion"
        } else {
            "kind"
        };
        errors.push(sink.error(Problem::new(
            missing,
            format!(
                "every document needs a string {missing} (expected one of: {})",
                list_all(accepted)
            ),
        )));
        return None;
    };
    let Some((_, kinds)) = accepted.iter().find(|(a, _)| *a == api_version) else {
        errors.push(sink.error(Problem::new(
            "apiVersion",
            api_version_message(&api_version, accepted),
        )));
        return None;
    };
    if !kinds.contains(&kind.as_str()) {
        let mut message = format!(
            "unknown kind {kind:?} for apiVersion {api_version} (accepted kinds: {})",
            kinds.join(", ")
        );
        if let Some(best) = closest(&kind, kinds.iter().copied()) {
            message.push_str(&format!("; did you mean {best:?}?"));
        } else if let Some((api, _)) = accepted.iter().find(|(_, ks)| ks.contains(&kind.as_str())) {
            message.push_str(&format!("; {kind} belongs to apiVersion {api}"));
        }
        errors.push(sink.error(Problem::new("kind", message)));
        return None;
    }
    Some(Header { api_version, kind })
}

fn combine(mut problems: Vec<ManifestError>) -> ManifestError {
    let mut first = problems.remove(0);
    first.also = problems.into_boxed_slice();
    first
}

fn list_all(accepted: &[(&str, &[&str])]) -> String {
    accepted
        .iter()
        .map(|(api, kinds)| format!("{api} {}", kinds.join("/")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn api_version_message(api: &str, accepted: &[(&str, &[&str])]) -> String {
    if api.starts_with("policy.networking.k8s.io") {
        return format!(
            "apiVersion {api:?} (AdminNetworkPolicy / BaselineAdminNetworkPolicy) is not supported yet"
        );
    }
    if accepted.iter().any(|(a, _)| *a == "v1") && POLICY_KINDS.iter().any(|(a, _)| *a == api) {
        return format!(
            "apiVersion {api:?} is a policy; load it as a policy file, not a cluster file"
        );
    }
    if CLUSTER_KINDS.iter().any(|(a, _)| *a == api) && !accepted.iter().any(|(a, _)| *a == api) {
        return format!(
            "apiVersion {api:?} describes the cluster; load it as a cluster file, not a policy file"
        );
    }
    let mut message = format!("unknown apiVersion {api:?}");
    match closest(api, accepted.iter().map(|(a, _)| *a)) {
        Some(best) => message.push_str(&format!("; did you mean {best:?}?")),
        None => message.push_str(&format!(
            " (expected one of: {})",
            accepted
                .iter()
                .map(|(a, _)| *a)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    message
}

/// The candidate closest to `word` by edit distance, when close enough to be a typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).clamp(1, 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
