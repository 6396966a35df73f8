//! The cluster state directory as the agent knows it: every manifest file under `endpoints/` and
//! `policies/`, parsed, with the last good version of each file kept in force.
//!
//! A file that fails to parse is reported with its located error and its previous good version
//! (if any) stays in force, so a typo never opens or closes traffic. This module reads files but
//! decides nothing about enforcement.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use vigil_policy::{Cluster, ParsedCluster, ParsedPolicies, Policy, Tier};

/// What the agent knows about one file.
#[derive(Debug, Clone)]
pub struct FileState<T> {
    /// Content hash of the last version read.
    pub hash: u64,
    /// The last version that parsed, in force.
    pub good: Option<Arc<T>>,
    /// The error of the last version read, when it did not parse.
    pub error: Option<String>,
}

/// Every manifest file, by path relative to the state directory.
#[derive(Debug, Default)]
pub struct Sources {
    /// `policies/*.yaml`.
    pub policies: BTreeMap<PathBuf, FileState<ParsedPolicies>>,
    /// `endpoints/*.yaml`.
    pub cluster: BTreeMap<PathBuf, FileState<ParsedCluster>>,
}

/// Manifest file endings the agent reads.
fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn hash(text: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Reads the manifests of `dir/sub`, sorted by name; a missing folder is empty.
fn read_folder(dir: &Path, sub: &str) -> anyhow::Result<Vec<(PathBuf, String)>> {
    use anyhow::Context as _;
    let folder = dir.join(sub);
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("list {}", folder.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("list {}", folder.display()))?
            .path();
        if !is_manifest(&path)
            || path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push((
                PathBuf::from(sub).join(path.file_name().unwrap_or_default()),
                text,
            )),
            // Deleted between listing and reading: it is simply gone.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        }
    }
    files.sort();
    Ok(files)
}

/// Applies one folder's current files to `states`; returns whether anything in force changed.
fn refresh<T>(
    states: &mut BTreeMap<PathBuf, FileState<T>>,
    files: Vec<(PathBuf, String)>,
    parse: impl Fn(&str, &str) -> Result<T, String>,
) -> bool {
    let mut changed = false;
    let present: std::collections::BTreeSet<PathBuf> =
        files.iter().map(|(p, _)| p.clone()).collect();
    states.retain(|path, state| {
        let keep = present.contains(path);
        changed |= !keep && state.good.is_some();
        keep
    });
    for (path, text) in files {
        let h = hash(&text);
        if states.get(&path).is_some_and(|s| s.hash == h) {
            continue;
        }
        let name = path.to_string_lossy().into_owned();
        let state = states.entry(path).or_insert(FileState {
            hash: h,
            good: None,
            error: None,
        });
        state.hash = h;
        match parse(&name, &text) {
            Ok(parsed) => {
                state.good = Some(Arc::new(parsed));
                state.error = None;
                changed = true;
            }
            Err(error) => {
                tracing::error!(file = %name, %error, "manifest rejected; its previous version stays in force");
                state.error = Some(error);
            }
        }
    }
    changed
}

impl Sources {
    /// Re-reads the state directory; returns whether anything in force changed.
    pub fn poll(&mut self, dir: &Path) -> anyhow::Result<bool> {
        let policies = read_folder(dir, "policies")?;
        let cluster = read_folder(dir, "endpoints")?;
        let a = refresh(&mut self.policies, policies, |name, text| {
            vigil_policy::parse_policy_file(name, text).map_err(|e| e.to_string())
        });
        let b = refresh(&mut self.cluster, cluster, |name, text| {
            vigil_policy::parse_cluster_file(name, text).map_err(|e| e.to_string())
        });
        Ok(a || b)
    }

    /// Every policy and tier in force.
    pub fn policies(&self) -> (Vec<Policy>, Vec<Tier>) {
        let mut policies = Vec::new();
        let mut tiers = Vec::new();
        for parsed in self.policies.values().filter_map(|s| s.good.as_ref()) {
            policies.extend(parsed.policies.iter().cloned());
            tiers.extend(parsed.tiers.iter().cloned());
        }
        (policies, tiers)
    }

    /// The cluster in force: endpoints, namespaces and nodes.
    pub fn cluster(&self) -> Cluster {
        let mut cluster = Cluster::default();
        for parsed in self.cluster.values().filter_map(|s| s.good.as_ref()) {
            cluster.endpoints.extend(parsed.endpoints.iter().cloned());
            cluster.namespaces.extend(parsed.namespaces.iter().cloned());
            cluster.nodes.extend(parsed.nodes.iter().cloned());
        }
        cluster
    }

    /// Files whose latest version was rejected, with the error.
    pub fn rejected(&self) -> Vec<(String, String)> {
        let policies = self
            .policies
            .iter()
            .filter_map(|(p, s)| s.error.clone().map(|e| (p, e)));
        let cluster = self
            .cluster
            .iter()
            .filter_map(|(p, s)| s.error.clone().map(|e| (p, e)));
        policies
            .chain(cluster)
            .map(|(p, e)| (p.to_string_lossy().into_owned(), e))
            .collect()
    }

    /// Warnings of the policy files in force (fields parsed but not yet enforced).
    pub fn warnings(&self) -> Vec<String> {
        self.policies
            .values()
            .filter_map(|s| s.good.as_ref())
            .flat_map(|p| p.warnings.iter().map(|w| w.to_string()))
            .collect()
    }
}
