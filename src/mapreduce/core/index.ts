/** The MapReduce coordinator's pure core: commands, results, queries and the replicated state machine. */
export * from './types.js';
export * from './state-machine.js';
