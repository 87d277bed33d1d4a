/**
 * The pure Raft core: {@link RaftCore} and the data it consumes and produces.
 *
 * ```ts
 * import { RaftCore, emptyInitialState } from './raft/core/index.js';
 * const core = new RaftCore({ id, random }, emptyInitialState, { voters: [id], learners: [] });
 * ```
 */
export * from './types.js';
export * from './messages.js';
export * from './config.js';
export * from './raft-core.js';
