/**
 * The modules every `cohort node` process runs beside the KV store (see
 * modules.ts). Empty until the MapReduce coordinator registers here.
 *
 * ```ts
 * const node = await startNode(config, { modules: defaultModules(config) });
 * ```
 */
import type { NodeConfig } from './config.js';
import type { NodeModule } from './modules.js';

/** Fresh instances of the default modules for one node. */
export function defaultModules(config: NodeConfig): NodeModule[] {
  void config;
  return [];
}
