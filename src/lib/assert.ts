/**
 * Invariant checks. A broken invariant is a bug: it throws an
 * {@link AssertionError} that nothing in cohort catches (DESIGN.md, Errors).
 *
 * ```ts
 * assert(index >= firstIndex, 'index below the log start');
 * switch (msg.type) { case 'a': ...; default: assertNever(msg); }
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
