/**
 * Waiting for conditions in tests that run on real time (sockets, processes,
 * timers). A test waits for what it needs — a leader, an applied index, a log
 * line — never for a fixed time, and never asserts that something happened
 * within N ms: on a loaded machine everything happens later, never wrongly.
 * The bound only turns a hang into a failure that names what was awaited.
 *
 * ```ts
 * const leader = await waitUntil('a leader', () => nodes.find((n) => n.isLeader()));
 * ```
 */

/**
 * How long a test waits for one condition that a quiet machine meets in well
 * under a second: generous, so that a starved process (load average 15 on 2
 * cores) still meets it; below vitest's hang guard (vitest.config.ts).
 */
export const conditionWaitMs = 60_000;

/** Options of {@link waitUntil}. */
export interface WaitOptions {
  /** Give up after this long (default {@link conditionWaitMs}). */
  readonly timeoutMs?: number;
  /** Poll period (default 20 ms). */
  readonly everyMs?: number;
}

/**
 * Polls `f` until it returns a value other than undefined (or false), and
 * returns it; throws `timed out after … waiting for <what>` past the bound.
 */
export async function waitUntil<T>(
  what: string,
  f: () => Promise<T | undefined | false> | T | undefined | false,
  o: WaitOptions = {},
): Promise<T> {
  const timeoutMs = o.timeoutMs ?? conditionWaitMs;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() >= deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, o.everyMs ?? 20));
  }
}
