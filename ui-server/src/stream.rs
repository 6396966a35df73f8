//! `/api/v1/stream`: live flows over a WebSocket.
//!
//! Per client, two tasks joined by one bounded queue: the *reader* follows the relay
//! (`GetFlows` with the client's filter as Hubble `FlowFilter`s), converts each flow to the UI
//! object, applies the exact filter and `try_send`s it; it never waits for the client. When the
//! queue is full the flow is dropped and counted (`UI_CLIENT_QUEUE`); lost-event notices and
//! node status from upstream that find the queue full are kept aside (summed), never waited
//! for. The *writer* (the socket's task) batches flows (at most every 100 ms or 500 flows), and
//! after each batch reports what was dropped in `lost` frames. A slow tab therefore fills only
//! its own queue: the relay reader, the relay and other tabs go on at full speed.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::extract::ws::{Message, WebSocket};
use tokio::sync::mpsc;
use vigil_proto::{observer::get_flows_response::ResponseTypes, relay::NodeState};

use crate::{api::State, convert::ui_flow, params::Filter, relay::source_name};

/// Flows per frame at most.
pub const BATCH_FLOWS: usize = 500;
/// A partial batch leaves after this long.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// The lost-event source name of this server's per-client queue.
pub const CLIENT_QUEUE: &str = "UI_CLIENT_QUEUE";

/// Counters over every stream client.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Clients connected now.
    pub clients: AtomicU64,
    /// Flows dropped because a client's queue was full, over all clients.
    pub lost: AtomicU64,
}

/// What the reader sets aside for the writer (never waited for).
#[derive(Debug, Default)]
struct Aside {
    /// Lost counts by source not yet reported.
    lost: BTreeMap<String, u64>,
    /// Node frames that did not fit in the queue.
    nodes: Vec<String>,
    /// The relay failed: the error to send before closing.
    error: Option<String>,
}

fn node_frames(state: i32, names: &[String], message: &str) -> Vec<String> {
    let state = NodeState::try_from(state)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN_NODE_STATE");
    names
        .iter()
        .map(|n| {
            serde_json::json!({"type": "node", "name": n, "state": state, "message": message})
                .to_string()
        })
        .collect()
}

/// One item of a client's queue: a flow as JSON, or a whole frame.
#[derive(Debug)]
enum Item {
    Flow(String),
    Frame(String),
}

async fn read_relay(
    state: State,
    filter: Filter,
    tx: mpsc::Sender<Item>,
    aside: Arc<Mutex<Aside>>,
) {
    let set_aside =
        |f: &dyn Fn(&mut Aside)| f(&mut aside.lock().unwrap_or_else(|p| p.into_inner()));
    let mut stream = match state.relay.follow(filter.to_hubble()).await {
        Ok(s) => s,
        Err(e) => {
            set_aside(&|a| a.error = Some(e.to_string()));
            return;
        }
    };
    loop {
        let r = match stream.message().await {
            Ok(Some(r)) => r,
            Ok(None) => {
                let e = format!("relay {} ended the stream", state.relay.address());
                set_aside(&|a| a.error = Some(e.clone()));
                return;
            }
            Err(s) => {
                let e = state.relay.error(&s).to_string();
                set_aside(&|a| a.error = Some(e.clone()));
                return;
            }
        };
        match r.response_types {
            Some(ResponseTypes::Flow(f)) => {
                let (row, hits) = vigil_storage::to_rows(&f);
                if !filter.matches(&row, &hits) {
                    continue;
                }
                let json = match serde_json::to_string(&ui_flow(&row, &hits)) {
                    Ok(j) => j,
                    Err(_) => continue,
                };
                match tx.try_send(Item::Flow(json)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        state.stream.lost.fetch_add(1, Ordering::Relaxed);
                        set_aside(&|a| *a.lost.entry(CLIENT_QUEUE.into()).or_default() += 1);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            Some(ResponseTypes::LostEvents(l)) => {
                let source = source_name(l.source);
                set_aside(&|a| *a.lost.entry(source.clone()).or_default() += l.num_events_lost);
            }
            Some(ResponseTypes::NodeStatus(n)) => {
                for frame in node_frames(n.state_change, &n.node_names, &n.message) {
                    match tx.try_send(Item::Frame(frame)) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(Item::Frame(f))) => {
                            set_aside(&|a| a.nodes.push(f.clone()));
                        }
                        Err(_) => return,
                    }
                }
            }
            None => {}
        }
    }
}

/// Decrements the client count when the connection ends, however it ends.
struct ClientGuard(State);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.stream.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one WebSocket client until it leaves or the relay fails.
pub async fn serve_client(mut socket: WebSocket, state: State, filter: Filter) {
    state.stream.clients.fetch_add(1, Ordering::Relaxed);
    let _guard = ClientGuard(state.clone());
    let (tx, mut rx) = mpsc::channel(state.config.stream_queue.max(1));
    let aside = Arc::new(Mutex::new(Aside::default()));
    let reader = tokio::spawn(read_relay(state.clone(), filter, tx, aside.clone()));
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut batch: Vec<String> = Vec::with_capacity(BATCH_FLOWS);
    let mut tick = tokio::time::interval(BATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reader_done = false;
    'serve: loop {
        let mut frames: Vec<String> = Vec::new();
        let mut flush = false;
        let mut end = false;
        tokio::select! {
            item = rx.recv(), if !reader_done => match item {
                Some(Item::Flow(f)) => {
                    batch.push(f);
                    flush = batch.len() >= BATCH_FLOWS;
                }
                Some(Item::Frame(f)) => {
                    flush = true;
                    frames.push(f);
                }
                None => {
                    reader_done = true;
                    flush = true;
                }
            },
            _ = tick.tick() => flush = true,
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break 'serve,
                Some(Ok(_)) => {}
            },
        }
        if !flush {
            continue;
        }
        let mut out = Vec::new();
        if !batch.is_empty() {
            out.push(format!(
                r#"{{"type":"flows","flows":[{}]}}"#,
                batch.join(",")
            ));
            batch.clear();
        }
        out.append(&mut frames);
        let (lost, nodes, error) = {
            let mut a = aside.lock().unwrap_or_else(|p| p.into_inner());
            let error = if reader_done || reader.is_finished() {
                a.error.take()
            } else {
                None
            };
            (
                std::mem::take(&mut a.lost),
                std::mem::take(&mut a.nodes),
                error,
            )
        };
        out.extend(nodes);
        for (source, count) in lost {
            if count == 0 {
                continue;
            }
            let total = totals.entry(source.clone()).or_default();
            *total += count;
            out.push(
                serde_json::json!({"type": "lost", "count": count, "source": source, "total": *total})
                    .to_string(),
            );
        }
        if let Some(e) = &error {
            out.push(serde_json::json!({"type": "error", "error": e}).to_string());
            end = true;
        }
        for frame in out {
            if socket.send(Message::Text(frame.into())).await.is_err() {
                break 'serve;
            }
        }
        if end {
            let _ = socket.send(Message::Close(None)).await;
            break;
        }
    }
    reader.abort();
}
