/**
 * Comparing what two decoders (or encoders) made of the same input: the
 * value as plain data, or the stable error code.
 *
 * ```ts
 * expect(outcome(() => fast.decode(bytes))).toEqual(outcome(() => slow.decode(bytes)));
 * expect(plain(codec.decode(codec.encode(m)))).toEqual(plain(m));
 * ```
 */
import { isCohortError } from '../../src/lib/errors.js';

/** Plain data for comparison: byte arrays (Buffer or Uint8Array) become number arrays. */
export function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: [...value] };
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

/** What `fn` gave, as plain data (`toPlain`), or the code of the CohortError it threw. */
export type Outcome = { ok: unknown } | { code: string };

/** Runs `fn`: its value made plain by `toPlain`, or its CohortError's code; any other throw fails the test. */
export function outcome(fn: () => unknown, toPlain: (v: unknown) => unknown = plain): Outcome {
  try {
    return { ok: toPlain(fn()) };
  } catch (err) {
    if (isCohortError(err)) return { code: err.code };
    throw err; // anything else is a crash: fails the property
  }
}
