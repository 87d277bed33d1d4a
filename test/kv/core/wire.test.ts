/**
 * Commands and results are plain data that survive MessagePack, and the store
 * keeps no reference to a decoded message's memory (msgpackr decodes bin into
 * Node Buffers, whose slice() is a view).
 */
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  KvStateMachine,
  decodeKvEntry,
  encodeKvEntry,
  kvText,
  prefixEnd,
  prefixRange,
} from '../../../src/kv/core/index.js';
import type { KvApplied, KvEntry } from '../../../src/kv/core/index.js';
import { b, pairs, put, session } from './helpers.js';

const packr = new Packr({ useRecords: false });

function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return [...v];
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

describe('KV commands over MessagePack', () => {
  it('a decoded entry applies like the original, and reusing its buffer changes nothing', () => {
    const sm = new KvStateMachine();
    const direct = new KvStateMachine();
    const clientId = session(sm);
    expect(session(direct)).toBe(clientId);
    const entry: KvEntry = {
      command: {
        type: 'txn',
        compare: [{ target: 'version', key: b('k'), op: '=', value: 0 }],
        success: [put('k', 'value'), put('j', 'other', { prevKv: true })],
        failure: [],
      },
      session: { clientId, seq: 1 },
      timeMs: 1234,
    };
    const bytes = new Uint8Array(packr.pack(entry));
    const decoded = packr.unpack(bytes) as KvEntry;
    const out = sm.apply(decoded);
    expect(plain(out)).toEqual(plain(direct.apply(entry)));
    bytes.fill(0x21);
    expect(pairs(sm.read({ type: 'range', ...prefixRange(b('')) }).kvs)).toEqual([
      'j=other',
      'k=value',
    ]);
    // Results encode too, and decode to the same data.
    const back = packr.unpack(new Uint8Array(packr.pack(out))) as KvApplied;
    expect(plain(back)).toEqual(plain(out));
  });

  it('prefixEnd does not write into a Buffer prefix', () => {
    const prefix = Buffer.from('ab');
    expect(kvText(prefixEnd(prefix))).toBe('ac');
    expect(prefix.toString()).toBe('ab');
  });

  it('a snapshot restores from a copy and from a view into a larger buffer', () => {
    const sm = new KvStateMachine();
    sm.apply({ command: put('a', '1') });
    const snap = sm.snapshot();
    const framed = new Uint8Array(snap.length + 8);
    framed.set(snap, 4);
    const copy = KvStateMachine.fromSnapshot(framed.subarray(4, 4 + snap.length));
    framed.fill(0);
    expect(pairs(copy.read({ type: 'range', key: b('a') }).kvs)).toEqual(['a=1']);
  });

  it('encodeKvEntry / decodeKvEntry round-trip; junk is DECODE_ERROR', () => {
    const sm = new KvStateMachine();
    const entry: KvEntry = {
      command: put('a', '1', { lease: 0 }),
      session: { clientId: session(sm), seq: 1 },
      timeMs: 77,
    };
    const bytes = encodeKvEntry(entry);
    expect(plain(decodeKvEntry(bytes))).toEqual(plain(entry));
    expect(sm.apply(decodeKvEntry(bytes)).ok).toBe(true);
    for (const junk of [
      Uint8Array.of(0xc1),
      packr.pack(5),
      packr.pack({ command: null }),
      new Uint8Array(),
    ]) {
      expect(() => decodeKvEntry(junk)).toThrow(expect.objectContaining({ code: 'DECODE_ERROR' }));
    }
  });
});
