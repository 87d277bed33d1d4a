/**
 * Message codecs: typed messages to bytes and back, validated at the boundary.
 *
 * A message is a plain object with a string `type` discriminant. Each type is
 * registered with a TypeBox schema; `decode` checks the decoded value against
 * the schema of its `type`, so code behind a codec only ever sees well-formed
 * messages. Bytes are MessagePack (https://github.com/msgpack/msgpack/blob/master/spec.md,
 * encoded by msgpackr: standard maps, no extensions of our own).
 *
 * ```ts
 * import { Kind, Type } from '@sinclair/typebox';
 * const Ping = message('Ping', { seq: Type.Integer({ minimum: 0 }) });
 * const Pong = message('Pong', { seq: Type.Integer({ minimum: 0 }), note: Type.Optional(Type.String()) });
 * const codec = messageCodec([Ping, Pong]);       // Codec<{type:'Ping',seq:number} | {type:'Pong',...}>
 * const bytes = codec.encode({ type: 'Ping', seq: 1 });
 * const msg = codec.decode(bytes);                 // throws CohortError on bad bytes
 * ```
 *
 * Why TypeBox: its schemas are JSON Schema (the RPC layer publishes them in
 * service definitions), the static types come from the same object (no
 * duplicated interfaces), and `TypeCompiler` turns each schema into a
 * specialised check function, cheap enough for every message on the hot path.
 *
 * Each registered type is also compiled into its own MessagePack encoder
 * and validating decoder (schema-codec.ts): the same bytes as msgpackr's,
 * read and written directly, with msgpackr and the TypeBox check behind
 * them for whatever they do not take, so every answer (and every error) is
 * the one the generic path gives. `compiled: false` turns them off.
 */
import { Packr, Unpackr, RESERVE_START_SPACE, RESET_BUFFER_MODE } from 'msgpackr';
import type { Options } from 'msgpackr';
import type {
  Static,
  TUint8Array,
  Uint8ArrayOptions,
  TLiteral,
  TObject,
  TProperties,
  TSchema,
  ObjectOptions,
} from '@sinclair/typebox';
import { Kind, Type } from '@sinclair/typebox';
import { assert } from '../lib/assert.js';
import { CohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { FRAME_HEADER_BYTES, writeFrameHeader } from './frame.js';
import { checkMessagePack } from './msgpack-scan.js';
import {
  compileMessage,
  CompiledTypes,
  FALLBACK,
  SchemaReader,
  SchemaWriter,
} from './schema-codec.js';
import type { CompiledMessage } from './schema-codec.js';
import { compileCheck } from './schema-check.js';
import type { SchemaCheck } from './schema-check.js';

/**
 * Turns messages of type `M` into bytes and back. `decode` throws a definite
 * `CohortError`: `DECODE_ERROR` (not MessagePack, nested deeper than
 * `limits.messageNestingDepthMax`, or a MessagePack extension cohort does
 * not write), `UNKNOWN_MESSAGE` (a
 * `type` not registered) or `SCHEMA_VIOLATION` (wrong or missing fields).
 * The simulator, the transports and the RPC layer all take a `Codec`.
 */
export interface Codec<M> {
  /**
   * Serialises a message. The result may be a view into a shared arena: do
   * not write into it, and copy it if you keep it for long.
   */
  encode(message: M): Uint8Array;
  /**
   * Parses and validates bytes from the outside world. Never returns an
   * invalid message. Byte fields are copies unless `options.stable` allows
   * views (see {@link DecodeOptions}).
   */
  decode(bytes: Uint8Array, options?: DecodeOptions): M;
  /**
   * Optional: {@link decode} of the message in `bytes[start..end)`, without
   * making a view of it first (a receiver decoding many frames of one socket
   * read saves an object per message). It must decide exactly as
   * `decode(bytes.subarray(start, end), options)` would: nothing outside the
   * range is part of the message, and a value that does not end exactly at
   * `end` (short, or with bytes left over) is a DECODE_ERROR.
   */
  decodeRange?(bytes: Uint8Array, start: number, end: number, options?: DecodeOptions): M;
}

/** Options of {@link Codec.decode}. */
export interface DecodeOptions {
  /**
   * The caller promises that nothing ever writes into the memory behind
   * `bytes` (e.g. a socket read, which Node never reuses). A byte field that
   * fills at least half of that memory (its `ArrayBuffer`) is then returned
   * as a view instead of a copy: it pins at most twice its own size, while a
   * small field is still copied so it never pins a large read. Saves a copy
   * and an allocation per large field (the transports' receive path).
   */
  readonly stable?: boolean;
}

/** A codec that can also produce a whole frame (header + payload) in one allocation. */
export interface FrameCodec<M> extends Codec<M> {
  /** `encode` plus the frame header in front, without copying the payload. Throws FRAME_TOO_LARGE. */
  encodeFrame(message: M): Uint8Array;
  /**
   * Like {@link encodeFrame}, but the result is only valid until the next
   * encode by any codec (msgpackr's arena is shared): copy it at once. The
   * arena is reused instead of advanced, so the bytes are written into memory
   * that is already hot and nothing is allocated; a sender that copies each
   * frame into memory it recycles (the TCP transport) saves the cost of
   * writing every message into fresh memory. Optional: a codec without it
   * is used through {@link encodeFrame}.
   */
  encodeFrameTransient?(message: M): Uint8Array;
  /**
   * The encoding of `message` with `headBytes` (at most 255) unwritten bytes
   * in front, for a header the caller writes itself (the TCP transport's
   * length prefix in a batch frame). Like {@link encodeFrameTransient} the
   * result lives in the shared arena until the next encode by any codec:
   * copy it at once. Throws FRAME_TOO_LARGE when the message (without the
   * head) is over the codec's limit. Optional.
   */
  encodeTransient?(message: M, headBytes: number): Uint8Array;
  /**
   * Encodes `message` straight into `target[at..limit)` and returns the
   * offset after it, or -1 if it does not fit there (nothing useful was
   * written; the caller retries with more room). Throws FRAME_TOO_LARGE
   * when the message is over the codec's limit. Saves the copy out of an
   * arena (the TCP transport encodes into the memory it writes from).
   * Optional.
   */
  encodeInto?(message: M, target: Buffer, at: number, limit: number): number;
}

/** The schema of one message type: an object schema whose `type` property is a string literal. */
export type MessageSchema = TObject;

/** The schema type {@link message} builds. */
export type MessageSchemaOf<T extends string, P extends TProperties> = TObject<
  { type: TLiteral<T> } & P
>;

/**
 * Builds the schema of the message type `type` with the given fields. Extra
 * fields are refused (`additionalProperties: false`): the protocol version,
 * not lenient parsing, is how the wire format evolves.
 */
export function message<T extends string, P extends TProperties>(
  type: T,
  properties: P,
  options: ObjectOptions = {},
): MessageSchemaOf<T, P> {
  return Type.Object(
    { type: Type.Literal(type), ...properties },
    { additionalProperties: false, ...options },
  );
}

/** The union of the static types of a list of message schemas. */
export type MessageOf<S extends readonly TSchema[]> = Static<S[number]>;

/** Options of a {@link MessageCodec}. */
export interface MessageCodecOptions {
  /** Largest encoded message; bigger ones throw FRAME_TOO_LARGE on encode. Default `limits.frameBytesMax`. */
  readonly messageBytesMax?: number;
  /**
   * Deepest nesting of arrays and maps accepted on decode, checked before
   * any recursive decoding (DECODE_ERROR past it). Default `limits.messageNestingDepthMax`.
   */
  readonly nestingDepthMax?: number;
  /**
   * Also validate on encode. Off by default (the compiler types what is sent);
   * turn on in tests and the simulator to catch a bad sender at its source.
   */
  readonly validateOnEncode?: boolean;
  /**
   * Use the codecs compiled per message type (schema-codec.ts) where a type
   * compiles. Default true; false keeps msgpackr and the schema check alone
   * (the reference the compiled path is tested against, and an A/B switch).
   */
  readonly compiled?: boolean;
}

interface Entry {
  readonly schema: MessageSchema;
  readonly check: SchemaCheck;
  /** Copies the byte arrays of a decoded, validated value of this type; undefined if it can hold none. */
  readonly copy: Copier | undefined;
  /** The compiled encoder and decoder of this type (schema-codec.ts), if it compiles. */
  readonly compiled: CompiledMessage | undefined;
}

/** Decoding options shared by every codec: plain objects, no records, copied binaries. */
const unpackrOptions = {
  useRecords: false,
  mapsAsObjects: true,
  // uint64/int64 only come from foreign encoders; beyond 2^53 they decode as
  // bigint, which no integer schema accepts, instead of silently losing precision.
  // ('auto' is supported by msgpackr 2.x but missing from its typings.)
  int64AsType: 'auto' as 'bigint',
  // Binary fields are decoded as views, then copied by copyBinaries() for
  // the types that can hold them: cheaper than msgpackr's own copying.
  copyBuffers: false,
} satisfies Options;

/**
 * Size of a fresh encoding arena. msgpackr encodes into one shared buffer and
 * returns views of it, starting a new buffer when it runs low; 64 KiB
 * arenas mean one allocation per ~16 messages of 4 KiB instead of one per
 * message or two with its 8 KiB default.
 */
const ARENA_BYTES = 64 * 1024;

/** What the reader and writer point at between calls (so they pin no caller's memory). */
const EMPTY_BUFFER = Buffer.alloc(0);

/**
 * Messages shorter than this are decoded from a scratch copy (see
 * MessageCodec.decodeRange): msgpackr decodes short strings and map keys in
 * JS, with a key cache, only while its end offset is below 140 bytes.
 */
const SCRATCH_BYTES = 140;

/** An encoding arena grown for one big message is kept for the next ones only up to this size. */
const ARENA_KEEP_BYTES = 1024 * 1024;

/** Schema kinds whose values may hold byte arrays after decoding. */
const BINARY_KINDS = new Set(['Uint8Array', 'Any', 'Unknown']);

/**
 * True if `schema` can hold a byte array anywhere inside it: a byte array,
 * Any or Unknown, or an object open to properties it does not name (TypeBox
 * objects are open unless `additionalProperties: false`), at any depth.
 */
function mayHoldBinary(schema: unknown): boolean {
  if (schema === null || typeof schema !== 'object') return false;
  const kind = (schema as Record<symbol, unknown>)[Kind];
  if (typeof kind === 'string' && BINARY_KINDS.has(kind)) return true;
  if (
    kind === 'Object' &&
    (schema as { additionalProperties?: unknown }).additionalProperties === undefined
  ) {
    return true;
  }
  if ((schema as { additionalProperties?: unknown }).additionalProperties === true) return true;
  return Object.values(schema).some(mayHoldBinary);
}

/**
 * Replaces every byte array inside a decoded value by a copy, so a small
 * field never pins a whole socket chunk in memory (Raft and the KV store keep
 * decoded values for a long time); with `stable` input, a field that fills
 * half its memory or more stays a view (see DecodeOptions). `Buffer.allocUnsafe` takes small copies
 * from Node's shared pool, which is much cheaper than one allocation each.
 */
function copyBinaries(value: unknown, stable: boolean): unknown {
  if (value instanceof Uint8Array) {
    // A stable field that fills half its memory or more may stay a view (see DecodeOptions).
    if (stable && value.byteLength * 2 >= value.buffer.byteLength) return value;
    const copy = Buffer.allocUnsafe(value.length);
    copy.set(value);
    return copy;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = copyBinaries(value[i], stable);
    return value;
  }
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    for (const key of Object.keys(obj)) obj[key] = copyBinaries(obj[key], stable);
  }
  return value;
}

/** Copies the byte arrays inside a value that passed its schema's check (see {@link copierOf}). */
type Copier = (value: unknown, stable: boolean) => unknown;

/** A short-lived byte field (see {@link shortLivedBytes}): a plain view of stable input, else a copy. */
const keepView: Copier = (value, stable) =>
  stable && value instanceof Uint8Array
    ? new Uint8Array(value.buffer, value.byteOffset, value.length)
    : copyBytes(value, stable);

/**
 * A byte field whose receiver does not keep it beyond handling its message
 * (code that keeps it copies it first): decoded from stable input (a
 * socket read, see DecodeOptions) as a view of the bytes it arrived in,
 * whatever its size, instead of a copy. The view is always valid (a socket
 * read's memory is never reused), but while it lives it keeps its whole
 * read (up to 64 KiB) alive, so only fields that are dropped soon may say
 * so; by default small fields are copied. The view is a plain Uint8Array,
 * not a Buffer (making one costs a third as much; a receiver that wants
 * Buffer methods wraps it with `Buffer.from(v.buffer, v.byteOffset,
 * v.length)`), while a copy (input not stable) may be a Buffer. The wire
 * format is unchanged.
 */
export function shortLivedBytes(options: Uint8ArrayOptions = {}): TUint8Array {
  return Type.Uint8Array({ ...options, shortLived: true });
}

/** A copy of one byte field (or the view itself, see {@link copyBinaries}). */
const copyBytes: Copier = (value, stable) =>
  value instanceof Uint8Array ? copyBinaries(value, stable) : value;

/**
 * The copier of values of `schema`, or undefined if they can hold no byte
 * array. Runs only on values its schema's check accepted, so it visits just
 * the places a byte array may be: a closed object's properties that may hold
 * one, an array's items; any other schema that may (unions, records, open
 * objects, Any/Unknown) falls back to walking the whole value with
 * {@link copyBinaries}. Saves enumerating every key of every message.
 */
function copierOf(schema: TSchema): Copier | undefined {
  if (!mayHoldBinary(schema)) return undefined;
  const kind = (schema as unknown as Record<symbol, unknown>)[Kind];
  if (kind === 'Uint8Array') {
    return (schema as { shortLived?: unknown }).shortLived === true ? keepView : copyBytes;
  }
  if (kind === 'Array') {
    const items = copierOf((schema as unknown as { items: TSchema }).items);
    if (items === undefined) return undefined;
    return (value, stable) => {
      const array = value as unknown[];
      for (let i = 0; i < array.length; i++) array[i] = items(array[i], stable);
      return array;
    };
  }
  const object = schema as Partial<TObject>;
  if (
    kind === 'Object' &&
    object.additionalProperties === false &&
    object.properties !== undefined
  ) {
    const fields: { key: string; copy: Copier }[] = [];
    for (const [key, property] of Object.entries(object.properties)) {
      const copy = copierOf(property);
      if (copy !== undefined) fields.push({ key, copy });
    }
    return (value, stable) => {
      const obj = value as Record<string, unknown>;
      for (const { key, copy } of fields) {
        const field = obj[key];
        if (field !== undefined) obj[key] = copy(field, stable);
      }
      return obj;
    };
  }
  return copyBinaries;
}

const packrOptions = {
  useRecords: false,
  moreTypes: false,
  structuredClone: false,
  bundleStrings: false,
  variableMapSize: true,
} satisfies Options;

/**
 * The msgpackr-backed {@link Codec} with a registry of message types (see the
 * file example). Immutable: {@link with} returns a codec with more types.
 */
export class MessageCodec<M extends { readonly type: string }> implements FrameCodec<M> {
  private readonly entries: ReadonlyMap<string, Entry>;
  private readonly packr = new Packr(packrOptions);
  private readonly unpackr = new Unpackr(unpackrOptions);
  /** The range argument of every unpack (reused: decoding allocates no options object). */
  private readonly range = { start: 0, end: 0 };
  /** Where small messages are decoded from (see decodeRange). */
  private readonly scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
  private readonly messageBytesMax: number;
  private readonly nestingDepthMax: number;
  private readonly validateOnEncode: boolean;
  private readonly options: MessageCodecOptions;
  /** The compiled types, found by their `type` (see decodeCompiled). */
  private readonly compiledByType = new CompiledTypes();
  private readonly reader = new SchemaReader();
  /** The last stable input decoded, its memory and view threshold (see decodeCompiled; a weak hold would cost more). */
  private viewSource: Uint8Array = EMPTY_BUFFER;
  private viewBuffer: ArrayBufferLike = EMPTY_BUFFER.buffer;
  private viewOffset = 0;
  private viewBytesMin = Infinity;
  private readonly writer = new SchemaWriter();
  /**
   * Where the compiled encoders write (as msgpackr does into its own): an
   * encode is cut from it and advances `arenaUsed`, a transient one does
   * not (the next encode writes over it); replaced by a fresh one when full.
   */
  private arena: Buffer = Buffer.allocUnsafeSlow(ARENA_BYTES);
  private arenaUsed = 0;

  constructor(schemas: readonly MessageSchema[], options: MessageCodecOptions = {}) {
    const entries = new Map<string, Entry>();
    for (const schema of schemas) {
      const typeSchema = schema.properties.type as { const?: unknown } | undefined;
      const type = typeSchema?.const;
      assert(
        typeof type === 'string',
        'a message schema needs a string literal `type` property (use message())',
      );
      assert(!entries.has(type), `message type ${type} registered twice`);
      entries.set(type, {
        schema,
        check: compileCheck(schema),
        copy: copierOf(schema),
        compiled:
          options.compiled === false
            ? undefined
            : compileMessage(schema, type, {
                packr: this.packr,
                unpackr: this.unpackr,
                copierOf,
              }),
      });
    }
    this.entries = entries;
    this.options = options;
    for (const entry of entries.values()) {
      if (entry.compiled !== undefined) this.compiledByType.add(entry.compiled);
    }
    // msgpackr's arena is shared by all Packr instances; start a roomy one.
    this.packr.useBuffer(Buffer.allocUnsafeSlow(ARENA_BYTES));
    this.messageBytesMax = options.messageBytesMax ?? limits.frameBytesMax;
    this.nestingDepthMax = options.nestingDepthMax ?? limits.messageNestingDepthMax;
    this.validateOnEncode = options.validateOnEncode ?? false;
  }

  /** The registered message types, in registration order. */
  get types(): readonly string[] {
    return [...this.entries.keys()];
  }

  /** The registered types that have a compiled encoder and decoder (schema-codec.ts). */
  get compiledTypes(): readonly string[] {
    return [...this.entries].filter(([, e]) => e.compiled !== undefined).map(([t]) => t);
  }

  /** The schema registered for `type` (JSON Schema; the RPC layer publishes it). */
  schemaOf(type: string): MessageSchema | undefined {
    return this.entries.get(type)?.schema;
  }

  /** A new codec that knows this codec's types plus `schemas`. */
  with<const S extends readonly MessageSchema[]>(
    schemas: S,
  ): MessageCodec<M | Extract<MessageOf<S>, { readonly type: string }>> {
    return new MessageCodec(
      [...[...this.entries.values()].map((e) => e.schema), ...schemas],
      this.options,
    );
  }

  encode(msg: M): Uint8Array {
    const compiled = this.encodeCompiled(msg, 0, false);
    if (compiled !== undefined) return compiled;
    const bytes = this.pack(msg, 0);
    if (bytes.length > this.messageBytesMax) throw tooLarge(bytes.length, this.messageBytesMax);
    return bytes;
  }

  encodeFrame(msg: M): Uint8Array {
    const compiled = this.encodeCompiled(msg, FRAME_HEADER_BYTES, false);
    const frame = compiled ?? this.pack(msg, RESERVE_START_SPACE | FRAME_HEADER_BYTES);
    writeFrameHeader(frame, this.messageBytesMax);
    return frame;
  }

  encodeFrameTransient(msg: M): Uint8Array {
    const compiled = this.encodeCompiled(msg, FRAME_HEADER_BYTES, true);
    const frame =
      compiled ?? this.pack(msg, RESET_BUFFER_MODE | RESERVE_START_SPACE | FRAME_HEADER_BYTES);
    writeFrameHeader(frame, this.messageBytesMax);
    return frame;
  }

  encodeTransient(msg: M, headBytes: number): Uint8Array {
    assert(headBytes >= 0 && headBytes <= 0xff, 'encodeTransient: headBytes in 0..255');
    const compiled = this.encodeCompiled(msg, headBytes, true);
    const out = compiled ?? this.pack(msg, RESET_BUFFER_MODE | RESERVE_START_SPACE | headBytes);
    const bytes = out.length - headBytes;
    if (bytes > this.messageBytesMax) throw tooLarge(bytes, this.messageBytesMax);
    return out;
  }

  encodeInto(msg: M, target: Buffer, at: number, limit: number): number {
    assert(0 <= at && at <= limit && limit <= target.length, 'encodeInto: range outside target');
    const entry = this.entryOf(msg);
    if (this.validateOnEncode && !entry.check.Check(msg)) throw violation(entry, msg);
    const compiled = entry.compiled;
    if (compiled !== undefined) {
      const w = this.writer;
      w.buf = target;
      w.pos = at;
      w.limit = Math.min(limit, at + this.messageBytesMax);
      w.full = false;
      const done = compiled.encode(w, msg);
      const end = w.pos;
      w.buf = EMPTY_BUFFER;
      if (done) return end;
      // No room, or over the limit (then the generic path below throws FRAME_TOO_LARGE).
      if (w.full && limit - at < this.messageBytesMax) return -1;
    }
    const out = this.encodeTransient(msg, 0);
    if (out.length > limit - at) return -1;
    target.set(out, at);
    return at + out.length;
  }

  /**
   * The compiled encoding of `msg` with `head` free bytes in front, in the
   * arena (a transient one is written over by the next encode); undefined when the type did not compile or the value is
   * not of its schema's shape (then msgpackr encodes it, as before).
   * Throws FRAME_TOO_LARGE over the limit.
   */
  private encodeCompiled(msg: M, head: number, transient: boolean): Uint8Array | undefined {
    const entry = this.entryOf(msg);
    if (this.validateOnEncode && !entry.check.Check(msg)) throw violation(entry, msg);
    const compiled = entry.compiled;
    if (compiled === undefined) return undefined;
    const w = this.writer;
    let buf = this.arena;
    let start = this.arenaUsed;
    for (;;) {
      w.buf = buf;
      w.pos = start + head;
      w.limit = buf.length;
      w.full = false;
      const done = compiled.encode(w, msg);
      const end = w.pos;
      w.buf = EMPTY_BUFFER;
      if (done) {
        if (end - start - head > this.messageBytesMax) {
          throw tooLarge(end - start - head, this.messageBytesMax);
        }
        // A buffer grown for this message becomes the arena only if small.
        if (buf === this.arena || buf.length <= ARENA_KEEP_BYTES) {
          this.arena = buf;
          // A transient encoding does not advance: the next encode writes over it.
          this.arenaUsed = transient ? start : end;
        }
        return buf.subarray(start, end);
      }
      if (!w.full) return undefined;
      const room = buf.length - start;
      if (room > this.messageBytesMax + head + 64) return undefined; // too large: pack() says so
      // More room: a fresh buffer, at least twice what did not suffice.
      buf = Buffer.allocUnsafeSlow(Math.max(ARENA_BYTES, 2 * room));
      start = 0;
    }
  }

  private entryOf(msg: M): Entry {
    const type = msg.type;
    // A sender usually sends runs of one type: the last one's entry without a map lookup.
    if (type === this.lastType) return this.lastEntry as Entry;
    const entry = this.entries.get(type);
    // The message is built only on failure: this runs for every message sent.
    if (entry === undefined) assert(false, `encoding unregistered message type ${String(type)}`);
    this.lastType = type;
    this.lastEntry = entry;
    return entry;
  }

  /** The type {@link entryOf} found last, and its entry. */
  private lastType: string | undefined;
  private lastEntry: Entry | undefined;

  /**
   * The compiled decoder's answer for `bytes[start..end)`: the message, or
   * FALLBACK (the first key is not `type`, the type did not compile or is
   * unknown, or the decoder is not sure: the generic path decides).
   */
  private decodeCompiled(bytes: Uint8Array, start: number, end: number, stable: boolean): unknown {
    const r = this.reader;
    r.bytes = bytes;
    r.pos = start;
    r.end = end;
    if (!stable) r.viewBytesMin = Infinity;
    else {
      if (bytes !== this.viewSource) {
        // Once per socket read, not per message: `.buffer` is not free.
        this.viewSource = bytes;
        this.viewBuffer = bytes.buffer;
        this.viewOffset = bytes.byteOffset;
        this.viewBytesMin = Math.ceil(bytes.buffer.byteLength / 2);
      }
      r.viewBytesMin = this.viewBytesMin;
      r.viewBuffer = this.viewBuffer;
      r.viewOffset = this.viewOffset;
    }
    r.depthMax = this.nestingDepthMax;
    const value = this.compiledByType.decode(r);
    r.bytes = EMPTY_BUFFER;
    return value;
  }

  decode(bytes: Uint8Array, options?: DecodeOptions): M {
    return this.decodeRange(bytes, 0, bytes.length, options);
  }

  decodeRange(bytes: Uint8Array, start: number, end: number, options?: DecodeOptions): M {
    assert(0 <= start && start <= end && end <= bytes.length, 'decodeRange: range outside bytes');
    if (start === end) {
      throw new CohortError('DECODE_ERROR', 'not a MessagePack message: no bytes', {
        details: { bytes: 0 },
      });
    }
    // The compiled decoder of the message's type first; the generic path
    // below for whatever it does not take (and for every error).
    const fast = this.decodeCompiled(bytes, start, end, options?.stable === true);
    if (fast !== FALLBACK) return fast as M;
    // Bounds nesting (and refuses foreign extensions) before msgpackr recurses.
    checkMessagePack(bytes, this.nestingDepthMax, start, end);
    const length = end - start;
    let stable = options?.stable === true;
    let value: unknown;
    try {
      if (length < SCRATCH_BYTES) {
        // A small message is copied into a scratch buffer and decoded from
        // offset 0: msgpackr's fast paths for short strings and cached keys
        // look at the absolute end offset, which a range deep inside a
        // socket read defeats. Its byte fields are then copied (not stable).
        const scratch = this.scratch;
        for (let i = 0; i < length; i++) scratch[i] = bytes[start + i] as number;
        stable = false;
        value = this.unpackr.unpack(scratch, length);
      } else {
        // msgpackr reads bytes[start..end) and throws unless the value ends exactly at `end`.
        const range = this.range;
        range.start = start;
        range.end = end;
        value = this.unpackr.unpack(bytes, range);
      }
    } catch (err) {
      throw new CohortError('DECODE_ERROR', `not a MessagePack message: ${errorText(err)}`, {
        cause: err,
        details: { bytes: length },
      });
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new CohortError(
        'SCHEMA_VIOLATION',
        `a message must be an object, got ${kindOf(value)}`,
      );
    }
    const type = (value as { type?: unknown }).type;
    if (typeof type !== 'string') {
      throw new CohortError('SCHEMA_VIOLATION', 'a message needs a string `type` field', {
        details: { got: kindOf(type) },
      });
    }
    const entry = this.entries.get(type);
    if (entry === undefined) {
      throw new CohortError('UNKNOWN_MESSAGE', `unknown message type ${JSON.stringify(type)}`, {
        details: { type },
      });
    }
    if (!entry.check.Check(value)) throw violation(entry, value);
    return (entry.copy === undefined ? value : entry.copy(value, stable)) as M;
  }

  private pack(msg: M, encodeOptions: number): Uint8Array {
    const entry = this.entryOf(msg);
    if (this.validateOnEncode && !entry.check.Check(msg)) throw violation(entry, msg);
    try {
      return this.packr.pack(msg, encodeOptions);
    } catch (err) {
      throw new CohortError('INVALID_ARGUMENT', `cannot encode ${msg.type}: ${errorText(err)}`, {
        cause: err,
      });
    }
  }
}

/** Builds a {@link MessageCodec} for the union of the given message schemas. */
export function messageCodec<const S extends readonly MessageSchema[]>(
  schemas: S,
  options: MessageCodecOptions = {},
): MessageCodec<Extract<MessageOf<S>, { readonly type: string }>> {
  return new MessageCodec(schemas, options);
}

function violation(entry: Entry, value: unknown): CohortError {
  const first = entry.check.Errors(value).First();
  const type = String(entry.schema.properties.type?.const);
  const path = first?.path ?? '';
  return new CohortError(
    'SCHEMA_VIOLATION',
    `${type}${path === '' ? '' : ` at ${path}`}: ${first?.message ?? 'does not match its schema'}`,
    { details: { type, path } },
  );
}

function tooLarge(bytes: number, limit: number): CohortError {
  return new CohortError(
    'FRAME_TOO_LARGE',
    `message of ${bytes} bytes exceeds the limit of ${limit}`,
    { details: { bytes, limit } },
  );
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (value instanceof Uint8Array) return 'bytes';
  return typeof value;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
