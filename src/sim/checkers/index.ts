/**
 * Checkers run on simulator and real-process histories: the linearizability
 * checker, its models, the history recorder and the Jepsen fixture parsers.
 *
 * ```ts
 * import { HistoryRecorder, checkLinearizability, kvModel } from '../sim/checkers/index.js';
 * ```
 */
export * from './history.js';
export * from './models.js';
export * from './linearizability.js';
export * from './jepsen-parse.js';
