// A table that renders only the rows in view (plus a margin), so thousands of rows per second
// cost the same as thirty. Rows have one fixed height; the body scrolls, the header does not.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';

export interface Column<T> {
  key: string;
  title: string;
  width: string;
  render: (row: T) => ComponentChildren;
  cls?: (row: T) => string;
}

interface Props<T> {
  columns: Column<T>[];
  count: number;
  row: (i: number) => T | undefined;
  rowKey: (row: T) => string;
  /** Changes whenever rows changed (the ring does not tell otherwise). */
  version: number;
  selected?: string | null;
  onSelect?: (row: T) => void;
  rowHeight?: number;
  testid?: string;
  rowTestid?: string;
  rowClass?: (row: T) => string;
  /** Rows added at the top since the last render: keeps a scrolled view on the same rows. */
  prepended?: number;
  empty?: ComponentChildren;
}

export function VirtualTable<T>(p: Props<T>) {
  const rowHeight = p.rowHeight ?? 26;
  const body = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(400);

  useEffect(() => {
    const el = body.current;
    if (!el) return;
    setHeight(el.clientHeight);
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  // A user reading older rows keeps reading them while new ones arrive on top.
  useEffect(() => {
    const el = body.current;
    if (el && p.prepended && el.scrollTop > 0) {
      el.scrollTop += p.prepended * rowHeight;
      setScrollTop(el.scrollTop);
    }
  }, [p.version]);

  const grid = p.columns.map((c) => c.width).join(' ');
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - 10);
  const last = Math.min(p.count, Math.ceil((scrollTop + height) / rowHeight) + 10);
  const rows = [];
  for (let i = first; i < last; i++) {
    const r = p.row(i);
    if (r === undefined) continue;
    const key = p.rowKey(r);
    // Keyed by position, not by row: when flows arrive on top, the same DOM rows get new text
    // instead of being removed and recreated (far less layout and garbage per frame).
    rows.push(
      <div
        key={i}
        class={`vt-row ${p.selected === key ? 'selected' : ''} ${p.rowClass?.(r) ?? ''}`}
        style={{ top: i * rowHeight, height: rowHeight, gridTemplateColumns: grid }}
        onClick={() => p.onSelect?.(r)}
        data-testid={p.rowTestid}
        role="row"
      >
        {p.columns.map((c) => (
          <div key={c.key} class={`vt-cell ${c.cls?.(r) ?? ''}`} role="cell" data-col={c.key}>
            {c.render(r)}
          </div>
        ))}
      </div>,
    );
  }

  return (
    <div class="vt" data-testid={p.testid} role="table">
      <div class="vt-head" style={{ gridTemplateColumns: grid }} role="row">
        {p.columns.map((c) => (
          <div key={c.key} class="vt-cell" role="columnheader">
            {c.title}
          </div>
        ))}
      </div>
      <div class="vt-body" ref={body} onScroll={(e) => setScrollTop((e.currentTarget as HTMLDivElement).scrollTop)}>
        {p.count === 0 && p.empty ? <div class="empty">{p.empty}</div> : null}
        <div style={{ height: p.count * rowHeight, position: 'relative' }}>{rows}</div>
      </div>
    </div>
  );
}
