/**
 * The failure the KV client must report as indefinite: a put's first attempt
 * reaches the leader and is applied, but its reply is lost (an indefinite
 * TIMEOUT); every later attempt is refused before sending with a definite
 * UNAVAILABLE until the client's retry budget runs out.
 *
 * The budget runs out after a set number of refusals, whatever the machine's
 * speed: the client's retry budget should be generous (the applied attempt may
 * take seconds on a busy machine), and after the last refusal this moves the
 * clock the client reads (Date.now) past it. Call `restore()` when done.
 *
 * ```ts
 * const lost = lostReplyThenRefused({ retryMs: 60_000, refusals: 2 });
 * const kv = await KvClient.connect({ ..., retryMs: 60_000, rpc: { client: { interceptors: [lost.interceptor] } } });
 * await kv.put('k', 'v').catch((e) => ...);   // UNAVAILABLE, definite: false
 * lost.restore();
 * ```
 */
import { vi } from 'vitest';
import { CohortError } from '../../src/lib/errors.js';
import type { ClientInterceptor } from '../../src/rpc/client.js';

/** The interceptor and what it saw (see the file comment). */
export interface LostReply {
  readonly interceptor: ClientInterceptor;
  /** Put attempts that reached the interceptor. */
  readonly puts: () => number;
  /** Attempts refused after the applied one. */
  readonly refused: () => number;
  /** Puts Date.now back. */
  readonly restore: () => void;
}

/** See the file comment. */
export function lostReplyThenRefused(o: { retryMs: number; refusals: number }): LostReply {
  const realNow = Date.now.bind(Date);
  let skewMs = 0;
  const clock = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + skewMs);
  let puts = 0;
  let refused = 0;
  let applied = false;
  const interceptor: ClientInterceptor = async (call, next) => {
    if (call.method !== 'put') return next(call);
    puts++;
    if (applied) {
      if (++refused === o.refusals) skewMs = o.retryMs;
      throw new CohortError('UNAVAILABLE', 'peer down (test)', { definite: true });
    }
    await next(call);
    applied = true;
    throw new CohortError('TIMEOUT', 'answer lost (test)', { definite: false });
  };
  return {
    interceptor,
    puts: () => puts,
    refused: () => refused,
    restore: () => clock.mockRestore(),
  };
}
