/**
 * Durability in simulation (issue 5): on the simulated disk, which loses
 * unsynced data and tears writes on a crash, no write whose save() resolved is
 * ever lost. See sim-workload.ts. A failure names the seed; replay it with
 * STORAGE_SEED=<seed>.
 */
import { describe, expect, it } from 'vitest';
import { runSeed } from './sim-workload.js';

describe('FileStorage on the simulated disk', () => {
  const only = process.env.STORAGE_SEED;
  const seeds =
    only !== undefined
      ? [Number(only)]
      : Array.from({ length: Number(process.env.STORAGE_SEEDS ?? 2000) }, (_, i) => i + 1);

  it(`never loses an acknowledged write across crashes (${seeds.length} seeds)`, async () => {
    let acked = 0;
    for (const seed of seeds) {
      try {
        acked += (await runSeed(seed)).acked;
      } catch (err) {
        throw new Error(`seed ${seed} failed (replay: STORAGE_SEED=${seed}): ${String(err)}`, {
          cause: err,
        });
      }
    }
    // The workload must actually acknowledge writes, or the test proves nothing.
    expect(acked).toBeGreaterThan(seeds.length);
    // About 6 s on an idle 2-core machine; no time limit (vitest.config.ts: simulations).
  });
});
