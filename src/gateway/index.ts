/**
 * The serving farm: a load-balancing gateway (HTTP reverse proxy and RPC
 * front end) over stateless backends, with health checks, failover and
 * replicated calls. `import { Gateway, StaticBackendSource, parseBackends } from 'cohort/gateway'`.
 */
export * from './backend-source.js';
export * from './gateway.js';
export * from './http-proxy.js';
export * from './metrics.js';
export * from './report.js';
export * from './rpc-front.js';
export * from './workers.js';
export type { Balance, BackendStatus } from './core/farm.js';
export type { CombineMode } from './core/combine.js';
export type { HealthOptions } from './core/health.js';
