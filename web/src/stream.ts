// The live flow stream: one WebSocket to /api/v1/stream, frames parsed as they arrive, flows
// appended to a bounded ring and the page told at most once per animation frame. Memory stays
// bounded however fast flows come: the ring holds `capacity` flows, the batch waiting for the
// next frame holds at most as many (a hidden tab gets no frames), and a paused view holds new
// flows in a queue of the same bound. Lost flows the server reports are counted by source.

import { checkAuthAfterSocketFailure, wsUrl, type Params } from './api';
import type { Flow, StreamFrame } from './types';

/** The newest `capacity` flows; index 0 is the newest. */
export class Ring {
  private buf: (Flow | undefined)[];
  private head = 0;
  size = 0;

  constructor(readonly capacity: number) {
    this.buf = new Array<Flow | undefined>(capacity);
  }

  push(f: Flow): void {
    this.buf[this.head] = f;
    this.head = (this.head + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
  }

  get(i: number): Flow | undefined {
    if (i < 0 || i >= this.size) return undefined;
    return this.buf[(this.head - 1 - i + this.capacity * 2) % this.capacity];
  }

  clear(): void {
    this.buf = new Array<Flow | undefined>(this.capacity);
    this.head = 0;
    this.size = 0;
  }
}

export interface StreamState {
  status: 'connecting' | 'open' | 'closed' | 'error';
  error: string | null;
  /** Flows received since the stream (re)started. */
  received: number;
  /** Flows the server reported lost, by source, and their sum. */
  lost: Record<string, number>;
  lostTotal: number;
  /** Flows received while paused, not yet shown. */
  held: number;
  /** Flows that left the view's buffer (oldest first) because it is bounded. */
  evicted: number;
  nodes: Record<string, { state: string; message: string }>;
  /** Stored flows shown beneath the live ones (from before the stream started). */
  backfilled: number;
  /** Flows per second over the last few seconds. */
  rate: number;
  paused: boolean;
}

export interface StreamStats {
  received: number;
  lostTotal: number;
  renders: number;
}

declare global {
  interface Window {
    /** Read by the browser tests and the 5k flows/s benchmark. */
    __vigilStream?: StreamStats;
    /** Animation frames since the page loaded: the tab's frame rate. */
    __vigilFrames?: number;
  }
}

export class FlowStream {
  readonly ring: Ring;
  private ws: WebSocket | null = null;
  private pending: Flow[] = [];
  private heldQ: Flow[] = [];
  private raf = 0;
  private retry = 0;
  private retryTimer = 0;
  private closed = false;
  private opened = false;
  private rateWindow: [number, number][] = [];
  readonly state: StreamState = {
    status: 'connecting',
    error: null,
    received: 0,
    lost: {},
    lostTotal: 0,
    held: 0,
    evicted: 0,
    nodes: {},
    backfilled: 0,
    rate: 0,
    paused: false,
  };
  /** Bumped on every change the view should render. */
  version = 0;
  /** Flows put into the ring so far (the view keeps a scrolled position with it). */
  inserted = 0;
  private stats: StreamStats = { received: 0, lostTotal: 0, renders: 0 };

  constructor(
    private params: Params,
    capacity: number,
    private onChange: () => void,
  ) {
    this.ring = new Ring(capacity);
    window.__vigilStream = this.stats;
    this.connect();
  }

  private connect(): void {
    this.state.status = 'connecting';
    this.opened = false;
    const ws = new WebSocket(wsUrl('/api/v1/stream', this.params));
    this.ws = ws;
    ws.onopen = () => {
      this.opened = true;
      this.retry = 0;
      this.state.status = 'open';
      this.state.error = null;
      this.changed();
    };
    ws.onmessage = (e: MessageEvent) => this.frame(e.data);
    ws.onclose = (e: CloseEvent) => {
      if (this.ws !== ws || this.closed) return;
      this.ws = null;
      void this.closedUnexpectedly(e);
    };
  }

  private async closedUnexpectedly(e: CloseEvent): Promise<void> {
    if (!this.opened && (await checkAuthAfterSocketFailure())) {
      this.connect();
      return;
    }
    if (this.closed) return;
    if (this.state.status !== 'error') {
      this.state.status = 'closed';
      this.state.error = `the live stream closed${e.reason ? `: ${e.reason}` : e.code !== 1000 ? ` (code ${e.code})` : ''}`;
    }
    const delay = Math.min(10_000, 1000 * 2 ** this.retry++);
    this.state.error = `${this.state.error ?? 'the live stream closed'}; reconnecting in ${Math.round(delay / 1000)} s`;
    this.changed();
    this.retryTimer = window.setTimeout(() => this.connect(), delay);
  }

  private frame(data: unknown): void {
    if (typeof data !== 'string') return;
    let f: StreamFrame;
    try {
      f = JSON.parse(data) as StreamFrame;
    } catch {
      this.state.error = `the server sent a frame that is not JSON: ${data.slice(0, 80)}`;
      this.changed();
      return;
    }
    switch (f.type) {
      case 'flows': {
        const n = f.flows.length;
        this.state.received += n;
        this.stats.received += n;
        this.rateWindow.push([performance.now(), n]);
        const dest = this.state.paused ? this.heldQ : this.pending;
        for (const fl of f.flows) dest.push(fl);
        // Anything beyond one ring's worth would be evicted on arrival: drop it now.
        const over = dest.length - this.ring.capacity;
        if (over > 0) {
          dest.splice(0, over);
          this.state.evicted += over;
        }
        this.state.held = this.heldQ.length;
        break;
      }
      case 'lost':
        this.state.lost[f.source] = (this.state.lost[f.source] ?? 0) + f.count;
        this.state.lostTotal += f.count;
        this.stats.lostTotal = this.state.lostTotal;
        break;
      case 'node':
        this.state.nodes[f.name] = { state: f.state, message: f.message };
        break;
      case 'error':
        this.state.status = 'error';
        this.state.error = f.error;
        break;
    }
    this.changed();
  }

  private changed(): void {
    if (this.raf) return;
    this.raf = requestAnimationFrame(() => this.flush());
  }

  private flush(): void {
    this.raf = 0;
    for (const f of this.pending) {
      if (this.ring.size === this.ring.capacity) this.state.evicted++;
      this.ring.push(f);
    }
    this.inserted += this.pending.length;
    this.pending = [];
    const now = performance.now();
    while (this.rateWindow.length && now - this.rateWindow[0]![0] > 3000) this.rateWindow.shift();
    const n = this.rateWindow.reduce((a, [, c]) => a + c, 0);
    this.state.rate = n / 3;
    this.version++;
    this.stats.renders++;
    this.onChange();
  }

  /**
   * Puts stored flows (newest first, as /api/v1/flows answers) beneath the live ones: only
   * those older than every live flow shown, and none twice.
   */
  backfill(stored: Flow[]): void {
    const live: Flow[] = [];
    for (let i = 0; i < this.ring.size; i++) live.push(this.ring.get(i)!);
    const seen = new Set(live.map((f) => f.uuid).concat(this.pending.map((f) => f.uuid)));
    const oldest = live.length ? live[live.length - 1]!.time : this.pending[0]?.time;
    const older = stored.filter((f) => !seen.has(f.uuid) && (oldest === undefined || f.time <= oldest));
    const room = Math.max(0, this.ring.capacity - live.length);
    const kept = older.slice(0, room);
    this.ring.clear();
    for (let i = kept.length - 1; i >= 0; i--) this.ring.push(kept[i]!);
    for (let i = live.length - 1; i >= 0; i--) this.ring.push(live[i]!);
    this.state.backfilled = kept.length;
    this.changed();
  }

  /** A message for the user that is not a stream failure. */
  note(message: string): void {
    this.state.error = message;
    this.changed();
  }

  setPaused(p: boolean): void {
    this.state.paused = p;
    if (!p) {
      for (const f of this.heldQ) this.pending.push(f);
      this.heldQ = [];
      this.state.held = 0;
    }
    this.changed();
  }

  clear(): void {
    this.ring.clear();
    this.pending = [];
    this.heldQ = [];
    this.state.held = 0;
    this.state.evicted = 0;
    this.changed();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    if (this.raf) cancelAnimationFrame(this.raf);
    this.ws?.close();
    this.ws = null;
  }
}

/** Counts animation frames while the page is open (the benchmark reads it). */
export function countFrames(): void {
  window.__vigilFrames = 0;
  const tick = () => {
    window.__vigilFrames = (window.__vigilFrames ?? 0) + 1;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}
