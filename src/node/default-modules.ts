/**
 * The modules every `cohort node` process runs beside the KV store (see
 * modules.ts): the MapReduce coordinator and workers (src/mapreduce/module.ts),
 * with the node's `workers` (threads; default one per core) and `mrLeaseMs`
 * settings.
 *
 * ```ts
 * const node = await startNode(config, { modules: defaultModules(config) });
 * ```
 */
import { mapReduceModule } from '../mapreduce/module.js';
import type { NodeConfig } from './config.js';
import type { NodeModule } from './modules.js';

/** Fresh instances of the default modules for one node. */
export function defaultModules(config: NodeConfig): NodeModule[] {
  const c = config as NodeConfig & { readonly workers?: number; readonly mrLeaseMs?: number };
  return [
    mapReduceModule({
      ...(c.workers === undefined ? {} : { workers: c.workers }),
      ...(c.mrLeaseMs === undefined ? {} : { leaseMs: c.mrLeaseMs }),
    }),
  ];
}
