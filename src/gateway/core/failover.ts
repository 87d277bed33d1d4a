/**
 * When the gateway may try a request again on another backend, pure.
 * DESIGN.md, Errors: non-idempotent work is retried only after a definite
 * error. A proxy knows an error is definite when nothing of the request
 * reached the backend (the connection was refused or never completed), so:
 *
 * 1. A try that failed before any byte reached the backend (`not-sent`) may
 *    be retried whatever the method: the backend cannot have acted on it.
 * 2. A try that may have reached the backend (`maybe-sent`: a reset, a
 *    timeout, a broken reply) is retried only if the request is idempotent
 *    (HTTP GET/HEAD/PUT/DELETE/OPTIONS, RFC 9110 §9.2.2, or an RPC method
 *    marked idempotent), and then once: one such retry per request.
 *    Otherwise the client gets 502 / UNAVAILABLE, indefinite.
 * 3. Every retry goes to a backend not tried yet for this request, within
 *    the request's deadline, and a request makes at most `triesMax` tries.
 *
 * ```ts
 * retryDecision({ phase: 'maybe-sent', idempotent: false, tries: 1, maybeSentRetries: 0, triesMax: 3, msLeft: 900 });
 * // { retry: false, why: 'not-idempotent' }
 * ```
 */

/** How far a failed try got. */
export type FailurePhase = 'not-sent' | 'maybe-sent';

/** What is known about a failed try and its request. */
export interface RetryInput {
  readonly phase: FailurePhase;
  readonly idempotent: boolean;
  /** Tries made so far, the failed one included. */
  readonly tries: number;
  /** Retries already made after `maybe-sent` failures. */
  readonly maybeSentRetries: number;
  readonly triesMax: number;
  /** Time left before the request's deadline. */
  readonly msLeft: number;
}

/** Whether to retry, and if not, why (for logs, headers and tests). */
export type RetryDecision =
  | { readonly retry: true }
  | {
      readonly retry: false;
      readonly why: 'not-idempotent' | 'retried-once' | 'tries-exhausted' | 'deadline';
    };

/** HTTP methods that are idempotent (RFC 9110 §9.2.2). */
export const idempotentHttpMethods: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'PUT',
  'DELETE',
  'OPTIONS',
  'TRACE',
]);

/** The retry rules (see the file comment). */
export function retryDecision(input: RetryInput): RetryDecision {
  if (input.phase === 'maybe-sent') {
    if (!input.idempotent) return { retry: false, why: 'not-idempotent' };
    if (input.maybeSentRetries >= 1) return { retry: false, why: 'retried-once' };
  }
  if (input.tries >= input.triesMax) return { retry: false, why: 'tries-exhausted' };
  if (input.msLeft <= 0) return { retry: false, why: 'deadline' };
  return { retry: true };
}
