/**
 * Where the gateway learns its backends. A {@link BackendSource} hands the
 * whole current list to a listener, now and after every change; the gateway
 * adds the new backends, updates weights and drains the ones that left. A
 * static list is the only source today; the naming service (issue #15) will
 * be another, resolving a service name to its registered instances.
 *
 * ```ts
 * const source = new StaticBackendSource(parseBackends('a=127.0.0.1:8081,b=127.0.0.1:8082*2'));
 * const stop = source.subscribe((list) => console.log(list.map((b) => b.id)));
 * source.set([...]);     // tests and admin tools: change the list (removed ones drain)
 * stop();
 * ```
 */
import { CohortError } from '../lib/errors.js';
import { isValidId } from '../lib/ids.js';

/** One backend instance. */
export interface BackendSpec {
  /** Stable name (status pages, metrics, the RPC node id of an RPC backend). */
  readonly id: string;
  readonly host: string;
  readonly port: number;
  /** Share of traffic relative to the others (default 1). */
  readonly weight: number;
}

/** A provider of the backend list (see the file comment). */
export interface BackendSource {
  /**
   * Calls `onChange` with the full list at once and after every change, until
   * the returned function is called.
   */
  subscribe(onChange: (backends: readonly BackendSpec[]) => void): () => void;
}

/** A fixed list, changeable by hand ({@link StaticBackendSource.set}). */
export class StaticBackendSource implements BackendSource {
  private listeners = new Set<(backends: readonly BackendSpec[]) => void>();

  constructor(private list: readonly BackendSpec[]) {}

  subscribe(onChange: (backends: readonly BackendSpec[]) => void): () => void {
    this.listeners.add(onChange);
    onChange(this.list);
    return () => this.listeners.delete(onChange);
  }

  /** The current list. */
  get backends(): readonly BackendSpec[] {
    return this.list;
  }

  /** Replaces the list; listeners see it at once. */
  set(list: readonly BackendSpec[]): void {
    this.list = list;
    for (const l of [...this.listeners]) l(list);
  }
}

/**
 * Parses `id=host:port[*weight],...` (the id may be left out: `host:port`
 * then names itself). Throws INVALID_ARGUMENT naming the bad entry.
 */
export function parseBackends(text: string, what = 'backends'): BackendSpec[] {
  const out: BackendSpec[] = [];
  const seen = new Set<string>();
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const fail = (why: string): CohortError =>
      new CohortError('INVALID_ARGUMENT', `${what}: ${JSON.stringify(item)}: ${why}`, {
        details: { field: what, value: item },
      });
    const eq = item.indexOf('=');
    let rest = eq >= 0 ? item.slice(eq + 1) : item;
    let weight = 1;
    const star = rest.lastIndexOf('*');
    if (star >= 0) {
      const w = Number(rest.slice(star + 1));
      if (!Number.isInteger(w) || w < 1 || w > 1000) throw fail('a weight is an integer 1..1000');
      weight = w;
      rest = rest.slice(0, star);
    }
    const colon = rest.lastIndexOf(':');
    const host = colon > 0 ? rest.slice(0, colon) : '';
    const portText = colon > 0 ? rest.slice(colon + 1) : '';
    const port = Number(portText);
    if (host === '' || !/^\d+$/.test(portText) || port < 1 || port > 65535) {
      throw fail('expected [id=]host:port[*weight]');
    }
    const id = eq >= 0 ? item.slice(0, eq) : `${host}:${port}`;
    if (!isValidId(id)) throw fail('an id may contain only letters, digits and . _ : -');
    if (seen.has(id)) throw fail(`backend ${id} is listed twice`);
    seen.add(id);
    out.push({ id, host, port, weight });
  }
  return out;
}
