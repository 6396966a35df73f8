// Client-side routes in the URL path, page state (filters, time range) in the query string,
// so every view is a link: the Drops page links to the Flows page filtered, and a reload keeps
// what the user was looking at. The ui-server answers index.html for unknown non-API paths.

import { useEffect, useState } from 'preact/hooks';

export interface Route {
  path: string;
  params: URLSearchParams;
}

function current(): Route {
  return { path: location.pathname, params: new URLSearchParams(location.search) };
}

const listeners = new Set<() => void>();

export function navigate(path: string, params?: URLSearchParams | Record<string, string>, replace = false): void {
  const p = params instanceof URLSearchParams ? params : new URLSearchParams(params ?? {});
  const s = p.toString();
  const url = `${path}${s ? `?${s}` : ''}`;
  if (url === `${location.pathname}${location.search}`) return;
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  for (const l of listeners) l();
}

/** Replaces some query parameters of the current page (an empty value removes one). */
export function setParams(changes: Record<string, string | string[] | null>, replace = true): void {
  const p = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    p.delete(k);
    if (v === null) continue;
    for (const x of Array.isArray(v) ? v : [v]) if (x !== '') p.append(k, x);
  }
  navigate(location.pathname, p, replace);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const update = () => setRoute(current());
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return route;
}

/** The time-range parameters carried from page to page. */
export const RANGE_KEYS = ['range', 'since', 'until'] as const;

/** A link to `path` with `params`, keeping the current time range. */
export function href(path: string, params: Record<string, string | string[]> = {}): string {
  const cur = new URLSearchParams(location.search);
  const p = new URLSearchParams();
  for (const k of RANGE_KEYS) {
    const v = cur.get(k);
    if (v && !(k in params)) p.set(k, v);
  }
  for (const [k, v] of Object.entries(params)) {
    for (const x of Array.isArray(v) ? v : [v]) if (x !== '') p.append(k, x);
  }
  const s = p.toString();
  return `${path}${s ? `?${s}` : ''}`;
}

/** Click handler for in-app links: push state instead of reloading the page. */
export function linkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as HTMLElement).closest('a');
  if (!a || a.target || a.origin !== location.origin || a.pathname.startsWith('/api/')) return;
  e.preventDefault();
  navigate(a.pathname, new URLSearchParams(a.search));
}
