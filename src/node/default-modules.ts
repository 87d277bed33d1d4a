/**
 * The modules every `cohort node` process runs beside the KV store (see
 * src/host/modules.ts): the MapReduce coordinator and workers (src/mapreduce/module.ts),
 * with the node's `workers` (threads; default one per core), `mrLeaseMs`, `mrWarm` and
 * `mrModuleDirs` (where job modules may load from) settings.
 *
 * ```ts
 * const node = await startNode(config, { modules: defaultModules(config) });
 * ```
 */
import { mapReduceModule } from '../mapreduce/module.js';
import type { NodeConfig } from './config.js';
import type { NodeModule } from '../host/modules.js';

/** Fresh instances of the default modules for one node. */
export function defaultModules(config: NodeConfig): NodeModule[] {
  return [
    mapReduceModule({
      workers: config.workers,
      leaseMs: config.mrLeaseMs,
      warm: config.mrWarm,
      moduleDirs: config.mrModuleDirs,
    }),
  ];
}
