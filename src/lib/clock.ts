/**
 * Time for shells. Cores never read time (they receive ticks); shells take a
 * {@link Clock} so tests can drive them with a {@link VirtualClock}.
 *
 * ```ts
 * const clock = new VirtualClock();
 * clock.setTimer(100, () => console.log('fired at', clock.now()));
 * clock.advance(150); // runs the timer, prints "fired at 100"
 * ```
 */
import { assert } from './assert.js';

/** An opaque handle for a pending timer. */
export interface TimerHandle {
  readonly id: number;
}

/** Monotonic milliseconds plus one-shot timers. */
export interface Clock {
  /** Milliseconds on a monotonic scale (never goes backwards; origin unspecified). */
  now(): number;
  /** Calls `fn` once, `delayMs` from now. */
  setTimer(delayMs: number, fn: () => void): TimerHandle;
  /** Cancels a pending timer; a no-op for one that already fired. */
  clearTimer(handle: TimerHandle): void;
  /**
   * Optional: keeps the process alive until the returned function is called
   * (idempotent). Timers never do (see {@link RealClock}); a caller holds the
   * process while work a user awaits is pending (an RPC call, a KV request
   * between its retries), so a script whose only work is that call does not
   * exit before it ends. A virtual clock has nothing to hold.
   */
  hold?(): () => void;
}

/** How often the process-holding interval of {@link RealClock.hold} fires (it does nothing). */
const holdIntervalMs = 1 << 30;

/**
 * The process clock: `performance.now()` and Node timers. Timers are unref'd:
 * a background timer (a reconnect, a keepalive) never keeps a process alive;
 * pending work a user awaits does, through {@link RealClock.hold}.
 */
export class RealClock implements Clock {
  private nextId = 1;
  private readonly timers = new Map<number, NodeJS.Timeout>();

  now(): number {
    return performance.now();
  }

  setTimer(delayMs: number, fn: () => void): TimerHandle {
    const id = this.nextId++;
    const t = setTimeout(() => {
      this.timers.delete(id);
      fn();
    }, delayMs);
    t.unref();
    this.timers.set(id, t);
    return { id };
  }

  clearTimer(handle: TimerHandle): void {
    const t = this.timers.get(handle.id);
    if (t !== undefined) {
      clearTimeout(t);
      this.timers.delete(handle.id);
    }
  }

  hold(): () => void {
    return processHold();
  }
}

/** Holders of the process (see {@link processHold}), shared by every RealClock. */
let holders = 0;
let holdTimer: NodeJS.Timeout | undefined;

/**
 * Keeps the process alive (one ref'd, idle interval for all holders) until
 * the returned function is called; calling it again does nothing.
 */
export function processHold(): () => void {
  holders++;
  holdTimer ??= setInterval(() => undefined, holdIntervalMs);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    holders--;
    if (holders === 0 && holdTimer !== undefined) {
      clearInterval(holdTimer);
      holdTimer = undefined;
    }
  };
}

interface VirtualTimer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/**
 * A clock that moves only when told to. Timers fire in order of due time, ties
 * in order of creation, so runs are deterministic.
 */
export class VirtualClock implements Clock {
  private current: number;
  private nextId = 1;
  private pending: VirtualTimer[] = [];

  constructor(startMs = 0) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  setTimer(delayMs: number, fn: () => void): TimerHandle {
    assert(delayMs >= 0 && Number.isFinite(delayMs), `bad timer delay ${delayMs}`);
    const timer = { id: this.nextId++, at: this.current + delayMs, fn };
    this.pending.push(timer);
    return { id: timer.id };
  }

  clearTimer(handle: TimerHandle): void {
    this.pending = this.pending.filter((t) => t.id !== handle.id);
  }

  /** Number of timers not yet fired. */
  get pendingCount(): number {
    return this.pending.length;
  }

  /** Moves time forward by `ms`, firing every timer due on the way, in order. */
  advance(ms: number): void {
    assert(ms >= 0, `cannot move time backwards (${ms})`);
    const target = this.current + ms;
    for (;;) {
      let next: VirtualTimer | undefined;
      for (const t of this.pending) {
        if (
          t.at <= target &&
          (next === undefined || t.at < next.at || (t.at === next.at && t.id < next.id))
        ) {
          next = t;
        }
      }
      if (next === undefined) break;
      const due = next;
      this.pending = this.pending.filter((t) => t !== due);
      this.current = Math.max(this.current, due.at);
      due.fn();
    }
    this.current = target;
  }
}
