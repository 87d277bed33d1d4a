/**
 * Failure masking for RPC clients: retries with exponential backoff and
 * jitter, a circuit breaker and a bulkhead per endpoint, and replicated calls
 * (the same method on several endpoints, replies combined).
 *
 * ```ts
 * const policy = new EndpointPolicy({ retry: { attempts: 4 }, breaker: { failures: 5, openMs: 1_000 },
 *   bulkhead: { maxConcurrent: 64 } });
 * const kv = resilientClient(node, KvService, nodeId('n1'), policy);
 * await kv.get({ key: 'a' });    // idempotent: retried after TIMEOUT too
 * await kv.put({ key: 'a', v }); // not idempotent: retried only after definite errors
 * const max = await replicatedClient(node, ListMax, [n1, n2, n3], 'majority').listMax({ values });
 * ```
 *
 * **Why hand-written, not cockatiel.** The rules hinge on cohort's error
 * model: a retry is allowed only if the method is idempotent or the error is
 * definite (nothing ran), and the breaker must count endpoint failures
 * (TIMEOUT, CONNECTION_LOST, OVERLOADED, ...) but not the caller's own
 * mistakes (INVALID_ARGUMENT, NOT_FOUND). cockatiel could express the first
 * with `handleWhen`, but it reads `Date.now()`/`Math.random()` and its own
 * timers, while here time and jitter come from the injected `Clock` and
 * `Random` (DESIGN.md: deterministic tests, replay from a seed). The three
 * policies together are ~200 lines.
 *
 * Rules:
 * - A call refused by the bulkhead (OVERLOADED) or an open breaker
 *   (CIRCUIT_OPEN) is definite: nothing was sent.
 * - Retries: at most `attempts` tries, all within the caller's `timeoutMs`
 *   when given (each try gets what is left); between tries a delay drawn uniformly
 *   from [0, min(maxDelayMs, baseDelayMs·2^k)] ("full jitter"); only for
 *   retryable codes (see {@link retryableCodes}); never after the caller's
 *   own cancellation; never re-sends a non-idempotent call after an
 *   indefinite error (that error is returned as is).
 * - Breaker: `failures` consecutive endpoint failures open it; after `openMs`
 *   the next call is a half-open probe (others get CIRCUIT_OPEN meanwhile); a
 *   successful probe closes it, a failed one opens it again.
 */
import type { Clock } from '../lib/clock.js';
import { RealClock } from '../lib/clock.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import type { ErrorCode } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import type { Random } from '../lib/random.js';
import { seededRandom } from '../lib/random.js';
import { makeClient } from './client.js';
import type { Invoker } from './client.js';
import type { RpcNode } from './node.js';
import type { CallOptions, Client, CompiledMethod, ServiceDef } from './service.js';

/** Error codes worth another try (the endpoint may recover or another try may land). */
export const retryableCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'OVERLOADED',
  'UNAVAILABLE',
  'CIRCUIT_OPEN',
  'CONNECTION_LOST',
  'TIMEOUT',
  'NOT_LEADER',
]);

/** Error codes that say something about the endpoint's health (the breaker counts them). */
export const endpointFailureCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'OVERLOADED',
  'UNAVAILABLE',
  'CONNECTION_LOST',
  'TIMEOUT',
  'INTERNAL',
  'CLOSED',
  'PROTOCOL_ERROR',
]);

/** Retry settings. */
export interface RetryOptions {
  /** Total tries, the first included (default 3). */
  readonly attempts?: number;
  /** Backoff base (default 20 ms). */
  readonly baseDelayMs?: number;
  /** Backoff ceiling (default 1 000 ms). */
  readonly maxDelayMs?: number;
}

/** Circuit-breaker settings. */
export interface BreakerOptions {
  /** Consecutive endpoint failures that open the breaker (default 5). */
  readonly failures?: number;
  /** Time the breaker stays open before a half-open probe (default 1 000 ms). */
  readonly openMs?: number;
}

/** Bulkhead settings. */
export interface BulkheadOptions {
  /** Calls in flight to the endpoint before OVERLOADED (default 256). */
  readonly maxConcurrent?: number;
}

/** The state of a circuit breaker. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** Closed → open after `failures` consecutive endpoint failures → half-open probe after `openMs` → closed. */
export class CircuitBreaker {
  private current: BreakerState = 'closed';
  private consecutive = 0;
  private openedAt = 0;
  private probing = false;
  private readonly failures: number;
  private readonly openMs: number;
  /** Every transition, in order (for metrics and tests). */
  readonly transitions: BreakerState[] = [];

  constructor(
    private readonly clock: Clock,
    options: BreakerOptions = {},
  ) {
    this.failures = options.failures ?? 5;
    this.openMs = options.openMs ?? 1_000;
  }

  /** The state now (an open breaker whose time is up reports half-open). */
  get state(): BreakerState {
    if (this.current === 'open' && this.clock.now() - this.openedAt >= this.openMs) {
      this.move('half-open');
    }
    return this.current;
  }

  /** Asks to send a call; throws a definite CIRCUIT_OPEN if not allowed. Returns a token for `record`. */
  acquire(endpoint: string): void {
    const state = this.state;
    if (state === 'closed') return;
    if (state === 'half-open' && !this.probing) {
      this.probing = true;
      return;
    }
    throw new CohortError('CIRCUIT_OPEN', `circuit to ${endpoint} is ${state}; nothing was sent`, {
      details: { endpoint, state },
    });
  }

  /** Records a call's outcome (`undefined` = success). */
  record(err: unknown): void {
    const failed = isCohortError(err) ? endpointFailureCodes.has(err.code) : err !== undefined;
    if (this.current === 'half-open' && this.probing) {
      this.probing = false;
      if (failed) this.open();
      else {
        this.consecutive = 0;
        this.move('closed');
      }
      return;
    }
    if (!failed) {
      this.consecutive = 0;
      return;
    }
    this.consecutive++;
    if (this.current === 'closed' && this.consecutive >= this.failures) this.open();
  }

  private open(): void {
    this.openedAt = this.clock.now();
    this.move('open');
  }

  private move(state: BreakerState): void {
    if (this.current === state) return;
    this.current = state;
    this.transitions.push(state);
  }
}

/** Options of an {@link EndpointPolicy}. */
export interface EndpointPolicyOptions {
  /** Retries (default: 3 attempts); `false` for none. */
  readonly retry?: RetryOptions | false;
  /** Circuit breaker (default on); `false` for none. */
  readonly breaker?: BreakerOptions | false;
  /** Bulkhead (default on); `false` for none. */
  readonly bulkhead?: BulkheadOptions | false;
  readonly clock?: Clock;
  readonly random?: Random;
}

/** Retry, breaker and bulkhead for one endpoint; share one instance by every client of that endpoint. */
export class EndpointPolicy {
  /** The endpoint's breaker, if any. */
  readonly breaker: CircuitBreaker | undefined;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxConcurrent: number;
  private readonly clock: Clock;
  private readonly random: Random;
  private inflight = 0;
  /** Tries beyond the first, for metrics and tests. */
  retries = 0;

  constructor(options: EndpointPolicyOptions = {}) {
    this.clock = options.clock ?? new RealClock();
    this.random = options.random ?? seededRandom(Math.floor(Math.random() * 2 ** 31));
    const retry = options.retry === false ? { attempts: 1 } : (options.retry ?? {});
    this.attempts = Math.max(1, retry.attempts ?? 3);
    this.baseDelayMs = retry.baseDelayMs ?? 20;
    this.maxDelayMs = retry.maxDelayMs ?? 1_000;
    this.breaker =
      options.breaker === false ? undefined : new CircuitBreaker(this.clock, options.breaker);
    this.maxConcurrent =
      options.bulkhead === false ? Infinity : (options.bulkhead?.maxConcurrent ?? 256);
  }

  /** Wraps `inner` (the plain invoker of `endpoint`) with this policy. Streams pass through. */
  wrap(endpoint: string, inner: Invoker): Invoker {
    return {
      unary: (method, request, options) => this.call(endpoint, inner, method, request, options),
      stream: (method, request, options) => inner.stream(method, request, options),
    };
  }

  /** The delay before try number `k + 1` (k ≥ 1): full jitter over an exponential ceiling. */
  backoffMs(k: number): number {
    const ceiling = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (k - 1));
    return this.random.next() * ceiling;
  }

  private async call(
    endpoint: string,
    inner: Invoker,
    method: CompiledMethod,
    request: unknown,
    options: CallOptions,
  ): Promise<unknown> {
    // A caller's deadline covers the whole call, retries included: each try
    // gets what is left of it.
    const deadline =
      options.timeoutMs === undefined ? undefined : this.clock.now() + options.timeoutMs;
    let attempt = options;
    for (let k = 1; ; k++) {
      try {
        return await this.once(endpoint, inner, method, request, attempt);
      } catch (err) {
        if (!this.mayRetry(err, method, options, k)) throw err;
        const delay = this.backoffMs(k);
        if (deadline !== undefined) {
          const left = Math.floor(deadline - this.clock.now() - delay);
          if (left < 1) throw err;
          attempt = { ...options, timeoutMs: left };
        }
        this.retries++;
        await this.sleep(delay, options.signal);
      }
    }
  }

  private mayRetry(err: unknown, method: CompiledMethod, options: CallOptions, k: number): boolean {
    if (k >= this.attempts || !isCohortError(err)) return false;
    if (options.signal?.aborted === true) return false;
    if (!retryableCodes.has(err.code)) return false;
    // DESIGN.md, Errors: non-idempotent work is retried only after a definite error.
    return err.definite || method.def.idempotent;
  }

  private async once(
    endpoint: string,
    inner: Invoker,
    method: CompiledMethod,
    request: unknown,
    options: CallOptions,
  ): Promise<unknown> {
    if (this.inflight >= this.maxConcurrent) {
      throw new CohortError(
        'OVERLOADED',
        `bulkhead: ${this.inflight} calls in flight to ${endpoint}`,
        {
          details: { endpoint, limit: this.maxConcurrent },
        },
      );
    }
    this.breaker?.acquire(endpoint);
    this.inflight++;
    try {
      const result = await inner.unary(method, request, options);
      this.breaker?.record(undefined);
      return result;
    } catch (err) {
      this.breaker?.record(err);
      throw err;
    } finally {
      this.inflight--;
    }
  }

  private sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.clock.setTimer(ms, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      const onAbort = (): void => {
        this.clock.clearTimer(timer);
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/** A typed client of `service` on `peer` whose unary calls go through `policy`. */
export function resilientClient<S extends ServiceDef>(
  node: RpcNode,
  service: S,
  peer: NodeId,
  policy: EndpointPolicy,
  defaults: CallOptions = {},
): Client<S> {
  return makeClient(service, policy.wrap(peer, node.invoker(peer, defaults)));
}

/** How {@link replicated} combines replies. */
export type ReplicationMode = 'first' | 'majority' | 'all';

/** One replica's call; it should honour `signal` (the losers are cancelled). */
export type ReplicaCall<T> = (signal: AbortSignal) => Promise<T>;

/**
 * Calls every replica at once and combines the replies:
 * - `first`: the first success (the others are cancelled);
 * - `majority`: the first reply that more than half of the replicas agree on
 *   (deep equality of the JSON form); the others are cancelled;
 * - `all`: every reply, in replica order (fails if any fails).
 * Failing, it throws a CohortError that is definite only if every replica's
 * error was definite (otherwise some replica may have done the work).
 */
export function replicated<T>(calls: readonly ReplicaCall<T>[], mode: 'all'): Promise<T[]>;
export function replicated<T>(
  calls: readonly ReplicaCall<T>[],
  mode: 'first' | 'majority',
): Promise<T>;
export function replicated<T>(
  calls: readonly ReplicaCall<T>[],
  mode: ReplicationMode,
): Promise<T | T[]> {
  if (calls.length === 0) {
    return Promise.reject(new CohortError('INVALID_ARGUMENT', 'no replicas to call'));
  }
  const stop = new AbortController();
  const need = mode === 'majority' ? Math.floor(calls.length / 2) + 1 : calls.length;
  return new Promise<T | T[]>((resolve, reject) => {
    const results: T[] = new Array<T>(calls.length);
    const votes = new Map<string, number>();
    const errors: unknown[] = [];
    let successes = 0;
    let settled = false;
    const finish = (value: T | T[] | undefined, err: CohortError | undefined): void => {
      if (settled) return;
      settled = true;
      stop.abort(new CohortError('CANCELLED', 'another replica answered'));
      if (err !== undefined) reject(err);
      else resolve(value as T | T[]);
    };
    const checkLost = (): void => {
      const outstanding = calls.length - successes - errors.length;
      const best = Math.max(0, ...votes.values());
      const stillPossible =
        mode === 'first'
          ? outstanding > 0
          : mode === 'majority'
            ? best + outstanding >= need
            : errors.length === 0;
      if (!stillPossible) finish(undefined, combinedError(errors, mode, successes));
    };
    calls.forEach((call, i) => {
      let p: Promise<T>;
      try {
        p = call(stop.signal);
      } catch (err) {
        p = Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      p.then(
        (value) => {
          successes++;
          results[i] = value;
          if (mode === 'first') finish(value, undefined);
          else if (mode === 'all') {
            if (successes === calls.length) finish(results, undefined);
          } else {
            const key = canonical(value);
            const n = (votes.get(key) ?? 0) + 1;
            votes.set(key, n);
            if (n >= need) finish(value, undefined);
            else checkLost();
          }
        },
        (err: unknown) => {
          errors.push(err);
          checkLost();
        },
      );
    });
  });
}

function combinedError(errors: unknown[], mode: ReplicationMode, successes: number): CohortError {
  const all = errors.map((e) =>
    isCohortError(e) ? e : new CohortError('INTERNAL', String(e), { cause: e }),
  );
  const definite = successes === 0 && all.every((e) => e.definite);
  const codes = all.map((e) => e.code);
  const first = all[0];
  if (mode === 'majority' && successes > 0) {
    return new CohortError('UNAVAILABLE', `no majority of replicas agreed (${successes} replied)`, {
      definite: false,
      details: { codes: codes.join(',') },
    });
  }
  return new CohortError(
    first?.code ?? 'UNAVAILABLE',
    `${mode} replicated call failed: ${codes.join(', ')}`,
    {
      definite,
      details: { codes: codes.join(',') },
    },
  );
}

/** JSON with sorted keys, so equal replies compare equal whatever their key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
        )
      : v,
  );
}

/**
 * A typed client whose unary calls go to every peer, combined by `mode`
 * ('first' or 'majority'). `policies` (optional, per peer) puts each
 * replica's calls behind its endpoint's breaker, bulkhead and retries.
 */
export function replicatedClient<S extends ServiceDef>(
  node: RpcNode,
  service: S,
  peers: readonly NodeId[],
  mode: 'first' | 'majority',
  defaults: CallOptions = {},
  policies?: ReadonlyMap<NodeId, EndpointPolicy>,
): Client<S> {
  const invokers = peers.map((p) => {
    const plain = node.invoker(p, defaults);
    return policies?.get(p)?.wrap(p, plain) ?? plain;
  });
  return makeClient(service, {
    unary: (method, request, options) =>
      replicated(
        invokers.map(
          (inv) => (signal) =>
            inv.unary(method, request, { ...options, signal: anySignal(signal, options.signal) }),
        ),
        mode,
      ),
    stream: () => {
      throw new CohortError('INVALID_ARGUMENT', 'streaming methods cannot be replicated');
    },
  });
}

function anySignal(a: AbortSignal, b: AbortSignal | undefined): AbortSignal {
  return b === undefined ? a : AbortSignal.any([a, b]);
}
