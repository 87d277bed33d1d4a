/**
 * cohort's public API. Import from 'cohort':
 *
 * ```ts
 * import { CohortError, seededRandom, nodeId } from 'cohort';
 * ```
 */
export * from './lib/index.js';
export * from './clock/index.js';
export * from './wire/index.js';
export * from './transport/index.js';
export * from './rpc/index.js';
export { version } from './version.js';
