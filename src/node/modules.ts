/**
 * Node modules: replicated services that share the node's Raft log with the
 * KV store (the MapReduce coordinator is the first). A module owns a slice of
 * the replicated state: its commands travel in the log as
 * `{ module: name, command }` (MessagePack), every replica applies them in log
 * order through the module's `apply`, and the node's snapshot carries each
 * module's own snapshot bytes beside the KV store's.
 *
 * ```ts
 * const counter: NodeModule = {
 *   name: 'counter',
 *   apply: (command) => ++n,                  // pure and deterministic, never throws on bad input
 *   snapshot: () => encode(n),
 *   restore: (bytes) => { n = decode(bytes); },
 *   reset: () => { n = 0; },
 *   start: (ctx) => { ctx.rpc.serve(CounterService, { bump: () => ctx.propose({}) }); },
 * };
 * const node = await startNode(config, { modules: [counter] });
 * ```
 *
 * `apply` runs for every committed entry of the module, also while the log is
 * replayed at start (before `start`), so it must depend on nothing but the
 * module's state and the command. Times a command needs (lease deadlines) are
 * data in the command, chosen by the proposer (the leader), never read from a
 * clock inside `apply`.
 */
import type { Logger } from 'pino';
import type { Entry } from '../raft/core/types.js';
import type { ProposeOptions, RaftNode } from '../raft/raft-node.js';
import type { RpcNode } from '../rpc/node.js';
import type { NodeConfig } from './config.js';
import type { KvRaftStateMachine } from './kv-state-machine.js';

/** What a module gets once the node runs (see the file comment). */
export interface NodeModuleContext {
  readonly config: NodeConfig;
  /** The node's Raft node (status, isLeader, onStateChange, read). */
  readonly raft: RaftNode<KvRaftStateMachine>;
  /** The node's RPC node (serve the module's services on the node's RPC port). */
  readonly rpc: RpcNode;
  readonly logger: Logger;
  /**
   * Proposes one of this module's commands through the log; resolves with what
   * the module's `apply` returned for it (on this node). Fails like
   * RaftNode.propose (NOT_LEADER, definite; TIMEOUT/CANCELLED, indefinite).
   */
  propose(command: unknown, options?: ProposeOptions): Promise<unknown>;
}

/** A replicated module (see the file comment). */
export interface NodeModule {
  /** Unique per node; tags the module's log entries and snapshot part. */
  readonly name: string;
  /**
   * Applies one committed command. Must be deterministic and must not throw on
   * bad input (return an error result): every replica applies the same bytes.
   */
  apply(command: unknown, entry: Entry): unknown;
  /** The module's whole state as of the last applied entry. */
  snapshot(): Uint8Array;
  /** Replaces the module's state with a snapshot's. */
  restore(bytes: Uint8Array): void;
  /**
   * Replaces the module's state with a fresh one, as before its first entry:
   * the node restored a snapshot that has no part for this module.
   */
  reset(): void;
  /** Called once after the Raft node started (serve RPCs, start leader-side drivers). */
  start?(ctx: NodeModuleContext): Promise<void> | void;
  /** Called once before the Raft node closes. */
  stop?(): Promise<void> | void;
}

/** Module names: short identifiers (they are written into every entry and snapshot). */
export const MODULE_NAME = /^[a-z][a-z0-9-]{0,31}$/;
