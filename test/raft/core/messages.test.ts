/**
 * Raft messages are plain data that survive msgpackr unchanged, and malformed
 * ones are refused with a stable error code without changing the node.
 */
import { describe, expect, it } from 'vitest';
import { limits } from '../../../src/lib/limits.js';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { isCohortError } from '../../../src/lib/errors.js';
import type { LogIndex, NodeId, Term } from '../../../src/lib/ids.js';
import { decodeConfig, encodeConfig } from '../../../src/raft/core/config.js';
import type { RaftMessage } from '../../../src/raft/core/messages.js';
import { raftMessageTypes, validateMessage } from '../../../src/raft/core/messages.js';
import { seededRandom } from '../../../src/lib/random.js';
import { RaftCore } from '../../../src/raft/core/raft-core.js';
import { A, B, C, Cluster, entriesWithTerms, logState, soloCore } from './harness.js';

function codeOf(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (err) {
    return isCohortError(err) ? err.code : `not a CohortError: ${String(err)}`;
  }
}

describe('raft messages', () => {
  it('every message a running cluster produces round-trips through msgpackr and validates', () => {
    const packr = new Packr({ useRecords: false });
    const c = new Cluster(['a', 'b', 'c'], { raft: { snapshotChunkBytes: 8 } });
    const seen = new Set<string>();
    const original = c.deliver.bind(c);
    c.deliver = (filter) => {
      c.network = c.network.map((m) => {
        const bytes = Buffer.from(packr.pack(m));
        const back = packr.unpack(bytes) as unknown;
        // msgpackr decodes bytes as Buffer (a Uint8Array); compare the re-encoding.
        expect(Buffer.from(packr.pack(back)).equals(bytes)).toBe(true);
        validateMessage(back);
        seen.add(m.type);
        return back;
      });
      return original(filter);
    };
    c.elect('a');
    c.crash('c');
    for (let i = 0; i < 5; i++) c.propose('a', `v${i}`);
    c.stabilize();
    c.compact('a');
    c.restart('c');
    c.tick('a');
    c.stabilize();
    c.core('a').readIndex(1);
    c.core('a').transferLeadership(B);
    c.stabilize();
    for (let i = 0; i < 30; i++) {
      c.tick();
      c.stabilize();
    }
    c.isolate('a');
    c.tick('a', 25);
    c.heal();
    c.stabilize();
    expect(c.applied('c')).toEqual(c.applied('a'));
    expect([...seen].sort()).toEqual([...raftMessageTypes].sort());
  });

  it('malformed messages are refused with SCHEMA_VIOLATION / UNKNOWN_MESSAGE', () => {
    const ok: RaftMessage = {
      type: 'AppendEntries',
      from: B,
      to: A,
      term: 3 as Term,
      prevLogIndex: 0 as LogIndex,
      prevLogTerm: 0 as Term,
      entries: entriesWithTerms([1, 3]),
      leaderCommit: 0 as LogIndex,
    };
    expect(codeOf(() => validateMessage(ok))).toBeNull();
    expect(codeOf(() => validateMessage(null))).toBe('SCHEMA_VIOLATION');
    expect(codeOf(() => validateMessage({ ...ok, type: 'Nope' }))).toBe('UNKNOWN_MESSAGE');
    expect(codeOf(() => validateMessage({ ...ok, term: -1 }))).toBe('SCHEMA_VIOLATION');
    expect(codeOf(() => validateMessage({ ...ok, term: 1.5 }))).toBe('SCHEMA_VIOLATION');
    // Terms and indexes are bounded far below 2^53, so term + 1 and index + n stay exact.
    expect(codeOf(() => validateMessage({ ...ok, term: Number.MAX_SAFE_INTEGER }))).toBe(
      'SCHEMA_VIOLATION',
    );
    expect(codeOf(() => validateMessage({ ...ok, term: limits.raftTermMax + 1 }))).toBe(
      'SCHEMA_VIOLATION',
    );
    expect(codeOf(() => validateMessage({ ...ok, term: limits.raftTermMax }))).toBeNull();
    expect(codeOf(() => validateMessage({ ...ok, leaderCommit: limits.raftIndexMax + 1 }))).toBe(
      'SCHEMA_VIOLATION',
    );
    expect(
      codeOf(() => validateMessage({ ...ok, prevLogIndex: limits.raftIndexMax + 1, entries: [] })),
    ).toBe('SCHEMA_VIOLATION');
    expect(codeOf(() => validateMessage({ ...ok, from: '' }))).toBe('SCHEMA_VIOLATION');
    expect(codeOf(() => validateMessage({ ...ok, entries: entriesWithTerms([1, 3], 2) }))).toBe(
      'SCHEMA_VIOLATION',
    ); // not right after prevLogIndex
    expect(codeOf(() => validateMessage({ ...ok, entries: entriesWithTerms([3, 1]) }))).toBe(
      'SCHEMA_VIOLATION',
    ); // terms going down
    expect(codeOf(() => validateMessage({ ...ok, entries: entriesWithTerms([4]) }))).toBe(
      'SCHEMA_VIOLATION',
    ); // entry term above the message term
    const badConfig = [{ index: 1, term: 1, kind: 'config', data: new Uint8Array([123]) }];
    expect(codeOf(() => validateMessage({ ...ok, entries: badConfig }))).toBe('SCHEMA_VIOLATION');
    expect(
      codeOf(() =>
        validateMessage({
          type: 'InstallSnapshot',
          from: B,
          to: A,
          term: 1,
          meta: { index: 1, term: 1, config: { voters: [], learners: [] } },
          offset: 4,
          data: new Uint8Array(8),
          done: true,
          totalBytes: 10,
        }),
      ),
    ).toBe('SCHEMA_VIOLATION'); // chunk beyond totalBytes
  });

  it('arbitrary input never crashes validation: it passes or throws a CohortError', () => {
    const types = fc.constantFrom(...raftMessageTypes, 'Bogus');
    const field = fc.oneof(
      fc.integer({ min: -3, max: 5 }),
      fc.double(),
      fc.string({ maxLength: 3 }),
      fc.boolean(),
      fc.constant(null),
      fc.uint8Array({ maxLength: 4 }),
      fc.array(fc.anything(), { maxLength: 2 }),
      fc.anything(),
    );
    const message = fc.record(
      {
        type: types,
        from: fc.constantFrom('b', '', 7),
        to: fc.constantFrom('a', 'c'),
        term: field,
        lastLogIndex: field,
        lastLogTerm: field,
        transfer: field,
        granted: field,
        prevLogIndex: field,
        prevLogTerm: field,
        entries: fc.oneof(
          field,
          fc.array(fc.record({ index: field, term: field, kind: field, data: field })),
        ),
        leaderCommit: field,
        success: field,
        matchIndex: field,
        rejectedIndex: field,
        conflictIndex: field,
        conflictTerm: field,
        commit: field,
        seq: field,
        meta: field,
        offset: field,
        data: field,
        done: field,
        totalBytes: field,
        snapshotIndex: field,
        nextOffset: field,
      },
      { requiredKeys: ['type', 'from', 'to'] },
    );
    fc.assert(
      fc.property(fc.oneof(message, fc.anything()), (m) => {
        const core = soloCore(logState([1, 1], 2));
        const before = core.status();
        try {
          core.step(m as RaftMessage);
        } catch (err) {
          expect(isCohortError(err)).toBe(true);
          expect(core.status()).toEqual(before);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('stepping a malformed or misaddressed message throws and changes nothing', () => {
    const core = soloCore(logState([1, 1], 2));
    const before = core.status();
    const bad = {
      type: 'AppendEntries',
      from: B,
      to: A,
      term: 9,
      prevLogIndex: 2,
      prevLogTerm: 1,
      entries: [{ index: 7, term: 9, kind: 'normal', data: new Uint8Array() }],
      leaderCommit: 2,
    } as unknown as RaftMessage;
    expect(codeOf(() => core.step(bad))).toBe('SCHEMA_VIOLATION');
    const misaddressed: RaftMessage = { type: 'TimeoutNow', from: B, to: C, term: 9 as Term };
    expect(codeOf(() => core.step(misaddressed))).toBe('INVALID_ARGUMENT');
    expect(core.status()).toEqual(before);
    expect(core.hasReady()).toBe(false);
  });

  it('configurations encode and decode, and garbage is refused', () => {
    const cfg = { voters: [A, B], learners: [C] };
    expect(decodeConfig(encodeConfig(cfg))).toEqual(cfg);
    expect(
      codeOf(() => decodeConfig(new TextEncoder().encode('{"voters":["a","a"],"learners":[]}'))),
    ).toBe('SCHEMA_VIOLATION');
    expect(
      codeOf(() => decodeConfig(new TextEncoder().encode('{"voters":["a"],"learners":["a"]}'))),
    ).toBe('SCHEMA_VIOLATION');
  });

  it('bad options are refused with INVALID_ARGUMENT', () => {
    const make = (o: object): RaftCore =>
      new RaftCore({ id: 'a' as NodeId, random: seededRandom(1), ...o }, logState([]));
    expect(codeOf(() => make({ electionTicks: 2, heartbeatTicks: 2 }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => make({ electionTicks: 0 }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => make({ maxInflightAppends: 1.5 }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => make({ leaseReads: true, checkQuorum: false }))).toBe('INVALID_ARGUMENT');
    const withConfig = (voters: string[], learners: string[]): RaftCore =>
      new RaftCore({ id: A, random: seededRandom(1) }, logState([]), {
        voters: voters as NodeId[],
        learners: learners as NodeId[],
      });
    expect(codeOf(() => withConfig(['a', 'a'], []))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => withConfig(['a'], ['a']))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => withConfig(['a', ''], []))).toBe('INVALID_ARGUMENT');
  });
});
