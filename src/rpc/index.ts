/** Typed RPC, server streams, resilience policies, pub/sub and the HTTP/JSON gateway. */
export * from './messages.js';
export * from './service.js';
export * from './client.js';
export * from './server.js';
export * from './pubsub.js';
export * from './node.js';
export * from './resilience.js';
export * from './http-gateway.js';
export * from './interceptors.js';
export * from './tcp-endpoints.js';
/**
 * TypeBox's schema builder and `Static`, the copy cohort validates with:
 * services' request and response schemas are written with it
 * (`import { defineService, Type, unary } from 'cohort/rpc'`).
 */
export { Type } from '@sinclair/typebox';
export type { Static, TSchema } from '@sinclair/typebox';
