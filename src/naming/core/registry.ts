/**
 * The service registry's data, as pure functions: where an instance's entry
 * lives in the KV store, what the entry holds, and checking an entry read
 * back (anyone with write permission on the prefix can write anything there).
 *
 * ```ts
 * serviceKey('ListMax', 'lm-1');                 // '/cohort/services/ListMax/lm-1'
 * servicePrefix('ListMax');                      // '/cohort/services/ListMax/'
 * const text = encodeInstance({ service: 'ListMax', id: 'lm-1', node: 'host-a',
 *   address: { host: '127.0.0.1', port: 7401 }, metadata: { zone: 'a' } });
 * decodeInstance('/cohort/services/ListMax/lm-1', text); // { ok: true, instance } | { ok: false, reason }
 * ```
 *
 * One key per instance, `/cohort/services/<service>/<instance id>`, its
 * value a JSON object (readable with `cohort kv get`), attached to the
 * instance's lease: revoking the lease (the instance closes) or letting it
 * expire (the instance died) deletes the key, and every resolver watching
 * the prefix sees the DELETE.
 */
import { CohortError } from '../../lib/errors.js';
import { isValidId } from '../../lib/ids.js';
import { limits } from '../../lib/limits.js';

/** The prefix of every registry key. */
export const registryRoot = '/cohort/services/';

/** Service names: what `defineService` accepts (letters, digits, `_ . -`, no `/`). */
const SERVICE_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** Longest service name, in characters (like an RPC service name). */
export const serviceNameCharsMax = 128;

/** Version of the entry format (the `v` field). */
export const entryVersion = 1;

/** A registered instance of a service. */
export interface ServiceInstance {
  /** The service's name (`defineService`'s). */
  readonly service: string;
  /** The instance's id, unique within the service: the RPC node id it serves as. */
  readonly id: string;
  /** The machine or cohort node it runs on (informational). */
  readonly node: string;
  /** Where it serves. */
  readonly address: { readonly host: string; readonly port: number };
  /** Free-form string pairs (zone, version, weight, ...). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Share of traffic relative to the others (1..1000; default 1). */
  readonly weight: number;
  /**
   * The instance's failure-detector member, when it runs one (naming's
   * opt-in detector group, detector-group.ts): its SWIM member id and its
   * `host:port`. Absent in entries of instances without one (and in every
   * entry written before the field existed).
   */
  readonly detector?: DetectorRef;
}

/** Where an instance's failure-detector member listens (see {@link ServiceInstance.detector}). */
export interface DetectorRef {
  /** The member's id in the detector group (its transport identity). */
  readonly id: string;
  /** `host:port` (an IPv6 host in brackets). */
  readonly address: string;
}

/** `host:port`, an IPv6 host in brackets; port 1..65535. */
const DETECTOR_ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[^\s/:[\]]+):(\d{1,5})$/;

/** Why a detector reference is unusable, or undefined if it is fine. */
function detectorProblem(d: unknown): string | undefined {
  if (typeof d !== 'object' || d === null || Array.isArray(d)) {
    return 'detector: { id, address }';
  }
  const { id, address } = d as { id?: unknown; address?: unknown };
  if (!isValidId(id)) return 'detector.id: a member id';
  if (typeof address !== 'string' || address.length > 300) {
    return 'detector.address: host:port';
  }
  const m = DETECTOR_ADDRESS.exec(address);
  const port = Number(m?.[2]);
  if (m === null || !(port >= 1 && port <= 65535)) return 'detector.address: host:port';
  return undefined;
}

/** True if `name` can name a service in the registry. */
export function isValidServiceName(name: unknown): name is string {
  return (
    typeof name === 'string' &&
    name.length > 0 &&
    name.length <= serviceNameCharsMax &&
    SERVICE_NAME.test(name)
  );
}

/**
 * Refuses a name that cannot name a service: INVALID_ARGUMENT naming it
 * (what every caller taking a service name from a user throws).
 */
export function checkServiceName(name: string): void {
  if (!isValidServiceName(name)) {
    throw new CohortError('INVALID_ARGUMENT', `bad service name ${JSON.stringify(name)}`, {
      details: { field: 'service' },
    });
  }
}

/** The key prefix of one service's instances. */
export function servicePrefix(service: string): string {
  return `${registryRoot}${service}/`;
}

/** The key of one instance. */
export function serviceKey(service: string, id: string): string {
  return `${servicePrefix(service)}${id}`;
}

/** The service and instance id a registry key names, or undefined for a key of another shape. */
export function parseServiceKey(key: string): { service: string; id: string } | undefined {
  if (!key.startsWith(registryRoot)) return undefined;
  const rest = key.slice(registryRoot.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const service = rest.slice(0, slash);
  const id = rest.slice(slash + 1);
  if (!isValidServiceName(service) || !isValidId(id)) return undefined;
  return { service, id };
}

/** Why an instance spec is unusable, or undefined if it is fine (the shape {@link decodeInstance} accepts). */
export function instanceProblem(i: ServiceInstance): string | undefined {
  if (!isValidServiceName(i.service)) {
    return `service name ${JSON.stringify(i.service)}: letters, digits and _ . - (starting with a letter or _), at most ${serviceNameCharsMax} characters`;
  }
  if (!isValidId(i.id)) {
    return `instance id ${JSON.stringify(i.id)}: letters, digits and . _ : - (starting with a letter or digit), at most ${limits.idBytesMax} characters`;
  }
  if (typeof i.node !== 'string' || i.node.length > 255)
    return 'node: a string of at most 255 characters';
  const a = i.address as unknown;
  if (typeof a !== 'object' || a === null) return 'address: { host, port }';
  const { host, port } = a as { host?: unknown; port?: unknown };
  if (typeof host !== 'string' || host.length === 0 || host.length > 255 || /[\s/]/.test(host)) {
    return 'address.host: a host name or IP address';
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    return 'address.port: an integer 1..65535';
  }
  if (!Number.isInteger(i.weight) || i.weight < 1 || i.weight > 1000) {
    return 'weight: an integer 1..1000';
  }
  const m = i.metadata as unknown;
  if (typeof m !== 'object' || m === null || Array.isArray(m))
    return 'metadata: an object of strings';
  const entries = Object.entries(m as Record<string, unknown>);
  if (entries.length > limits.namingMetadataKeysMax) {
    return `metadata: at most ${limits.namingMetadataKeysMax} keys`;
  }
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > 128 || typeof v !== 'string') {
      return `metadata.${k}: keys of 1..128 characters, string values`;
    }
  }
  if (i.detector !== undefined) return detectorProblem(i.detector);
  return undefined;
}

/** The entry's JSON text (its fields in a fixed order). */
export function encodeInstance(i: ServiceInstance): string {
  return JSON.stringify({
    v: entryVersion,
    service: i.service,
    id: i.id,
    node: i.node,
    address: { host: i.address.host, port: i.address.port },
    weight: i.weight,
    metadata: i.metadata,
    ...(i.detector === undefined
      ? {}
      : { detector: { id: i.detector.id, address: i.detector.address } }),
  });
}

/** What {@link decodeInstance} found. */
export type DecodedInstance =
  | { readonly ok: true; readonly instance: ServiceInstance }
  | { readonly ok: false; readonly reason: string };

/**
 * Checks an entry read back from the store: its key must name a service and
 * an instance, its value must be an entry of this format for that same
 * service and id, within the bounds. Never throws.
 */
export function decodeInstance(key: string, text: string): DecodedInstance {
  const where = parseServiceKey(key);
  if (where === undefined) return { ok: false, reason: 'not a registry key' };
  if (text.length > limits.namingEntryBytesMax) {
    return { ok: false, reason: `entry larger than ${limits.namingEntryBytesMax} bytes` };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, reason: 'not a JSON object' };
  }
  const o = raw as Record<string, unknown>;
  if (o.v !== entryVersion) return { ok: false, reason: `unknown entry version ${String(o.v)}` };
  if (o.service !== where.service || o.id !== where.id) {
    return { ok: false, reason: 'its service or id does not match its key' };
  }
  const address = o.address as { host?: unknown; port?: unknown } | undefined;
  const instance: ServiceInstance = {
    service: where.service,
    id: where.id,
    node: typeof o.node === 'string' ? o.node : (o.node as string),
    address: {
      host: (typeof address === 'object' && address !== null ? address.host : undefined) as string,
      port: (typeof address === 'object' && address !== null ? address.port : undefined) as number,
    },
    weight: o.weight === undefined ? 1 : (o.weight as number),
    metadata: (o.metadata === undefined ? {} : o.metadata) as Record<string, string>,
    // Optional: entries of instances without a detector (and older ones) have none.
    ...(o.detector === undefined ? {} : { detector: o.detector as DetectorRef }),
  };
  const problem = instanceProblem(instance);
  return problem === undefined ? { ok: true, instance } : { ok: false, reason: problem };
}

/** Same instance, same place and data (a re-registration that changed nothing). */
export function sameInstance(a: ServiceInstance, b: ServiceInstance): boolean {
  return encodeInstance(a) === encodeInstance(b);
}
