/**
 * The failure the KV client must report as indefinite: a put's first attempt
 * reaches the leader and is applied, but its reply is lost (an indefinite
 * TIMEOUT); every later attempt is refused before sending with a definite
 * UNAVAILABLE until the client's retry budget runs out.
 *
 * The budget runs out after a set number of refusals, whatever the machine's
 * speed: the client's retry budget should be generous (the applied attempt may
 * take seconds on a busy machine), and after the last refusal this moves the
 * clock the client is given (`clock`: the process clock plus a skew) past it.
 *
 * ```ts
 * const lost = lostReplyThenRefused({ retryMs: 60_000, refusals: 2 });
 * const kv = await KvClient.connect({
 *   ..., retryMs: 60_000, clock: lost.clock, rpc: { client: { interceptors: [lost.interceptor] } },
 * });
 * await kv.put('k', 'v').catch((e) => ...);   // UNAVAILABLE, definite: false
 * ```
 */
import { RealClock } from '../../src/lib/clock.js';
import type { Clock } from '../../src/lib/clock.js';
import { CohortError } from '../../src/lib/errors.js';
import type { ClientInterceptor } from '../../src/rpc/client.js';

/** The interceptor and what it saw (see the file comment). */
export interface LostReply {
  readonly interceptor: ClientInterceptor;
  /** The clock to give the client: it jumps past the retry budget after the last refusal. */
  readonly clock: Clock;
  /** Put attempts that reached the interceptor. */
  readonly puts: () => number;
  /** Attempts refused after the applied one. */
  readonly refused: () => number;
}

/** See the file comment. */
export function lostReplyThenRefused(o: { retryMs: number; refusals: number }): LostReply {
  const real = new RealClock();
  let skewMs = 0;
  const clock: Clock = {
    now: () => real.now() + skewMs,
    setTimer: (delayMs, fn) => real.setTimer(delayMs, fn),
    clearTimer: (handle) => real.clearTimer(handle),
  };
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
  return { interceptor, clock, puts: () => puts, refused: () => refused };
}
