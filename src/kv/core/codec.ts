/**
 * KV entries as Raft entry payloads: MessagePack (plain maps, bin for bytes),
 * the same encoding the wire uses. Decoding checks only that the bytes are a
 * MessagePack map with a command object; `KvStateMachine.apply` validates the
 * command itself and refuses a bad one without changing anything.
 *
 * ```ts
 * const data = encodeKvEntry({ command: { type: 'put', key, value }, session });
 * raft.propose(data);
 * // ...when committed, on every node:
 * const applied = sm.apply(decodeKvEntry(entry.data));
 * ```
 */
import { Packr } from 'msgpackr';
import { CohortError } from '../../lib/errors.js';
import type { KvEntry } from './types.js';

const packr = new Packr({ useRecords: false });

/** The bytes of `entry` (a fresh buffer the caller owns). */
export function encodeKvEntry(entry: KvEntry): Uint8Array {
  return new Uint8Array(packr.pack(entry));
}

/** The entry in `bytes`; DECODE_ERROR if they are not a MessagePack map holding a command. */
export function decodeKvEntry(bytes: Uint8Array): KvEntry {
  let value: unknown;
  try {
    // A fresh view: msgpackr caches a DataView on the object it decodes.
    value = packr.unpack(bytes.subarray());
  } catch (e) {
    throw new CohortError('DECODE_ERROR', 'KV entry is not MessagePack', { cause: e });
  }
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof (value as { command?: unknown }).command !== 'object' ||
    (value as { command?: unknown }).command === null
  ) {
    throw new CohortError('DECODE_ERROR', 'KV entry has no command');
  }
  return value as KvEntry;
}
