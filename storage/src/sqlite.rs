//! The SQLite backend (sqlx): one file, WAL, versioned migrations, batched transactions, and a
//! separate connection for user queries that the engine keeps read-only (`mode=ro` and
//! `PRAGMA query_only`), so no statement typed by a user can change the store.

use std::{str::FromStr as _, sync::Arc, time::Duration};

use sqlx::{
    AssertSqlSafe, Column as _, Connection as _, QueryBuilder, Row as _, Sqlite, SqliteConnection,
    TypeInfo as _, ValueRef as _,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
        SqliteSynchronous,
    },
};
use tokio::sync::Mutex;
use vigil_proto::flow::Flow;

use crate::{
    Counts, Dialect, Error, QueryResult, Removed, ResumePoint, Store,
    rows::{FlowRow, HitRow, LostRow, to_rows},
};

/// The page size of new database files.
const PAGE_SIZE: u32 = 16384;

/// Rows per INSERT statement (26 columns each: below SQLite's 32766 bound variables).
const ROWS_PER_STATEMENT: usize = 1000;

/// The schema, one entry per version; a store records the versions it applied in
/// `schema_version` and applies the missing ones in order.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE flows (
        uuid TEXT PRIMARY KEY NOT NULL,
        time INTEGER NOT NULL,
        nanos INTEGER NOT NULL,
        node TEXT NOT NULL,
        verdict TEXT NOT NULL,
        drop_reason TEXT NOT NULL,
        direction TEXT NOT NULL,
        src_namespace TEXT NOT NULL,
        src_pod TEXT NOT NULL,
        src_labels TEXT NOT NULL,
        src_identity INTEGER NOT NULL,
        src_ip TEXT NOT NULL,
        src_port INTEGER NOT NULL,
        dst_namespace TEXT NOT NULL,
        dst_pod TEXT NOT NULL,
        dst_labels TEXT NOT NULL,
        dst_identity INTEGER NOT NULL,
        dst_ip TEXT NOT NULL,
        dst_port INTEGER NOT NULL,
        protocol TEXT NOT NULL,
        tcp_flags TEXT NOT NULL,
        is_reply INTEGER NOT NULL,
        policy TEXT NOT NULL,
        l7_type TEXT NOT NULL
    );
    CREATE INDEX flows_time ON flows (time);
    CREATE INDEX flows_node_time ON flows (node, time);
    CREATE INDEX flows_verdict ON flows (verdict, time);
    CREATE INDEX flows_policy ON flows (policy);
    CREATE TABLE policy_hits (
        uuid TEXT NOT NULL,
        idx INTEGER NOT NULL,
        time INTEGER NOT NULL,
        nanos INTEGER NOT NULL,
        node TEXT NOT NULL,
        policy_kind TEXT NOT NULL,
        policy_namespace TEXT NOT NULL,
        policy_name TEXT NOT NULL,
        tier TEXT NOT NULL,
        rule_index INTEGER NOT NULL,
        action TEXT NOT NULL,
        enforcement TEXT NOT NULL,
        hit_kind TEXT NOT NULL,
        direction TEXT NOT NULL,
        src_namespace TEXT NOT NULL,
        src_pod TEXT NOT NULL,
        dst_namespace TEXT NOT NULL,
        dst_pod TEXT NOT NULL,
        dst_port INTEGER NOT NULL,
        protocol TEXT NOT NULL,
        verdict TEXT NOT NULL,
        PRIMARY KEY (uuid, idx)
    );
    CREATE INDEX policy_hits_time ON policy_hits (time);
    CREATE INDEX policy_hits_name ON policy_hits (policy_name, time);
    CREATE INDEX policy_hits_verdict ON policy_hits (verdict, time);",
    // Version 2: each flow's place in its agent's stream, and the events lost before storage.
    "ALTER TABLE flows ADD COLUMN agent_start INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE flows ADD COLUMN stream_index INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX flows_node_stream ON flows (node, agent_start, stream_index);
    CREATE TABLE lost_events (
        time INTEGER NOT NULL,
        nanos INTEGER NOT NULL,
        node TEXT NOT NULL,
        source TEXT NOT NULL,
        count INTEGER NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (node, time, nanos, source)
    );
    CREATE INDEX lost_events_time ON lost_events (time);",
    // Version 3: newest-first pages (`ORDER BY time DESC, nanos DESC, uuid DESC`, the dashboard's
    // history) read straight from an index; SQLite 3.51 otherwise sorts the whole table. It
    // replaces `flows_time`, its prefix.
    "DROP INDEX IF EXISTS flows_time;
    CREATE INDEX flows_order ON flows (time, nanos, uuid);",
];

/// A SQLite store: a writer pool and, for user queries, one read-only connection.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    path: String,
    writer: Option<SqlitePool>,
    reader: Arc<Mutex<Option<SqliteConnection>>>,
}

fn options(path: &str) -> Result<SqliteConnectOptions, Error> {
    SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(|e| Error::Url {
            url: format!("sqlite://{path}"),
            message: e.to_string(),
        })
        .map(|o| o.busy_timeout(Duration::from_secs(10)))
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `path`.
    pub async fn open(path: &str) -> Result<SqliteStore, Error> {
        let opts = options(path)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // 16 KiB pages (new files only; SQLite's default is 4 KiB): a row and its index
            // entries take fewer pages to split and to write to the WAL, and the trees stay
            // shallower; inserts at ten million flows run 15-20% faster (BENCHMARKS.md).
            .page_size(PAGE_SIZE)
            // The 256 MiB page cache holds the trees' insert paths: with SQLite's default 2 MiB a
            // store of a few million flows spends its inserts paging.
            .pragma("cache_size", "-262144");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|e| Error::backend(format!("open sqlite://{path}"), e))?;
        migrate(&pool).await?;
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: Some(pool),
            reader: Arc::new(Mutex::new(None)),
        })
    }

    /// Opens an existing database for queries only.
    pub async fn open_read_only(path: &str) -> Result<SqliteStore, Error> {
        if !std::path::Path::new(path).exists() {
            return Err(Error::Url {
                url: format!("sqlite://{path}"),
                message: "no such file".into(),
            });
        }
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: None,
            reader: Arc::new(Mutex::new(None)),
        })
    }

    fn writer(&self) -> Result<&SqlitePool, Error> {
        self.writer
            .as_ref()
            .ok_or_else(|| Error::ReadOnly("this store was opened for queries".into()))
    }

    async fn read_only_connection(&self) -> Result<SqliteConnection, Error> {
        let opts = options(&self.path)?
            .read_only(true)
            .pragma("query_only", "1");
        SqliteConnection::connect_with(&opts)
            .await
            .map_err(|e| Error::backend(format!("open sqlite://{} read-only", self.path), e))
    }

    async fn scalar(&self, sql: &'static str, node: Option<&str>) -> Result<Option<i64>, Error> {
        let q = sqlx::query_scalar::<_, Option<i64>>(sql);
        let q = match node {
            Some(n) => q.bind(n.to_owned()),
            None => q,
        };
        q.fetch_one(self.writer()?)
            .await
            .map_err(|e| Error::backend(sql, e))
    }
}

async fn migrate(pool: &SqlitePool) -> Result<(), Error> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| Error::backend("migrate: begin", e))?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY NOT NULL)",
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| Error::backend("migrate: schema_version", e))?;
    let have: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM schema_version")
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| Error::backend("migrate: read version", e))?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if have.is_some_and(|h| h >= version) {
            continue;
        }
        sqlx::raw_sql(*sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::backend(format!("migrate to version {version}"), e))?;
        sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::backend("migrate: record version", e))?;
        tracing::info!(version, "sqlite: schema migrated");
    }
    tx.commit()
        .await
        .map_err(|e| Error::backend("migrate: commit", e))
}

/// Maps an engine error on the query connection: writes refused because the connection is
/// read-only get the read-only message, every other error the engine's own words.
fn query_error(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            // SQLITE_READONLY (8) and its extended codes; query_only reports it too.
            let code = db.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
            // SQLITE_CANTOPEN (14): ATTACH of a file the read-only connection may not create.
            if code & 0xff == 8
                || code & 0xff == 14
                || message.contains("readonly")
                || message.contains("read-only")
            {
                Error::ReadOnly(message)
            } else {
                Error::Engine(message)
            }
        }
        other => Error::Engine(other.to_string()),
    }
}

fn value(row: &SqliteRow, i: usize) -> serde_json::Value {
    let Ok(raw) = row.try_get_raw(i) else {
        return serde_json::Value::Null;
    };
    if raw.is_null() {
        return serde_json::Value::Null;
    }
    let ty = raw.type_info().name().to_ascii_uppercase();
    match ty.as_str() {
        "INTEGER" | "BOOLEAN" => row
            .try_get::<i64, _>(i)
            .map_or(serde_json::Value::Null, serde_json::Value::from),
        "REAL" => row
            .try_get::<f64, _>(i)
            .map_or(serde_json::Value::Null, serde_json::Value::from),
        "BLOB" => row
            .try_get::<Vec<u8>, _>(i)
            .map_or(serde_json::Value::Null, |b| {
                serde_json::Value::from(String::from_utf8_lossy(&b).into_owned())
            }),
        _ => row
            .try_get::<String, _>(i)
            .map_or(serde_json::Value::Null, serde_json::Value::from),
    }
}

/// The next multi-row INSERT of at most [`ROWS_PER_STATEMENT`] rows (flows first, then hits),
/// moving the rows into its arguments, and the table it writes.
fn next_statement(
    flow_rows: &mut Vec<FlowRow>,
    hits: &mut Vec<HitRow>,
) -> Option<(QueryBuilder<Sqlite>, &'static str)> {
    if !flow_rows.is_empty() {
        let n = flow_rows.len().min(ROWS_PER_STATEMENT);
        let mut q = QueryBuilder::<Sqlite>::new("INSERT OR IGNORE INTO flows ");
        q.push_values(flow_rows.drain(..n), |mut b, f| {
            b.push_bind(f.uuid)
                .push_bind(f.time)
                .push_bind(f.nanos)
                .push_bind(f.node)
                .push_bind(f.verdict)
                .push_bind(f.drop_reason)
                .push_bind(f.direction)
                .push_bind(f.src_namespace)
                .push_bind(f.src_pod)
                .push_bind(f.src_labels)
                .push_bind(f.src_identity)
                .push_bind(f.src_ip)
                .push_bind(f.src_port)
                .push_bind(f.dst_namespace)
                .push_bind(f.dst_pod)
                .push_bind(f.dst_labels)
                .push_bind(f.dst_identity)
                .push_bind(f.dst_ip)
                .push_bind(f.dst_port)
                .push_bind(f.protocol)
                .push_bind(f.tcp_flags)
                .push_bind(f.is_reply)
                .push_bind(f.policy)
                .push_bind(f.l7_type)
                // SQLite integers are i64; Unix ns and stream indexes fit.
                .push_bind(f.agent_start as i64)
                .push_bind(f.stream_index as i64);
        });
        return Some((q, "flows"));
    }
    if !hits.is_empty() {
        let n = hits.len().min(ROWS_PER_STATEMENT);
        let mut q = QueryBuilder::<Sqlite>::new("INSERT OR IGNORE INTO policy_hits ");
        q.push_values(hits.drain(..n), |mut b, h| {
            b.push_bind(h.uuid)
                .push_bind(h.idx)
                .push_bind(h.time)
                .push_bind(h.nanos)
                .push_bind(h.node)
                .push_bind(h.policy_kind)
                .push_bind(h.policy_namespace)
                .push_bind(h.policy_name)
                .push_bind(h.tier)
                .push_bind(h.rule_index)
                .push_bind(h.action)
                .push_bind(h.enforcement)
                .push_bind(h.hit_kind)
                .push_bind(h.direction)
                .push_bind(h.src_namespace)
                .push_bind(h.src_pod)
                .push_bind(h.dst_namespace)
                .push_bind(h.dst_pod)
                .push_bind(h.dst_port)
                .push_bind(h.protocol)
                .push_bind(h.verdict);
        });
        return Some((q, "policy_hits"));
    }
    None
}

impl Store for SqliteStore {
    async fn insert(&self, flows: &[Flow]) -> Result<u64, Error> {
        let pool = self.writer()?;
        // Rows are moved into the statements' arguments, not cloned: allocation is most of the
        // cost of a batch.
        let mut flow_rows = Vec::with_capacity(flows.len());
        let mut hits: Vec<HitRow> = Vec::with_capacity(flows.len() * 2);
        for flow in flows {
            let (f, h) = to_rows(flow);
            flow_rows.push(f);
            hits.extend(h);
        }
        let mut tx = pool
            .begin()
            .await
            .map_err(|e| Error::backend("sqlite insert: begin", e))?;
        // Multi-row statements: one round trip per ROWS_PER_STATEMENT rows instead of per row.
        // Statements are built while the previous one runs on sqlx's SQLite thread: building
        // (moving rows into arguments) and executing take about as long as each other.
        let mut pending = next_statement(&mut flow_rows, &mut hits);
        while let Some((mut q, table)) = pending.take() {
            let (done, next) = tokio::join!(q.build().execute(&mut *tx), async {
                next_statement(&mut flow_rows, &mut hits)
            });
            done.map_err(|e| Error::backend(format!("sqlite insert into {table}"), e))?;
            pending = next;
        }
        tx.commit()
            .await
            .map_err(|e| Error::backend("sqlite insert: commit", e))?;
        Ok(flows.len() as u64)
    }

    async fn query(&self, sql: &str) -> Result<QueryResult, Error> {
        let mut guard = self.reader.lock().await;
        if guard.is_none() {
            *guard = Some(self.read_only_connection().await?);
        }
        let conn = guard.as_mut().expect("connection just opened");
        let rows = sqlx::query(AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut *conn)
            .await
            .map_err(query_error)?;
        let columns = match rows.first() {
            Some(r) => r.columns().iter().map(|c| c.name().to_owned()).collect(),
            None => {
                // No row to read names from: ask the engine for the statement's columns.
                use sqlx::Executor as _;
                use sqlx::SqlSafeStr as _;
                conn.prepare(AssertSqlSafe(sql.to_owned()).into_sql_str())
                    .await
                    .map(|s| {
                        use sqlx::Statement as _;
                        s.columns().iter().map(|c| c.name().to_owned()).collect()
                    })
                    .unwrap_or_default()
            }
        };
        let rows = rows
            .iter()
            .map(|r| (0..r.columns().len()).map(|i| value(r, i)).collect())
            .collect();
        Ok(QueryResult { columns, rows })
    }

    async fn counts(&self) -> Result<Counts, Error> {
        let flows = self.scalar("SELECT count(*) FROM flows", None).await?;
        let hits = self
            .scalar("SELECT count(*) FROM policy_hits", None)
            .await?;
        Ok(Counts {
            flows: flows.unwrap_or(0) as u64,
            policy_hits: hits.unwrap_or(0) as u64,
        })
    }

    async fn resume_point(&self, node: &str) -> Result<Option<ResumePoint>, Error> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT time * 1000000000 + nanos, agent_start, stream_index FROM flows \
             WHERE node = ? ORDER BY agent_start DESC, stream_index DESC, time DESC, nanos DESC \
             LIMIT 1",
        )
        .bind(node.to_owned())
        .fetch_optional(self.writer()?)
        .await
        .map_err(|e| Error::backend("sqlite: the last stored flow", e))?;
        Ok(row.map(|(time_ns, start, index)| ResumePoint {
            time_ns,
            agent_start: start as u64,
            stream_index: index as u64,
        }))
    }

    async fn insert_lost(&self, rows: &[LostRow]) -> Result<(), Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO lost_events (time, nanos, node, source, count, detail) ",
        );
        q.push_values(rows, |mut b, r| {
            b.push_bind(r.time)
                .push_bind(r.nanos)
                .push_bind(r.node.clone())
                .push_bind(r.source.clone())
                .push_bind(r.count as i64)
                .push_bind(r.detail.clone());
        });
        q.build()
            .execute(self.writer()?)
            .await
            .map(drop)
            .map_err(|e| Error::backend("sqlite insert into lost_events", e))
    }

    async fn lost_total(&self, node: Option<&str>) -> Result<u64, Error> {
        let total = match node {
            Some(_) => {
                self.scalar(
                    "SELECT coalesce(sum(count), 0) FROM lost_events WHERE node = ?",
                    node,
                )
                .await?
            }
            None => {
                self.scalar("SELECT coalesce(sum(count), 0) FROM lost_events", None)
                    .await?
            }
        };
        Ok(total.unwrap_or(0) as u64)
    }

    async fn retention(
        &self,
        max_age: Option<Duration>,
        max_rows: Option<u64>,
    ) -> Result<Removed, Error> {
        let pool = self.writer()?;
        let mut removed = Removed::default();
        let exec = |sql: &'static str, arg: i64| async move {
            sqlx::query(sql)
                .bind(arg)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
                .map_err(|e| Error::backend(sql, e))
        };
        if let Some(age) = max_age {
            let cutoff = crate::now_secs() - age.as_secs() as i64;
            removed.flows += exec("DELETE FROM flows WHERE time < ?", cutoff).await?;
            removed.policy_hits += exec("DELETE FROM policy_hits WHERE time < ?", cutoff).await?;
            exec("DELETE FROM lost_events WHERE time < ?", cutoff).await?;
        }
        if let Some(max) = max_rows {
            removed.flows += exec(
                "DELETE FROM flows WHERE rowid IN \
                 (SELECT rowid FROM flows ORDER BY time DESC, nanos DESC LIMIT -1 OFFSET ?)",
                max as i64,
            )
            .await?;
            removed.policy_hits += exec(
                "DELETE FROM policy_hits WHERE uuid NOT IN (SELECT uuid FROM flows) \
                 AND time <= coalesce((SELECT min(time) FROM flows), ?)",
                i64::MAX,
            )
            .await?;
        }
        Ok(removed)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}
