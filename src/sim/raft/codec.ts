/**
 * The wire codec of the Raft simulator: every {@link RaftMessage} crosses the
 * simulated network as MessagePack bytes and is validated again on arrival
 * (the core's own `validateMessage`), exactly as a real transport would.
 *
 * ```ts
 * const net = new SimNetwork<RaftMessage>({ scheduler, random, codec: raftCodec });
 * raftCodec.decode(raftCodec.encode(msg));   // an equal message (byte arrays copied)
 * ```
 */
import { Packr, Unpackr } from 'msgpackr';
import { CohortError } from '../../lib/errors.js';
import { validateMessage } from '../../raft/core/messages.js';
import type { RaftMessage } from '../../raft/core/messages.js';
import type { Codec } from '../network.js';

const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  structuredClone: false,
  bundleStrings: false,
  variableMapSize: true,
});
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, copyBuffers: true });

/**
 * MessagePack codec for Raft messages. `decode` throws a definite CohortError
 * (`DECODE_ERROR`, `SCHEMA_VIOLATION`, `UNKNOWN_MESSAGE`) for bytes that are
 * not a well-formed Raft message; it never returns an invalid one.
 */
export const raftCodec: Codec<RaftMessage> = {
  encode(message: RaftMessage): Uint8Array {
    return packr.pack(message);
  },
  decode(bytes: Uint8Array): RaftMessage {
    let value: unknown;
    try {
      value = unpackr.unpack(bytes);
    } catch (err) {
      throw new CohortError('DECODE_ERROR', 'raft message is not MessagePack', { cause: err });
    }
    validateMessage(value);
    return value;
  },
};
