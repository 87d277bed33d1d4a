/**
 * Invariant checks. A broken invariant is a bug: it throws an
 * {@link AssertionError} that nothing in cohort catches (DESIGN.md, Errors).
 * Code that must catch broadly (to turn operational failures into error
 * replies) hands what it caught to {@link crashOnAssertion} first.
 *
 * ```ts
 * assert(index >= firstIndex, 'index below the log start');
 * switch (msg.type) { case 'a': ...; default: assertNever(msg); }
 * try { ... } catch (err) { crashOnAssertion(err); reply(toCohortError(err)); }
 * ```
 */

/** Thrown when an invariant does not hold. Never caught by cohort code. */
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

/** Throws an {@link AssertionError} with `message` unless `condition` holds. */
export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Marks a branch the type checker proves unreachable; throws if reached at run time. */
export function assertNever(value: never, message = 'unexpected value'): never {
  throw new AssertionError(`${message}: ${JSON.stringify(value)}`);
}

/**
 * Crashes the process if `err` is an {@link AssertionError}; returns
 * otherwise. For the places that catch broadly on purpose (an RPC handler's
 * failure becomes an error reply, a storage failure stops the Raft node): a
 * bug must not become a reply. Rethrows it at once, so the caller goes no
 * further, and again from a microtask, which Node reports as an uncaught
 * exception even when the first throw lands in a promise chain that someone
 * handles.
 */
export function crashOnAssertion(err: unknown): void {
  if (!(err instanceof AssertionError)) return;
  queueMicrotask(() => {
    throw err;
  });
  throw err;
}
