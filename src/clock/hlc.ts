/**
 * Hybrid logical clocks (Kulkarni, Demirbas et al. 2014, "Logical Physical
 * Clocks and Consistent Snapshots in Globally Distributed Databases"). A
 * timestamp is `{ wall, logical }`: `wall` is the largest physical time (ms)
 * this process has heard of, `logical` a counter that orders events within the
 * same `wall`. Like a Lamport clock, if a happened before b then
 * ts(a) < ts(b) (compared by wall, then logical); unlike one, `wall` stays close
 * to real time, so timestamps are meaningful to people and to leases.
 *
 * ```ts
 * const clock = new VirtualClock(1000);
 * const a = new HybridLogicalClock(clock);          // or () => someMs
 * const ts = a.send();                              // { wall: 1000, logical: 0 }
 * const b = new HybridLogicalClock(() => 990);
 * b.receive(ts);                                    // { wall: 1000, logical: 1 }
 * ```
 *
 * Physical time is injected (a {@link Clock} or a function returning ms), so the
 * class is pure and runs in the simulator. A remote timestamp whose `wall` is
 * more than the drift bound (`limits.hlcDriftMsMax` by default) ahead of local
 * physical time is refused with CLOCK_SKEW and changes nothing: one process with
 * a wild clock cannot push every clock in the cluster into the future.
 */
import type { Clock } from '../lib/clock.js';
import { CohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';

/** An HLC timestamp. Plain numbers, so it goes on the wire as is. */
export interface HlcTimestamp {
  /** Largest physical time heard of, in whole ms. */
  readonly wall: number;
  /** Orders events that share `wall`. */
  readonly logical: number;
}

/** Where an HLC reads physical time: a {@link Clock} or a function returning ms. */
export type PhysicalTime = Clock | (() => number);

/** Options for {@link HybridLogicalClock}. */
export interface HlcOptions {
  /** Largest allowed lead of a remote `wall` over local physical time, in ms. */
  readonly driftMsMax?: number;
  /** Resume from a persisted timestamp (a restarted process never goes backwards). */
  readonly start?: HlcTimestamp;
}

/** Orders HLC timestamps: negative if a < b, 0 if equal, positive if a > b. */
export function compareHlc(a: HlcTimestamp, b: HlcTimestamp): number {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1;
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1;
  return 0;
}

/**
 * Checks an HLC timestamp decoded from the wire: an object with non-negative
 * safe-integer `wall` and an integer `logical` in [0, hlcLogicalMax]. Throws
 * INVALID_ARGUMENT otherwise.
 */
export function parseHlcTimestamp(value: unknown): HlcTimestamp {
  if (typeof value !== 'object' || value === null) {
    throw new CohortError('INVALID_ARGUMENT', 'an HLC timestamp must be an object');
  }
  const { wall, logical } = value as { wall?: unknown; logical?: unknown };
  if (typeof wall !== 'number' || !Number.isSafeInteger(wall) || wall < 0) {
    throw new CohortError('INVALID_ARGUMENT', 'HLC wall time must be a non-negative integer', {
      details: { wall: String(wall) },
    });
  }
  if (
    typeof logical !== 'number' ||
    !Number.isInteger(logical) ||
    logical < 0 ||
    logical > limits.hlcLogicalMax
  ) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `HLC logical counter must be an integer in [0, ${limits.hlcLogicalMax}]`,
      { details: { logical: String(logical) } },
    );
  }
  return { wall, logical };
}

/** One process's hybrid logical clock. */
export class HybridLogicalClock {
  private wall: number;
  private logical: number;
  private readonly physical: () => number;
  private readonly driftMsMax: number;

  constructor(physical: PhysicalTime, options: HlcOptions = {}) {
    this.physical = typeof physical === 'function' ? physical : () => physical.now();
    this.driftMsMax = options.driftMsMax ?? limits.hlcDriftMsMax;
    const start = options.start === undefined ? undefined : parseHlcTimestamp(options.start);
    this.wall = start?.wall ?? 0;
    this.logical = start?.logical ?? 0;
  }

  /** The timestamp of the latest event (does not create an event). */
  last(): HlcTimestamp {
    return { wall: this.wall, logical: this.logical };
  }

  private readPhysical(): number {
    const pt = Math.floor(this.physical());
    return Number.isFinite(pt) && pt > 0 ? pt : 0;
  }

  /**
   * Records a local or send event and returns its timestamp (Kulkarni et al.,
   * Fig. 5, "send or local event": l := max(l, pt); c := l unchanged ? c + 1 : 0).
   */
  now(): HlcTimestamp {
    const pt = this.readPhysical();
    if (pt > this.wall) {
      this.wall = pt;
      this.logical = 0;
    } else {
      this.logical += 1;
    }
    return this.last();
  }

  /** Records a send event and returns the timestamp to put on the message. */
  send(): HlcTimestamp {
    return this.now();
  }

  /**
   * Records the receipt of a message stamped `remote` and returns the receive
   * event's timestamp (Kulkarni et al., Fig. 5, "receive event of message m":
   * l := max(l, l.m, pt); c by which of the three l came from). Throws
   * INVALID_ARGUMENT for a malformed stamp and CLOCK_SKEW for one further ahead
   * of local physical time than the drift bound; either way the clock is unchanged.
   */
  receive(remote: unknown): HlcTimestamp {
    const m = parseHlcTimestamp(remote);
    const pt = this.readPhysical();
    if (m.wall - pt > this.driftMsMax) {
      throw new CohortError(
        'CLOCK_SKEW',
        `remote HLC wall time ${m.wall} is ${m.wall - pt} ms ahead of local physical time ${pt} (bound ${this.driftMsMax} ms)`,
        { details: { remoteWall: m.wall, localPhysical: pt, driftMsMax: this.driftMsMax } },
      );
    }
    const prev = this.wall;
    const wall = Math.max(prev, m.wall, pt);
    let logical: number;
    if (wall === prev && wall === m.wall) logical = Math.max(this.logical, m.logical) + 1;
    else if (wall === prev) logical = this.logical + 1;
    else if (wall === m.wall) logical = m.logical + 1;
    else logical = 0;
    this.wall = wall;
    this.logical = logical;
    return this.last();
  }
}
