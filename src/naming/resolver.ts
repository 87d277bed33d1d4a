/**
 * Keeps the current instances of one service: lists the service's prefix in
 * the registry, then watches it from the listing's revision + 1, so no
 * change is missed and none is seen twice.
 *
 * ```ts
 * const resolver = new ServiceResolver(kv, 'ListMax');
 * await resolver.ready();                               // the first listing is in
 * resolver.instances();                                 // ServiceInstance[], by id
 * const stop = resolver.subscribe((list) => ...);       // now and after every change
 * await resolver.close();
 * ```
 *
 * Robustness: the KV client's watch already resumes across node failures
 * and leader changes from its last revision. When it cannot (the resume
 * point was compacted, or no node answered for the watch's patience), the
 * resolver lists again and watches from there, with backoff, keeping the
 * last known instances meanwhile (stale, but the best guess: a caller's
 * failed tries steer it off a dead instance). An entry that is not a valid
 * registration is skipped with a warning (core/instance-set.ts).
 *
 * With auth enabled, resolving needs read permission on the prefix;
 * `ready()` rejects with a PERMISSION_DENIED that names it.
 */
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { KvClient } from '../kv/client.js';
import { kvText } from '../kv/core/bytes.js';
import type { Clock } from '../lib/clock.js';
import { RealClock } from '../lib/clock.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { InstanceSet } from './core/instance-set.js';
import type { InstanceSetUpdate, RegistryEntry } from './core/instance-set.js';
import { checkServiceName, servicePrefix } from './core/registry.js';
import type { ServiceInstance } from './core/registry.js';
import { registryPermissionError } from './registration.js';

/** Options of {@link ServiceResolver}. */
export interface ResolverOptions {
  /** Where warnings go (skipped entries, lost watches); default pino at `warn` on stderr. */
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** How long the watch keeps trying before the resolver lists again, in ms (default: the KV client's). */
  readonly watchPatienceMs?: number;
}

/** Every instance of the prefix, as of one revision, page by page. */
export async function listRegistry(
  kv: KvClient,
  prefix: string,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<{ entries: RegistryEntry[]; revision: number }> {
  const entries: RegistryEntry[] = [];
  let revision: number | undefined;
  let from = prefix;
  for (;;) {
    const r = await kv.range(from, {
      rangeEnd: prefixEnd(prefix),
      ...(revision === undefined ? {} : { revision }),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    revision ??= r.revision;
    for (const kv of r.kvs) entries.push({ key: kv.keyText, value: kvText(kv.value) });
    const last = r.kvs[r.kvs.length - 1];
    if (!r.more || last === undefined) return { entries, revision };
    from = `${last.keyText}\0`;
  }
}

/** The first key after every key with `prefix` (ASCII prefixes only: registry keys are). */
function prefixEnd(prefix: string): string {
  return `${prefix.slice(0, -1)}${String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)}`;
}

/** One service's live instance set (see the file comment). */
export class ServiceResolver {
  private readonly set: InstanceSet;
  private readonly prefix: string;
  private readonly listeners = new Set<(list: readonly ServiceInstance[]) => void>();
  private readonly waiters = new Set<() => void>();
  private readonly closing = new AbortController();
  private readonly clock: Clock;
  private readonly log: Logger;
  private current: readonly ServiceInstance[] = [];
  private listed = false;
  private firstError: CohortError | undefined;
  private readyWaiters: { resolve: () => void; reject: (e: CohortError) => void }[] = [];
  private readonly loop: Promise<void>;
  /** Counters, for status pages and tests. */
  readonly counters = { listings: 0, watchRestarts: 0, skipped: 0, changes: 0 };

  constructor(
    private readonly kv: KvClient,
    readonly service: string,
    private readonly options: ResolverOptions = {},
  ) {
    checkServiceName(service);
    this.set = new InstanceSet(service);
    this.prefix = servicePrefix(service);
    this.clock = options.clock ?? new RealClock();
    this.log =
      options.logger ??
      pino({ level: process.env.COHORT_LOG_LEVEL ?? 'warn' }, pino.destination(2));
    this.loop = this.run();
  }

  /** The instances now (empty before the first listing). */
  instances(): readonly ServiceInstance[] {
    return this.current;
  }

  /** True once the first listing is in. */
  get isReady(): boolean {
    return this.listed;
  }

  /** The revision the instance set reflects. */
  get revision(): number {
    return this.set.revision;
  }

  /**
   * Resolves once the first listing is in (at once after that). Rejects
   * with the first listing's error if it is not a passing one
   * (PERMISSION_DENIED, INVALID_ARGUMENT), or with the last error after
   * `timeoutMs` (default 10 s).
   */
  ready(options: { timeoutMs?: number } = {}): Promise<readonly ServiceInstance[]> {
    if (this.listed) return Promise.resolve(this.current);
    if (this.firstError !== undefined && !passing(this.firstError)) {
      return Promise.reject(this.firstError);
    }
    return new Promise((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? 10_000;
      const t = this.clock.setTimer(timeoutMs, () => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== waiter);
        reject(
          this.firstError ??
            new CohortError(
              'UNAVAILABLE',
              `could not list service ${this.service} within ${timeoutMs} ms`,
            ),
        );
      });
      const release = this.clock.hold?.();
      const waiter = {
        resolve: () => {
          this.clock.clearTimer(t);
          release?.();
          resolve(this.current);
        },
        reject: (e: CohortError) => {
          this.clock.clearTimer(t);
          release?.();
          reject(e);
        },
      };
      this.readyWaiters.push(waiter);
    });
  }

  /** Calls `onChange` with the instances now (once listed) and after every change; returns the unsubscribe. */
  subscribe(onChange: (list: readonly ServiceInstance[]) => void): () => void {
    this.listeners.add(onChange);
    if (this.listed) onChange(this.current);
    return () => this.listeners.delete(onChange);
  }

  /** Resolves at the next change of the instance set, or when `signal` aborts or `ms` pass. */
  nextChange(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.clock.clearTimer(t);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const t = this.clock.setTimer(Math.max(0, ms), done);
      this.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Stops watching. */
  async close(): Promise<void> {
    this.closing.abort();
    for (const w of this.readyWaiters) {
      w.reject(new CohortError('CLOSED', `the resolver of ${this.service} closed`));
    }
    this.readyWaiters = [];
    await this.loop;
  }

  private async run(): Promise<void> {
    const signal = this.closing.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const listing = await listRegistry(this.kv, this.prefix, { signal });
        this.counters.listings++;
        const reset = this.set.reset(listing.entries, listing.revision);
        if (!this.listed) {
          this.listed = true;
          this.update(reset, true);
          for (const w of this.readyWaiters) w.resolve();
          this.readyWaiters = [];
        } else {
          this.update(reset, false);
        }
        failures = 0;
        for await (const batch of this.kv.watch(this.prefix, {
          prefix: true,
          startRevision: listing.revision + 1,
          signal,
          ...(this.options.watchPatienceMs === undefined
            ? {}
            : { timeoutMs: this.options.watchPatienceMs }),
        })) {
          this.update(
            this.set.apply(
              batch.events.map((e) => ({
                type: e.type,
                key: e.kv.keyText,
                value: e.type === 'PUT' ? e.kv.text : '',
              })),
              batch.revision,
            ),
            false,
          );
          failures = 0;
        }
      } catch (err) {
        if (signal.aborted) return;
        if (!isCohortError(err)) throw err;
        const e =
          err.code === 'PERMISSION_DENIED'
            ? registryPermissionError(err, 'resolve', this.service)
            : err;
        this.counters.watchRestarts++;
        if (!this.listed) {
          this.firstError = e;
          if (!passing(e)) {
            for (const w of this.readyWaiters) w.reject(e);
            this.readyWaiters = [];
          }
        }
        if (e.code === 'COMPACTED') {
          this.log.info({ service: this.service }, 'registry watch compacted; listing again');
          continue;
        }
        this.log.warn(
          { service: this.service, code: e.code, instances: this.current.length },
          `resolving ${this.service}: ${e.message}; keeping the last known instances and trying again`,
        );
        const delay = Math.min(limits.namingRelistDelayMsMax, 50 * 2 ** Math.min(failures++, 6));
        await new Promise<void>((resolve) => {
          const done = (): void => {
            this.clock.clearTimer(t);
            signal.removeEventListener('abort', done);
            resolve();
          };
          const t = this.clock.setTimer(delay, done);
          signal.addEventListener('abort', done, { once: true });
        });
      }
    }
  }

  private update(u: InstanceSetUpdate, first: boolean): void {
    for (const s of u.skipped) {
      this.counters.skipped++;
      this.log.warn(
        { service: this.service, key: s.key, reason: s.reason },
        `skipping registry entry ${s.key}: ${s.reason}`,
      );
    }
    if (u.changed || first) this.notify(first);
  }

  private notify(first: boolean): void {
    this.current = this.set.list();
    if (!first) this.counters.changes++;
    for (const l of [...this.listeners]) l(this.current);
    for (const w of [...this.waiters]) w();
  }
}

/** Errors a later try may get past (the cluster is unreachable, busy, electing). */
function passing(e: CohortError): boolean {
  return e.code !== 'PERMISSION_DENIED' && e.code !== 'INVALID_ARGUMENT';
}
