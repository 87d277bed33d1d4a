/**
 * Registering a service instance in the registry: its entry
 * (`/cohort/services/<service>/<id>`, see core/registry.ts) is attached to a
 * lease the instance keeps alive. Closing revokes the lease (the entry goes
 * at once); an instance that dies stops renewing, and the entry goes when the
 * lease expires (its TTL after the last renewal).
 *
 * ```ts
 * const reg = await registerInstance(kv, {
 *   service: 'ListMax', id: 'lm-1', address: { host: '127.0.0.1', port: 7401 },
 * }, { ttlMs: 5_000 });
 * await reg.move({ host: '127.0.0.1', port: 7402 }); // the same instance, served elsewhere
 * await reg.close();                                 // deregistered
 * ```
 *
 * If the lease is lost while the instance lives (the cluster was unreachable
 * for a whole TTL, or a partition let it expire), the registration grants a
 * new lease and writes the entry again as soon as the cluster answers, until
 * closed: a live instance comes back by itself. `onState` reports `'lost'`
 * and `'registered'` transitions.
 *
 * With `options.detector` the instance also runs a member of naming's
 * failure-detector group (detector-group.ts), joining through the members
 * of the service's other entries, and its entry names that member; closing
 * leaves the group (gossips `left`) before it revokes the lease.
 *
 * With auth enabled the caller needs write permission on the service's
 * prefix (`cohort role grant <role> readwrite /cohort/services/<service>/ --prefix`);
 * a refusal is a definite PERMISSION_DENIED that says so.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { KvClient, KvCallOptions } from '../kv/client.js';
import { kvText } from '../kv/core/bytes.js';
import type { Clock } from '../lib/clock.js';
import { RealClock } from '../lib/clock.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import type { TcpTlsOptions } from '../transport/tcp-transport.js';
import {
  decodeInstance,
  encodeInstance,
  instanceProblem,
  serviceKey,
  servicePrefix,
} from './core/registry.js';
import type { ServiceInstance } from './core/registry.js';
import { startDetectorMember } from './detector-group.js';
import type { DetectorMember, NamingDetectorOptions } from './detector-group.js';

/** What an instance registers. */
export interface InstanceSpec {
  /** The service's name (`defineService`'s). */
  readonly service: string;
  /** The instance's id, unique within the service (the RPC node id it serves as). */
  readonly id: string;
  /** Where it serves. */
  readonly address: { readonly host: string; readonly port: number };
  /** The machine or cohort node it runs on (default: this host's name). */
  readonly node?: string;
  /** Free-form string pairs. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Share of traffic (1..1000, default 1). */
  readonly weight?: number;
}

/** Options of {@link registerInstance}. */
export interface RegisterOptions extends KvCallOptions {
  /** The lease's TTL in ms (default `limits.namingLeaseTtlMsDefault`). */
  readonly ttlMs?: number;
  /** Called when the registration is lost (lease gone) and when it is back. */
  readonly onState?: (state: 'lost' | 'registered', why?: string) => void;
  readonly clock?: Clock;
  /**
   * Opt in to naming's failure-detector group (detector-group.ts): the
   * instance runs a SWIM member over a TCP transport of its own (this
   * cluster id and TLS, as naming reaches the instance's RPC port) and puts
   * its id and address in the entry, so clients that run a member too drop
   * the instance when it crashes, before its lease expires.
   */
  readonly detector?: NamingDetectorOptions & {
    readonly clusterId?: string;
    readonly tls?: TcpTlsOptions;
    readonly logger?: Logger;
  };
}

/** A live registration (see the file comment). */
export interface Registration {
  /** What is registered now. */
  readonly instance: ServiceInstance;
  /** The lease the entry is attached to now. */
  readonly leaseId: number;
  /** The entry's key. */
  readonly key: string;
  /** The instance's detector member, if `options.detector` was given (closed by {@link close}). */
  readonly detector: DetectorMember | undefined;
  /** Rewrites the entry with a new address (relocation), under the same lease. */
  move(address: { host: string; port: number }, options?: KvCallOptions): Promise<void>;
  /** Stops renewing and revokes the lease: the entry is deleted. */
  close(options?: KvCallOptions): Promise<void>;
}

/** The instance a spec describes, with defaults; throws INVALID_ARGUMENT naming the bad field. */
export function instanceOf(spec: InstanceSpec): ServiceInstance {
  const instance: ServiceInstance = {
    service: spec.service,
    id: spec.id,
    node: spec.node ?? hostname(),
    address: { host: spec.address.host, port: spec.address.port },
    metadata: { ...spec.metadata },
    weight: spec.weight ?? 1,
  };
  const problem = instanceProblem(instance);
  if (problem !== undefined) {
    throw new CohortError('INVALID_ARGUMENT', `cannot register: ${problem}`, {
      details: { field: problem.split(/[ :]/)[0] },
    });
  }
  if (encodeInstance(instance).length > limits.namingEntryBytesMax) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `cannot register: the entry is larger than ${limits.namingEntryBytesMax} bytes (metadata too big)`,
      { details: { field: 'metadata' } },
    );
  }
  return instance;
}

/**
 * A PERMISSION_DENIED from the store, said in the registry's terms: which
 * permission on which prefix the caller lacks, and how to grant it.
 */
export function registryPermissionError(
  e: CohortError,
  what: 'register' | 'resolve' | 'list',
  service: string | undefined,
): CohortError {
  const prefix = service === undefined ? '/cohort/services/' : servicePrefix(service);
  const need = what === 'register' ? 'readwrite' : 'read';
  const doing =
    what === 'register'
      ? `register an instance of ${service ?? '?'}`
      : what === 'resolve'
        ? `resolve service ${service ?? '?'}`
        : `list ${service === undefined ? 'the registered services' : `service ${service}`}`;
  return new CohortError(
    'PERMISSION_DENIED',
    `cannot ${doing}: ${e.message}; it needs ${what === 'register' ? 'write' : 'read'} permission on the prefix ${prefix} (cohort role grant <role> ${need} ${prefix} --prefix)`,
    { definite: e.definite, cause: e, details: { ...e.details, prefix } },
  );
}

function wrap(e: unknown, service: string): unknown {
  return isCohortError(e) && e.code === 'PERMISSION_DENIED'
    ? registryPermissionError(e, 'register', service)
    : e;
}

/**
 * The detector members of the service's other registered instances (one
 * page of the registry, best effort: none if it cannot be read), for a new
 * member to join through (SWIM join, rule 7 of detector/core/swim.ts): so a
 * restarted instance's `alive` reaches the clients that declared it failed.
 */
async function detectorSeeds(
  kv: KvClient,
  service: string,
  self: string,
): Promise<{ id: string; address: string }[]> {
  try {
    const r = await kv.range(servicePrefix(service), {
      prefix: true,
      limit: limits.namingDetectorSeedsMax,
      timeoutMs: 2_000,
    });
    return r.kvs.flatMap((e) => {
      const decoded = decodeInstance(e.keyText, kvText(e.value));
      if (!decoded.ok || decoded.instance.id === self) return [];
      const ref = decoded.instance.detector;
      return ref === undefined ? [] : [ref];
    });
  } catch (e) {
    if (isCohortError(e)) return [];
    throw e;
  }
}

/** Registers an instance (see the file comment); resolves once the entry is written. */
export async function registerInstance(
  kv: KvClient,
  spec: InstanceSpec,
  options: RegisterOptions = {},
): Promise<Registration> {
  let instance = instanceOf(spec);
  const ttlMs = options.ttlMs ?? limits.namingLeaseTtlMsDefault;
  if (
    !Number.isInteger(ttlMs) ||
    ttlMs < limits.namingLeaseTtlMsMin ||
    ttlMs > limits.namingLeaseTtlMsMax
  ) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `ttlMs must be an integer ${limits.namingLeaseTtlMsMin}..${limits.namingLeaseTtlMsMax}`,
      { details: { field: 'ttlMs' } },
    );
  }
  const clock = options.clock ?? new RealClock();
  const key = serviceKey(instance.service, instance.id);
  const d = options.detector;
  const member =
    d === undefined
      ? undefined
      : await startDetectorMember({
          swim: d,
          host: instance.address.host,
          id: instance.id,
          seeds: await detectorSeeds(kv, instance.service, instance.id),
          ...(d.clusterId === undefined ? {} : { clusterId: d.clusterId }),
          ...(d.tls === undefined ? {} : { tls: d.tls }),
          ...(d.logger === undefined ? {} : { logger: d.logger }),
          clock,
        });
  if (member !== undefined) instance = { ...instance, detector: member.ref };
  const call: KvCallOptions = {
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.deadline === undefined ? {} : { deadline: options.deadline }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
  const closing = new AbortController();
  let leaseId = 0;
  let stopKeeper: (() => void) | undefined;

  /** Grants a lease and writes the entry under it; revokes the lease if the write fails. */
  const write = async (o: KvCallOptions): Promise<void> => {
    const lease = await kv.leaseGrant(ttlMs, undefined, o);
    try {
      await kv.put(key, encodeInstance(instance), { ...o, lease: lease.id });
    } catch (e) {
      await kv.leaseRevoke(lease.id, { timeoutMs: 2_000 }).catch(() => undefined);
      throw e;
    }
    leaseId = lease.id;
    const keeper = kv.keepAlive(lease.id, {
      ttlMs,
      onLost: (why) => {
        if (closing.signal.aborted) return;
        options.onState?.('lost', why);
        void rewrite();
      },
    });
    stopKeeper = () => keeper.stop();
  };

  /** After a lost lease: writes again until it works or the registration closes. */
  const rewrite = async (): Promise<void> => {
    for (let k = 0; !closing.signal.aborted; k++) {
      try {
        await write({ signal: closing.signal });
        options.onState?.('registered');
        return;
      } catch (e) {
        if (closing.signal.aborted) return;
        if (!isCohortError(e)) throw e;
        await new Promise<void>((resolve) => {
          const t = clock.setTimer(Math.min(ttlMs / 2, 100 * 2 ** Math.min(k, 5)), done);
          closing.signal.addEventListener('abort', done, { once: true });
          function done(): void {
            clock.clearTimer(t);
            closing.signal.removeEventListener('abort', done);
            resolve();
          }
        });
      }
    }
  };

  try {
    await write(call);
  } catch (e) {
    await member?.close();
    throw wrap(e, instance.service);
  }
  return {
    get instance() {
      return instance;
    },
    get leaseId() {
      return leaseId;
    },
    key,
    detector: member,
    async move(address, o = {}) {
      const moved = instanceOf({ ...instance, address });
      const next = member === undefined ? moved : { ...moved, detector: member.ref };
      try {
        await kv.put(key, encodeInstance(next), { ...o, lease: leaseId });
      } catch (e) {
        throw wrap(e, instance.service);
      }
      instance = next;
    },
    async close(o = {}) {
      if (closing.signal.aborted) return;
      closing.abort();
      stopKeeper?.();
      await member?.close();
      try {
        await kv.leaseRevoke(leaseId, o);
      } catch (e) {
        // Already gone (expired): the entry went with it.
        if (isCohortError(e) && e.code === 'NOT_FOUND') return;
        throw wrap(e, instance.service);
      }
    },
  };
}
