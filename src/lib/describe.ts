/**
 * One-line, deterministic renderings of values for logs and golden tests.
 * Object keys are printed in insertion order (cohort builds messages in a fixed
 * order), byte arrays as short hex, and long collections are elided.
 *
 * ```ts
 * describe({ type: 'Vote', term: 3, from: 'n1' }) // "Vote{term:3 from:n1}"
 * ```
 */

const BYTES_SHOWN = 16;
const ITEMS_SHOWN = 32;

function hex(bytes: Uint8Array): string {
  let s = '';
  const n = Math.min(bytes.length, BYTES_SHOWN);
  for (let i = 0; i < n; i++) s += (bytes[i] as number).toString(16).padStart(2, '0');
  return bytes.length > BYTES_SHOWN ? `0x${s}…(${bytes.length}B)` : `0x${s}`;
}

function render(value: unknown, depth: number): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'undefined':
      return 'undefined';
    case 'string':
      return /^[A-Za-z0-9._:/-]+$/.test(value) ? value : JSON.stringify(value);
    case 'number':
    case 'boolean':
      return String(value);
    case 'bigint':
      return `${value}n`;
    case 'symbol':
      return value.toString();
    case 'function':
      return '[fn]';
    case 'object':
      break;
  }
  if (depth > 6) return '…';
  if (value instanceof Uint8Array) return hex(value);
  if (value instanceof Error) return `${value.name}(${JSON.stringify(value.message)})`;
  if (Array.isArray(value)) {
    const items = value.slice(0, ITEMS_SHOWN).map((v) => render(v, depth + 1));
    if (value.length > ITEMS_SHOWN) items.push(`…+${value.length - ITEMS_SHOWN}`);
    return `[${items.join(' ')}]`;
  }
  if (value instanceof Map) {
    const items = [...value.entries()]
      .slice(0, ITEMS_SHOWN)
      .map(([k, v]) => `${render(k, depth + 1)}=>${render(v, depth + 1)}`);
    return `Map{${items.join(' ')}}`;
  }
  if (value instanceof Set) {
    return `Set{${[...value]
      .slice(0, ITEMS_SHOWN)
      .map((v) => render(v, depth + 1))
      .join(' ')}}`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  const typeName = typeof obj.type === 'string' ? obj.type : '';
  const parts: string[] = [];
  for (const k of keys) {
    if (k === 'type' && typeName !== '') continue;
    if (obj[k] === undefined) continue;
    parts.push(`${k}:${render(obj[k], depth + 1)}`);
  }
  return `${typeName}{${parts.join(' ')}}`;
}

/** Renders any value on one line, deterministically. */
export function describe(value: unknown): string {
  return render(value, 0);
}
