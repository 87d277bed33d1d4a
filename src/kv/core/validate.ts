/**
 * Shape and bound checks on KV commands from the network, done before anything
 * is applied: a bad command gets a definite INVALID_ARGUMENT and the store does
 * not change. Checks are on plain values (`typeof`, `instanceof`), so a
 * decoded message of the wrong shape is refused, never crashes a node.
 *
 * ```ts
 * const r = resolveRange(req.key, req.rangeEnd, 'range'); // { start, end, single }
 * ```
 */
import { CohortError } from '../../lib/errors.js';
import { limits } from '../../lib/limits.js';
import { toByteString } from './bytes.js';
import type { Compare, RangeRequest, TxnOp, TxnRequest } from './types.js';

/** A key range in byte-string form: one key, `[start, end)`, or `[start, ∞)` when end is undefined. */
export interface ResolvedRange {
  readonly start: string;
  readonly end: string | undefined;
  readonly single: boolean;
}

/**
 * A short text for a value from the outside, for error messages: primitives
 * as themselves (cut to 64 characters), anything else by its type. Never
 * calls the value's own toString, which hostile input may have broken.
 */
export function preview(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}…` : v);
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'undefined':
      return String(v);
    case 'symbol':
    case 'function':
    case 'object':
      return v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`;
  }
}

/** Throws INVALID_ARGUMENT with `message` and `details`. */
export function invalid(message: string, details: Record<string, unknown> = {}): never {
  throw new CohortError('INVALID_ARGUMENT', message, { details });
}

/** Checks that `key` is a non-empty byte key within kvKeyBytesMax. */
export function checkKey(key: unknown, what: string): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array)) invalid(`${what} must be bytes`, { field: what });
  if (key.length === 0) invalid(`${what} must not be empty`, { field: what });
  if (key.length > limits.kvKeyBytesMax) {
    invalid(`${what} is ${key.length} bytes, more than kvKeyBytesMax ${limits.kvKeyBytesMax}`, {
      field: what,
      limit: limits.kvKeyBytesMax,
    });
  }
}

/** Checks that `value` is bytes within kvValueBytesMax. */
export function checkValue(value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) invalid(`${what} must be bytes`, { field: what });
  if (value.length > limits.kvValueBytesMax) {
    invalid(
      `${what} is ${value.length} bytes, more than kvValueBytesMax ${limits.kvValueBytesMax}`,
      { field: what, limit: limits.kvValueBytesMax },
    );
  }
}

/** Checks that `n` is a safe integer >= `min` (when present). */
export function checkInt(n: unknown, what: string, min = 0): asserts n is number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) {
    invalid(`${what} must be an integer >= ${min}`, { field: what, value: preview(n) });
  }
}

/** Checks that `list` is an array of at most `max` items (without narrowing the caller's type). */
export function checkArray(list: unknown, what: string, max: number): void {
  if (!Array.isArray(list)) invalid(`${what} must be an array`, { field: what });
  if (list.length > max) {
    invalid(`${what} has more than ${max} items`, { field: what, limit: max });
  }
}

/** Checks an optional boolean flag. */
export function checkFlag(b: unknown, what: string): void {
  if (b !== undefined && typeof b !== 'boolean') invalid(`${what} must be a boolean`);
}

/**
 * Checks and resolves `key` / `rangeEnd` (etcd's convention: no rangeEnd is one
 * key, [0] is unbounded, otherwise rangeEnd must sort after key).
 */
export function resolveRange(key: unknown, rangeEnd: unknown, what: string): ResolvedRange {
  checkKey(key, `${what}.key`);
  const start = toByteString(key);
  if (rangeEnd === undefined) return { start, end: undefined, single: true };
  checkKey(rangeEnd, `${what}.rangeEnd`);
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { start, end: undefined, single: false };
  const end = toByteString(rangeEnd);
  if (end <= start) {
    invalid(`${what}.rangeEnd must sort after key (an empty range is malformed)`, {
      field: `${what}.rangeEnd`,
    });
  }
  return { start, end, single: false };
}

const SORT_TARGETS = new Set(['key', 'version', 'createRevision', 'modRevision', 'value']);
const SORT_ORDERS = new Set(['none', 'ascend', 'descend']);
const COMPARE_OPS = new Set(['=', '!=', '<', '>', '<=', '>=']);
const NUMERIC_TARGETS = new Set(['version', 'createRevision', 'modRevision', 'lease']);

/** Checks a range request's shape; returns its resolved range. */
export function checkRangeRequest(req: RangeRequest, what: string): ResolvedRange {
  const range = resolveRange(req.key, req.rangeEnd, what);
  if (req.limit !== undefined) checkInt(req.limit, `${what}.limit`);
  if (req.revision !== undefined) checkInt(req.revision, `${what}.revision`);
  if (req.sortTarget !== undefined && !SORT_TARGETS.has(req.sortTarget)) {
    invalid(`${what}.sortTarget is not one of ${[...SORT_TARGETS].join(', ')}`);
  }
  if (req.sortOrder !== undefined && !SORT_ORDERS.has(req.sortOrder)) {
    invalid(`${what}.sortOrder is not one of ${[...SORT_ORDERS].join(', ')}`);
  }
  checkFlag(req.countOnly, `${what}.countOnly`);
  checkFlag(req.keysOnly, `${what}.keysOnly`);
  return range;
}

function checkCompare(c: Compare, what: string): void {
  if (typeof c !== 'object' || c === null) invalid(`${what} must be an object`);
  resolveRange(c.key, c.rangeEnd, what);
  if (!COMPARE_OPS.has(c.op)) invalid(`${what}.op must be one of =, !=, <, >, <=, >=`);
  if (c.target === 'value') {
    checkValue(c.value, `${what}.value`);
  } else if (NUMERIC_TARGETS.has(c.target)) {
    checkInt(c.value, `${what}.value`);
  } else {
    invalid(`${what}.target must be value, version, createRevision, modRevision or lease`);
  }
}

/**
 * Checks the shape and bounds of every op of a txn, both branches and nested
 * txns (kvTxnOpsMax counts ops and compares over the whole tree; kvTxnDepthMax
 * bounds nesting). Semantic checks (leases, revisions, duplicate keys) happen
 * on the branch path actually taken.
 */
export function checkTxnShape(txn: TxnRequest): void {
  let count = 0;
  const visit = (t: TxnRequest, depth: number, what: string): void => {
    if (depth > limits.kvTxnDepthMax) {
      invalid(`txn nesting deeper than kvTxnDepthMax ${limits.kvTxnDepthMax}`, {
        limit: limits.kvTxnDepthMax,
      });
    }
    checkArray(t.compare, `${what}.compare`, limits.kvTxnOpsMax);
    checkArray(t.success, `${what}.success`, limits.kvTxnOpsMax);
    checkArray(t.failure, `${what}.failure`, limits.kvTxnOpsMax);
    count += t.compare.length + t.success.length + t.failure.length;
    if (count > limits.kvTxnOpsMax) {
      invalid(`txn has more than kvTxnOpsMax ${limits.kvTxnOpsMax} ops and compares`, {
        limit: limits.kvTxnOpsMax,
      });
    }
    t.compare.forEach((c, i) => checkCompare(c, `${what}.compare[${i}]`));
    const ops = (list: readonly TxnOp[], name: string): void =>
      list.forEach((op, i) => checkTxnOp(op, `${what}.${name}[${i}]`, depth, visit));
    ops(t.success, 'success');
    ops(t.failure, 'failure');
  };
  visit(txn, 1, 'txn');
}

function checkTxnOp(
  op: TxnOp,
  what: string,
  depth: number,
  visit: (t: TxnRequest, depth: number, what: string) => void,
): void {
  if (typeof op !== 'object' || op === null) invalid(`${what} must be an object`);
  switch (op.type) {
    case 'range':
      checkRangeRequest(op, what);
      return;
    case 'put':
      checkKey(op.key, `${what}.key`);
      checkValue(op.value, `${what}.value`);
      if (op.lease !== undefined) checkInt(op.lease, `${what}.lease`);
      checkFlag(op.prevKv, `${what}.prevKv`);
      checkFlag(op.ignoreValue, `${what}.ignoreValue`);
      checkFlag(op.ignoreLease, `${what}.ignoreLease`);
      if (op.ignoreLease === true && op.lease !== undefined && op.lease !== 0) {
        invalid(`${what}: lease and ignoreLease together`);
      }
      return;
    case 'deleteRange':
      resolveRange(op.key, op.rangeEnd, what);
      checkFlag(op.prevKv, `${what}.prevKv`);
      return;
    case 'txn':
      visit(op, depth + 1, what);
      return;
    default:
      invalid(`${what}: unknown op type ${preview((op as { type: unknown }).type)}`);
  }
}
