//! Pieces every dialect shares: the error/warning sink of one document, metadata, label
//! selectors, port values, CIDRs and protocol names.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Visitor};

use super::locate::locate;
use super::{ManifestError, Warning, closest};
use crate::model::proto;
use crate::selector::Selector;

/// A problem found after deserialization: the field path and what is wrong.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Turns paths into file locations for one document, and collects its warnings.
#[derive(Debug)]
pub(crate) struct Sink<'a> {
    pub source: &'a str,
    pub text: &'a str,
    pub first_line: usize,
    pub warnings: Vec<Warning>,
}

impl<'a> Sink<'a> {
    pub fn new(source: &'a str, text: &'a str, first_line: usize) -> Sink<'a> {
        Sink {
            source,
            text,
            first_line,
            warnings: Vec::new(),
        }
    }

    /// The location of a field: the line of its key when the path ends in a key (serde_yaml
    /// reports where the value starts, which for a nested block is the line below), else the
    /// value's.
    fn located(&self, path: &str) -> (Option<usize>, Option<usize>) {
        let value = locate(self.text, path);
        let key_line = path
            .rsplit_once('.')
            .filter(|(_, key)| !key.contains('['))
            .and_then(|(parent, key)| {
                let (from, _) = locate(self.text, parent)?;
                let (to, _) = value?;
                self.text
                    .lines()
                    .enumerate()
                    .skip(from - 1)
                    .take(to + 1 - from)
                    .find_map(|(i, l)| {
                        let trimmed = l.trim_start();
                        let rest = trimmed.strip_prefix("- ").unwrap_or(trimmed).trim_start();
                        rest.strip_prefix(key)?.strip_prefix(':')?;
                        Some((i + 1, l.len() - rest.len() + 1))
                    })
            });
        match key_line.or(value) {
            Some((line, column)) => (Some(line + self.first_line), Some(column)),
            None => (None, None),
        }
    }

    /// An error at a field path (located in the document text).
    pub fn error(&self, problem: Problem) -> ManifestError {
        // Fall back to the closest enclosing field that exists in the text.
        let mut path = problem.path.as_str();
        let (mut line, mut column) = self.located(path);
        while line.is_none() {
            match path.rfind(['.', '[']) {
                Some(cut) => {
                    path = &path[..cut];
                    (line, column) = self.located(path);
                }
                None => break,
            }
        }
        ManifestError {
            source: self.source.to_owned(),
            line,
            column,
            field: (!problem.path.is_empty()).then_some(problem.path),
            message: problem.message,
            also: Box::default(),
        }
    }

    /// An error at a known file line and column.
    pub fn error_at(
        &self,
        line: usize,
        column: usize,
        field: &str,
        message: String,
    ) -> ManifestError {
        ManifestError {
            source: self.source.to_owned(),
            line: Some(line),
            column: Some(column),
            field: Some(field.to_owned()),
            message,
            also: Box::default(),
        }
    }

    /// Records a warning about a field of a policy.
    pub fn warn(&mut self, policy: &str, path: &str, message: &str) {
        let (line, _) = self.located(path);
        self.warnings.push(Warning {
            source: self.source.to_owned(),
            line,
            policy: policy.to_owned(),
            field: path.to_owned(),
            message: message.to_owned(),
        });
    }

    /// Deserializes the whole document into a typed struct, keeping location and field path.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ManifestError> {
        let de = serde_yaml::Deserializer::from_str(self.text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let path = (path != ".").then_some(path);
            self.yaml_error(e.inner(), path)
        })
    }

    /// Converts a serde_yaml error into a located, actionable error.
    pub fn yaml_error(&self, e: &serde_yaml::Error, path: Option<String>) -> ManifestError {
        let location = e.location().map(|l| (l.line(), l.column()));
        let mut message = e.to_string();
        // serde_yaml prefixes its own (sometimes shorter) path; ours is the one reported.
        if let Some(p) = &path
            && let Some((prefix, rest)) = message.split_once(": ")
            && p.starts_with(prefix)
        {
            message = rest.to_owned();
        }
        if let Some((line, column)) = location {
            let suffix = format!(" at line {line} column {column}");
            if let Some(at) = message.find(&suffix) {
                message.replace_range(at..at + suffix.len(), "");
            }
        }
        message = shift_line_numbers(&message, self.first_line);
        if let Some(hint) = location.and_then(|(line, _)| self.structure_hint(&message, line)) {
            message.push_str("; ");
            message.push_str(&hint);
        }
        if let Some(hint) = unknown_field_hint(&message) {
            message.push_str("; ");
            message.push_str(&hint);
        }
        ManifestError {
            source: self.source.to_owned(),
            line: location.map(|(l, _)| l + self.first_line),
            column: location.map(|(_, c)| c),
            field: path,
            message,
            also: Box::default(),
        }
    }

    /// For a key indented as a sibling of a list item (`- action: Deny` then `destination:` at the
    /// dash's column), says where the key probably belongs.
    fn structure_hint(&self, message: &str, line: usize) -> Option<String> {
        if !message.contains("did not find expected") && !message.contains("mapping values") {
            return None;
        }
        let lines: Vec<&str> = self.text.lines().collect();
        let text = lines.get(line.checked_sub(1)?)?;
        let indent = text.len() - text.trim_start().len();
        let key = text.trim_start().split(':').next()?.trim();
        if key.is_empty() || key.starts_with('-') {
            return None;
        }
        let (item_index, item) = lines[..line - 1].iter().enumerate().rev().find(|(_, l)| {
            let i = l.len() - l.trim_start().len();
            i <= indent && !l.trim().is_empty() && !l.trim_start().starts_with('#')
        })?;
        let item_indent = item.len() - item.trim_start().len();
        let after_dash = item.trim_start().strip_prefix('-')?;
        if item_indent != indent {
            return None;
        }
        let content_column =
            item_indent + 1 + (after_dash.len() - after_dash.trim_start().len()) + 1;
        let first_key = after_dash
            .trim_start()
            .split(':')
            .next()
            .unwrap_or("")
            .trim();
        Some(format!(
            "`{key}` is indented as a sibling of the list item on line {}; it probably belongs inside that item: indent it to column {content_column} to line up with `{first_key}`",
            item_index + 1 + self.first_line
        ))
    }
}

/// Adds `offset` to every "line N" in a serde_yaml message (it counts from the document start).
fn shift_line_numbers(message: &str, offset: usize) -> String {
    if offset == 0 {
        return message.to_owned();
    }
    let mut out = String::new();
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        out.push_str(&rest[..at + 5]);
        rest = &rest[at + 5..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if let Ok(n) = rest[..digits].parse::<usize>() {
            out.push_str(&(n + offset).to_string());
        } else {
            out.push_str(&rest[..digits]);
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// "unknown field `protcol`, expected one of `a`, `b`" -> "did you mean `protocol`?" (and the
/// same for enum variants such as rule actions).
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (field, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    closest(field, expected.into_iter()).map(|best| format!("did you mean `{best}`?"))
}

/// Kubernetes object metadata (unknown fields such as `uid` are ignored: they come with
/// `kubectl get -o yaml` output and mean nothing to policy).
#[derive(Debug, Deserialize)]
pub(crate) struct Metadata {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A Kubernetes `LabelSelector` (also Cilium's `EndpointSelector`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LabelSelectorDoc {
    #[serde(default)]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub match_expressions: Option<Vec<LabelExpressionDoc>>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LabelExpressionDoc {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelectorDoc {
    /// The selector, with every key passed through `key` (Cilium strips `k8s:` prefixes).
    pub fn to_selector(
        &self,
        path: &str,
        key: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Selector, Problem> {
        let mut parts = Vec::new();
        for (k, v) in self.match_labels.iter().flatten() {
            let k = key(k).map_err(|m| Problem::new(format!("{path}.matchLabels"), m))?;
            parts.push(Selector::Eq(k, v.clone()));
        }
        for (i, e) in self.match_expressions.iter().flatten().enumerate() {
            let here = format!("{path}.matchExpressions[{i}]");
            let k = key(&e.key).map_err(|m| Problem::new(format!("{here}.key"), m))?;
            parts.push(
                Selector::requirement(&k, &e.operator, &e.values)
                    .map_err(|m| Problem::new(format!("{here}.operator"), m))?,
            );
        }
        Ok(Selector::and(parts))
    }
}

/// A port written as a number or a string (`80`, `"80"`, `"1000:2000"`, `"http"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PortValue {
    Number(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for PortValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<PortValue, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or a port name")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortValue, E> {
                Ok(PortValue::Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortValue, E> {
                u64::try_from(v)
                    .map(PortValue::Number)
                    .map_err(|_| E::custom(format!("port {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortValue, E> {
                Ok(PortValue::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A port number in 1..=65535 (or 0 when `allow_zero`).
pub(crate) fn port_number(n: u64, path: &str, allow_zero: bool) -> Result<u16, Problem> {
    match u16::try_from(n) {
        Ok(0) if !allow_zero => Err(Problem::new(
            path,
            "port 0 is not a valid port (expected 1-65535)",
        )),
        Ok(p) => Ok(p),
        Err(_) => Err(Problem::new(
            path,
            format!("port {n} is out of range (expected 1-65535)"),
        )),
    }
}

/// Checks a port name (IANA service name: at most 15 characters, lowercase letters, digits and
/// dashes, with at least one letter).
pub(crate) fn port_name(name: &str, path: &str) -> Result<String, Problem> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.chars().any(|c| c.is_ascii_lowercase());
    if ok {
        Ok(name.to_owned())
    } else {
        Err(Problem::new(
            path,
            format!(
                "{name:?} is neither a port number nor a valid port name (lowercase letters, digits and dashes, at most 15 characters)"
            ),
        ))
    }
}

/// Parses a CIDR; a bare address is a host prefix.
pub(crate) fn parse_net(text: &str, path: &str) -> Result<IpNet, Problem> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    Err(Problem::new(
        path,
        format!("{text:?} is not a CIDR (expected e.g. 10.0.0.0/8 or fd00::/64)"),
    ))
}

/// Parses a protocol name or number as Calico writes them.
pub(crate) fn calico_protocol(value: &PortValue, path: &str) -> Result<u8, Problem> {
    match value {
        PortValue::Number(n) => u8::try_from(*n)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Problem::new(path, format!("protocol number {n} is out of range (1-255)"))),
        PortValue::Text(t) => match t.to_ascii_lowercase().as_str() {
            "tcp" => Ok(proto::TCP),
            "udp" => Ok(proto::UDP),
            "icmp" => Ok(proto::ICMP),
            "icmpv6" => Ok(proto::ICMPV6),
            "sctp" => Ok(proto::SCTP),
            "udplite" => Ok(proto::UDPLITE),
            other => other.parse::<u8>().ok().filter(|p| *p > 0).ok_or_else(|| {
                Problem::new(
                    path,
                    format!("unknown protocol {t:?} (expected TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 1-255)"),
                )
            }),
        },
    }
}

/// Parses a Kubernetes protocol (`TCP` default, `UDP`, `SCTP`).
pub(crate) fn kubernetes_protocol(value: Option<&str>, path: &str) -> Result<u8, Problem> {
    match value {
        None | Some("TCP") => Ok(proto::TCP),
        Some("UDP") => Ok(proto::UDP),
        Some("SCTP") => Ok(proto::SCTP),
        Some(other) => Err(Problem::new(
            path,
            format!("unknown protocol {other:?} (expected TCP, UDP or SCTP)"),
        )),
    }
}

/// `Ingress` / `Egress` in `policyTypes` and Calico `types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum PolicyTypeDoc {
    Ingress,
    Egress,
}

/// Calico's `stagedAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum StagedActionDoc {
    Set,
    Delete,
}

impl From<StagedActionDoc> for crate::policy::StagedAction {
    fn from(value: StagedActionDoc) -> Self {
        match value {
            StagedActionDoc::Set => crate::policy::StagedAction::Set,
            StagedActionDoc::Delete => crate::policy::StagedAction::Delete,
        }
    }
}

/// Fields present in a document that are ignored for policy purposes (`status`).
pub(crate) type Ignored = Option<serde::de::IgnoredAny>;
