/** Error helpers for tests. */
import { isCohortError } from '../../src/lib/errors.js';
import type { ErrorCode } from '../../src/lib/errors.js';

/** The stable code of the CohortError `fn` throws, or 'no error'; any other throw is rethrown. */
export function codeOf(fn: () => unknown): ErrorCode | 'no error' {
  try {
    fn();
    return 'no error';
  } catch (err) {
    if (isCohortError(err)) return err.code;
    throw err;
  }
}
