/**
 * The gateway's picker, pure: the backends of one route, their weights,
 * health ({@link BackendHealth}) and outstanding requests, and the choice of
 * a backend for each request. Driven by events (a backend added, removed,
 * a request started or ended, a check answered) with time passed in as
 * `nowMs` and randomness from an injected {@link Random}, so every decision
 * replays from a seed (DESIGN.md, pure cores).
 *
 * ```ts
 * const farm = new Farm({ balance: 'p2c', health, random: seededRandom(1) });
 * farm.upsert('a', 1); farm.upsert('b', 1);
 * const pick = farm.pick(now);                 // { id: 'a', panic: false } or undefined
 * const probe = farm.started(pick.id, now); ... farm.ended(pick.id, 'ok', probe, now);
 * farm.remove('a');                            // draining: no new requests; 'a' leaves once idle
 * farm.takeDrained();                          // ['a'] when its last request ended
 * ```
 *
 * Balancing:
 * - `p2c` (default): the power of two choices (Mitzenmacher, 2001) on
 *   outstanding requests: draw two eligible backends at random (weighted),
 *   send to the one with fewer outstanding requests per unit of weight.
 * - `round-robin`: smooth weighted round robin (each pick adds every
 *   eligible backend's weight to its credit, takes the largest credit and
 *   charges it the total), so weights 5:1:1 interleave instead of bursting.
 * - `hash`: consistent hashing on a request key ({@link HashRing}), for
 *   sticky routing; requests without a key fall back to p2c.
 *
 * Eligibility: a backend takes new requests when it is not draining and its
 * health admits one (active checks up; breaker closed, or half-open with no
 * probe in flight). When no backend is eligible, the picker panics like
 * Envoy's panic threshold: it picks among the non-draining backends that
 * active checks have not taken down, ignoring their breakers, and if checks
 * took every one down, among all non-draining backends, rather than fail
 * every request for sure because health checking misjudged a slow farm.
 * Backends in `exclude` (already tried for this request) are never picked.
 */
import { assert } from '../../lib/assert.js';
import type { Random } from '../../lib/random.js';
import { HashRing } from './hash-ring.js';
import { BackendHealth } from './health.js';
import type { ActiveState, BreakerState, HealthOptions } from './health.js';

/** How the farm spreads requests. */
export type Balance = 'p2c' | 'round-robin' | 'hash';

/** Every balancing rule by name. */
export const balances: readonly Balance[] = ['p2c', 'round-robin', 'hash'];

/** Settings of a {@link Farm}. */
export interface FarmOptions {
  readonly balance: Balance;
  readonly health: HealthOptions;
  readonly random: Random;
  /** Ring points per unit of weight for `hash` (default 100). */
  readonly vnodesPerWeight?: number;
}

/** How a request to a backend ended, as far as the backend's health goes. */
export type Outcome = 'ok' | 'failure' | 'neutral';

/** A backend chosen for one request. */
export interface Pick {
  readonly id: string;
  /** Chosen in panic (no backend was eligible). */
  readonly panic: boolean;
}

/** What the farm knows about one backend (status pages, metrics, tests). */
export interface BackendStatus {
  readonly id: string;
  readonly weight: number;
  readonly outstanding: number;
  readonly active: ActiveState;
  readonly breaker: BreakerState;
  readonly draining: boolean;
  /** Would take a new request now. */
  readonly eligible: boolean;
  readonly ejections: number;
  readonly downs: number;
}

interface Backend {
  readonly id: string;
  weight: number;
  outstanding: number;
  draining: boolean;
  /** Smooth weighted round robin's running credit. */
  credit: number;
  readonly health: BackendHealth;
  /** The picks of this backend, made once (a pick per request allocates nothing). */
  readonly picked: Pick;
  readonly pickedInPanic: Pick;
}

/**
 * Which backends a choice may take: those whose health admits a request,
 * or in panic those active checks have not taken down, or any (draining
 * and excluded ones never).
 */
type Among = 'eligible' | 'up' | 'free';

/** The backends of one route and the picking rules (see the file comment). */
export class Farm {
  private readonly backends = new Map<string, Backend>();
  private order: Backend[] = [];
  /** Scratch list of {@link twoChoices}, empty between picks. */
  private readonly candidates: Backend[] = [];
  private ring: HashRing | undefined;
  private readonly drained: string[] = [];
  private readonly vnodesPerWeight: number;
  /** Picks made in panic (no backend was eligible). */
  panics = 0;

  constructor(private readonly options: FarmOptions) {
    this.vnodesPerWeight = options.vnodesPerWeight ?? 100;
  }

  /** The balancing rule. */
  get balance(): Balance {
    return this.options.balance;
  }

  /** Adds a backend, or updates its weight; a draining backend that comes back is live again. */
  upsert(id: string, weight: number): void {
    assert(weight > 0 && Number.isFinite(weight), `weight of ${id} must be > 0`);
    const b = this.backends.get(id);
    if (b !== undefined) {
      if (b.weight !== weight) this.ring = undefined;
      b.weight = weight;
      b.draining = false;
      return;
    }
    const nb: Backend = {
      id,
      weight,
      outstanding: 0,
      draining: false,
      credit: 0,
      health: new BackendHealth(this.options.health),
      picked: Object.freeze({ id, panic: false }),
      pickedInPanic: Object.freeze({ id, panic: true }),
    };
    this.backends.set(id, nb);
    this.order = [...this.backends.values()].sort((x, y) => (x.id < y.id ? -1 : 1));
    this.ring = undefined;
  }

  /**
   * Starts draining `id`: it takes no new request and leaves the farm once
   * its outstanding requests end ({@link takeDrained}). Unknown ids are ignored.
   */
  remove(id: string): void {
    const b = this.backends.get(id);
    if (b === undefined || b.draining) return;
    b.draining = true;
    this.ring = undefined;
    this.forgetIfIdle(b);
  }

  /** Backends that finished draining since the last call (the shell closes their pools). */
  takeDrained(): string[] {
    return this.drained.splice(0);
  }

  /** Whether `id` is in the farm (draining or not). */
  has(id: string): boolean {
    return this.backends.has(id);
  }

  /** Ids of the backends, draining ones included, sorted. */
  ids(): string[] {
    return this.order.map((b) => b.id);
  }

  /**
   * Chooses a backend for a request at `nowMs`, never one of `exclude`;
   * `key` is the request's hash key (used by `hash`). Undefined: no backend
   * can take it (all excluded, draining or down).
   */
  pick(nowMs: number, key?: string, exclude?: ReadonlySet<string>): Pick | undefined {
    const chosen = this.choose('eligible', nowMs, exclude, key);
    if (chosen !== undefined) return chosen.picked;
    const panicked =
      this.choose('up', nowMs, exclude, key) ?? this.choose('free', nowMs, exclude, key);
    if (panicked === undefined) return undefined;
    this.panics++;
    return panicked.pickedInPanic;
  }

  /** A request was sent to `id`; returns whether it is the breaker's half-open probe. */
  started(id: string, nowMs: number): boolean {
    const b = this.backends.get(id);
    assert(b !== undefined, `started on unknown backend ${id}`);
    b.outstanding++;
    return b.health.requestStarted(nowMs);
  }

  /** A request to `id` ended with `outcome`; `probe` is what {@link started} returned. */
  ended(id: string, outcome: Outcome, probe: boolean, nowMs: number): void {
    const b = this.backends.get(id);
    assert(b !== undefined && b.outstanding > 0, `ended without start on ${id}`);
    b.outstanding--;
    if (outcome === 'ok') b.health.requestSucceeded(probe);
    else if (outcome === 'failure') b.health.requestFailed(probe, nowMs);
    else b.health.requestNeutral(probe);
    if (b.draining) this.forgetIfIdle(b);
  }

  /** An active check of `id` answered (`ok`) or failed; unknown ids are ignored (removed meanwhile). */
  checked(id: string, ok: boolean): void {
    this.backends.get(id)?.health.checkResult(ok);
  }

  /** The state of every backend at `nowMs`, sorted by id. */
  status(nowMs: number): BackendStatus[] {
    return this.order.map((b) => this.describe(b, nowMs));
  }

  /** The state of one backend at `nowMs`, if it is in the farm. */
  statusOf(id: string, nowMs: number): BackendStatus | undefined {
    const b = this.backends.get(id);
    return b === undefined ? undefined : this.describe(b, nowMs);
  }

  private describe(b: Backend, nowMs: number): BackendStatus {
    return {
      id: b.id,
      weight: b.weight,
      outstanding: b.outstanding,
      active: b.health.active,
      breaker: b.health.breaker(nowMs),
      draining: b.draining,
      eligible: !b.draining && b.health.admits(nowMs),
      ejections: b.health.ejections,
      downs: b.health.downs,
    };
  }

  /** Whether `b` may take the request as `among` says (see {@link Among}). */
  private allowed(
    b: Backend,
    among: Among,
    nowMs: number,
    exclude: ReadonlySet<string> | undefined,
  ): boolean {
    if (b.draining || (exclude !== undefined && exclude.has(b.id))) return false;
    if (among === 'eligible') return b.health.admits(nowMs);
    return among === 'free' || b.health.active === 'up';
  }

  private choose(
    among: Among,
    nowMs: number,
    exclude: ReadonlySet<string> | undefined,
    key: string | undefined,
  ): Backend | undefined {
    switch (this.options.balance) {
      case 'round-robin':
        return this.roundRobin(among, nowMs, exclude);
      case 'hash':
        if (key !== undefined) return this.hashed(key, among, nowMs, exclude);
        return this.twoChoices(among, nowMs, exclude);
      case 'p2c':
        return this.twoChoices(among, nowMs, exclude);
    }
  }

  /** Power of two choices on outstanding requests per unit of weight. */
  private twoChoices(
    among: Among,
    nowMs: number,
    exclude: ReadonlySet<string> | undefined,
  ): Backend | undefined {
    // The candidates in a reused array: a pick allocates nothing.
    const candidates = this.candidates;
    candidates.length = 0;
    for (const b of this.order) if (this.allowed(b, among, nowMs, exclude)) candidates.push(b);
    if (candidates.length <= 1) {
      const only = candidates[0];
      candidates.length = 0;
      return only;
    }
    const first = this.weightedDraw(candidates, undefined);
    const second = this.weightedDraw(candidates, first);
    candidates.length = 0;
    // Compare outstanding/weight without division: a.o * b.w vs b.o * a.w.
    return second.outstanding * first.weight < first.outstanding * second.weight ? second : first;
  }

  /** One candidate drawn with probability proportional to its weight, `not` left out. */
  private weightedDraw(candidates: readonly Backend[], not: Backend | undefined): Backend {
    let total = 0;
    for (const c of candidates) if (c !== not) total += c.weight;
    let r = this.options.random.next() * total;
    let last: Backend | undefined;
    for (const c of candidates) {
      if (c === not) continue;
      last = c;
      r -= c.weight;
      if (r < 0) return c;
    }
    assert(last !== undefined, 'a draw from an empty set');
    return last;
  }

  /** Smooth weighted round robin over the eligible backends. */
  private roundRobin(
    among: Among,
    nowMs: number,
    exclude: ReadonlySet<string> | undefined,
  ): Backend | undefined {
    let total = 0;
    let best: Backend | undefined;
    for (const b of this.order) {
      if (!this.allowed(b, among, nowMs, exclude)) continue;
      b.credit += b.weight;
      total += b.weight;
      if (best === undefined || b.credit > best.credit) best = b;
    }
    if (best !== undefined) best.credit -= total;
    return best;
  }

  private hashed(
    key: string,
    among: Among,
    nowMs: number,
    exclude: ReadonlySet<string> | undefined,
  ): Backend | undefined {
    this.ring ??= new HashRing(
      this.order.filter((b) => !b.draining),
      this.vnodesPerWeight,
    );
    const id = this.ring.lookup(key, (i) => {
      const b = this.backends.get(i);
      return b !== undefined && this.allowed(b, among, nowMs, exclude);
    });
    return id === undefined ? undefined : this.backends.get(id);
  }

  private forgetIfIdle(b: Backend): void {
    if (b.outstanding > 0) return;
    this.backends.delete(b.id);
    this.order = this.order.filter((x) => x !== b);
    this.drained.push(b.id);
  }
}
