/**
 * Closed-loop callers of ListMax by name, shared by the naming tests that
 * kill or move instances under load: each lane calls until stopped and
 * checks every answer; failures are kept, not thrown.
 *
 * ```ts
 * const lanes = callLanes(naming.service(ListMax), 4);
 * ...                                   // kill, move, restart instances
 * await lanes.stop();
 * expect(lanes.failures).toEqual([]);
 * expect(lanes.ok).toBeGreaterThan(100);
 * ```
 */
import { expect } from 'vitest';
import type { ListMax } from '../../examples/list-max/service.js';
import type { Client } from '../../src/rpc/service.js';

/** What the lanes did so far. */
export interface Lanes {
  /** Calls answered correctly. */
  readonly ok: number;
  /** Errors of the calls that failed. */
  readonly failures: unknown[];
  /** Stops every lane after its current call, and waits for them. */
  stop(): Promise<void>;
}

/** Starts `n` lanes calling `client.listMax` back to back. */
export function callLanes(client: Client<typeof ListMax>, n: number): Lanes {
  let stopped = false;
  const state = { ok: 0, failures: [] as unknown[] };
  const lane = async (): Promise<void> => {
    for (let k = 0; !stopped; k++) {
      try {
        const r = await client.listMax({ values: [k, k + 5, 1] });
        expect(r).toEqual({ max: k + 5, index: 1 });
        state.ok++;
      } catch (e) {
        state.failures.push(e);
      }
    }
  };
  const running = Array.from({ length: n }, lane);
  return {
    get ok() {
      return state.ok;
    },
    failures: state.failures,
    stop: async () => {
      stopped = true;
      await Promise.all(running);
    },
  };
}
