// The time range every history page honours: live (the stream, and the last 15 minutes for
// aggregate pages, refreshed) or a fixed window (15m, 1h, 24h, custom since/until).

export type RangeKind = 'live' | '15m' | '1h' | '24h' | 'custom';

export interface TimeRange {
  kind: RangeKind;
  /** `since` as the API takes it: a duration back from now or RFC 3339. */
  since: string;
  /** `until`, RFC 3339, or '' for now. */
  until: string;
  live: boolean;
}

export function rangeFrom(params: URLSearchParams): TimeRange {
  const kind = (params.get('range') ?? 'live') as RangeKind;
  switch (kind) {
    case '15m':
    case '1h':
    case '24h':
      return { kind, since: kind, until: '', live: false };
    case 'custom': {
      const since = params.get('since') ?? '1h';
      return { kind, since, until: params.get('until') ?? '', live: false };
    }
    default:
      return { kind: 'live', since: '15m', until: '', live: true };
  }
}

/** A bucket width giving about 60 points over the range. */
export function bucketFor(r: TimeRange): string {
  const secs = rangeSeconds(r);
  const nice = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400];
  const want = secs / 60;
  return `${nice.find((n) => n >= want) ?? 86400}s`;
}

export function rangeSeconds(r: TimeRange): number {
  const dur = /^(\d+)(s|m|h|d)$/.exec(r.since);
  if (dur) {
    const unit = { s: 1, m: 60, h: 3600, d: 86400 }[dur[2] as 's' | 'm' | 'h' | 'd'];
    return Number(dur[1]) * unit;
  }
  const since = Date.parse(r.since);
  const until = r.until ? Date.parse(r.until) : Date.now();
  return Number.isFinite(since) && Number.isFinite(until) && until > since ? (until - since) / 1000 : 3600;
}

/** `<input type="datetime-local">` value <-> RFC 3339 (the browser's local time zone). */
export function toLocalInput(rfc3339: string): string {
  const d = new Date(rfc3339);
  if (!Number.isFinite(d.getTime())) return '';
  const off = d.getTimezoneOffset() * 60_000;
  return new Date(d.getTime() - off).toISOString().slice(0, 16);
}

export function fromLocalInput(v: string): string {
  const d = new Date(v);
  return Number.isFinite(d.getTime()) ? d.toISOString() : '';
}
