//! The router and the handlers of docs/ui-api.md. Each handler parses its parameters
//! (`params`), builds its statements (`sql`), runs them on the store or calls the relay, and
//! shapes the answer (`convert`, `policies`); errors leave through [`ApiError`]'s one mapping.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{MatchedPath, RawQuery, Request, State as AxumState, ws::WebSocketUpgrade},
    http::{HeaderMap, Method, Uri, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use tower_http::{
    compression::CompressionLayer,
    services::{ServeDir, ServeFile},
    trace::TraceLayer,
};
use tracing::info_span;
use vigil_proto::time::now_unix_ns;

use crate::{
    convert::{self, int, text},
    error::ApiError,
    params::{self, Filter, FlowQuery, Params, PolicyRef, TimeRange},
    policies::{self, HitCount},
    relay::{LostCounts, Rates, Relay},
    sql::Sql,
    store::StoreHandle,
    stream::{self, StreamStats},
};

/// What the server needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The relay's Observer address.
    pub relay: String,
    /// The store URL (`sqlite://PATH`, `clickhouse://HOST:PORT/DB`).
    pub store: String,
    /// The agents' state directory (policies are read from its `policies/`).
    pub state: Option<PathBuf>,
    /// The built dashboard.
    pub web: PathBuf,
    /// A bearer token every `/api/*` request must carry.
    pub token: Option<String>,
    /// Flows a WebSocket client's queue holds at most.
    pub stream_queue: usize,
    /// Count lost events per node with a background relay watch.
    pub watch_lost: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            relay: "127.0.0.1:4245".into(),
            store: String::new(),
            state: None,
            web: PathBuf::from("web/dist"),
            token: None,
            stream_queue: 4096,
            watch_lost: true,
        }
    }
}

/// Shared by every handler.
#[derive(Debug)]
pub struct Inner {
    pub config: Config,
    pub store: StoreHandle,
    pub relay: Relay,
    pub stream: StreamStats,
    pub lost: Arc<LostCounts>,
    pub rates: Rates,
    counts_cache: tokio::sync::Mutex<Option<(std::time::Instant, Value)>>,
}

/// The shared state handle.
pub type State = Arc<Inner>;

impl Inner {
    /// Builds the state (starts the lost-event watch when configured; needs a runtime).
    pub fn new(config: Config) -> State {
        let relay = Relay::new(&config.relay);
        let lost = Arc::new(LostCounts::default());
        if config.watch_lost {
            crate::relay::watch_lost(relay.clone(), lost.clone());
        }
        Arc::new(Inner {
            store: StoreHandle::new(&config.store),
            relay,
            stream: StreamStats::default(),
            lost,
            rates: Rates::default(),
            counts_cache: tokio::sync::Mutex::new(None),
            config,
        })
    }
}

/// The whole application: API, WebSocket, static files, token check, tracing, compression.
pub fn router(state: State) -> Router {
    let api = Router::new()
        .route("/api/v1/flows", get(flows))
        .route("/api/v1/sql", post(sql))
        .route("/api/v1/policies", get(policies_list))
        .route("/api/v1/policies/hits", get(policy_hits))
        .route("/api/v1/staged", get(staged))
        .route("/api/v1/drops", get(drops))
        .route("/api/v1/servicemap", get(servicemap))
        .route("/api/v1/nodes", get(nodes))
        .route("/api/v1/status", get(status))
        .route("/api/{*rest}", axum::routing::any(api_not_found))
        .route("/api", axum::routing::any(api_not_found))
        .layer(CompressionLayer::new());
    // No compression on the upgrade: it has no body to compress.
    let ws = Router::new().route("/api/v1/stream", get(stream_route));
    let protected = api
        .merge(ws)
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let web = state.config.web.clone();
    let files = ServeDir::new(&web).fallback(ServeFile::new(web.join("index.html")));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .fallback_service(
            Router::new()
                .fallback_service(files)
                .layer(CompressionLayer::new()),
        )
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let path = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("(static)", MatchedPath::as_str);
            info_span!("http", method = %req.method(), path, uri = %req.uri())
        }))
        .with_state(state)
}

/// Serves `router(state)` on a bound listener until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: State) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

fn token_ok(state: &State, headers: &HeaderMap, uri: &Uri) -> bool {
    let Some(want) = &state.config.token else {
        return true;
    };
    let eq = |got: &str| {
        // Constant time over the expected length.
        got.len() == want.len()
            && got
                .bytes()
                .zip(want.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    };
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        && eq(v.trim())
    {
        return true;
    }
    // Browsers cannot set headers on a WebSocket: the stream may carry ?token=.
    uri.path() == "/api/v1/stream"
        && form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .any(|(k, v)| k == "token" && eq(&v))
}

async fn require_token(
    AxumState(state): AxumState<State>,
    request: Request,
    next: Next,
) -> Response {
    if token_ok(&state, request.headers(), request.uri()) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn api_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

fn rows_err(what: &str) -> impl Fn(String) -> ApiError + '_ {
    move |e| ApiError::internal(format!("reading {what}"), e)
}

/// Reads the hits of `flows` and attaches them, in stored order.
async fn with_hits(
    state: &State,
    sql: &Sql,
    flows: Vec<vigil_storage::FlowRow>,
) -> Result<Vec<convert::UiFlow>, ApiError> {
    if flows.is_empty() {
        return Ok(Vec::new());
    }
    let uuids: Vec<String> = flows.iter().map(|f| f.uuid.clone()).collect();
    let min = flows.iter().map(|f| i64::from(f.time)).min().unwrap_or(0);
    let max = flows.iter().map(|f| i64::from(f.time)).max().unwrap_or(0);
    let r = state
        .store
        .query("hits of a page", &sql.hits_of(&uuids, min, max))
        .await?;
    let mut by_uuid: HashMap<String, Vec<vigil_storage::HitRow>> = HashMap::new();
    for row in &r.rows {
        let h = convert::hit_row(row).map_err(rows_err("policy_hits"))?;
        by_uuid.entry(h.uuid.clone()).or_default().push(h);
    }
    Ok(flows
        .iter()
        .map(|f| convert::ui_flow(f, by_uuid.get(&f.uuid).map_or(&[][..], Vec::as_slice)))
        .collect())
}

/// Time slices read one after the other below a page's upper bound, newest first, before the
/// rest of the range: a page is complete as soon as the slices read hold `limit + 1` flows, and
/// the slices are disjoint, so no row is read twice. The same answer as one query over the whole
/// range, which a database without a time-ordered read (ClickHouse 18.16, SQLite for rare
/// filters) reads in full.
const PAGE_SLICES_S: [i128; 3] = [3600, 86_400, 7 * 86_400];

/// The rows of one page (`limit + 1` at most), read slice by slice ([`PAGE_SLICES_S`]).
async fn page_rows(
    state: &State,
    sql: &Sql,
    q: &FlowQuery,
    now: i128,
) -> Result<Vec<Vec<Value>>, ApiError> {
    let cursor = q
        .cursor
        .as_ref()
        .map(|c| (i128::from(c.time) + 1) * 1_000_000_000);
    let upper = [q.range.until, cursor, Some(now)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now);
    let mut rows: Vec<Vec<Value>> = Vec::new();
    // The newest slice has no upper bound of its own: flows stamped after `now` belong in it.
    let mut older_than: Option<i128> = None;
    let lowers = PAGE_SLICES_S
        .iter()
        .map(|w| Some(upper - w * 1_000_000_000))
        .chain([None]);
    for lower in lowers {
        // A slice reaching the range's own start (or the beginning) is the last one.
        let (since, last) = match (lower, q.range.since) {
            (Some(l), Some(s)) if s >= l => (Some(s), true),
            (Some(l), _) => (Some(l), false),
            (None, s) => (s, true),
        };
        let mut slice = q.clone();
        slice.limit = q.limit - rows.len();
        slice.range.since = since;
        if let Some(o) = older_than {
            slice.range.until = Some(q.range.until.map_or(o - 1, |u| u.min(o - 1)));
        }
        let r = state
            .store
            .query("flows page", &sql.flows_page(&slice))
            .await?;
        rows.extend(r.rows);
        if last || rows.len() > q.limit {
            break;
        }
        older_than = since;
    }
    Ok(rows)
}

async fn flows(
    AxumState(state): AxumState<State>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(raw.as_deref(), &FlowQuery::allowed())?;
    let q = FlowQuery::parse(&p, now_unix_ns())?;
    let sql = Sql::new(state.store.dialect().await?);
    let r = page_rows(&state, &sql, &q, now_unix_ns()).await?;
    let mut rows = r
        .iter()
        .map(|row| convert::flow_row(row))
        .collect::<Result<Vec<_>, _>>()
        .map_err(rows_err("flows"))?;
    let more = rows.len() > q.limit;
    rows.truncate(q.limit);
    let next = more.then(|| {
        let last = rows.last().expect("a full page");
        params::Cursor {
            time: i64::from(last.time),
            nanos: i64::from(last.nanos),
            uuid: last.uuid.clone(),
        }
        .encode()
    });
    let flows = with_hits(&state, &sql, rows).await?;
    if q.cursor.is_some() {
        return Ok(Json(json!({"flows": flows, "next": next})));
    }
    // The first page also says what the range is missing: the events recorded lost in it.
    let lost = state
        .store
        .query("lost events", &sql.lost_in(&q.range, &q.filter.nodes))
        .await?;
    let lost: BTreeMap<String, i64> = lost
        .rows
        .iter()
        .map(|r| (text(&r[0]), r.get(1).and_then(int).unwrap_or(0)))
        .collect();
    Ok(Json(json!({"flows": flows, "next": next, "lost": lost})))
}

async fn stream_route(
    AxumState(state): AxumState<State>,
    RawQuery(raw): RawQuery,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let mut allowed = params::FILTER_PARAMS.to_vec();
    // Accepted and ignored, so the history view's parameters can be reused as they are.
    allowed.extend(["token", "since", "until", "cursor", "limit"]);
    let p = Params::parse(raw.as_deref(), &allowed)?;
    let filter = Filter::parse(&p)?;
    Ok(ws
        .max_message_size(1 << 20)
        .on_upgrade(move |socket| stream::serve_client(socket, state, filter)))
}

async fn sql(AxumState(state): AxumState<State>, body: Bytes) -> Result<Json<Value>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Body {
        sql: String,
    }
    let b: Body = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!("body: expected {{\"sql\": \"SELECT ...\"}}: {e}"))
    })?;
    if b.sql.trim().is_empty() {
        return Err(ApiError::BadRequest("body: sql is empty".into()));
    }
    let dialect = state.store.dialect().await?;
    let started = std::time::Instant::now();
    let r = state.store.user_query(&b.sql).await?;
    Ok(Json(json!({
        "columns": r.columns,
        "rows": r.rows,
        "elapsed_ms": started.elapsed().as_secs_f64() * 1e3,
        "dialect": dialect_name(dialect),
    })))
}

fn dialect_name(d: vigil_storage::Dialect) -> &'static str {
    match d {
        vigil_storage::Dialect::Sqlite => "sqlite",
        vigil_storage::Dialect::ClickHouse => "clickhouse",
    }
}

async fn policies_list(
    AxumState(state): AxumState<State>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(raw.as_deref(), &["since", "until"])?;
    let range = TimeRange::parse(&p, now_unix_ns(), Some("24h"))?;
    let loaded = match &state.config.state {
        Some(dir) => {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || policies::load(&dir))
                .await
                .map_err(|e| ApiError::internal("load policies", e))?
                .map_err(|e| {
                    ApiError::internal(
                        format!(
                            "read {}",
                            state.config.state.as_ref().map_or(String::new(), |d| d
                                .join("policies")
                                .display()
                                .to_string())
                        ),
                        e,
                    )
                })?
        }
        None => policies::Loaded::default(),
    };
    let sql = Sql::new(state.store.dialect().await?);
    let r = state
        .store
        .query("policy hit counts", &sql.policy_hit_counts(&range))
        .await?;
    let counts: Vec<HitCount> = r
        .rows
        .iter()
        .map(|row| HitCount {
            kind: text(&row[0]),
            namespace: text(&row[1]),
            name: text(&row[2]),
            action: text(&row[3]),
            enforcement: text(&row[4]),
            count: int(&row[5]).unwrap_or(0).max(0) as u64,
            last: int(&row[6]).unwrap_or(0),
        })
        .collect();
    Ok(Json(json!({
        "policies": policies::merge(&loaded.policies, &counts),
        "rejected": loaded.rejected,
    })))
}

fn policy_id(kind: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}/{namespace}/{name}")
    }
}

async fn policy_hits(
    AxumState(state): AxumState<State>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(raw.as_deref(), &["since", "until", "bucket", "policy"])?;
    let now = now_unix_ns();
    let range = TimeRange::parse(&p, now, Some("1h"))?;
    let (since, until) = range.seconds(now);
    let bucket = params::bucket_seconds(&p, since, until)?;
    let policies = p
        .all("policy")
        .map(PolicyRef::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let sql = Sql::new(state.store.dialect().await?);
    let r = state
        .store
        .query(
            "policy hits over time",
            &sql.hits_series(&range, bucket, &policies),
        )
        .await?;
    /// (policy, action, enforcement, points).
    type Series = (String, String, String, Vec<(i64, i64)>);
    let mut series: Vec<Series> = Vec::new();
    for row in &r.rows {
        let key = (
            policy_id(&text(&row[1]), &text(&row[2]), &text(&row[3])),
            text(&row[4]),
            text(&row[5]),
        );
        let point = (int(&row[0]).unwrap_or(0), int(&row[6]).unwrap_or(0));
        match series.last_mut() {
            Some(s) if (&s.0, &s.1, &s.2) == (&key.0, &key.1, &key.2) => s.3.push(point),
            _ => series.push((key.0, key.1, key.2, vec![point])),
        }
    }
    let first = since.div_euclid(bucket) * bucket;
    let series: Vec<Value> = series
        .into_iter()
        .map(|(policy, action, enforcement, points)| {
            json!({
                "policy": policy,
                "action": action,
                "enforcement": enforcement,
                "points": dense(first, until, bucket, &points),
            })
        })
        .collect();
    Ok(Json(json!({"bucket_seconds": bucket, "series": series})))
}

/// Every bucket from `first` to `until`, zero where `points` has none.
fn dense(first: i64, until: i64, bucket: i64, points: &[(i64, i64)]) -> Vec<Value> {
    let have: BTreeMap<i64, i64> = points.iter().copied().collect();
    let mut out = Vec::new();
    let mut t = first;
    while t <= until {
        out.push(json!([
            convert::rfc3339(t, 0),
            have.get(&t).copied().unwrap_or(0)
        ]));
        t += bucket;
    }
    out
}

async fn staged(
    AxumState(state): AxumState<State>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(raw.as_deref(), &["since", "until"])?;
    let range = TimeRange::parse(&p, now_unix_ns(), Some("24h"))?;
    let sql = Sql::new(state.store.dialect().await?);
    let r = state
        .store
        .query("staged would-deny pairs", &sql.staged(&range))
        .await?;
    let pairs: Vec<Value> = r
        .rows
        .iter()
        .map(|row| {
            json!({
                "policy": policy_id(&text(&row[0]), &text(&row[1]), &text(&row[2])),
                "src_namespace": text(&row[3]),
                "src_pod": text(&row[4]),
                "dst_namespace": text(&row[5]),
                "dst_pod": text(&row[6]),
                "dst_port": int(&row[7]).unwrap_or(0),
                "protocol": text(&row[8]),
                "count": int(&row[9]).unwrap_or(0),
                "last": convert::rfc3339(int(&row[10]).unwrap_or(0), 0),
            })
        })
        .collect();
    Ok(Json(json!({"would_deny": pairs})))
}

fn filter_and(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = params::FILTER_PARAMS.to_vec();
    v.extend(extra);
    v
}

async fn drops(
    AxumState(state): AxumState<State>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(raw.as_deref(), &filter_and(&["since", "until", "bucket"]))?;
    let now = now_unix_ns();
    let range = TimeRange::parse(&p, now, Some("1h"))?;
    let (since, until) = range.seconds(now);
    let bucket = params::bucket_seconds(&p, since, until)?;
    let filter = Filter::parse(&p)?;
    let sql = Sql::new(state.store.dialect().await?);
    let s = &state.store;
    let statements = [
        sql.drops_over_time(&filter, &range, bucket),
        sql.drops_by_reason(&filter, &range),
        sql.drops_by_policy(&filter, &range),
        sql.drops_top_pairs(&filter, &range),
    ];
    let (over, reasons, by_policy, pairs) = tokio::try_join!(
        s.query("drops over time", &statements[0]),
        s.query("drops by reason", &statements[1]),
        s.query("drops by policy", &statements[2]),
        s.query("top dropped pairs", &statements[3]),
    )?;
    let points: Vec<(i64, i64)> = over
        .rows
        .iter()
        .map(|r| (int(&r[0]).unwrap_or(0), int(&r[1]).unwrap_or(0)))
        .collect();
    Ok(Json(json!({
        "bucket_seconds": bucket,
        "over_time": dense(since.div_euclid(bucket) * bucket, until, bucket, &points),
        "by_reason": reasons.rows.iter().map(|r| json!({"reason": text(&r[0]), "count": int(&r[1]).unwrap_or(0)})).collect::<Vec<_>>(),
        "by_policy": by_policy.rows.iter().map(|r| json!({"policy": text(&r[0]), "count": int(&r[1]).unwrap_or(0)})).collect::<Vec<_>>(),
        "top_pairs": pairs.rows.iter().map(|r| json!({
            "src_namespace": text(&r[0]), "src_pod": text(&r[1]),
            "dst_namespace": text(&r[2]), "dst_pod": text(&r[3]),
            "dst_port": int(&r[4]).unwrap_or(0), "protocol": text(&r[5]),
            "count": int(&r[6]).unwrap_or(0),
        })).collect::<Vec<_>>(),
    })))
}

async fn servicemap(
    AxumState(state): AxumState<State>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(raw.as_deref(), &filter_and(&["since", "until"]))?;
    let range = TimeRange::parse(&p, now_unix_ns(), Some("15m"))?;
    let filter = Filter::parse(&p)?;
    let sql = Sql::new(state.store.dialect().await?);
    let r = state
        .store
        .query("service map", &sql.servicemap(&filter, &range))
        .await?;
    Ok(Json(build_map(&r.rows)))
}

/// Service map nodes and edges from the grouped rows of [`Sql::servicemap`].
pub fn build_map(rows: &[Vec<Value>]) -> Value {
    let mut nodes: BTreeMap<String, Value> = BTreeMap::new();
    #[derive(Default)]
    struct Edge {
        forwarded: i64,
        dropped: i64,
        audit: i64,
        policies: BTreeSet<String>,
    }
    let mut edges: BTreeMap<(String, String, i64, String), Edge> = BTreeMap::new();
    let mut peer = |ns: &Value, pod: &Value, labels: &Value, ip: &Value, identity: &Value| {
        let (ns, pod, ip) = (text(ns), text(pod), text(ip));
        let labels: Vec<String> = text(labels)
            .split(',')
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        let kind = convert::peer_kind(&ns, &labels, int(identity).unwrap_or(0) as u32);
        let workload = convert::workload(&labels, &pod, &ip);
        let id = if ns.is_empty() {
            format!("{kind}/{workload}")
        } else {
            format!("{ns}/{workload}")
        };
        nodes.entry(id.clone()).or_insert_with(
            || json!({"id": id, "namespace": ns, "workload": workload, "kind": kind}),
        );
        id
    };
    for r in rows {
        let source = peer(&r[0], &r[1], &r[2], &r[3], &r[4]);
        let target = peer(&r[5], &r[6], &r[7], &r[8], &r[9]);
        let e = edges
            .entry((source, target, int(&r[10]).unwrap_or(0), text(&r[11])))
            .or_default();
        let policy = text(&r[12]);
        if !policy.is_empty() {
            e.policies.insert(policy);
        }
        e.forwarded += int(&r[13]).unwrap_or(0);
        e.dropped += int(&r[14]).unwrap_or(0);
        e.audit += int(&r[15]).unwrap_or(0);
    }
    let edges: Vec<Value> = edges
        .into_iter()
        .map(|((source, target, port, protocol), e)| {
            json!({
                "source": source, "target": target, "port": port, "protocol": protocol,
                "forwarded": e.forwarded, "dropped": e.dropped, "audit": e.audit,
                "policies": e.policies,
            })
        })
        .collect();
    json!({"nodes": nodes.into_values().collect::<Vec<_>>(), "edges": edges})
}

async fn nodes(AxumState(state): AxumState<State>) -> Result<Json<Value>, ApiError> {
    let (nodes, store) = tokio::join!(state.relay.nodes(), store_counts(&state));
    let nodes = nodes?;
    let out: Vec<Value> = nodes
        .iter()
        .map(|n| {
            let state_name = vigil_proto::relay::NodeState::try_from(n.state)
                .map(|s| s.as_str_name())
                .unwrap_or("UNKNOWN_NODE_STATE");
            json!({
                "name": n.name,
                "state": state_name,
                "address": n.address,
                "version": n.version,
                "uptime_ns": n.uptime_ns,
                "num_flows": n.num_flows,
                "max_flows": n.max_flows,
                "seen_flows": n.seen_flows,
                "flow_rate": state.rates.observe(&n.name, n.seen_flows),
                "lost": state.lost.node(&n.name),
                // What the store recorded lost for this node, over its whole history.
                "stored_lost": store["lost_by_node"].get(&n.name).cloned().unwrap_or(json!({})),
            })
        })
        .collect();
    Ok(Json(json!({"nodes": out})))
}

/// `(node, source, count)` rows summed by source, and by node then source.
fn lost_sums(
    rows: &[Vec<Value>],
) -> (
    BTreeMap<String, i64>,
    BTreeMap<String, BTreeMap<String, i64>>,
) {
    let (mut total, mut by_node) = (BTreeMap::new(), BTreeMap::<String, BTreeMap<_, _>>::new());
    for r in rows {
        let (node, source) = (text(&r[0]), text(&r[1]));
        let n = r.get(2).and_then(int).unwrap_or(0);
        *total.entry(source.clone()).or_default() += n;
        *by_node.entry(node).or_default().entry(source).or_default() += n;
    }
    (total, by_node)
}

/// Store row counts and recorded losses, cached for a few seconds (counting is a scan on large stores).
async fn store_counts(state: &State) -> Value {
    let mut cache = state.counts_cache.lock().await;
    if let Some((at, v)) = &*cache
        && at.elapsed() < Duration::from_secs(5)
    {
        return v.clone();
    }
    let v = match state.store.dialect().await {
        Err(e) => json!({"url": state.store.url(), "error": e.to_string()}),
        Ok(d) => match state.store.query("row counts", &Sql::new(d).counts()).await {
            Ok(r) => {
                let row = r.rows.first().cloned().unwrap_or_default();
                let mut v = json!({
                    "url": state.store.url(),
                    "dialect": dialect_name(d),
                    "flows": row.first().and_then(int).unwrap_or(0),
                    "policy_hits": row.get(1).and_then(int).unwrap_or(0),
                });
                match state
                    .store
                    .query("lost events", &Sql::new(d).lost_by_node())
                    .await
                {
                    Ok(r) => {
                        let (total, by_node) = lost_sums(&r.rows);
                        v["lost"] = json!(total);
                        v["lost_by_node"] = json!(by_node);
                    }
                    Err(e) => v["lost_error"] = json!(e.to_string()),
                }
                v
            }
            Err(e) => {
                json!({"url": state.store.url(), "dialect": dialect_name(d), "error": e.to_string()})
            }
        },
    };
    *cache = Some((std::time::Instant::now(), v.clone()));
    v
}

async fn status(AxumState(state): AxumState<State>) -> Json<Value> {
    let (relay, store) = tokio::join!(state.relay.status(), store_counts(&state));
    let relay = match relay {
        Ok(s) => json!({
            "address": state.relay.address(),
            "reachable": true,
            "num_flows": s.num_flows,
            "max_flows": s.max_flows,
            "seen_flows": s.seen_flows,
            "flow_rate": s.flows_rate,
            "version": s.version,
            "num_connected_nodes": s.num_connected_nodes.unwrap_or(0),
            "num_unavailable_nodes": s.num_unavailable_nodes.unwrap_or(0),
            "unavailable_nodes": s.unavailable_nodes,
        }),
        Err(e) => json!({
            "address": state.relay.address(),
            "reachable": false,
            "error": e.to_string(),
        }),
    };
    Json(json!({
        "relay": relay,
        "lost": state.lost.total(),
        "store": store,
        "ui": {
            "stream_clients": state.stream.clients.load(Ordering::Relaxed),
            "stream_lost": state.stream.lost.load(Ordering::Relaxed),
        },
    }))
}
