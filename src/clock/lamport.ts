/**
 * Lamport clocks (Lamport 1978, "Time, Clocks, and the Ordering of Events in a
 * Distributed System"): one integer per process such that if event a happened
 * before event b, then ts(a) < ts(b). The converse does not hold; use a vector
 * clock to detect concurrency.
 *
 * ```ts
 * const a = new LamportClock();
 * const b = new LamportClock();
 * a.tick();                 // a local event: 1
 * const ts = a.send();      // stamp an outgoing message: 2
 * b.receive(ts);            // b is now 3
 * ```
 *
 * A timestamp is a plain non-negative safe integer, so it goes on the wire as is.
 */
import { CohortError } from '../lib/errors.js';

/** A Lamport timestamp: a non-negative safe integer. */
export type LamportTimestamp = number;

/**
 * Checks a Lamport timestamp decoded from the wire. Throws INVALID_ARGUMENT on
 * anything but a non-negative safe integer below 2^53 - 1 (so `+ 1` stays exact).
 */
export function parseLamportTimestamp(value: unknown): LamportTimestamp {
  if (
    typeof value !== 'number' ||
    !Number.isSafeInteger(value) ||
    value < 0 ||
    value >= Number.MAX_SAFE_INTEGER
  ) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      'a Lamport timestamp must be a non-negative integer',
      {
        details: { value: String(value) },
      },
    );
  }
  return value;
}

/** One process's Lamport clock. Pure: no time source, just counting. */
export class LamportClock {
  private current: LamportTimestamp;

  /** Starts at `start` (0 for a new process; a restarted process may resume from a persisted value). */
  constructor(start: LamportTimestamp = 0) {
    this.current = parseLamportTimestamp(start);
  }

  /** The timestamp of the latest event of this process. */
  now(): LamportTimestamp {
    return this.current;
  }

  /** Records a local event (Lamport's rule IR1) and returns its timestamp. */
  tick(): LamportTimestamp {
    this.current += 1;
    return this.current;
  }

  /** Records a send event and returns the timestamp to put on the message (a send is an event: IR1). */
  send(): LamportTimestamp {
    return this.tick();
  }

  /**
   * Records the receipt of a message stamped `remote` (IR2: advance past the
   * message's timestamp, then count the receive as an event) and returns the
   * receive event's timestamp. A malformed `remote` throws INVALID_ARGUMENT and
   * leaves the clock unchanged.
   */
  receive(remote: unknown): LamportTimestamp {
    const ts = parseLamportTimestamp(remote);
    this.current = Math.max(this.current, ts) + 1;
    return this.current;
  }
}
