//! Builders of realistic flows for tests and benchmarks (of this crate and its users): a TCP flow
//! with Hubble's policy lists and a Vigil trace, as an agent produces them; and a ClickHouse
//! database of a test's own, dropped when the test ends.

use vigil_proto::{
    flow::{
        Endpoint, Flow, Ip, Layer4, Policy, Tcp, TcpFlags, TrafficDirection, Verdict,
        layer4::Protocol,
    },
    vigil::{Action, HitKind, PolicyHit, PolicyTrace},
};

/// A flow seen by `node` at `secs`.`nanos` with uuid `uuid`. `i` varies the pods, the port and
/// the verdict: every third flow is denied by `GlobalNetworkPolicy/deny-ssh`, the others are
/// allowed by `NetworkPolicy/shop/allow-web`, and every fifth is also denied by the staged
/// `StagedNetworkPolicy/shop/lockdown`.
pub fn sample_flow(node: &str, secs: i64, nanos: i32, uuid: &str, i: u64) -> Flow {
    let denied = i.is_multiple_of(3);
    let staged = i.is_multiple_of(5);
    let port = if denied { 22 } else { 80 };
    let hit = |kind: &str, ns: &str, name: &str, action: Action, pending: bool| PolicyHit {
        kind: kind.into(),
        namespace: ns.into(),
        name: name.into(),
        tier: "default".into(),
        rule_index: Some(0),
        action: action as i32,
        hit_kind: HitKind::Rule as i32,
        pending,
        description: String::new(),
    };
    let decided = if denied {
        hit("GlobalNetworkPolicy", "", "deny-ssh", Action::Deny, false)
    } else {
        hit("NetworkPolicy", "shop", "allow-web", Action::Allow, false)
    };
    let pending = staged.then(|| {
        hit(
            "StagedNetworkPolicy",
            "shop",
            "lockdown",
            Action::Deny,
            true,
        )
    });
    let policy = Policy {
        name: decided.name.clone(),
        namespace: decided.namespace.clone(),
        kind: decided.kind.clone(),
        ..Policy::default()
    };
    let verdict = if denied {
        Verdict::Dropped
    } else if staged {
        Verdict::Audit
    } else {
        Verdict::Forwarded
    };
    Flow {
        time: Some(prost_types_timestamp(secs, nanos)),
        verdict: verdict as i32,
        drop_reason_desc: if denied { 181 } else { 0 },
        ip: Some(Ip {
            source: format!("10.200.1.{}", 10 + i % 50),
            destination: "10.200.2.20".into(),
            ip_version: 1,
            encrypted: false,
        }),
        l4: Some(Layer4 {
            protocol: Some(Protocol::Tcp(Tcp {
                source_port: 40000 + (i % 20000) as u32,
                destination_port: port,
                flags: Some(TcpFlags {
                    syn: true,
                    ..TcpFlags::default()
                }),
            })),
        }),
        source: Some(Endpoint {
            identity: 1000 + (i % 7) as u32,
            namespace: "ops".into(),
            labels: vec!["k8s:app=client".into()],
            pod_name: format!("client-{}", i % 7),
            ..Endpoint::default()
        }),
        destination: Some(Endpoint {
            identity: 2000,
            namespace: "shop".into(),
            labels: vec!["k8s:app=web".into()],
            pod_name: "web".into(),
            ..Endpoint::default()
        }),
        r#type: 1,
        node_name: node.into(),
        traffic_direction: TrafficDirection::Ingress as i32,
        is_reply: Some(false),
        uuid: uuid.into(),
        ingress_allowed_by: if denied { vec![] } else { vec![policy.clone()] },
        ingress_denied_by: if denied { vec![policy] } else { vec![] },
        vigil_trace: Some(PolicyTrace {
            decided_by: Some(decided.clone()),
            pending_decided_by: pending.clone(),
            pending_action: pending.as_ref().map_or(0, |p| p.action),
            enforced: vec![decided],
            pending: pending.into_iter().collect(),
            generation: 1,
            ..PolicyTrace::default()
        }),
        ..Flow::default()
    }
}

fn prost_types_timestamp(seconds: i64, nanos: i32) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos }
}

/// `<prefix>_<pid>_<counter>_<nanos>`: a name no other test of this run or of another run
/// uses (databases, files, namespaces).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Where the tests' ClickHouse server listens (`scripts/clickhouse.sh start`, run by `make test`).
pub const CLICKHOUSE: &str = "127.0.0.1:8123";

/// A ClickHouse database of its own for one test, dropped on drop (also when the test fails).
#[derive(Debug)]
pub struct TempClickHouse {
    /// `clickhouse://127.0.0.1:8123/<unique name>`.
    pub url: String,
}

impl TempClickHouse {
    /// A database named by [`unique_name`], created by the first store opened on it.
    pub fn new(prefix: &str) -> TempClickHouse {
        TempClickHouse {
            url: format!("clickhouse://{CLICKHOUSE}/{}", unique_name(prefix)),
        }
    }
}

impl Drop for TempClickHouse {
    fn drop(&mut self) {
        let url = self.url.clone();
        // Its own thread and runtime: drop may run inside or outside a runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(s) = crate::ClickHouseStore::connect(&url) {
                    let _ = s.drop_database().await;
                }
            });
        })
        .join();
    }
}
