/**
 * Branded identifiers. A `NodeId` is a string at run time but the compiler
 * keeps it apart from other strings, so a term is never passed as an index.
 *
 * ```ts
 * const id = nodeId('n1');          // validated
 * const t = 3 as Term;              // trusted internal arithmetic
 * ```
 */
import { CohortError } from './errors.js';
import { limits } from './limits.js';

/** Attaches a compile-time brand `B` to `T`. */
export type Brand<T, B extends string> = T & { readonly __brand: B };

/** Names one node of a cluster (stable across restarts). */
export type NodeId = Brand<string, 'NodeId'>;
/** Names one cluster; nodes of different clusters refuse to talk. */
export type ClusterId = Brand<string, 'ClusterId'>;
/** A Raft term (Raft §5.1). */
export type Term = Brand<number, 'Term'>;
/** A position in the replicated log, 1-based; 0 means "before the first entry" (Raft §5.3). */
export type LogIndex = Brand<number, 'LogIndex'>;
/** Correlates a request with its response on one connection. */
export type RequestId = Brand<number, 'RequestId'>;

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

function checkName(kind: string, text: string): void {
  if (typeof text !== 'string' || text.length === 0 || text.length > limits.idBytesMax) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `${kind} must be 1..${limits.idBytesMax} characters`,
      {
        details: { value: String(text) },
      },
    );
  }
  if (!ID_PATTERN.test(text)) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `${kind} ${JSON.stringify(text)} may contain only letters, digits and . _ : - (and must start with a letter or digit)`,
    );
  }
}

/** Validates and brands a node id. Throws INVALID_ARGUMENT on a bad one. */
export function nodeId(text: string): NodeId {
  checkName('node id', text);
  return text as NodeId;
}

/** Validates and brands a cluster id. Throws INVALID_ARGUMENT on a bad one. */
export function clusterId(text: string): ClusterId {
  checkName('cluster id', text);
  return text as ClusterId;
}

/** True if `text` is a well-formed node or cluster id. */
export function isValidId(text: unknown): text is string {
  return (
    typeof text === 'string' &&
    text.length > 0 &&
    text.length <= limits.idBytesMax &&
    ID_PATTERN.test(text)
  );
}

const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * True if `name` is a valid user (or role) name: letters, digits and . _ -,
 * starting with a letter or digit, at most userNameCharsMax characters. No
 * colon or slash: a user's connection ids (`user:<name>:<suffix>`) and
 * session ids (`<name>/<n>`) embed it.
 */
export function isValidUserName(name: unknown): name is string {
  return (
    typeof name === 'string' &&
    name.length > 0 &&
    name.length <= limits.userNameCharsMax &&
    USER_NAME.test(name)
  );
}
