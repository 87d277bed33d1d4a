/** Test helpers for the KV state machine: terse commands and unwrapped results. */
import { expect } from 'vitest';
import { KvStateMachine, kvKey, kvText } from '../../../src/kv/core/index.js';
import type {
  KeyValue,
  KvApplied,
  KvCommand,
  KvEvent,
  KvFailure,
  KvResult,
  SessionTag,
} from '../../../src/kv/core/index.js';

/** UTF-8 bytes. */
export const b = kvKey;

/** Applies `command` and returns its result; fails the test if it was refused. */
export function ok<T extends KvResult['type']>(
  sm: KvStateMachine,
  command: KvCommand & { type: T },
  session?: SessionTag,
): Extract<KvResult, { type: T }> & { events: readonly KvEvent[] } {
  const out = sm.apply(session === undefined ? { command } : { command, session });
  if (!out.ok) throw new Error(`refused: ${out.error.code} ${out.error.message}`);
  expect(out.result.type).toBe(command.type);
  return { ...(out.result as Extract<KvResult, { type: T }>), events: out.events };
}

/** Applies `command`, expects a refusal, and returns it. */
export function refused(sm: KvStateMachine, command: KvCommand, session?: SessionTag): KvFailure {
  const out: KvApplied = sm.apply(session === undefined ? { command } : { command, session });
  if (out.ok) throw new Error(`expected a refusal, got ${JSON.stringify(out.result.type)}`);
  return out.error;
}

/** `key=value` strings of a list of kvs, for readable expectations. */
export function pairs(kvs: readonly KeyValue[]): string[] {
  return kvs.map((kv) => `${kvText(kv.key)}=${kvText(kv.value)}`);
}

/** A put command. */
export function put(key: string, value: string, extra: Partial<KvCommand & { type: 'put' }> = {}) {
  return { type: 'put' as const, key: b(key), value: b(value), ...extra };
}

/** Registers a session (optionally with a TTL, at an entry log time); returns its client id. */
export function session(sm: KvStateMachine, ttlMs?: number, timeMs?: number): string {
  const command: KvCommand =
    ttlMs === undefined ? { type: 'sessionOpen' } : { type: 'sessionOpen', ttlMs };
  const out = sm.apply(timeMs === undefined ? { command } : { command, timeMs });
  if (!out.ok || out.result.type !== 'sessionOpen') throw new Error('sessionOpen refused');
  return out.result.clientId;
}

/** A fresh state machine. */
export function fresh(): KvStateMachine {
  return new KvStateMachine();
}
