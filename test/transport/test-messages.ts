/** The message type of the transport tests (shared by the suite and the peer process). */
import { Type } from '@sinclair/typebox';
import { nodeId } from '../../src/lib/ids.js';
import type { NodeId } from '../../src/lib/ids.js';
import { message, messageCodec } from '../../src/wire/codec.js';
import type { MessageOf } from '../../src/wire/codec.js';

/** A sequence number, a note, and optional padding. */
export const Seq = message('Seq', {
  seq: Type.Integer({ minimum: 0 }),
  note: Type.String({ maxLength: 64 }),
  pad: Type.Optional(Type.Uint8Array()),
});
/** The codec of the tests. */
export const testCodec = messageCodec([Seq]);
/** A message of the tests. */
export type TestMessage = MessageOf<[typeof Seq]>;

/** The nodes every harness knows (`zz`, used in a test, is in nobody's address book). */
export const NODES: readonly NodeId[] = [nodeId('a'), nodeId('b'), nodeId('c')];
