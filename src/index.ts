/**
 * cohort's public API. Import from 'cohort':
 *
 * ```ts
 * import { CohortError, seededRandom, nodeId } from 'cohort';
 * ```
 */
export * from './lib/index.js';
export * from './clock/index.js';
export { version } from './version.js';
