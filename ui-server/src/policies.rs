//! Policies for the dashboard: every policy loaded from the state directory's `policies/` (with
//! the `vigil-policy` parser the agents use), merged with hit counts from the store. A policy the
//! store has hits for but no file defines any more is listed with `loaded: false`.
//!
//! [`load`] reads the files (the only I/O here); [`merge`] is pure.

#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, path::Path};

use serde::Serialize;
use vigil_policy::{ParsedPolicies, PolicyKind};

/// A policy as a file defines it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadedPolicy {
    /// The kind as flows name it (`GlobalNetworkPolicy`, `CalicoNetworkPolicy`, `NetworkPolicy`
    /// for Kubernetes', ...).
    pub kind: String,
    /// `calico`, `cilium` or `kubernetes`.
    pub dialect: &'static str,
    pub namespace: String,
    pub name: String,
    pub tier: String,
    pub order: Option<f64>,
    pub staged: bool,
    /// The file, relative to the state directory.
    pub file: String,
}

/// A file that did not parse.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    pub file: String,
    pub error: String,
}

/// What the state directory holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    pub policies: Vec<LoadedPolicy>,
    pub rejected: Vec<Rejected>,
}

fn dialect(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::KubernetesNetworkPolicy => "kubernetes",
        PolicyKind::CiliumNetworkPolicy | PolicyKind::CiliumClusterwideNetworkPolicy => "cilium",
        _ => "calico",
    }
}

/// The policies of one parsed file.
pub fn from_parsed(parsed: &ParsedPolicies) -> Vec<LoadedPolicy> {
    parsed
        .policies
        .iter()
        .map(|p| LoadedPolicy {
            kind: p.kind.to_string(),
            dialect: dialect(p.kind),
            namespace: p.namespace.clone().unwrap_or_default(),
            name: p.name.clone(),
            tier: p.tier.clone(),
            order: p.order,
            staged: p.kind.is_staged(),
            file: p.source.clone(),
        })
        .collect()
}

/// Reads and parses every manifest of `state/policies` (sorted by name; a missing folder is
/// empty). Files that do not parse are listed with their located error.
pub fn load(state: &Path) -> Result<Loaded, std::io::Error> {
    let dir = state.join("policies");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(e),
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    let mut out = Loaded::default();
    for path in files {
        let name = format!(
            "policies/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.rejected.push(Rejected {
                    file: name,
                    error: e.to_string(),
                });
                continue;
            }
        };
        match vigil_policy::parse_policy_file(&name, &text) {
            Ok(parsed) => out.policies.extend(from_parsed(&parsed)),
            Err(e) => out.rejected.push(Rejected {
                file: name,
                error: e.to_string(),
            }),
        }
    }
    Ok(out)
}

/// Hits of one policy with one action and enforcement over the range (a row of the store's
/// aggregate).
#[derive(Debug, Clone, PartialEq)]
pub struct HitCount {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub action: String,
    pub enforcement: String,
    pub count: u64,
    /// Unix seconds of the newest hit.
    pub last: i64,
}

/// Hit counts by what they mean.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Hits {
    pub allowed: u64,
    pub denied: u64,
    pub logged: u64,
    pub passed: u64,
    pub staged_would_deny: u64,
    pub staged_would_allow: u64,
}

/// One policy of `/api/v1/policies`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyView {
    /// As its file defines it; only kind, namespace, name and `staged` (hit while pending) when
    /// the policy is not loaded (the store alone knows it).
    #[serde(flatten)]
    pub policy: LoadedPolicy,
    pub loaded: bool,
    pub hits: Hits,
    /// RFC 3339 time of the newest hit in the range.
    pub last_hit: Option<String>,
    pub never_hit: bool,
}

/// Loaded policies (in file order) then policies only the store knows (sorted), with their
/// hits. Hits match a policy by kind, namespace and name.
pub fn merge(loaded: &[LoadedPolicy], counts: &[HitCount]) -> Vec<PolicyView> {
    type Key = (String, String, String);
    let mut hits: BTreeMap<Key, (Hits, i64, bool)> = BTreeMap::new();
    for c in counts {
        if c.name.is_empty() {
            continue;
        }
        let (h, last, staged) = hits
            .entry((c.kind.clone(), c.namespace.clone(), c.name.clone()))
            .or_default();
        let pending = c.enforcement == "pending";
        *staged |= pending;
        let slot = match (pending, c.action.as_str()) {
            (false, "allow") => &mut h.allowed,
            (false, "deny") => &mut h.denied,
            (false, "log") | (true, "log") => &mut h.logged,
            (false, "pass") | (true, "pass") => &mut h.passed,
            (true, "deny") => &mut h.staged_would_deny,
            (true, "allow") => &mut h.staged_would_allow,
            _ => continue,
        };
        *slot += c.count;
        *last = (*last).max(c.last);
    }
    let view = |policy: LoadedPolicy, loaded: bool, found: Option<&(Hits, i64, bool)>| {
        let (h, last) = found.map_or((Hits::default(), 0), |(h, l, _)| (h.clone(), *l));
        let any = found.is_some();
        PolicyView {
            policy,
            loaded,
            hits: h,
            last_hit: any.then(|| crate::convert::rfc3339(last, 0)),
            never_hit: !any,
        }
    };
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for p in loaded {
        let key = (p.kind.clone(), p.namespace.clone(), p.name.clone());
        out.push(view(p.clone(), true, hits.get(&key)));
        seen.insert(key);
    }
    for (key, found) in &hits {
        if !seen.contains(key) {
            let (kind, namespace, name) = key.clone();
            let policy = LoadedPolicy {
                kind,
                namespace,
                name,
                staged: found.2,
                ..LoadedPolicy::default()
            };
            out.push(view(policy, false, Some(found)));
        }
    }
    out
}
