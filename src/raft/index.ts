/**
 * Raft for cohort: the pure core (core/), durable storage (storage/), the
 * shell that runs them over a transport ({@link RaftNode}) and the wire codec
 * of the core's messages.
 *
 * ```ts
 * import { RaftNode, raftMessagesCodec, FileStorage } from './raft/index.js';
 * const node = await RaftNode.start({ id, peers, transport, storage, stateMachine, random });
 * ```
 */
export * from './core/index.js';
export * from './storage/index.js';
export * from './raft-node.js';
export * from './raft-messages-codec.js';
