/**
 * Runs a simulation whose nodes are production shells: one scheduler event at
 * a time, and after each, every promise callback the event started, before
 * the next event. RaftNode, the KV server and the KV client answer through
 * promises; their timers and deferred steps are all scheduler events in the
 * simulator, so once the callbacks of an event have run nothing is left to
 * happen until the next event, and the interleaving is a function of the
 * seed.
 *
 * ```ts
 * await drive(scheduler, {
 *   until: () => scheduler.peekTime() === undefined || scheduler.peekTime()! > 1000,
 *   afterEach: () => { trap.throwIfFailed(); for (const n of nodes) n.check(); },
 * });
 * ```
 *
 * How callbacks are let run without a turn of the event loop: Node runs the
 * `process.nextTick` queue only once the microtask queue is empty. After an
 * event, the driver queues a microtask that queues the tick that runs the
 * next event; the tick therefore waits for every microtask the event started,
 * however deep the chain. A `setImmediate` per event would do the same at the
 * cost of a poll of the OS each time (a few µs, more than the event itself).
 * The whole drive runs without yielding to the event loop; callers yield
 * between runs (runScenario does).
 */
import type { Scheduler } from './scheduler.js';

/** A settled promise: `.then` on it queues a microtask (cheaper than queueMicrotask). */
const resolved = Promise.resolve();

/** When to stop and what to run after each event. */
export interface DriveOptions {
  /** Checked before each event: true stops the drive (also when no event is left). */
  readonly until: () => boolean;
  /** Runs after each event and its callbacks (checks); a throw ends the drive with it. */
  readonly afterEach: () => void;
}

/** Runs events until `until()` or none is left (see the file header); rejects with what an event or check threw. */
export function drive(scheduler: Scheduler, options: DriveOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const next = (): void => {
      try {
        if (options.until() || scheduler.peekTime() === undefined) {
          resolve();
          return;
        }
        scheduler.step();
      } catch (err) {
        reject(asError(err));
        return;
      }
      // A microtask behind those the event queued, which queues the tick that runs once all
      // microtasks are done.
      void resolved.then(queueAfter);
    };
    const queueAfter = (): void => process.nextTick(after);
    const after = (): void => {
      try {
        options.afterEach();
      } catch (err) {
        reject(asError(err));
        return;
      }
      next();
    };
    next();
  });
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
