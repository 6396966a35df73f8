// The shapes of docs/ui-api.md, as the dashboard reads them.

export interface Peer {
  namespace: string;
  pod: string;
  workload: string;
  labels: string[];
  identity: number;
  ip: string;
  port: number;
}

export interface Hit {
  kind: string;
  namespace: string;
  name: string;
  tier: string;
  /** null (or -1) when the hit is not a rule: end of tier, default allow. */
  rule_index: number | null;
  action: string;
  enforcement: string;
  hit_kind: string;
  direction: string;
}

export interface Flow {
  uuid: string;
  time: string;
  node: string;
  verdict: string;
  drop_reason: string;
  direction: string;
  is_reply: boolean | null;
  protocol: string;
  tcp_flags: string;
  src: Peer;
  dst: Peer;
  policy: string;
  hits: Hit[];
  summary: string;
}

export interface FlowsPage {
  flows: Flow[];
  next: string | null;
  /** First page only: events recorded lost in the range, by source. */
  lost?: Record<string, number>;
}

export type StreamFrame =
  | { type: 'flows'; flows: Flow[] }
  | { type: 'lost'; count: number; source: string; total: number }
  | { type: 'node'; name: string; state: string; message: string }
  | { type: 'error'; error: string };

export interface SqlResult {
  columns: string[];
  rows: unknown[][];
  elapsed_ms: number;
  dialect: string;
}

export interface PolicyHits {
  allowed: number;
  denied: number;
  logged: number;
  passed: number;
  staged_would_deny: number;
  staged_would_allow: number;
}

export interface Policy {
  kind: string;
  dialect: string;
  namespace: string;
  name: string;
  tier: string;
  order: number | null;
  staged: boolean;
  file: string;
  hits: PolicyHits;
  last_hit: string | null;
  never_hit: boolean;
  loaded?: boolean;
}

export interface PoliciesResponse {
  policies: Policy[];
  /** Policy files that do not parse: not enforced, their last good version stays in force. */
  rejected?: { file: string; error: string }[];
}

export type Point = [string, number];

export interface HitSeries {
  policy: string;
  action: string;
  enforcement: string;
  points: Point[];
}

export interface PolicyHitsResponse {
  bucket_seconds: number;
  series: HitSeries[];
}

export interface StagedPair {
  policy: string;
  src_namespace: string;
  src_pod: string;
  dst_namespace: string;
  dst_pod: string;
  dst_port: number;
  protocol: string;
  count: number;
  last: string;
}

export interface DropPair {
  src_namespace: string;
  src_pod: string;
  dst_namespace: string;
  dst_pod: string;
  dst_port: number;
  protocol: string;
  count: number;
}

export interface DropsResponse {
  bucket_seconds: number;
  over_time: Point[];
  by_reason: { reason: string; count: number }[];
  by_policy: { policy: string; count: number }[];
  top_pairs: DropPair[];
}

export interface MapNode {
  id: string;
  namespace: string;
  workload: string;
  kind: string;
}

export interface MapEdge {
  source: string;
  target: string;
  port: number;
  protocol: string;
  forwarded: number;
  dropped: number;
  audit: number;
  policies: string[];
}

export interface ServiceMap {
  nodes: MapNode[];
  edges: MapEdge[];
}

export interface NodeInfo {
  name: string;
  state: string;
  address: string;
  version: string;
  uptime_ns: number;
  num_flows: number;
  max_flows: number;
  seen_flows: number;
  flow_rate: number;
  lost: Record<string, number>;
  /** The store's recorded losses for this node, over its whole history. */
  stored_lost: Record<string, number>;
}

export interface Status {
  relay: {
    address: string;
    reachable: boolean;
    error?: string;
    flow_rate?: number;
    version?: string;
    num_flows: number;
    max_flows: number;
    seen_flows: number;
    num_connected_nodes: number;
    num_unavailable_nodes: number;
    unavailable_nodes: string[];
  };
  lost: Record<string, number>;
  store: {
    url: string;
    dialect: string;
    flows: number;
    policy_hits: number;
    /** The store's `lost_events` history, by source. */
    lost?: Record<string, number>;
    lost_error?: string;
    error?: string;
  };
  ui: { stream_clients: number; stream_lost: number };
}
