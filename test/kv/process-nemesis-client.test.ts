/**
 * What the real-process nemesis found in KvClient's error reporting, as a
 * deterministic test on three `cohort node` processes (issue 6).
 *
 * A write's first attempt reaches the leader and is applied, but its answer
 * is lost (an indefinite TIMEOUT); every later attempt fails with a definite
 * routing error (UNAVAILABLE) until the retry budget runs out. The client
 * used to throw that LAST error, definite — telling the application the
 * write certainly did not happen, when it did. Found by the nemesis test
 * with `COHORT_NEMESIS_CLASSIFY=client COHORT_NEMESIS_RETRY_MS=300`: a put
 * reported as a definite failure whose value a later read saw (the checker
 * rejected the history). Fixed in src/kv/client.ts (`call`, cf70d0c): once
 * an attempt failed indefinitely, giving up is indefinite too. The nemesis
 * test itself records routing errors as unknown (classifyKvError), so it
 * never depended on this.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CohortError } from '../../src/lib/errors.js';
import { isCohortError } from '../../src/lib/errors.js';
import { KvClient } from '../../src/kv/client.js';
import { ProcessCluster } from '../harness/process-cluster.js';
import { lostReplyThenRefused } from './lost-reply.js';

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start({ nodes: 3 });
  await cluster.waitForLeader();
});

afterAll(async () => {
  await cluster.close();
});

describe('KvClient after retries (issue 6)', () => {
  it('reports a write whose answer was lost as indefinite, even when its last retry failed definitely', async () => {
    // A generous budget, made to run out after two refusals (see lost-reply.ts):
    // the test does not depend on how fast anything runs.
    const retryMs = 60_000;
    const lost = lostReplyThenRefused({ retryMs, refusals: 2 });
    const kv = await KvClient.connect({
      endpoints: cluster.endpoints(),
      retryMs,
      clock: lost.clock,
      rpc: { client: { interceptors: [lost.interceptor] } },
    });
    const check = await KvClient.connect({ endpoints: cluster.endpoints() });
    try {
      let thrown: unknown;
      try {
        await kv.put('maybe', 'applied');
      } catch (e) {
        thrown = e;
      }
      // The applied attempt, then exactly the two refusals: the last error is definite.
      expect(lost.refused()).toBe(2);
      expect(lost.puts()).toBeGreaterThan(2);
      // It was applied...
      const v = await check.get('maybe');
      expect(v === undefined ? null : new TextDecoder().decode(v.value)).toBe('applied');
      // ...so the error must not claim it certainly was not.
      expect(isCohortError(thrown)).toBe(true);
      expect((thrown as CohortError).code).toBe('UNAVAILABLE');
      expect((thrown as CohortError).definite).toBe(false);
    } finally {
      await kv.close();
      await check.close();
    }
  });
});
