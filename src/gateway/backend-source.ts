/**
 * Where the gateway learns its backends. A {@link BackendSource} hands the
 * whole current list to a listener, now and after every change; the gateway
 * adds the new backends, updates weights and drains the ones that left. A
 * static list is one source; {@link FollowingBackendSource} is another: it
 * follows a service name's registered instances (naming's `ServiceResolver`,
 * handed in through the {@link InstanceFeed} interface, since the gateway
 * sits below naming), so an instance that deregisters or expires drains and
 * one that registers joins.
 *
 * ```ts
 * const source = new StaticBackendSource(parseBackends('a=127.0.0.1:8081,b=127.0.0.1:8082*2'));
 * const stop = source.subscribe((list) => console.log(list.map((b) => b.id)));
 * source.set([...]);     // tests and admin tools: change the list (removed ones drain)
 * stop();
 * const named = new FollowingBackendSource('ListMax');
 * named.follow(naming.resolver('ListMax'));   // instances by name, as they come and go
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

/** One instance as a feed reports it (naming's `ServiceInstance` has this shape). */
export interface FeedInstance {
  readonly id: string;
  readonly address: { readonly host: string; readonly port: number };
  readonly weight?: number;
}

/**
 * A changing set of instances, e.g. naming's `ServiceResolver`: `subscribe`
 * calls `onChange` with the whole set (once known) and after every change.
 */
export interface InstanceFeed {
  subscribe(onChange: (instances: readonly FeedInstance[]) => void): () => void;
}

/**
 * The backends of a service name: the instances an {@link InstanceFeed}
 * reports, each as a backend with its instance id, address and weight.
 * Until {@link FollowingBackendSource.follow} is called (or before the
 * feed's first report) the list is empty. An instance with an id or address
 * a backend cannot have is left out (the feed validated it already; this
 * keeps the proxy's invariants). An instance that comes back under its id
 * at a new address while its old address drains is the proxy's to take once
 * the drain ends (both fronts do).
 */
export class FollowingBackendSource implements BackendSource {
  private listeners = new Set<(backends: readonly BackendSpec[]) => void>();
  private list: readonly BackendSpec[] = [];
  private unfollow: (() => void) | undefined;

  /** `service`: the name followed (status pages, messages). */
  constructor(readonly service: string) {}

  /** Starts following `feed` (once). */
  follow(feed: InstanceFeed): void {
    if (this.unfollow !== undefined) {
      throw new CohortError('FAILED_PRECONDITION', `already following ${this.service}`);
    }
    this.unfollow = feed.subscribe((instances) => this.set(instances));
  }

  /** Stops following (the list stays as it was). */
  stop(): void {
    this.unfollow?.();
  }

  /** The current list. */
  get backends(): readonly BackendSpec[] {
    return this.list;
  }

  subscribe(onChange: (backends: readonly BackendSpec[]) => void): () => void {
    this.listeners.add(onChange);
    onChange(this.list);
    return () => {
      this.listeners.delete(onChange);
    };
  }

  private set(instances: readonly FeedInstance[]): void {
    const out: BackendSpec[] = [];
    const seen = new Set<string>();
    for (const i of instances) {
      const { host, port } = i.address;
      const weight = i.weight ?? 1;
      if (!isValidId(i.id) || seen.has(i.id)) continue;
      if (typeof host !== 'string' || host === '' || !Number.isInteger(port) || port < 1) continue;
      if (port > 65535 || !Number.isInteger(weight) || weight < 1 || weight > 1000) continue;
      seen.add(i.id);
      out.push({ id: i.id, host, port, weight });
    }
    this.list = out;
    this.emit();
  }

  private emit(): void {
    for (const l of [...this.listeners]) l(this.list);
  }
}
