/**
 * The Raft wire codec: every message type round-trips; malformed input is a
 * definite CohortError (schema, semantic checks of the core, bad bytes) and
 * never a crash.
 */
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { CohortError } from '../../../src/lib/errors.js';
import { limits } from '../../../src/lib/limits.js';
import type { LogIndex, NodeId, Term } from '../../../src/lib/ids.js';
import { encodeConfig } from '../../../src/raft/core/config.js';
import { raftMessageTypes } from '../../../src/raft/core/messages.js';
import type { RaftMessage } from '../../../src/raft/core/messages.js';
import { raftMessagesCodec } from '../../../src/raft/raft-messages-codec.js';

const a = 'n1' as NodeId;
const b = 'n2' as NodeId;
const t = (n: number): Term => n as Term;
const i = (n: number): LogIndex => n as LogIndex;
const base = { from: a, to: b, term: t(3) };

const samples: RaftMessage[] = [
  { ...base, type: 'RequestVote', lastLogIndex: i(7), lastLogTerm: t(2), transfer: false },
  { ...base, type: 'RequestVoteResponse', granted: true },
  { ...base, type: 'PreVote', lastLogIndex: i(7), lastLogTerm: t(2) },
  { ...base, type: 'PreVoteResponse', granted: false },
  {
    ...base,
    type: 'AppendEntries',
    prevLogIndex: i(4),
    prevLogTerm: t(2),
    leaderCommit: i(4),
    entries: [
      { index: i(5), term: t(3), kind: 'noop', data: new Uint8Array() },
      { index: i(6), term: t(3), kind: 'normal', data: new Uint8Array([1, 2, 3]) },
      {
        index: i(7),
        term: t(3),
        kind: 'config',
        data: encodeConfig({ voters: [a, b], learners: [] }),
      },
    ],
  },
  {
    ...base,
    type: 'AppendEntriesResponse',
    success: false,
    matchIndex: i(0),
    rejectedIndex: i(4),
    conflictIndex: i(3),
    conflictTerm: t(1),
  },
  { ...base, type: 'Heartbeat', commit: i(9), seq: 12 },
  { ...base, type: 'HeartbeatResponse', seq: 12 },
  {
    ...base,
    type: 'InstallSnapshot',
    meta: { index: i(100), term: t(2), config: { voters: [a, b], learners: ['n3' as NodeId] } },
    offset: 0,
    data: new Uint8Array([9, 9]),
    done: true,
    totalBytes: 2,
  },
  { ...base, type: 'InstallSnapshotResponse', snapshotIndex: i(100), nextOffset: 2, done: true },
  { ...base, type: 'TimeoutNow' },
];

const packr = new Packr({ useRecords: false });

/** The message with every byte array as a plain Uint8Array (decoding yields Buffers). */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Uint8Array.from(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

function decodeError(bytes: Uint8Array): CohortError {
  try {
    raftMessagesCodec().decode(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(CohortError);
    expect((err as CohortError).definite).toBe(true);
    return err as CohortError;
  }
  throw new Error('decoded');
}

describe('raftMessagesCodec', () => {
  it('round-trips one message of every type', () => {
    expect(new Set(samples.map((m) => m.type))).toEqual(new Set(raftMessageTypes));
    const codec = raftMessagesCodec();
    for (const m of samples) {
      const back = codec.decode(codec.encode(m));
      expect(plain(back)).toEqual(plain(m));
    }
  });

  it('encodes frames whose payload decodes to the same message', () => {
    const codec = raftMessagesCodec();
    const m = samples[4] as RaftMessage;
    const frame = codec.encodeFrame(m);
    expect(plain(codec.decode(frame.subarray(8)))).toEqual(plain(m));
  });

  it('refuses unknown fields, wrong types and unknown message types', () => {
    expect(decodeError(packr.pack({ ...samples[1], extra: 1 })).code).toBe('SCHEMA_VIOLATION');
    expect(decodeError(packr.pack({ ...samples[1], granted: 'yes' })).code).toBe(
      'SCHEMA_VIOLATION',
    );
    expect(decodeError(packr.pack({ ...base, term: -1, type: 'TimeoutNow' })).code).toBe(
      'SCHEMA_VIOLATION',
    );
    expect(decodeError(packr.pack({ ...base, type: 'Gossip' })).code).toBe('UNKNOWN_MESSAGE');
    expect(decodeError(new Uint8Array([0x85, 0xa1])).code).toBe('DECODE_ERROR');
  });

  it("applies the core's semantic checks: contiguous entries, terms not above the message's", () => {
    const ae = samples[4] as Extract<RaftMessage, { type: 'AppendEntries' }>;
    const gap = { ...ae, entries: [ae.entries[0], ae.entries[2]] };
    expect(decodeError(packr.pack(gap)).code).toBe('SCHEMA_VIOLATION');
    const future = { ...ae, entries: [{ ...ae.entries[0], term: 9 }] };
    expect(decodeError(packr.pack(future)).code).toBe('SCHEMA_VIOLATION');
    const badConfig = {
      ...ae,
      entries: [{ ...ae.entries[0], kind: 'config', data: new Uint8Array([1]) }],
    };
    expect(decodeError(packr.pack(badConfig)).code).toBe('SCHEMA_VIOLATION');
  });

  it('bounds terms by raftTermMax and indexes by raftIndexMax in every message type', () => {
    const codec = raftMessagesCodec();
    // The probe's term: accepted up to 2^53 - 1 before, it wedged a cluster for good.
    for (const m of samples) {
      expect(decodeError(packr.pack({ ...m, term: Number.MAX_SAFE_INTEGER })).code).toBe(
        'SCHEMA_VIOLATION',
      );
      expect(decodeError(packr.pack({ ...m, term: limits.raftTermMax + 1 })).code).toBe(
        'SCHEMA_VIOLATION',
      );
    }
    const top = { ...base, term: t(limits.raftTermMax) };
    expect(codec.decode(packr.pack({ ...top, type: 'TimeoutNow' }))).toMatchObject(top);
    const rv = samples[0] as RaftMessage;
    for (const field of ['lastLogIndex', 'lastLogTerm']) {
      const max = field.endsWith('Term') ? limits.raftTermMax : limits.raftIndexMax;
      expect(decodeError(packr.pack({ ...rv, [field]: max + 1 })).code).toBe('SCHEMA_VIOLATION');
      expect(codec.decode(packr.pack({ ...rv, term: max, [field]: max }))).toBeDefined();
    }
    const aer = samples.find((m) => m.type === 'AppendEntriesResponse') as RaftMessage;
    expect(decodeError(packr.pack({ ...aer, matchIndex: limits.raftIndexMax + 1 })).code).toBe(
      'SCHEMA_VIOLATION',
    );
    const hb = samples.find((m) => m.type === 'Heartbeat') as RaftMessage;
    expect(decodeError(packr.pack({ ...hb, commit: Number.MAX_SAFE_INTEGER })).code).toBe(
      'SCHEMA_VIOLATION',
    );
  });

  it('never throws anything but a definite CohortError on arbitrary bytes or mutated messages', () => {
    const codec = raftMessagesCodec();
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc
            .tuple(fc.constantFrom(...samples), fc.nat(), fc.integer({ min: 0, max: 255 }))
            .map(([m, at, v]) => {
              const bytes = codec.encode(m).slice();
              if (bytes.length > 0) bytes[at % bytes.length] = v;
              return bytes;
            }),
        ),
        (bytes) => {
          try {
            codec.decode(bytes);
          } catch (err) {
            if (!(err instanceof CohortError) || !err.definite) throw err;
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
