// Every HTTP and WebSocket call of the dashboard: the bearer token, and errors turned into
// messages the user sees (never swallowed). A 401 asks for the token once, then retries.

const TOKEN_KEY = 'vigil.token';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export function token(): string | null {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(t: string | null): void {
  if (t) localStorage.setItem(TOKEN_KEY, t);
  else localStorage.removeItem(TOKEN_KEY);
}

type TokenAsker = (reason: string) => Promise<string | null>;
let asker: TokenAsker | null = null;
let pendingAsk: Promise<string | null> | null = null;

/** The UI registers the dialog that asks for a token after a 401. */
export function onTokenNeeded(f: TokenAsker): void {
  asker = f;
}

async function askToken(reason: string): Promise<string | null> {
  if (!asker) return null;
  // Several requests failing at once share one dialog.
  pendingAsk ??= asker(reason).finally(() => {
    pendingAsk = null;
  });
  return pendingAsk;
}

/** Query parameters: repeated keys for arrays, empty values left out. */
export type Params = Record<string, string | number | undefined | null | (string | number)[]>;

export function query(params: Params): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) for (const x of v) q.append(k, String(x));
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

async function errorText(r: Response): Promise<string> {
  const text = await r.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: unknown };
    if (typeof body.error === 'string') return body.error;
  } catch {
    /* not JSON: show the text itself */
  }
  return text.trim() || `${r.status} ${r.statusText}`;
}

/** GET or POST JSON; throws ApiError with the server's message. */
export async function api<T>(
  path: string,
  init: { method?: string; body?: unknown; signal?: AbortSignal } = {},
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const headers: Record<string, string> = { Accept: 'application/json' };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    if (init.body !== undefined) headers['Content-Type'] = 'application/json';
    let r: Response;
    try {
      r = await fetch(path, {
        method: init.method ?? 'GET',
        headers,
        body: init.body === undefined ? null : JSON.stringify(init.body),
        signal: init.signal ?? null,
      });
    } catch (e) {
      if (e instanceof DOMException && e.name === 'AbortError') throw e;
      throw new ApiError(`${path}: the ui-server cannot be reached (${String(e)})`, 0);
    }
    if (r.status === 401 && attempt < 2) {
      const msg = await errorText(r);
      const given = await askToken(msg);
      if (given) {
        setToken(given);
        continue;
      }
      throw new ApiError(`${msg} (no token given)`, 401);
    }
    if (!r.ok) throw new ApiError(await errorText(r), r.status);
    return (await r.json()) as T;
  }
}

/** The WebSocket URL for `path` with the token as `?token=` (browsers cannot set headers). */
export function wsUrl(path: string, params: Params): string {
  const t = token();
  const all: Params = t ? { ...params, token: t } : params;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}${path}${query(all)}`;
}

/**
 * A WebSocket closes with no status on a 401 handshake; this asks the server with a plain
 * request whether the token is the reason, and for a token if so. True when a retry may help.
 */
export async function checkAuthAfterSocketFailure(): Promise<boolean> {
  const headers: Record<string, string> = {};
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  try {
    const r = await fetch('/api/v1/status', { headers });
    if (r.status !== 401) return false;
    const given = await askToken(await errorText(r));
    if (given) {
      setToken(given);
      return true;
    }
  } catch {
    /* unreachable: the caller reports the socket error */
  }
  return false;
}
