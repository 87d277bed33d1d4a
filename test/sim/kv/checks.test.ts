import { describe, expect, it } from 'vitest';
import { nodeId } from '../../../src/lib/ids.js';
import { kvKey } from '../../../src/kv/core/bytes.js';
import type { KvEvent } from '../../../src/kv/core/types.js';
import { KvStateMachine } from '../../../src/kv/core/state-machine.js';
import { KvStateChecks } from '../../../src/sim/kv/checks.js';
import { CheckFailure } from '../../../src/sim/scenario.js';

const n1 = nodeId('n1');
const n2 = nodeId('n2');

function put(key: string, value: string, revision: number): KvEvent {
  return {
    type: 'PUT',
    kv: {
      key: kvKey(key),
      value: kvKey(value),
      createRevision: revision,
      modRevision: revision,
      version: 1,
      lease: 0,
    },
  };
}

function del(key: string, revision: number): KvEvent {
  return {
    type: 'DELETE',
    kv: {
      key: kvKey(key),
      value: new Uint8Array(0),
      createRevision: 0,
      modRevision: revision,
      version: 0,
      lease: 0,
    },
  };
}

describe('KvStateChecks', () => {
  it('knows every key at every revision from the log, and each replica may replay it', () => {
    const c = new KvStateChecks({ sampleEvery: 1, counts: {} });
    c.onEvents(n1, 1, [put('a', 'x', 1)]);
    c.onEvents(n1, 2, [put('b', 'y', 2)]);
    c.onEvents(n1, 3, [del('a', 3)]);
    c.onEvents(n2, 1, [put('a', 'x', 1)]); // another replica applying the same revision
    expect(c.stateAt('a', 0)).toBeNull();
    expect(c.stateAt('a', 1)).toEqual({ value: 'x', modRevision: 1 });
    expect(c.stateAt('a', 2)).toEqual({ value: 'x', modRevision: 1 });
    expect(c.stateAt('a', 3)).toBeNull();
    expect(c.stateAt('b', 9)).toEqual({ value: 'y', modRevision: 2 });
    expect(c.lastChange('a')).toBe(3);
    expect(c.changedAt('a', 3, null)).toBe(true);
    expect(c.changedAt('a', 1, 'x')).toBe(true);
    expect(c.changedAt('a', 2, 'x')).toBe(false);
    expect(c.maxRevision).toBe(3);
  });

  it('rejects replicas that differ at a revision, a skipped revision, and a value written twice', () => {
    const c = new KvStateChecks({ sampleEvery: 1, counts: {} });
    c.onEvents(n1, 1, [put('a', 'x', 1)]);
    expect(() => c.onEvents(n2, 1, [put('a', 'z', 1)])).toThrow(/replicas differ at revision 1/);
    expect(() => c.onEvents(n1, 3, [put('a', 'w', 3)])).toThrow(CheckFailure);
    expect(() => c.onEvents(n1, 2, [put('b', 'x', 2)])).toThrow(/exactly-once: value "x"/);
  });

  it('rejects unequal replica states at the same applied index', () => {
    const c = new KvStateChecks({ sampleEvery: 4, counts: {} });
    c.onState(n1, 7, Uint8Array.of(1, 2, 3), 'snapshot taken');
    c.onState(n2, 7, Uint8Array.of(1, 2, 3), 'snapshot restored');
    c.onState(n2, 8, Uint8Array.of(9), 'sampled');
    expect(() => c.onState(n1, 7, Uint8Array.of(1, 2, 4), 'end of run')).toThrow(
      /replica states differ at applied index 7/,
    );
    // Sampling: only every 4th index is compared.
    c.onApplied(n1, { index: 5, kvSnapshot: () => Uint8Array.of(0) });
    expect(() => c.onApplied(n1, { index: 8, kvSnapshot: () => Uint8Array.of(0) })).toThrow(
      /differ at applied index 8/,
    );
  });

  it("checks a store's watch replay and previous values against the log", () => {
    const c = new KvStateChecks({ sampleEvery: 1, counts: {} });
    const store = new KvStateMachine();
    for (const [k, v] of [
      ['a', '1'],
      ['b', '2'],
      ['a', '3'],
    ] as const) {
      const out = store.apply({ command: { type: 'put', key: kvKey(k), value: kvKey(v) } });
      if (!out.ok) throw new Error('put refused');
      c.onEvents(n1, out.revision, out.events);
    }
    c.checkReplay(n1, store, 'test');
    // A store whose history lacks the last change (a replica behind the log is fine)...
    const behind = new KvStateMachine();
    behind.apply({ command: { type: 'put', key: kvKey('a'), value: kvKey('1') } });
    c.checkReplay(n2, behind, 'test');
    // ...but one whose history differs from the log is not.
    const other = new KvStateMachine();
    other.apply({ command: { type: 'put', key: kvKey('a'), value: kvKey('9') } });
    expect(() => c.checkReplay(n2, other, 'test')).toThrow(/watch replay .* at revision 1/);
    // A live event whose previous value is wrong.
    expect(() => c.onEvents(n1, 4, [{ ...put('a', '4', 4), prevKv: put('a', '1', 1).kv }])).toThrow(
      /previous value "1"@1, but the key was "3"@3/,
    );
  });
});
