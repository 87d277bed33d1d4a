/**
 * The wire codec of the Raft protocol: every {@link RaftMessage} as a
 * registered, schema-checked MessagePack message, so a {@link TcpTransport}
 * (or the memory twin) can carry the core's messages between node processes.
 *
 * ```ts
 * import { raftMessagesCodec } from './raft/raft-messages-codec.js';
 * const transport = await TcpTransport.start<RaftMessage>({ self, clusterId, listen, peers, codec: raftMessagesCodec() });
 * const m = raftMessagesCodec().decode(bytes);   // a well-formed RaftMessage, or a definite CohortError
 * ```
 *
 * Decoding checks twice: the TypeBox schemas of {@link raftMessageSchemas}
 * (field types, no unknown fields, terms at most `limits.raftTermMax` and
 * indexes at most `limits.raftIndexMax`; the registry of src/wire/codec.ts) and then
 * the core's own {@link validateMessage} (contiguous entries, entry terms not
 * above the message term, decodable configurations, snapshot chunk bounds).
 * Either failure is a definite `SCHEMA_VIOLATION` / `UNKNOWN_MESSAGE` /
 * `DECODE_ERROR`, and the transport drops the connection that sent it.
 *
 * The schemas are exported so a node that multiplexes Raft with other
 * protocols on one transport can register them in its own codec
 * (`codec.with(raftMessageSchemas)`); the core validates every stepped
 * message again in any case.
 */
import { Type } from '@sinclair/typebox';
import { limits } from '../lib/limits.js';
import { MessageCodec, message } from '../wire/codec.js';
import type {
  DecodeOptions,
  FrameCodec,
  MessageCodecOptions,
  MessageSchema,
} from '../wire/codec.js';
import { validateMessage } from './core/messages.js';
import type { RaftMessage } from './core/messages.js';

const Id = Type.String({ minLength: 1, maxLength: limits.idBytesMax });
const Nat = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
/** A term: bounded far below 2^53 (limits.raftTermMax), so term + 1 is always exact. */
const TermField = Type.Integer({ minimum: 0, maximum: limits.raftTermMax });
/** A log index (limits.raftIndexMax). */
const IndexField = Type.Integer({ minimum: 0, maximum: limits.raftIndexMax });
const Base = { from: Id, to: Id, term: TermField };

// Raft Figure 2: one log entry (index, term, command); kinds as in core/types.ts.
const EntrySchema = Type.Object(
  {
    index: IndexField,
    term: TermField,
    kind: Type.Union([Type.Literal('normal'), Type.Literal('noop'), Type.Literal('config')]),
    data: Type.Uint8Array({ maxByteLength: limits.raftEntryBytesMax }),
  },
  { additionalProperties: false },
);

const ConfigSchema = Type.Object(
  {
    voters: Type.Array(Id),
    learners: Type.Array(Id),
    votersOutgoing: Type.Optional(Type.Array(Id)),
  },
  { additionalProperties: false },
);

// Raft §7: the last entry a snapshot covers and the configuration as of it.
const MetaSchema = Type.Object(
  { index: IndexField, term: TermField, config: ConfigSchema },
  { additionalProperties: false },
);

/** The schema of every Raft message type (see core/messages.ts for what each field means). */
export const raftMessageSchemas: readonly MessageSchema[] = [
  message('RequestVote', {
    ...Base,
    lastLogIndex: IndexField,
    lastLogTerm: TermField,
    transfer: Type.Boolean(),
  }),
  message('RequestVoteResponse', { ...Base, granted: Type.Boolean() }),
  message('PreVote', { ...Base, lastLogIndex: IndexField, lastLogTerm: TermField }),
  message('PreVoteResponse', { ...Base, granted: Type.Boolean() }),
  message('AppendEntries', {
    ...Base,
    prevLogIndex: IndexField,
    prevLogTerm: TermField,
    entries: Type.Array(EntrySchema),
    leaderCommit: IndexField,
  }),
  message('AppendEntriesResponse', {
    ...Base,
    success: Type.Boolean(),
    matchIndex: IndexField,
    rejectedIndex: IndexField,
    conflictIndex: IndexField,
    conflictTerm: TermField,
  }),
  message('Heartbeat', { ...Base, commit: IndexField, seq: Nat }),
  message('HeartbeatResponse', { ...Base, seq: Nat }),
  message('InstallSnapshot', {
    ...Base,
    meta: MetaSchema,
    offset: Nat,
    data: Type.Uint8Array({ maxByteLength: limits.snapshotChunkBytesMax }),
    done: Type.Boolean(),
    totalBytes: Nat,
  }),
  message('InstallSnapshotResponse', {
    ...Base,
    snapshotIndex: IndexField,
    nextOffset: Nat,
    done: Type.Boolean(),
  }),
  message('TimeoutNow', { ...Base }),
];

/**
 * A {@link FrameCodec} for {@link RaftMessage}: the registry of
 * {@link raftMessageSchemas} plus the core's semantic checks on decode.
 */
export class RaftMessagesCodec implements FrameCodec<RaftMessage> {
  private readonly inner: MessageCodec<RaftMessage>;

  constructor(options: MessageCodecOptions = {}) {
    this.inner = new MessageCodec<RaftMessage>(raftMessageSchemas, options);
  }

  /** Serialises a message (a view into a shared arena; see {@link FrameCodec}). */
  encode(m: RaftMessage): Uint8Array {
    return this.inner.encode(m);
  }

  /** Serialises a message with its frame header in front (one allocation). */
  encodeFrame(m: RaftMessage): Uint8Array {
    return this.inner.encodeFrame(m);
  }

  /**
   * Serialises a message with its frame header into the codec's reused
   * buffer: valid only until the next encode (the TCP transport copies it at once).
   */
  encodeFrameTransient(m: RaftMessage): Uint8Array {
    return this.inner.encodeFrameTransient(m);
  }

  /**
   * Serialises a message after `headBytes` free bytes, into the codec's
   * reused buffer: valid only until the next encode (the TCP transport
   * copies it at once, with its length prefix in front).
   */
  encodeTransient(m: RaftMessage, headBytes: number): Uint8Array {
    return this.inner.encodeTransient(m, headBytes);
  }

  /** Serialises a message into `target[at..limit)`: its end, or -1 if it does not fit (see FrameCodec). */
  encodeInto(m: RaftMessage, target: Buffer, at: number, limit: number): number {
    return this.inner.encodeInto(m, target, at, limit);
  }

  /** Parses and validates bytes from a peer; throws a definite CohortError for anything malformed. */
  decode(bytes: Uint8Array, options?: DecodeOptions): RaftMessage {
    const m: unknown = this.inner.decode(bytes, options);
    validateMessage(m);
    return m;
  }

  /** {@link decode} of `bytes[start..end)` without a view first (see Codec.decodeRange). */
  decodeRange(bytes: Uint8Array, start: number, end: number, options?: DecodeOptions): RaftMessage {
    const m: unknown = this.inner.decodeRange(bytes, start, end, options);
    validateMessage(m);
    return m;
  }
}

/** A new {@link RaftMessagesCodec} (cheap; one per transport is fine). */
export function raftMessagesCodec(options: MessageCodecOptions = {}): RaftMessagesCodec {
  return new RaftMessagesCodec(options);
}
