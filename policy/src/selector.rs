//! Label selectors: one expression type for every dialect.
//!
//! Kubernetes/Cilium `matchLabels` + `matchExpressions` and Calico's selector language all compile
//! into [`Selector`], which is evaluated against a label map. What label map an identity shows to
//! a selector (pod labels only, Cilium's namespace labels, Calico's `projectcalico.org/*` labels)
//! is decided by the caller (`universe`), not here. This module does no policy evaluation.

mod calico;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use calico::parse_calico_selector;

/// A label selector expression.
///
/// Negative operators follow Kubernetes and Calico: `k != v` and `k not in {..}` are true when the
/// label is absent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Selector {
    /// Matches everything (`all()`, an empty `matchLabels`).
    All,
    /// Calico's `global()`: matches only non-namespaced resources, none of which are endpoints
    /// here, so it never matches a label map.
    Global,
    /// The label is present with this value.
    Eq(String, String),
    /// The label is absent or has another value.
    Ne(String, String),
    /// The label is present.
    Has(String),
    /// The label is present with one of the values.
    In(String, BTreeSet<String>),
    /// The label is absent or has none of the values.
    NotIn(String, BTreeSet<String>),
    /// The label is present and its value contains the string.
    Contains(String, String),
    /// The label is present and its value starts with the string.
    StartsWith(String, String),
    /// The label is present and its value ends with the string.
    EndsWith(String, String),
    /// Negation.
    Not(Box<Selector>),
    /// Every operand matches (an empty list matches everything).
    And(Vec<Selector>),
    /// At least one operand matches (an empty list matches nothing).
    Or(Vec<Selector>),
}

/// A selector that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("selector {selector:?}: {message} at column {column}")]
pub struct SelectorError {
    /// The selector text.
    pub selector: String,
    /// 1-based character column in the selector text.
    pub column: usize,
    /// What was wrong and what was expected.
    pub message: String,
}

impl Selector {
    /// Whether the selector matches a label map.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = |k: &str| labels.get(k).map(String::as_str);
        match self {
            Selector::All => true,
            Selector::Global => false,
            Selector::Eq(k, v) => value(k) == Some(v.as_str()),
            Selector::Ne(k, v) => value(k) != Some(v.as_str()),
            Selector::Has(k) => labels.contains_key(k),
            Selector::In(k, vs) => value(k).is_some_and(|x| vs.contains(x)),
            Selector::NotIn(k, vs) => !value(k).is_some_and(|x| vs.contains(x)),
            Selector::Contains(k, s) => value(k).is_some_and(|x| x.contains(s.as_str())),
            Selector::StartsWith(k, s) => value(k).is_some_and(|x| x.starts_with(s.as_str())),
            Selector::EndsWith(k, s) => value(k).is_some_and(|x| x.ends_with(s.as_str())),
            Selector::Not(inner) => !inner.matches(labels),
            Selector::And(all) => all.iter().all(|s| s.matches(labels)),
            Selector::Or(any) => any.iter().any(|s| s.matches(labels)),
        }
    }

    /// Whether the expression mentions the label key anywhere (used for Cilium's rule that a
    /// namespaced policy's peer selector is confined to its namespace unless it names the
    /// namespace label).
    pub fn mentions_key(&self, key: &str) -> bool {
        match self {
            Selector::All | Selector::Global => false,
            Selector::Eq(k, _)
            | Selector::Ne(k, _)
            | Selector::Has(k)
            | Selector::In(k, _)
            | Selector::NotIn(k, _)
            | Selector::Contains(k, _)
            | Selector::StartsWith(k, _)
            | Selector::EndsWith(k, _) => k == key,
            Selector::Not(inner) => inner.mentions_key(key),
            Selector::And(list) | Selector::Or(list) => list.iter().any(|s| s.mentions_key(key)),
        }
    }

    /// Every label key the expression mentions.
    pub fn keys(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        self.collect_keys(&mut out);
        out
    }

    fn collect_keys<'a>(&'a self, out: &mut BTreeSet<&'a str>) {
        match self {
            Selector::All | Selector::Global => {}
            Selector::Eq(k, _)
            | Selector::Ne(k, _)
            | Selector::Has(k)
            | Selector::In(k, _)
            | Selector::NotIn(k, _)
            | Selector::Contains(k, _)
            | Selector::StartsWith(k, _)
            | Selector::EndsWith(k, _) => {
                out.insert(k);
            }
            Selector::Not(inner) => inner.collect_keys(out),
            Selector::And(list) | Selector::Or(list) => {
                list.iter().for_each(|s| s.collect_keys(out))
            }
        }
    }

    /// Conjunction that flattens nested `And`s and drops `All`.
    pub fn and(parts: Vec<Selector>) -> Selector {
        let mut flat = Vec::new();
        for part in parts {
            match part {
                Selector::All => {}
                Selector::And(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => Selector::All,
            1 => flat.pop().unwrap_or(Selector::All),
            _ => Selector::And(flat),
        }
    }

    /// The Kubernetes label-selector requirement `key operator values` (`In`, `NotIn`, `Exists`,
    /// `DoesNotExist`), validated as the Kubernetes API server does.
    pub fn requirement(key: &str, operator: &str, values: &[String]) -> Result<Selector, String> {
        let set: BTreeSet<String> = values.iter().cloned().collect();
        match operator {
            "In" | "NotIn" if set.is_empty() => Err(format!(
                "operator {operator} on key {key:?} needs at least one value"
            )),
            "In" => Ok(Selector::In(key.to_owned(), set)),
            "NotIn" => Ok(Selector::NotIn(key.to_owned(), set)),
            "Exists" | "DoesNotExist" if !set.is_empty() => Err(format!(
                "operator {operator} on key {key:?} takes no values"
            )),
            "Exists" => Ok(Selector::Has(key.to_owned())),
            "DoesNotExist" => Ok(Selector::Not(Box::new(Selector::Has(key.to_owned())))),
            other => Err(format!(
                "unknown operator {other:?} on key {key:?} (expected In, NotIn, Exists or DoesNotExist)"
            )),
        }
    }
}

/// Renders the selector in Calico's syntax.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn set(vs: &BTreeSet<String>) -> String {
            let items: Vec<String> = vs.iter().map(|v| format!("{v:?}")).collect();
            format!("{{{}}}", items.join(", "))
        }
        match self {
            Selector::All => f.write_str("all()"),
            Selector::Global => f.write_str("global()"),
            Selector::Eq(k, v) => write!(f, "{k} == {v:?}"),
            Selector::Ne(k, v) => write!(f, "{k} != {v:?}"),
            Selector::Has(k) => write!(f, "has({k})"),
            Selector::In(k, vs) => write!(f, "{k} in {}", set(vs)),
            Selector::NotIn(k, vs) => write!(f, "{k} not in {}", set(vs)),
            Selector::Contains(k, s) => write!(f, "{k} contains {s:?}"),
            Selector::StartsWith(k, s) => write!(f, "{k} starts with {s:?}"),
            Selector::EndsWith(k, s) => write!(f, "{k} ends with {s:?}"),
            Selector::Not(inner) => write!(f, "!({inner})"),
            Selector::And(list) | Selector::Or(list) if list.is_empty() => {
                f.write_str(if matches!(self, Selector::And(_)) {
                    "all()"
                } else {
                    "!all()"
                })
            }
            Selector::And(list) => join(f, list, " && "),
            Selector::Or(list) => join(f, list, " || "),
        }
    }
}

fn join(f: &mut fmt::Formatter<'_>, list: &[Selector], sep: &str) -> fmt::Result {
    for (i, s) in list.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "({s})")?;
    }
    Ok(())
}
