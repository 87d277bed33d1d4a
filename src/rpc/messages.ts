/**
 * The RPC and pub/sub wire messages, in the wire registry style (one TypeBox
 * schema per `type`, validated by the codec on receipt). The payloads are
 * `unknown` here; the service definition's own schemas check them, so a
 * malformed payload gets INVALID_ARGUMENT with its field path instead of a
 * closed connection.
 *
 * ```ts
 * const t = net.transport(nodeId('a'), rpcCodec);         // Transport<RpcWireMessage>
 * t.send(nodeId('b'), { type: 'RpcRequest', id: 1, service: 'ListMax', method: 'listMax',
 *   timeoutMs: 5000, payload: { values: [1, 2] } });
 * ```
 *
 * Call protocol (one request id per call, unique per client node):
 * - unary: `RpcRequest` → `RpcResponse` | `RpcError` (a response may carry
 *   reply metadata, bounded like call metadata);
 * - server stream: `RpcRequest{credit}` → `RpcStreamItem`* → `RpcStreamEnd` | `RpcError`;
 *   the client returns credit with `RpcCredit` as it consumes items (the
 *   server never has more than the credit outstanding: backpressure);
 * - either side may stop a call: the client sends `RpcCancel`, the server
 *   sends `RpcError` (code CANCELLED, TIMEOUT, ...).
 * Deadlines travel as a relative `timeoutMs` (no clock agreement needed); the
 * server starts its own timer when the request arrives.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { CohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { message, messageCodec } from '../wire/codec.js';

const Id = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Name = Type.String({ minLength: 1, maxLength: limits.rpcNameCharsMax });
const Meta = Type.Record(
  Type.String({ maxLength: limits.rpcMetaKeyCharsMax }),
  Type.String({ maxLength: limits.rpcMetaValueCharsMax }),
  { maxProperties: limits.rpcMetaEntriesMax },
);

/**
 * Why call metadata would be refused by a receiver's schema, or undefined if
 * it is fine: a definite INVALID_ARGUMENT naming the entry (`details.path`
 * is `/meta/<key>`, `details.limit` the bound). Callers check before sending,
 * so bad metadata fails the one call instead of the connection it travels on.
 */
export function metaError(meta: Readonly<Record<string, unknown>>): CohortError | undefined {
  const keys = Object.keys(meta);
  if (keys.length > limits.rpcMetaEntriesMax) {
    return new CohortError(
      'INVALID_ARGUMENT',
      `call metadata has ${keys.length} entries, over the limit of ${limits.rpcMetaEntriesMax}`,
      { details: { path: '/meta', limit: limits.rpcMetaEntriesMax } },
    );
  }
  for (const key of keys) {
    const value = meta[key];
    if (key.length > limits.rpcMetaKeyCharsMax) {
      return new CohortError(
        'INVALID_ARGUMENT',
        `call metadata key of ${key.length} characters, over the limit of ${limits.rpcMetaKeyCharsMax}`,
        { details: { path: '/meta', limit: limits.rpcMetaKeyCharsMax } },
      );
    }
    if (typeof value !== 'string') {
      return new CohortError('INVALID_ARGUMENT', `call metadata ${key} must be a string`, {
        details: { path: `/meta/${key}` },
      });
    }
    if (value.length > limits.rpcMetaValueCharsMax) {
      return new CohortError(
        'INVALID_ARGUMENT',
        `call metadata ${key} has ${value.length} characters, over the limit of ${limits.rpcMetaValueCharsMax}`,
        { details: { path: `/meta/${key}`, limit: limits.rpcMetaValueCharsMax } },
      );
    }
  }
  return undefined;
}

/** Starts a call. `credit` is present (and > 0) exactly for server-streaming calls. */
export const RpcRequest = message('RpcRequest', {
  id: Id,
  service: Name,
  method: Name,
  timeoutMs: Type.Integer({ minimum: 1, maximum: limits.rpcDeadlineMsMax }),
  payload: Type.Unknown(),
  credit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
  meta: Type.Optional(Meta),
});

/** The successful result of a unary call, with the handler's reply metadata if it set any. */
export const RpcResponse = message('RpcResponse', {
  id: Id,
  payload: Type.Unknown(),
  meta: Type.Optional(Meta),
});

/** A failed call: the code, whether it is definite, and details (e.g. the field path). */
export const RpcError = message('RpcError', {
  id: Id,
  code: Type.String({ maxLength: 64 }),
  message: Type.String({ maxLength: 16 * 1024 }),
  definite: Type.Boolean(),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

/** One item of a server stream. */
export const RpcStreamItem = message('RpcStreamItem', { id: Id, payload: Type.Unknown() });

/** The normal end of a server stream. */
export const RpcStreamEnd = message('RpcStreamEnd', { id: Id });

/** The client stops a call (cancellation or its deadline passed); the server aborts the handler. */
export const RpcCancel = message('RpcCancel', { id: Id });

/** The client consumed `credit` more items of a stream; the server may send that many more. */
export const RpcCredit = message('RpcCredit', {
  id: Id,
  credit: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
});

/** A subscriber asks a publisher node for a topic's messages. */
export const PsSubscribe = message('PsSubscribe', {
  topic: Name,
  atLeastOnce: Type.Boolean(),
});

/** A subscriber no longer wants a topic. */
export const PsUnsubscribe = message('PsUnsubscribe', { topic: Name });

/**
 * One published message. `seq` counts per (publisher, topic, subscriber);
 * `floor` (at-least-once only) is the lowest seq the publisher still holds:
 * a subscriber that expected less lost the messages in between (buffer overflow).
 */
export const PsMessage = message('PsMessage', {
  topic: Name,
  /** The publisher's incarnation: a restarted publisher numbers from 0 again. */
  epoch: Id,
  seq: Id,
  floor: Type.Optional(Id),
  payload: Type.Unknown(),
});

/** Cumulative acknowledgement: every message of `topic` up to `seq` was delivered. */
export const PsAck = message('PsAck', { topic: Name, epoch: Id, seq: Id });

/** Every schema the RPC layer speaks. */
export const rpcSchemas = [
  RpcRequest,
  RpcResponse,
  RpcError,
  RpcStreamItem,
  RpcStreamEnd,
  RpcCancel,
  RpcCredit,
  PsSubscribe,
  PsUnsubscribe,
  PsMessage,
  PsAck,
] as const;

/** The codec of RPC and pub/sub messages (a FrameCodec, so the TCP transport avoids a copy). */
export const rpcCodec = messageCodec(rpcSchemas);

/** Any RPC or pub/sub message. */
export type RpcWireMessage = Static<(typeof rpcSchemas)[number]>;

/** One message type of {@link RpcWireMessage} by name. */
export type RpcWire<T extends RpcWireMessage['type']> = Extract<RpcWireMessage, { type: T }>;
