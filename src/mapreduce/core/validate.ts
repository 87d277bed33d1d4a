/**
 * Checks on the coordinator's commands, which arrive decoded from the log and
 * so may hold anything. Each check throws a definite INVALID_ARGUMENT
 * CohortError naming the field; the state machine validates a whole command
 * before it changes anything, so a refused command changes nothing.
 *
 * ```ts
 * const now = checkTime(cmd.now, 'now');
 * const path = checkPath(cmd.module, 'module');
 * ```
 */
import { CohortError } from '../../lib/errors.js';
import { isValidId } from '../../lib/ids.js';
import { limits } from '../../lib/limits.js';

/** Throws INVALID_ARGUMENT with `message` (and the field in details). */
export function invalid(message: string, field?: string): never {
  throw new CohortError(
    'INVALID_ARGUMENT',
    message,
    field === undefined ? {} : { details: { field } },
  );
}

/** A short, safe description of a value for messages (never calls the value's own toString). */
export function preview(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'undefined':
      return String(value);
    case 'object':
      return 'an object';
    case 'function':
    case 'symbol':
      return `a ${typeof value}`;
  }
  return 'a value';
}

/** A plain object (not null, not an array); returns it as a record. */
export function checkObject(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    invalid(`${field} must be an object, not ${preview(value)}`, field);
  }
  return value as Record<string, unknown>;
}

/** A safe integer in [min, max]. */
export function checkInt(
  value: unknown,
  field: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    invalid(`${field} must be an integer in [${min}, ${max}], not ${preview(value)}`, field);
  }
  return value;
}

/** A point in time on the proposer's clock (ms): a finite number >= 0. */
export function checkTime(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    invalid(`${field} must be a finite number of ms >= 0, not ${preview(value)}`, field);
  }
  return value;
}

/** A lease length within limits.mrLeaseMs{Min,Max}. */
export function checkLeaseMs(value: unknown, field = 'leaseMs'): number {
  return checkInt(value, field, limits.mrLeaseMsMin, limits.mrLeaseMsMax);
}

/** A non-empty string of at most `max` characters. */
export function checkString(value: unknown, field: string, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    invalid(`${field} must be a string of 1..${max} characters, not ${preview(value)}`, field);
  }
  return value;
}

/** A job module's content hash: sha256, 64 lowercase hex digits (undefined if absent). */
export function checkSha256(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value)) {
    invalid(`${field} must be a sha256 in 64 lowercase hex digits, got ${preview(value)}`, field);
  }
  return value;
}

/** A path (input file, module, output directory). */
export function checkPath(value: unknown, field: string): string {
  return checkString(value, field, limits.mrPathCharsMax);
}

/** A job, node or worker id: 1..64 of [A-Za-z0-9._:-], starting with a letter or digit. */
export function checkId(value: unknown, field: string): string {
  if (!isValidId(value)) {
    invalid(
      `${field} must be 1..${limits.idBytesMax} of letters, digits and . _ : - (starting with a letter or digit), not ${preview(value)}`,
      field,
    );
  }
  return value;
}

/** An optional boolean. */
export function checkFlag(value: unknown, field: string): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') {
    invalid(`${field} must be a boolean, not ${preview(value)}`, field);
  }
  return value;
}

/** An array of at most `max` items. */
export function checkArray(value: unknown, field: string, max: number): readonly unknown[] {
  if (!Array.isArray(value)) invalid(`${field} must be an array, not ${preview(value)}`, field);
  if (value.length > max) invalid(`${field} has ${value.length} items, more than ${max}`, field);
  return value;
}

/** Cuts a message for people to what the state keeps. */
export function clip(text: string): string {
  return clipTo(text, limits.mrErrorCharsMax);
}

/** Cuts a message for people to `max` characters (an ellipsis marks a cut). */
export function clipTo(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** A name used as an object key (param, user counter): a string of 1..max characters, never `__proto__`. */
export function checkKey(value: unknown, field: string, max: number): string {
  const key = checkString(value, field, max);
  if (key === '__proto__') invalid(`${field} may not be __proto__`, field);
  return key;
}

/**
 * A worker id: like a node id but up to twice as long, so `<node id>:w<n>`
 * fits whatever the node id's length.
 */
export function checkWorkerId(value: unknown, field = 'worker'): string {
  const max = 2 * limits.idBytesMax;
  const ok =
    typeof value === 'string' &&
    value.length > 0 &&
    value.length <= max &&
    isValidId(value.slice(0, limits.idBytesMax)) &&
    /^[A-Za-z0-9._:-]*$/.test(value);
  if (!ok) {
    invalid(
      `${field} must be 1..${max} of letters, digits and . _ : - (starting with a letter or digit), not ${preview(value)}`,
      field,
    );
  }
  return value;
}
