//! The statements behind the API, in both dialects, with the same columns and order so both
//! backends give the same answers. Every user-supplied value goes through
//! [`Dialect::quote`](vigil_storage::Dialect::quote) (strings) or is a number we parsed; nothing
//! the client sent is spliced raw. The statements run on the store's read-only query connection.
//!
//! Dialect differences handled here: ClickHouse reads `FINAL` (duplicates folded), its `time` is
//! a `DateTime` (compared with `toDateTime(N)`, read with `toUInt32(time)`), `intDiv` for
//! buckets, `substring`/`position`/`endsWith` instead of `substr`/`instr`, and no correlated
//! subqueries (the policy filter reads `uuid IN (...)` and `argMax` there, `EXISTS` on SQLite
//! where the primary key makes it cheap). Pure: builds strings.

#[cfg(test)]
mod tests;

use vigil_storage::Dialect;

use crate::{
    convert::{FLOW_COLUMNS, HIT_COLUMNS},
    params::{Cursor, Filter, FlowQuery, PodRef, PolicyRef, TimeRange},
};

/// Rows an aggregate returns at most (top lists).
pub const TOP: usize = 20;
/// Service map groups read at most.
pub const SERVICEMAP_GROUPS: usize = 20_000;
/// Staged would-deny pairs read at most.
pub const STAGED_PAIRS: usize = 500;

/// A statement builder for one dialect.
#[derive(Debug, Clone, Copy)]
pub struct Sql {
    pub dialect: Dialect,
}

impl Sql {
    pub fn new(dialect: Dialect) -> Sql {
        Sql { dialect }
    }

    fn ch(&self) -> bool {
        self.dialect == Dialect::ClickHouse
    }

    /// A string literal.
    pub fn q(&self, s: &str) -> String {
        self.dialect.quote(s)
    }

    fn flows(&self) -> &'static str {
        if self.ch() { "flows FINAL" } else { "flows" }
    }

    fn hits(&self) -> &'static str {
        if self.ch() {
            "policy_hits FINAL"
        } else {
            "policy_hits"
        }
    }

    /// `time` as Unix seconds.
    fn time(&self) -> &'static str {
        if self.ch() { "toUInt32(time)" } else { "time" }
    }

    /// A Unix-seconds literal comparable with `time`.
    fn secs(&self, s: i64) -> String {
        if self.ch() {
            format!("toDateTime({s})")
        } else {
            s.to_string()
        }
    }

    fn count(&self) -> &'static str {
        if self.ch() { "count()" } else { "count(*)" }
    }

    /// `time` bucketed to `bucket` seconds, as Unix seconds.
    fn bucket(&self, bucket: i64) -> String {
        if self.ch() {
            format!("intDiv(toUInt32(time), {bucket}) * {bucket}")
        } else {
            format!("time / {bucket} * {bucket}")
        }
    }

    /// `col` starts with `prefix`.
    fn prefix(&self, col: &str, prefix: &str) -> String {
        if prefix.is_empty() {
            return "1 = 1".into();
        }
        if self.ch() {
            format!("substring({col}, 1, {}) = {}", prefix.len(), self.q(prefix))
        } else {
            format!(
                "substr({col}, 1, {}) = {}",
                prefix.chars().count(),
                self.q(prefix)
            )
        }
    }

    /// `col` contains the (lowercase) `term`, ASCII case-insensitively.
    fn contains(&self, col: &str, term: &str) -> String {
        if self.ch() {
            format!("position(lower({col}), {}) > 0", self.q(term))
        } else {
            format!("instr(lower({col}), {}) > 0", self.q(term))
        }
    }

    fn in_list(&self, col: &str, values: &[String]) -> String {
        let list: Vec<String> = values.iter().map(|v| self.q(v)).collect();
        format!("{col} IN ({})", list.join(", "))
    }

    fn pod(&self, side: &str, p: &PodRef) -> String {
        let pod = self.prefix(&format!("{side}_pod"), &p.prefix);
        match &p.namespace {
            Some(ns) => format!("({side}_namespace = {} AND {pod})", self.q(ns)),
            None => format!("({pod})"),
        }
    }

    fn any<T>(&self, items: &[T], f: impl Fn(&T) -> String) -> String {
        let parts: Vec<String> = items.iter().map(f).collect();
        format!("({})", parts.join(" OR "))
    }

    /// The condition on a `policy_hits` row naming one of `policies`.
    fn policy_cond(&self, policies: &[PolicyRef]) -> String {
        self.policy_cond_on(policies, ["policy_kind", "policy_namespace", "policy_name"])
    }

    /// The same over expressions for kind, namespace and name.
    fn policy_cond_on(&self, policies: &[PolicyRef], [kind_c, ns_c, name_c]: [&str; 3]) -> String {
        self.any(policies, |p| match p {
            PolicyRef::Name(n) => format!("{name_c} = {}", self.q(n)),
            PolicyRef::Qualified(a, n) => format!(
                "({name_c} = {} AND (({kind_c} = {a} AND {ns_c} = '') OR {ns_c} = {a}))",
                self.q(n),
                a = self.q(a)
            ),
            PolicyRef::Full {
                kind,
                namespace,
                name,
            } => format!(
                "({kind_c} = {} AND {ns_c} = {} AND {name_c} = {})",
                self.q(kind),
                self.q(namespace),
                self.q(name)
            ),
        })
    }

    /// `col` ends with `suffix`.
    fn suffix(&self, col: &str, suffix: &str) -> String {
        if self.ch() {
            format!("endsWith({col}, {})", self.q(suffix))
        } else {
            format!(
                "substr({col}, -{}) = {}",
                suffix.chars().count(),
                self.q(suffix)
            )
        }
    }

    /// Flows decided by one of `policies`: by the enforced decision (`flows.policy`, written
    /// `Kind/[namespace/]name`), by the pending decision (the flow's last pending hit: pending
    /// hits follow the enforced ones), or by a Hubble list entry of a flow without a trace.
    fn decided_by(&self, policies: &[PolicyRef], r: &TimeRange) -> String {
        let enforced = self.any(policies, |p| match p {
            PolicyRef::Name(n) => self.suffix("policy", &format!("/{n}")),
            PolicyRef::Qualified(a, n) => format!(
                "policy = {} OR {}",
                self.q(&format!("{a}/{n}")),
                self.suffix("policy", &format!("/{a}/{n}"))
            ),
            PolicyRef::Full {
                kind,
                namespace,
                name,
            } => format!("policy = {}", self.q(&format!("{kind}/{namespace}/{name}"))),
        });
        if self.ch() {
            let cond = self.policy_cond(policies);
            // No correlated subqueries: uuid sets, narrowed to the range.
            let mut range = self.range(r);
            range.push(String::new());
            let range = range.join(" AND ");
            let last = self.policy_cond_on(
                policies,
                [
                    "argMax(policy_kind, idx)",
                    "argMax(policy_namespace, idx)",
                    "argMax(policy_name, idx)",
                ],
            );
            format!(
                "({enforced} OR uuid IN (SELECT uuid FROM policy_hits WHERE {range}hit_kind = 'hubble' AND {cond}) \
                 OR uuid IN (SELECT uuid FROM policy_hits WHERE {range}enforcement = 'pending' GROUP BY uuid HAVING {last}))"
            )
        } else {
            // Unary `+` keeps SQLite's planner off the policy-name index: walking every hit of
            // a policy for each candidate flow is quadratic; the (uuid, idx) key is one probe.
            let cond = self.policy_cond_on(
                policies,
                ["+h.policy_kind", "+h.policy_namespace", "+h.policy_name"],
            );
            format!(
                "({enforced} OR EXISTS (SELECT 1 FROM policy_hits h WHERE h.uuid = flows.uuid AND {cond} \
                 AND (h.hit_kind = 'hubble' OR (h.enforcement = 'pending' AND h.idx = \
                 (SELECT max(h2.idx) FROM policy_hits h2 WHERE h2.uuid = h.uuid)))))"
            )
        }
    }

    /// The time range on a table with `time` and `nanos` (both ends inclusive).
    pub fn range(&self, r: &TimeRange) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(since) = r.since {
            let (s, n) = (
                since.div_euclid(1_000_000_000) as i64,
                since.rem_euclid(1_000_000_000),
            );
            out.push(format!("time >= {}", self.secs(s)));
            if n > 0 {
                out.push(format!("(time > {} OR nanos >= {n})", self.secs(s)));
            }
        }
        if let Some(until) = r.until {
            let (s, n) = (
                until.div_euclid(1_000_000_000) as i64,
                until.rem_euclid(1_000_000_000),
            );
            out.push(format!("time <= {}", self.secs(s)));
            out.push(format!("(time < {} OR nanos <= {n})", self.secs(s)));
        }
        out
    }

    /// The filter's conditions on `flows`; `r` narrows subqueries on `policy_hits`.
    pub fn filter(&self, f: &Filter, r: &TimeRange) -> Vec<String> {
        let mut out = Vec::new();
        if !f.namespaces.is_empty() {
            out.push(format!(
                "({} OR {})",
                self.in_list("src_namespace", &f.namespaces),
                self.in_list("dst_namespace", &f.namespaces)
            ));
        }
        if !f.pods.is_empty() {
            out.push(self.any(&f.pods, |p| {
                format!("{} OR {}", self.pod("src", p), self.pod("dst", p))
            }));
        }
        if !f.from_pods.is_empty() {
            out.push(self.any(&f.from_pods, |p| self.pod("src", p)));
        }
        if !f.to_pods.is_empty() {
            out.push(self.any(&f.to_pods, |p| self.pod("dst", p)));
        }
        if !f.verdicts.is_empty() {
            out.push(self.in_list("verdict", &f.verdicts));
        }
        if !f.policies.is_empty() {
            out.push(self.decided_by(&f.policies, r));
        }
        if !f.ports.is_empty() {
            let list: Vec<String> = f.ports.iter().map(u16::to_string).collect();
            let list = list.join(", ");
            out.push(format!("(src_port IN ({list}) OR dst_port IN ({list}))"));
        }
        if !f.protocols.is_empty() {
            out.push(self.in_list("protocol", &f.protocols));
        }
        if !f.ips.is_empty() {
            out.push(format!(
                "({} OR {})",
                self.in_list("src_ip", &f.ips),
                self.in_list("dst_ip", &f.ips)
            ));
        }
        if !f.nodes.is_empty() {
            out.push(self.in_list("node", &f.nodes));
        }
        if !f.directions.is_empty() {
            out.push(self.in_list("direction", &f.directions));
        }
        if !f.drop_reasons.is_empty() {
            out.push(self.in_list("drop_reason", &f.drop_reasons));
        }
        for t in &f.terms {
            let cols = [
                "src_namespace",
                "src_pod",
                "dst_namespace",
                "dst_pod",
                "src_ip",
                "dst_ip",
                "policy",
            ];
            out.push(self.any(&cols, |c| self.contains(c, t)));
        }
        out
    }

    fn where_clause(conds: Vec<String>) -> String {
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    }

    /// One page of history, newest first: `limit + 1` rows (the extra one tells a next page
    /// exists), strictly after the cursor.
    pub fn flows_page(&self, q: &FlowQuery) -> String {
        let mut conds = self.range(&q.range);
        if let Some(Cursor { time, nanos, uuid }) = &q.cursor {
            let t = self.secs(*time);
            conds.push(format!("time <= {t}"));
            conds.push(format!(
                "(time < {t} OR nanos < {nanos} OR (nanos = {nanos} AND uuid < {}))",
                self.q(uuid)
            ));
        }
        conds.extend(self.filter(&q.filter, &q.range));
        // ClickHouse: a repeated flow folded in the page itself (`LIMIT 1 BY uuid`; its copies
        // sort next to each other) instead of `FINAL` over every part, 3x cheaper on 18.16.
        format!(
            "SELECT {} FROM {}{} ORDER BY time DESC, nanos DESC, uuid DESC {}LIMIT {}",
            FLOW_COLUMNS.replace("TIME", self.time()),
            "flows",
            Self::where_clause(conds),
            if self.ch() { "LIMIT 1 BY uuid " } else { "" },
            q.limit + 1
        )
    }

    /// The hits of the flows `uuids` (stored between `min_time` and `max_time` seconds).
    pub fn hits_of(&self, uuids: &[String], min_time: i64, max_time: i64) -> String {
        format!(
            "SELECT {HIT_COLUMNS} FROM policy_hits WHERE time >= {} AND time <= {} AND {} \
             ORDER BY uuid, idx{}",
            self.secs(min_time),
            self.secs(max_time),
            self.in_list("uuid", uuids),
            if self.ch() {
                " LIMIT 1 BY uuid, idx"
            } else {
                ""
            }
        )
    }

    /// Hit counts and the last hit per policy, action and enforcement over the range.
    pub fn policy_hit_counts(&self, r: &TimeRange) -> String {
        format!(
            "SELECT policy_kind, policy_namespace, policy_name, action, enforcement, {} AS n, \
             max({}) AS last_hit FROM {}{} \
             GROUP BY policy_kind, policy_namespace, policy_name, action, enforcement \
             ORDER BY policy_kind, policy_namespace, policy_name, action, enforcement",
            self.count(),
            self.time(),
            self.hits(),
            Self::where_clause(self.range(r))
        )
    }

    /// Hits per bucket, policy, action and enforcement.
    pub fn hits_series(&self, r: &TimeRange, bucket: i64, policies: &[PolicyRef]) -> String {
        let mut conds = self.range(r);
        conds.push("policy_name <> ''".into());
        if !policies.is_empty() {
            conds.push(self.policy_cond(policies));
        }
        format!(
            "SELECT {} AS bucket, policy_kind, policy_namespace, policy_name, action, enforcement, \
             {} AS n FROM {}{} \
             GROUP BY bucket, policy_kind, policy_namespace, policy_name, action, enforcement \
             ORDER BY policy_kind, policy_namespace, policy_name, action, enforcement, bucket",
            self.bucket(bucket),
            self.count(),
            self.hits(),
            Self::where_clause(conds)
        )
    }

    /// Pairs staged (pending) policies would deny.
    pub fn staged(&self, r: &TimeRange) -> String {
        let mut conds = self.range(r);
        conds.push("enforcement = 'pending'".into());
        conds.push("action = 'deny'".into());
        let key = "policy_kind, policy_namespace, policy_name, src_namespace, src_pod, \
                   dst_namespace, dst_pod, dst_port, protocol";
        format!(
            "SELECT {key}, {} AS n, max({}) AS last_hit FROM {}{} GROUP BY {key} \
             ORDER BY n DESC, {key} LIMIT {STAGED_PAIRS}",
            self.count(),
            self.time(),
            self.hits(),
            Self::where_clause(conds)
        )
    }

    fn drops_where(&self, f: &Filter, r: &TimeRange) -> String {
        let mut conds = self.range(r);
        conds.push("verdict = 'DROPPED'".into());
        conds.extend(self.filter(f, r));
        Self::where_clause(conds)
    }

    /// Dropped flows per bucket.
    pub fn drops_over_time(&self, f: &Filter, r: &TimeRange, bucket: i64) -> String {
        format!(
            "SELECT {} AS bucket, {} AS n FROM {}{} GROUP BY bucket ORDER BY bucket",
            self.bucket(bucket),
            self.count(),
            self.flows(),
            self.drops_where(f, r)
        )
    }

    /// Dropped flows by drop reason.
    pub fn drops_by_reason(&self, f: &Filter, r: &TimeRange) -> String {
        format!(
            "SELECT drop_reason, {} AS n FROM {}{} GROUP BY drop_reason \
             ORDER BY n DESC, drop_reason",
            self.count(),
            self.flows(),
            self.drops_where(f, r)
        )
    }

    /// Dropped flows by deciding policy.
    pub fn drops_by_policy(&self, f: &Filter, r: &TimeRange) -> String {
        format!(
            "SELECT policy, {} AS n FROM {}{} GROUP BY policy ORDER BY n DESC, policy LIMIT {TOP}",
            self.count(),
            self.flows(),
            self.drops_where(f, r)
        )
    }

    /// The pairs dropped most.
    pub fn drops_top_pairs(&self, f: &Filter, r: &TimeRange) -> String {
        let key = "src_namespace, src_pod, dst_namespace, dst_pod, dst_port, protocol";
        format!(
            "SELECT {key}, {} AS n FROM {}{} GROUP BY {key} ORDER BY n DESC, {key} LIMIT {TOP}",
            self.count(),
            self.flows(),
            self.drops_where(f, r)
        )
    }

    /// Request flows (replies left out) grouped by peer, port, protocol and deciding policy,
    /// with verdict counts; world peers keep their IP, pods are named by pod.
    pub fn servicemap(&self, f: &Filter, r: &TimeRange) -> String {
        let mut conds = self.range(r);
        conds.push("is_reply <> 1".into());
        conds.extend(self.filter(f, r));
        let sum = |v: &str| format!("sum(CASE WHEN verdict = '{v}' THEN 1 ELSE 0 END)");
        format!(
            "SELECT src_namespace, src_pod, src_labels, \
             CASE WHEN src_pod = '' THEN src_ip ELSE '' END AS sip, src_identity, \
             dst_namespace, dst_pod, dst_labels, \
             CASE WHEN dst_pod = '' THEN dst_ip ELSE '' END AS dip, dst_identity, \
             dst_port, protocol, policy, {} AS fwd, {} AS drp, {} AS aud FROM {}{} \
             GROUP BY src_namespace, src_pod, src_labels, sip, src_identity, dst_namespace, \
             dst_pod, dst_labels, dip, dst_identity, dst_port, protocol, policy \
             LIMIT {SERVICEMAP_GROUPS}",
            sum("FORWARDED"),
            sum("DROPPED"),
            sum("AUDIT"),
            self.flows(),
            Self::where_clause(conds)
        )
    }

    /// The events recorded lost (`lost_events`) within a history range, on the filter's nodes
    /// (all when it names none), summed by source: what a page of history is missing.
    pub fn lost_in(&self, r: &TimeRange, nodes: &[String]) -> String {
        let mut conds = self.range(r);
        if !nodes.is_empty() {
            conds.push(self.in_list("node", nodes));
        }
        format!(
            "SELECT source, sum(count) AS lost FROM {}{} GROUP BY source ORDER BY source",
            self.lost_events(),
            Self::where_clause(conds)
        )
    }

    fn lost_events(&self) -> &'static str {
        if self.ch() {
            "lost_events FINAL"
        } else {
            "lost_events"
        }
    }

    /// The events the store recorded as lost before storage (`lost_events`: losses the agents
    /// reported and gaps the relay's writer detected), summed by node and source.
    pub fn lost_by_node(&self) -> String {
        format!(
            "SELECT node, source, sum(count) AS lost FROM {} GROUP BY node, source \
             ORDER BY node, source",
            self.lost_events()
        )
    }

    /// Row counts of both tables.
    pub fn counts(&self) -> String {
        format!(
            "SELECT (SELECT {c} FROM {}) AS flows, (SELECT {c} FROM {}) AS policy_hits",
            self.flows(),
            self.hits(),
            c = self.count()
        )
    }
}
