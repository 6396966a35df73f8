//! Ready queries for `observe query --examples`, in both dialects. Each pair answers the same
//! question with the same columns, so the two backends can be compared row for row.

use crate::Dialect;

/// One example query.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// A short name (`observe query --example NAME` could pick it).
    pub name: &'static str,
    /// What it answers.
    pub description: &'static str,
    /// The SQLite text.
    pub sqlite: &'static str,
    /// The ClickHouse text.
    pub clickhouse: &'static str,
}

impl Example {
    /// The text for a dialect.
    pub fn sql(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::ClickHouse => self.clickhouse,
        }
    }
}

/// The examples, most asked first.
pub const EXAMPLES: &[Example] = &[
    Example {
        name: "top-denied",
        description: "top denied flows by policy",
        sqlite: "SELECT policy_kind, policy_namespace, policy_name, src_namespace, src_pod, \
                 dst_namespace, dst_pod, dst_port, protocol, count(*) AS denied \
                 FROM policy_hits WHERE enforcement = 'enforced' AND action = 'deny' \
                 GROUP BY policy_kind, policy_namespace, policy_name, src_namespace, src_pod, \
                 dst_namespace, dst_pod, dst_port, protocol \
                 ORDER BY denied DESC, policy_kind, policy_namespace, policy_name, \
                 src_namespace, src_pod, dst_namespace, dst_pod, dst_port, protocol LIMIT 20",
        clickhouse: "SELECT policy_kind, policy_namespace, policy_name, src_namespace, src_pod, \
                 dst_namespace, dst_pod, dst_port, protocol, count() AS denied \
                 FROM policy_hits FINAL WHERE enforcement = 'enforced' AND action = 'deny' \
                 GROUP BY policy_kind, policy_namespace, policy_name, src_namespace, src_pod, \
                 dst_namespace, dst_pod, dst_port, protocol \
                 ORDER BY denied DESC, policy_kind, policy_namespace, policy_name, \
                 src_namespace, src_pod, dst_namespace, dst_pod, dst_port, protocol LIMIT 20",
    },
    Example {
        name: "hits-per-hour",
        description: "hits per policy per hour (hour as Unix seconds)",
        sqlite: "SELECT time / 3600 * 3600 AS hour, policy_kind, policy_namespace, policy_name, \
                 enforcement, action, count(*) AS hits FROM policy_hits \
                 GROUP BY hour, policy_kind, policy_namespace, policy_name, enforcement, action \
                 ORDER BY hour, policy_name, enforcement, action, policy_kind, policy_namespace",
        clickhouse: "SELECT intDiv(toUInt32(time), 3600) * 3600 AS hour, policy_kind, \
                 policy_namespace, policy_name, enforcement, action, count() AS hits \
                 FROM policy_hits FINAL \
                 GROUP BY hour, policy_kind, policy_namespace, policy_name, enforcement, action \
                 ORDER BY hour, policy_name, enforcement, action, policy_kind, policy_namespace",
    },
    Example {
        name: "never-hit",
        description: "policies hit before but never in the last day",
        sqlite: "SELECT policy_kind, policy_namespace, policy_name, max(time) AS last_hit \
                 FROM policy_hits WHERE policy_name <> '' \
                 GROUP BY policy_kind, policy_namespace, policy_name \
                 HAVING max(time) < unixepoch() - 86400 ORDER BY last_hit, policy_name",
        clickhouse: "SELECT policy_kind, policy_namespace, policy_name, \
                 max(toUInt32(time)) AS last_hit FROM policy_hits FINAL WHERE policy_name != '' \
                 GROUP BY policy_kind, policy_namespace, policy_name \
                 HAVING last_hit < toUInt32(now()) - 86400 ORDER BY last_hit, policy_name",
    },
    Example {
        name: "staged-denies",
        description: "pairs that staged (pending) policies would deny",
        sqlite: "SELECT policy_kind, policy_namespace, policy_name, src_namespace, src_pod, \
                 dst_namespace, dst_pod, dst_port, protocol, count(*) AS flows \
                 FROM policy_hits WHERE enforcement = 'pending' AND action = 'deny' \
                 GROUP BY policy_kind, policy_namespace, policy_name, src_namespace, src_pod, \
                 dst_namespace, dst_pod, dst_port, protocol \
                 ORDER BY flows DESC, policy_kind, policy_namespace, policy_name, \
                 src_namespace, src_pod, dst_namespace, dst_pod, dst_port, protocol",
        clickhouse: "SELECT policy_kind, policy_namespace, policy_name, src_namespace, src_pod, \
                 dst_namespace, dst_pod, dst_port, protocol, count() AS flows \
                 FROM policy_hits FINAL WHERE enforcement = 'pending' AND action = 'deny' \
                 GROUP BY policy_kind, policy_namespace, policy_name, src_namespace, src_pod, \
                 dst_namespace, dst_pod, dst_port, protocol \
                 ORDER BY flows DESC, policy_kind, policy_namespace, policy_name, \
                 src_namespace, src_pod, dst_namespace, dst_pod, dst_port, protocol",
    },
];
