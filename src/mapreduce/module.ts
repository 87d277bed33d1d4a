/**
 * The `mapreduce` node module: the coordinator's replicated state (module-state.ts: H4a's
 * {@link MapReduceStateMachine}) plus a small registry of the nodes' RPC
 * addresses, applied from the node's Raft log on every replica; and, once the
 * node runs, the runtime (runtime.ts): the `MapReduce` RPC service, the
 * leader-side driver and the node's pool of worker threads.
 *
 * ```ts
 * const node = await startNode(config, { modules: [mapReduceModule({ workers: 2 })] });
 * // or: every `cohort node` runs it (src/node/default-modules.ts)
 * ```
 *
 * Entries: every coordinator command (core/types.ts), plus
 * `{ type: 'registerNode', node, host, port }`, which records where a node
 * serves RPC: workers reach the leader and reducers reach map outputs through
 * these addresses, learnt from the log like everything else (a new leader
 * registers itself first, so followers can find it).
 */
import type { NodeModule, NodeModuleContext } from '../host/modules.js';
import { MapReduceModuleState } from './module-state.js';
import { MapReduceRuntime } from './runtime.js';
import type { RuntimeOptions } from './runtime.js';

export { MapReduceModuleState } from './module-state.js';
export type { NodeAddress, RegisterApplied, RegisterNodeCommand } from './module-state.js';

/** Options of {@link mapReduceModule}. */
export type MapReduceModuleOptions = Partial<RuntimeOptions>;

/** The `mapreduce` NodeModule (see the file comment). */
export class MapReduceModule implements NodeModule {
  readonly name = 'mapreduce';
  readonly state = new MapReduceModuleState();
  private runtime: MapReduceRuntime | undefined;

  constructor(private readonly options: MapReduceModuleOptions = {}) {}

  apply(command: unknown): unknown {
    const r = this.state.apply(command);
    this.runtime?.applied();
    return r;
  }

  snapshot(): Uint8Array {
    return this.state.snapshot();
  }

  restore(bytes: Uint8Array): void {
    this.state.restore(bytes);
    this.runtime?.applied();
  }

  reset(): void {
    this.state.reset();
    this.runtime?.applied();
  }

  /** The running runtime (after start). */
  get running(): MapReduceRuntime | undefined {
    return this.runtime;
  }

  /**
   * The node's failure detector declared `node` failed: its tasks are
   * reassigned through a `nodeLost` proposal by the leader (runtime.ts).
   */
  memberFailed(node: string): void {
    this.runtime?.memberFailed(node);
  }

  start(ctx: NodeModuleContext): void {
    this.runtime = new MapReduceRuntime(ctx, this.state, this.options);
    this.runtime.start();
  }

  async stop(): Promise<void> {
    await this.runtime?.stop();
  }
}

/** A fresh `mapreduce` module for one node. */
export function mapReduceModule(options: MapReduceModuleOptions = {}): MapReduceModule {
  return new MapReduceModule(options);
}
