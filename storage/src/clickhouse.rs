//! The ClickHouse backend (the `clickhouse` crate over HTTP): MergeTree tables partitioned by day,
//! batched RowBinary inserts, and user queries run with `readonly=1`.
//!
//! The schema is kept to what Debian's 18.16 and current servers both accept: `DateTime` plus a
//! `UInt32` nanos column (no `DateTime64`), no TTL clause, row validation off (18.16 does not
//! describe tables the way the crate's validation expects). De-duplication: both tables are
//! `ReplacingMergeTree` with the flow's uuid in the sorting key, so a flow inserted twice is
//! folded at merge time; every count here reads `FINAL`, and user queries that count should too
//! (the examples do).

use std::time::Duration;

use ::clickhouse::Client;
use vigil_proto::flow::Flow;

use crate::{
    Counts, Dialect, Error, QueryResult, Removed, ResumePoint, Store,
    rows::{FlowRow, HitRow, LostRow, to_rows},
};

/// The schema, one entry per version (each entry may hold several statements separated by `;`).
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS flows (
        uuid String,
        time DateTime,
        nanos UInt32,
        node String,
        verdict String,
        drop_reason String,
        direction String,
        src_namespace String,
        src_pod String,
        src_labels String,
        src_identity UInt32,
        src_ip String,
        src_port UInt32,
        dst_namespace String,
        dst_pod String,
        dst_labels String,
        dst_identity UInt32,
        dst_ip String,
        dst_port UInt32,
        protocol String,
        tcp_flags String,
        is_reply UInt8,
        policy String,
        l7_type String
    ) ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMMDD(time) ORDER BY (time, node, uuid);
    CREATE TABLE IF NOT EXISTS policy_hits (
        uuid String,
        idx UInt32,
        time DateTime,
        nanos UInt32,
        node String,
        policy_kind String,
        policy_namespace String,
        policy_name String,
        tier String,
        rule_index Int64,
        action String,
        enforcement String,
        hit_kind String,
        direction String,
        src_namespace String,
        src_pod String,
        dst_namespace String,
        dst_pod String,
        dst_port UInt32,
        protocol String,
        verdict String
    ) ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMMDD(time)
      ORDER BY (policy_name, time, uuid, idx)",
    // Version 2: each flow's place in its agent's stream, and the events lost before storage.
    "ALTER TABLE flows ADD COLUMN agent_start UInt64 DEFAULT 0;
    ALTER TABLE flows ADD COLUMN stream_index UInt64 DEFAULT 0;
    CREATE TABLE IF NOT EXISTS lost_events (
        time DateTime,
        nanos UInt32,
        node String,
        source String,
        count UInt64,
        detail String
    ) ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMMDD(time)
      ORDER BY (node, time, nanos, source)",
];

/// A ClickHouse store.
#[derive(Clone)]
pub struct ClickHouseStore {
    client: Client,
    database: String,
    /// The server's HTTP address, for messages.
    http: String,
}

impl std::fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseStore")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// `clickhouse://HOST:PORT/DB` -> (`http://HOST:PORT`, `DB`).
fn parse_url(url: &str) -> Result<(String, String), Error> {
    let bad = |message: &str| Error::Url {
        url: url.to_owned(),
        message: message.to_owned(),
    };
    let rest = url
        .strip_prefix("clickhouse://")
        .ok_or_else(|| bad("not a clickhouse:// URL"))?;
    let (host, db) = rest.split_once('/').unwrap_or((rest, "default"));
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let db = if db.is_empty() { "default" } else { db };
    if !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad("the database name may hold letters, digits and _ only"));
    }
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:8123")
    };
    Ok((format!("http://{host}"), db.to_owned()))
}

fn ch_error(context: &str, e: ::clickhouse::error::Error) -> Error {
    Error::backend(context, e)
}

/// The server's message without the exception boilerplate 18.16 wraps around it.
fn engine_message(e: &::clickhouse::error::Error) -> String {
    let text = e.to_string();
    let text = text
        .split_once("e.displayText() = ")
        .map_or(text.as_str(), |(_, t)| t);
    let text = text.split(", e.what()").next().unwrap_or(text);
    text.trim().to_owned()
}

impl ClickHouseStore {
    /// Connects without touching the schema (for queries).
    pub fn connect(url: &str) -> Result<ClickHouseStore, Error> {
        let (http, database) = parse_url(url)?;
        let client = Client::default()
            .with_url(http.clone())
            .with_database(database.clone())
            .with_validation(false);
        Ok(ClickHouseStore {
            client,
            database,
            http,
        })
    }

    /// Connects, creates the database if missing and migrates the schema.
    pub async fn open(url: &str) -> Result<ClickHouseStore, Error> {
        let store = ClickHouseStore::connect(url)?;
        let (http, _) = parse_url(url)?;
        let root = Client::default().with_url(http).with_validation(false);
        root.query(&format!("CREATE DATABASE IF NOT EXISTS {}", store.database))
            .execute()
            .await
            .map_err(|e| {
                ch_error(
                    &format!("clickhouse: create database {}", store.database),
                    e,
                )
            })?;
        store
            .client
            .query("CREATE TABLE IF NOT EXISTS schema_version (version UInt32) ENGINE = TinyLog")
            .execute()
            .await
            .map_err(|e| ch_error("clickhouse migrate: schema_version", e))?;
        let have: Vec<u32> = store
            .client
            .query("SELECT version FROM schema_version")
            .fetch_all()
            .await
            .map_err(|e| ch_error("clickhouse migrate: read version", e))?;
        let have = have.into_iter().max().unwrap_or(0);
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let version = i as u32 + 1;
            if have >= version {
                continue;
            }
            for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                store.client.query(stmt).execute().await.map_err(|e| {
                    ch_error(&format!("clickhouse migrate to version {version}"), e)
                })?;
            }
            store
                .client
                .query(&format!(
                    "INSERT INTO schema_version (version) VALUES ({version})"
                ))
                .execute()
                .await
                .map_err(|e| ch_error("clickhouse migrate: record version", e))?;
            tracing::info!(version, database = %store.database, "clickhouse: schema migrated");
        }
        Ok(store)
    }

    /// The database this store writes to.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Drops the whole database (tests use one database each).
    pub async fn drop_database(&self) -> Result<(), Error> {
        self.client
            .query(&format!("DROP DATABASE IF EXISTS {}", self.database))
            .execute()
            .await
            .map_err(|e| ch_error("clickhouse: drop database", e))
    }

    async fn count(&self, sql: &str) -> Result<u64, Error> {
        self.client
            .query(sql)
            .fetch_one::<u64>()
            .await
            .map_err(|e| ch_error(sql, e))
    }
}

/// Converts a JSONCompact cell; 64-bit integers arrive quoted.
fn cell(value: serde_json::Value, ty: &str) -> serde_json::Value {
    match value {
        serde_json::Value::String(s)
            if ty.starts_with("UInt64") || ty.starts_with("Int64") || ty == "Nullable(UInt64)" =>
        {
            s.parse::<i64>()
                .map(serde_json::Value::from)
                .or_else(|_| s.parse::<u64>().map(serde_json::Value::from))
                .unwrap_or(serde_json::Value::String(s))
        }
        other => other,
    }
}

impl Store for ClickHouseStore {
    async fn insert(&self, flows: &[Flow]) -> Result<u64, Error> {
        if flows.is_empty() {
            return Ok(0);
        }
        let to_flows = |e| ch_error("clickhouse insert into flows", e);
        let to_hits = |e| ch_error("clickhouse insert into policy_hits", e);
        // One request per table, both streaming at once (the crate sends each on a task of its
        // own): each flow's rows are written as they are made, so a batch is never held twice,
        // once as flows and once as rows.
        let mut flow_insert = self
            .client
            .insert::<FlowRow>("flows")
            .await
            .map_err(to_flows)?;
        let mut hit_insert = None;
        for flow in flows {
            let (row, hits) = to_rows(flow);
            flow_insert.write(&row).await.map_err(to_flows)?;
            if hits.is_empty() {
                continue;
            }
            let insert = match &mut hit_insert {
                Some(insert) => insert,
                None => hit_insert.insert(
                    self.client
                        .insert::<HitRow>("policy_hits")
                        .await
                        .map_err(to_hits)?,
                ),
            };
            for hit in &hits {
                insert.write(hit).await.map_err(to_hits)?;
            }
        }
        let hits_done = async {
            match hit_insert {
                Some(insert) => insert.end().await,
                None => Ok(()),
            }
        };
        let (f, h) = tokio::join!(flow_insert.end(), hits_done);
        f.map_err(to_flows)?;
        h.map_err(to_hits)?;
        Ok(flows.len() as u64)
    }

    async fn query(&self, sql: &str) -> Result<QueryResult, Error> {
        let sql = sql.trim().trim_end_matches(';');
        let bytes = self
            .client
            .query_raw(sql)
            .with_setting("readonly", "1")
            .fetch_bytes("JSONCompact")
            .map_err(|e| Error::Engine(engine_message(&e)))?
            .collect()
            .await;
        let bytes = match bytes {
            Ok(b) => b,
            // The server was not reached: not the query's fault.
            Err(e @ ::clickhouse::error::Error::Network(_)) => {
                return Err(ch_error(&format!("clickhouse at {}", self.http), e));
            }
            Err(e) => {
                let message = engine_message(&e);
                // Code 164: READONLY; a write refused by readonly=1.
                return Err(
                    if message.contains("readonly mode") || message.contains("Code: 164") {
                        Error::ReadOnly(message)
                    } else {
                        Error::Engine(message)
                    },
                );
            }
        };
        if bytes.is_empty() {
            return Ok(QueryResult::default());
        }
        #[derive(serde::Deserialize)]
        struct Meta {
            name: String,
            #[serde(rename = "type")]
            ty: String,
        }
        #[derive(serde::Deserialize)]
        struct Compact {
            meta: Vec<Meta>,
            data: Vec<Vec<serde_json::Value>>,
        }
        let parsed: Compact = serde_json::from_slice(&bytes)
            .map_err(|e| Error::backend("clickhouse: read the JSONCompact answer", e))?;
        let rows = parsed
            .data
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .zip(&parsed.meta)
                    .map(|(v, m)| cell(v, &m.ty))
                    .collect()
            })
            .collect();
        Ok(QueryResult {
            columns: parsed.meta.into_iter().map(|m| m.name).collect(),
            rows,
        })
    }

    async fn counts(&self) -> Result<Counts, Error> {
        Ok(Counts {
            flows: self.count("SELECT count() FROM flows FINAL").await?,
            policy_hits: self.count("SELECT count() FROM policy_hits FINAL").await?,
        })
    }

    async fn resume_point(&self, node: &str) -> Result<Option<ResumePoint>, Error> {
        let rows: Vec<(u32, u32, u64, u64)> = self
            .client
            .query(
                "SELECT toUInt32(time), nanos, agent_start, stream_index FROM flows \
                 WHERE node = ? \
                 ORDER BY agent_start DESC, stream_index DESC, time DESC, nanos DESC LIMIT 1",
            )
            .bind(node)
            .fetch_all()
            .await
            .map_err(|e| ch_error("clickhouse: the last stored flow", e))?;
        Ok(rows.first().map(|&(s, n, start, index)| ResumePoint {
            time_ns: i64::from(s) * 1_000_000_000 + i64::from(n),
            agent_start: start,
            stream_index: index,
        }))
    }

    async fn insert_lost(&self, rows: &[LostRow]) -> Result<(), Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let write = async {
            let mut insert = self.client.insert::<LostRow>("lost_events").await?;
            for row in rows {
                insert.write(row).await?;
            }
            insert.end().await
        };
        write
            .await
            .map_err(|e| ch_error("clickhouse insert into lost_events", e))
    }

    async fn lost_total(&self, node: Option<&str>) -> Result<u64, Error> {
        let q = match node {
            Some(n) => self
                .client
                .query("SELECT sum(count) FROM lost_events FINAL WHERE node = ?")
                .bind(n),
            None => self
                .client
                .query("SELECT sum(count) FROM lost_events FINAL"),
        };
        q.fetch_one::<u64>()
            .await
            .map_err(|e| ch_error("clickhouse: lost events", e))
    }

    async fn retention(
        &self,
        max_age: Option<Duration>,
        max_rows: Option<u64>,
    ) -> Result<Removed, Error> {
        let mut cutoff: Option<i64> = max_age.map(|a| crate::now_secs() - a.as_secs() as i64);
        if let Some(max) = max_rows {
            // The time of the newest row beyond the newest `max`; everything at or before goes.
            let rows: Vec<u32> = self
                .client
                .query("SELECT toUInt32(time) FROM flows FINAL ORDER BY time DESC LIMIT ?, 1")
                .bind(max)
                .fetch_all()
                .await
                .map_err(|e| ch_error("clickhouse retention: row limit", e))?;
            if let Some(t) = rows.first() {
                let t = i64::from(*t) + 1;
                cutoff = Some(cutoff.map_or(t, |c| c.max(t)));
            }
        }
        let Some(cutoff) = cutoff else {
            return Ok(Removed::default());
        };
        let mut removed = Removed::default();
        let mut lost = 0;
        for (table, n) in [
            ("flows", &mut removed.flows),
            ("policy_hits", &mut removed.policy_hits),
            ("lost_events", &mut lost),
        ] {
            *n = self
                .count(&format!(
                    "SELECT count() FROM {table} FINAL WHERE time < toDateTime({cutoff})"
                ))
                .await?;
            if *n > 0 {
                // A mutation: applied asynchronously by the server.
                self.client
                    .query(&format!(
                        "ALTER TABLE {table} DELETE WHERE time < toDateTime({cutoff})"
                    ))
                    .execute()
                    .await
                    .map_err(|e| ch_error("clickhouse retention", e))?;
            }
        }
        Ok(removed)
    }

    fn dialect(&self) -> Dialect {
        Dialect::ClickHouse
    }
}
