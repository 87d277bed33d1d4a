/**
 * Node modules: replicated services that share the node's Raft log with the
 * KV store (the MapReduce coordinator is the first). The state-machine host
 * (src/host/: this file and kv-state-machine.ts) runs them; node/ composes
 * it with the rest of the process. A module owns a slice of
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
 * const node = await startNode(config, { modules: [counter] });   // node/node.ts runs startModules()
 * ```
 *
 * `apply` runs for every committed entry of the module, also while the log is
 * replayed at start (before `start`), so it must depend on nothing but the
 * module's state and the command. Times a command needs (lease deadlines) are
 * data in the command, chosen by the proposer (the leader), never read from a
 * clock inside `apply`.
 */
import type { Logger } from 'pino';
import { CohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import type { ProposeOptions, RaftNode } from '../raft/raft-node.js';
import type { RpcNode } from '../rpc/node.js';
import type { PeerAddress } from '../transport/tcp-transport.js';
import { encodeModuleEntry, isModuleApplied } from './kv-state-machine.js';
import type { KvRaftStateMachine, ReplicatedModule } from './kv-state-machine.js';

export { MODULE_NAME } from './kv-state-machine.js';

/**
 * The parts of the node's configuration a module may read (the node's
 * NodeConfig has them all; the host sits below node/ and names only these).
 */
export interface ModuleHostConfig {
  /** This node's id. */
  readonly id: NodeId;
  /** The node's data directory (absolute); a module keeps its files under it. */
  readonly dataDir: string;
  /** Where Raft peers connect. */
  readonly listen: PeerAddress;
  /** Where the node serves RPC. */
  readonly rpc: PeerAddress;
  /** The RPC addresses of the peers that gave one. */
  readonly peerRpc: ReadonlyMap<NodeId, PeerAddress>;
}

/** What a module gets once the node runs (see the file comment). */
export interface NodeModuleContext {
  readonly config: ModuleHostConfig;
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

/**
 * A replicated module (see the file comment): the replicated part the state
 * machine drives ({@link ReplicatedModule}: name, apply, snapshot, restore)
 * plus its life on a running node.
 */
export interface NodeModule extends ReplicatedModule {
  /** Called once after the Raft node started (serve RPCs, start leader-side drivers). */
  start?(ctx: NodeModuleContext): Promise<void> | void;
  /** Called once before the Raft node closes. */
  stop?(): Promise<void> | void;
}

/** What {@link startModules} needs of the running node. */
export interface ModuleHostOptions {
  readonly config: ModuleHostConfig;
  readonly raft: RaftNode<KvRaftStateMachine>;
  readonly rpc: RpcNode;
  /** The node's logger; each module gets a child with `module` bound. */
  readonly logger: Logger;
}

/**
 * Starts `modules` in order, each with its {@link NodeModuleContext}, and
 * returns a function that stops them in reverse order (a failing stop is
 * logged, the others still stop). If a start fails, the modules already
 * started are stopped and the error is rethrown.
 */
export async function startModules(
  modules: readonly NodeModule[],
  host: ModuleHostOptions,
): Promise<() => Promise<void>> {
  const { config, raft, rpc, logger } = host;
  const started: NodeModule[] = [];
  const stopModules = async (): Promise<void> => {
    for (const m of started.splice(0).reverse()) {
      try {
        await m.stop?.();
      } catch (e) {
        logger.error({ err: e, module: m.name }, 'module stop failed');
      }
    }
  };
  try {
    for (const m of modules) {
      const ctx: NodeModuleContext = {
        config,
        raft,
        rpc,
        logger: logger.child({ module: m.name }),
        propose: async (command, proposeOptions) => {
          const applied = await raft.propose(encodeModuleEntry(m.name, command), proposeOptions);
          if (isModuleApplied(applied)) return applied.result;
          // The state machine refused the entry itself (it cannot decode it).
          throw new CohortError(
            applied.ok ? 'INTERNAL' : applied.error.code,
            'module entry refused',
            {
              details: { module: m.name },
            },
          );
        },
      };
      await m.start?.(ctx);
      started.push(m);
    }
  } catch (e) {
    await stopModules();
    throw e;
  }
  return stopModules;
}
