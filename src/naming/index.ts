/**
 * `cohort/naming`: services found by name — the registry in the replicated
 * KV store (instances under leases), resolvers that follow a name, and
 * name-based RPC clients that balance, follow moves and retry idempotent
 * calls on another instance.
 *
 * ```ts
 * import { Naming } from 'cohort/naming';
 * const naming = await Naming.connect({ cluster: '.cohort' });
 * const listMax = naming.service(ListMax);
 * ```
 */
export { Naming } from './naming.js';
export type {
  NamingOptions,
  ServiceClient,
  ServiceClientCounters,
  ServiceClientOptions,
} from './naming.js';
export { instanceOf, registerInstance, registryPermissionError } from './registration.js';
export type { InstanceSpec, RegisterOptions, Registration } from './registration.js';
export { listRegistry, ServiceResolver } from './resolver.js';
export type { ResolverOptions } from './resolver.js';
export {
  decodeInstance,
  encodeInstance,
  isValidServiceName,
  parseServiceKey,
  registryRoot,
  serviceKey,
  servicePrefix,
} from './core/registry.js';
export type { DetectorRef, ServiceInstance } from './core/registry.js';
export { startDetectorMember } from './detector-group.js';
export type { DetectorMember, NamingDetectorOptions } from './detector-group.js';
export { InstanceSet } from './core/instance-set.js';
export { InstancePicker, pickRules } from './core/picker.js';
export type { PickRule } from './core/picker.js';
