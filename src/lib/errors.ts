/**
 * Operational failures (DESIGN.md, Errors). Every one is a {@link CohortError}
 * with a stable `code` from {@link errorCodes}, a `definite` flag and a `cause`.
 *
 * - definite: the operation certainly did not take effect, so it may be retried;
 * - indefinite: it may have taken effect (a lost reply, a passed deadline), so
 *   only idempotent work, or work under a de-duplicating session, is retried.
 *
 * ```ts
 * throw new CohortError('OVERLOADED', 'send queue to n2 is full');
 * if (isCohortError(err) && err.definite) retry();
 * ```
 */

/** Every error code cohort uses, with whether it is definite by default and what it means. */
export const errorCodes = {
  INVALID_ARGUMENT: { definite: true, text: 'the input is malformed or out of bounds' },
  OVERLOADED: { definite: true, text: 'a bounded queue or in-flight limit is full; retry later' },
  UNAVAILABLE: { definite: true, text: 'the peer cannot be reached; nothing was sent' },
  CLOSED: { definite: true, text: 'the transport or connection is closed' },
  CANCELLED: { definite: false, text: 'the caller cancelled the operation' },
  TIMEOUT: { definite: false, text: 'the deadline passed before an answer came' },
  CONNECTION_LOST: { definite: false, text: 'the connection broke after the request was sent' },
  FRAME_TOO_LARGE: { definite: true, text: 'a frame exceeds frameBytesMax' },
  CHECKSUM_MISMATCH: { definite: true, text: 'a frame or record failed its CRC32C check' },
  DECODE_ERROR: { definite: true, text: 'bytes could not be decoded into a message' },
  SCHEMA_VIOLATION: { definite: true, text: 'a decoded message does not match its schema' },
  UNKNOWN_MESSAGE: { definite: true, text: 'a message type this node does not know' },
  HANDSHAKE_FAILED: {
    definite: true,
    text: 'the connection was refused: protocol version, cluster or node id mismatch, or a certificate that is missing, from another CA, expired or not of the identity claimed',
  },
  PROTOCOL_ERROR: { definite: true, text: 'the peer broke the protocol' },
  NOT_LEADER: { definite: true, text: 'this node is not the leader; try the hinted one' },
  NOT_FOUND: { definite: true, text: 'the named thing does not exist' },
  PERMISSION_DENIED: {
    definite: true,
    text: "the caller's authenticated identity lacks the permission this needs (details name the key and the permission, or the capability); nothing changed",
  },
  CIRCUIT_OPEN: {
    definite: true,
    text: 'the circuit breaker for this endpoint is open; nothing was sent',
  },
  ALREADY_EXISTS: { definite: true, text: 'the named thing already exists' },
  FAILED_PRECONDITION: { definite: true, text: 'the system is not in a state to do this' },
  COMPACTED: { definite: true, text: 'the requested revision or index was compacted away' },
  NO_SPACE: {
    definite: true,
    text: 'the KV store reached its storage quota (the NOSPACE alarm is raised): delete keys and compact to free space',
  },
  SESSION_EXPIRED: {
    definite: true,
    text: 'the exactly-once session is unknown or expired, so this command was not applied; register a new session',
  },
  CORRUPTION: { definite: true, text: 'stored data failed verification' },
  CONFLICT: {
    definite: true,
    text: 'an optimistic transaction lost to concurrent writers on every attempt; nothing was written',
  },
  IO_ERROR: { definite: false, text: 'a disk operation failed; whether it took effect is unknown' },
  CLOCK_SKEW: {
    definite: true,
    text: 'a remote clock timestamp is further ahead of local time than the drift bound allows',
  },
  USER_CODE_ERROR: {
    definite: true,
    text: "a job's map, combine, reduce or partition function threw or misbehaved; the task wrote nothing",
  },
  MODULE_MISMATCH: {
    definite: true,
    text: "a job module's bytes are not those the job was submitted with (sha256 differs); nothing of it ran",
  },
  INTERNAL: { definite: false, text: 'an unexpected failure inside cohort' },
} as const satisfies Record<string, { definite: boolean; text: string }>;

/** A stable error code string. */
export type ErrorCode = keyof typeof errorCodes;

/** Options for {@link CohortError}. */
export interface CohortErrorOptions {
  /** Overrides the code's default definiteness. */
  definite?: boolean;
  /** The underlying error, if any. */
  cause?: unknown;
  /** Structured context (field path, peer, limit) for logs and clients. */
  details?: Readonly<Record<string, unknown>>;
}

/** An operational failure with a stable code and a definite/indefinite flag. */
export class CohortError extends Error {
  override readonly name = 'CohortError';
  readonly code: ErrorCode;
  readonly definite: boolean;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: CohortErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.definite = options.definite ?? errorCodes[code].definite;
    this.details = options.details ?? {};
  }

  /** A plain object for the wire or JSON (no stack, no cause chain). */
  toJSON(): {
    code: ErrorCode;
    message: string;
    definite: boolean;
    details: Record<string, unknown>;
  } {
    return {
      code: this.code,
      message: this.message,
      definite: this.definite,
      details: { ...this.details },
    };
  }
}

/** True if `value` is a {@link CohortError}. */
export function isCohortError(value: unknown): value is CohortError {
  return value instanceof CohortError;
}

/** True if `code` is one of cohort's error codes (for decoding errors off the wire). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(errorCodes, code);
}
