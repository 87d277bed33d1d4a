/**
 * The simulator's virtual time: a queue of events ordered by due time, ties by
 * the order they were scheduled (a sequence number), kept in a binary heap.
 * Nothing runs unless the caller steps the scheduler, so a run is a pure
 * function of its inputs and its seed.
 *
 * ```ts
 * const sched = new Scheduler();
 * sched.after(10, 'hello', () => console.log('at', sched.now()));  // at 10
 * const h = sched.at(5, 'never', () => {});
 * sched.cancel(h);
 * while (sched.step()) checkInvariants();     // or sched.run({ untilMs: 1000 })
 * ```
 *
 * Time is in whole virtual milliseconds. {@link Scheduler.clock} adapts the
 * scheduler to the lib {@link Clock} interface, so a shell written against
 * `Clock` runs unchanged inside the simulator.
 */
import { assert } from '../lib/assert.js';
import type { Clock, TimerHandle } from '../lib/clock.js';

/** A handle for a scheduled event; pass it to {@link Scheduler.cancel}. */
export interface EventHandle {
  /** The event's sequence number: unique, increasing in scheduling order. */
  readonly seq: number;
  /** When the event is due (virtual ms). */
  readonly atMs: number;
  /** What the event is, for traces and debugging. */
  readonly label: string;
}

interface QueuedEvent extends EventHandle {
  readonly fn: () => void;
  cancelled: boolean;
}

/** Why {@link Scheduler.run} stopped. */
export type RunStop = 'idle' | 'time' | 'events';

/** Limits for {@link Scheduler.run}. */
export interface RunOptions {
  /** Run events due at or before this time, then set the clock to it. */
  readonly untilMs?: number;
  /** Run at most this many events. */
  readonly maxEvents?: number;
  /** Called after every event (e.g. safety invariants that must hold at every step). */
  readonly afterEach?: () => void;
}

/** The outcome of {@link Scheduler.run}. */
export interface RunResult {
  readonly events: number;
  readonly stop: RunStop;
}

function earlier(a: QueuedEvent, b: QueuedEvent): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

/** A deterministic discrete-event scheduler over virtual time. */
export class Scheduler {
  private current: number;
  private nextSeq = 0;
  private readonly heap: QueuedEvent[] = [];
  private live = 0;
  private executed = 0;

  constructor(startMs = 0) {
    assert(Number.isSafeInteger(startMs) && startMs >= 0, `bad start time ${startMs}`);
    this.current = startMs;
  }

  /** The current virtual time in ms. */
  now(): number {
    return this.current;
  }

  /** Events scheduled and not yet run or cancelled. */
  get pending(): number {
    return this.live;
  }

  /** Events run so far. */
  get eventsRun(): number {
    return this.executed;
  }

  /** Schedules `fn` at virtual time `atMs` (not in the past). */
  at(atMs: number, label: string, fn: () => void): EventHandle {
    assert(Number.isSafeInteger(atMs), `event time must be an integer, got ${atMs}`);
    assert(
      atMs >= this.current,
      `cannot schedule ${label} at ${atMs}, before now (${this.current})`,
    );
    const ev: QueuedEvent = { seq: this.nextSeq++, atMs, label, fn, cancelled: false };
    this.push(ev);
    this.live++;
    return ev;
  }

  /** Schedules `fn` `delayMs` from now. */
  after(delayMs: number, label: string, fn: () => void): EventHandle {
    assert(delayMs >= 0, `negative delay ${delayMs} for ${label}`);
    return this.at(this.current + delayMs, label, fn);
  }

  /** Cancels a scheduled event; a no-op if it already ran or was cancelled. */
  cancel(handle: EventHandle): void {
    // A queued event is exactly one not yet marked (step() marks what it runs).
    const ev = handle as QueuedEvent;
    if (ev.cancelled) return;
    ev.cancelled = true;
    this.live--;
    // Cancelled events stay in the heap until they surface; rebuild it when
    // they outnumber live ones, so cancelled far-future timers cannot pile up.
    if (this.heap.length > 64 && this.live < this.heap.length / 2) this.compact();
  }

  /** Due time of the next live event, or undefined when idle. */
  peekTime(): number | undefined {
    this.dropCancelledTop();
    return this.heap[0]?.atMs;
  }

  /** Runs the next event (advancing time to it). Returns false when there is none. */
  step(): boolean {
    this.dropCancelledTop();
    const ev = this.pop();
    if (ev === undefined) return false;
    this.live--;
    this.current = ev.atMs;
    this.executed++;
    // Mark it done so a later cancel() through a stale handle is a no-op.
    ev.cancelled = true;
    ev.fn();
    return true;
  }

  /** Runs events until idle, past `untilMs`, or `maxEvents` events have run. */
  run(options: RunOptions = {}): RunResult {
    const { untilMs, maxEvents = Number.POSITIVE_INFINITY, afterEach } = options;
    let events = 0;
    for (;;) {
      if (events >= maxEvents) return { events, stop: 'events' };
      const next = this.peekTime();
      if (next === undefined || (untilMs !== undefined && next > untilMs)) {
        if (untilMs !== undefined && untilMs > this.current) this.current = untilMs;
        return { events, stop: next === undefined ? 'idle' : 'time' };
      }
      this.step();
      events++;
      afterEach?.();
    }
  }

  /**
   * A lib {@link Clock} backed by this scheduler: `now()` is virtual time and
   * timers are scheduler events labelled `label`.
   */
  clock(label = 'timer'): Clock {
    const handles = new Map<number, EventHandle>();
    let nextId = 1;
    return {
      now: () => this.current,
      setTimer: (delayMs: number, fn: () => void): TimerHandle => {
        const id = nextId++;
        handles.set(
          id,
          this.after(Math.max(0, Math.ceil(delayMs)), label, () => {
            handles.delete(id);
            fn();
          }),
        );
        return { id };
      },
      clearTimer: (handle: TimerHandle): void => {
        const h = handles.get(handle.id);
        if (h !== undefined) {
          handles.delete(handle.id);
          this.cancel(h);
        }
      },
    };
  }

  private compact(): void {
    const keep = this.heap.filter((e) => !e.cancelled);
    this.heap.length = 0;
    for (const e of keep) this.push(e);
  }

  private dropCancelledTop(): void {
    while (this.heap.length > 0 && (this.heap[0] as QueuedEvent).cancelled) this.pop();
  }

  private push(ev: QueuedEvent): void {
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!earlier(ev, h[parent] as QueuedEvent)) break;
      h[i] = h[parent] as QueuedEvent;
      i = parent;
    }
    h[i] = ev;
  }

  private pop(): QueuedEvent | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && earlier(h[r] as QueuedEvent, h[l] as QueuedEvent) ? r : l;
      if (!earlier(h[child] as QueuedEvent, last)) break;
      h[i] = h[child] as QueuedEvent;
      i = child;
    }
    h[i] = last;
    return top;
  }
}
