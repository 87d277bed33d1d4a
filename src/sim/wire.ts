/**
 * What travels on the simulated network of the Raft and KV scenarios: Raft's
 * messages between the nodes, and RPC messages between clients and nodes (the
 * KV service), each encoded with its production codec behind a one-byte tag.
 * A real node runs the two on separate transports; here they share the
 * network, so a partition or a crash hits both alike. RPC messages travel
 * ordered and unduplicated (SimNetwork's `ordered`), as over TCP; Raft's may
 * be reordered and duplicated too.
 *
 * ```ts
 * const net = new SimNetwork<SimWire>({ ..., codec: simWireCodec(), ordered: isRpcMessage });
 * if (isRpcMessage(m)) rpcTransport.deliver(from, m); else raftTransport.deliver(from, m);
 * ```
 */
import { CohortError } from '../lib/errors.js';
import type { RaftMessage } from '../raft/core/messages.js';
import { raftMessagesCodec } from '../raft/raft-messages-codec.js';
import { rpcCodec, rpcSchemas } from '../rpc/messages.js';
import type { RpcWireMessage } from '../rpc/messages.js';
import type { Codec } from '../wire/codec.js';

/** A message on the simulated network: Raft's or RPC's. */
export type SimWire = RaftMessage | RpcWireMessage;

const rpcTypes: ReadonlySet<string> = new Set(
  rpcSchemas.map((s) => String(s.properties.type.const)),
);

/** True for an RPC (or pub/sub) message, false for a Raft message. */
export function isRpcMessage(m: SimWire): m is RpcWireMessage {
  return rpcTypes.has(m.type);
}

const RAFT = 0;
const RPC = 1;

/**
 * The codec of {@link SimWire}: a tag byte, then the message encoded by the
 * production codec of its protocol (Raft's validating on encode too).
 */
export function simWireCodec(): Codec<SimWire> {
  const raft = raftMessagesCodec({ validateOnEncode: true });
  return {
    encode(m: SimWire): Uint8Array {
      const rpc = isRpcMessage(m);
      const body = rpc ? rpcCodec.encode(m) : raft.encode(m);
      const out = new Uint8Array(body.length + 1);
      out[0] = rpc ? RPC : RAFT;
      out.set(body, 1);
      return out;
    },
    decode(bytes: Uint8Array): SimWire {
      const body = bytes.subarray(1);
      const tag = bytes[0];
      if (tag === RAFT) return raft.decode(body);
      if (tag === RPC) return rpcCodec.decode(body);
      throw new CohortError('DECODE_ERROR', `unknown channel tag ${String(tag)}`);
    },
  };
}
