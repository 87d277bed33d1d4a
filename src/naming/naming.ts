/**
 * Naming: services found by name. Instances register in the replicated KV
 * store under a lease (registration.ts); clients resolve a service's name to
 * its live instances (resolver.ts) and call them through a typed stub that
 * balances between them, follows them as they come, go and move, and retries
 * idempotent calls on another instance.
 *
 * ```ts
 * const naming = await Naming.connect({ cluster: '.cohort' });  // KvClient options: endpoints, TLS
 * // an instance (serving ListMax on an RPC node whose id is 'lm-1'):
 * const reg = await naming.register({ service: 'ListMax', id: 'lm-1', address: { host: '127.0.0.1', port: 7401 } });
 * // a client, anywhere:
 * const listMax = naming.service(ListMax);          // Client<typeof ListMax>, by the service's name
 * const { max } = await listMax.listMax({ values: [3, 9, 4] });
 * await naming.close();                             // deregisters what it registered
 * ```
 *
 * How a call goes (unary): wait for the first listing of the name; pick an
 * instance among those not suspected (power of two choices on outstanding
 * calls, or round robin); dial it if needed (its registered address); send.
 * A try that fails with a routing error (UNAVAILABLE, CONNECTION_LOST,
 * TIMEOUT, CLOSED, HANDSHAKE_FAILED, OVERLOADED, CIRCUIT_OPEN) suspects the
 * instance for `limits.namingSuspectMs` and:
 * - definite (nothing reached it): tried again on another instance;
 * - indefinite, idempotent method: tried again on another instance;
 * - indefinite, not idempotent: fails at once with an indefinite
 *   UNAVAILABLE (`details.cause` the try's code): it may have run, and
 *   running it again might run it twice.
 * Every try of an idempotent call is bounded by `tryTimeoutMs`, so a hung
 * (SIGSTOPped) instance costs one try, not the whole deadline. While no
 * instance is registered (one moving: deregistered, not yet back) the call
 * waits for one, up to its deadline. Any other error is the method's answer
 * and is thrown as is. A server stream goes to one instance, without retries.
 *
 * With `options.detector` (detector-group.ts), this object runs a member of
 * naming's failure-detector group, seeded from the detector members named
 * in the entries it resolves, and skips an instance the group declared
 * `failed` or `left` even while its lease lives ({@link Naming.instances});
 * it trusts the instance again when the group sees it `alive` at a higher
 * incarnation, or when its entry comes back (gone and re-registered, or
 * with a new detector address: a restart).
 *
 * An instance's id is the RPC node id it serves as (the dial checks it); a
 * re-registration at another address is dialled there from the next call on
 * (relocation transparency). Instances are reached over TCP with the
 * cluster id and TLS of `options.instances`.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { KvClient } from '../kv/client.js';
import type { KvClientOptions } from '../kv/client.js';
import type { Clock } from '../lib/clock.js';
import { RealClock } from '../lib/clock.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import type { ErrorCode } from '../lib/errors.js';
import { clusterId, nodeId } from '../lib/ids.js';
import type { NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { seededRandom } from '../lib/random.js';
import type { Random } from '../lib/random.js';
import { DeferredStream } from '../rpc/deferred-stream.js';
import { makeClient } from '../rpc/client.js';
import type { Invoker } from '../rpc/client.js';
import { rpcCodec } from '../rpc/messages.js';
import type { RpcWireMessage } from '../rpc/messages.js';
import { RpcNode } from '../rpc/node.js';
import type {
  CallOptions,
  Client,
  CompiledMethod,
  ServerStream,
  ServiceDef,
} from '../rpc/service.js';
import { defaultClusterId } from '../rpc/tcp-endpoints.js';
import { TcpTransport } from '../transport/tcp-transport.js';
import type { TcpTlsOptions } from '../transport/tcp-transport.js';
import { claimForCertificate } from '../trust/identity.js';
import { InstancePicker } from './core/picker.js';
import type { PickRule } from './core/picker.js';
import { checkServiceName, isValidServiceName, registryRoot } from './core/registry.js';
import type { ServiceInstance } from './core/registry.js';
import { registerInstance, registryPermissionError } from './registration.js';
import type { InstanceSpec, RegisterOptions, Registration } from './registration.js';
import { listRegistry, ServiceResolver } from './resolver.js';
import { InstanceSet } from './core/instance-set.js';
import { startDetectorMember } from './detector-group.js';
import type { DetectorMember, NamingDetectorOptions } from './detector-group.js';

/** Options of {@link Naming}. */
export interface NamingOptions {
  /** How instances are reached: their RPC links' cluster id (default 'cohort-examples') and TLS. */
  readonly instances?: { readonly clusterId?: string; readonly tls?: TcpTlsOptions };
  /** Warnings (skipped registry entries, lost watches); default pino at `warn` on stderr. */
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Randomness of the power-of-two-choices picks (default: seeded from the OS). */
  readonly random?: Random;
  /**
   * Opt in to naming's failure-detector group (detector-group.ts): this
   * object runs a SWIM member (cluster id and TLS of `instances`), seeded
   * from the detector members in the entries it resolves, and skips an
   * instance its detector declared `failed` or `left` though its lease
   * lives. Also the default of {@link Naming.register}'s `detector`.
   */
  readonly detector?: NamingDetectorOptions;
}

/** Options of {@link Naming.service}. */
export interface ServiceClientOptions {
  /** The registered name (default: the definition's name). */
  readonly name?: string;
  /** Balancing: `p2c` (default) or `round-robin`. */
  readonly balance?: PickRule;
  /** Default deadline of a call, retries included, in ms (default `limits.rpcDeadlineMsDefault`). */
  readonly timeoutMs?: number;
  /** Longest try of an idempotent call on one instance, in ms (default `limits.namingTryTimeoutMsDefault`). */
  readonly tryTimeoutMs?: number;
}

/** Counters of one name-based client, for tests and status. */
export interface ServiceClientCounters {
  calls: number;
  /** Tries beyond the first. */
  retries: number;
  failed: number;
}

/** Codes of a try that say where it went, not what the method answered. */
const routingCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'UNAVAILABLE',
  'CONNECTION_LOST',
  'TIMEOUT',
  'CLOSED',
  'HANDSHAKE_FAILED',
  'OVERLOADED',
  'CIRCUIT_OPEN',
]);

/** The dial-only RPC node that reaches instances. */
interface Dialer {
  readonly transport: TcpTransport<RpcWireMessage>;
  readonly node: RpcNode;
}

/** A name-based typed client's stub plus its counters. */
export type ServiceClient<S extends ServiceDef> = Client<S> & {
  readonly $counters: ServiceClientCounters;
};

/** Registering, resolving and calling services by name (see the file comment). */
export class Naming {
  private readonly resolvers = new Map<string, ServiceResolver>();
  private readonly registrations = new Set<Registration>();
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly log: Logger;
  private dialer: Promise<Dialer> | undefined;
  /** The address each instance id is dialled at. */
  private readonly addresses = new Map<string, string>();
  /** Instance id → until when it is skipped (clock ms). */
  private readonly suspects = new Map<string, number>();
  private readonly outstanding = new Map<string, number>();
  /** This object's detector member (options.detector), started at the first resolve. */
  private member: Promise<DetectorMember> | undefined;
  /** Detector member id → the incarnation it was declared failed or left at. */
  private readonly down = new Map<string, number>();
  /** `service/id` → its detector address, of the instances listed last (a new entry clears `down`). */
  private readonly listed = new Map<string, string>();
  private closed = false;

  /**
   * Uses `kv` for the registry (it stays open after {@link close} unless
   * `ownsKv`).
   */
  constructor(
    readonly kv: KvClient,
    private readonly options: NamingOptions = {},
    private readonly ownsKv = false,
  ) {
    this.clock = options.clock ?? new RealClock();
    this.random = options.random ?? seededRandom(randomBytes(4).readUInt32LE(0));
    this.log =
      options.logger ??
      pino({ level: process.env.COHORT_LOG_LEVEL ?? 'warn' }, pino.destination(2));
  }

  /** Connects a KV client (`KvClient.connect` options) and wraps it; closing closes it. */
  static async connect(kv: KvClientOptions, options: NamingOptions = {}): Promise<Naming> {
    const client = await KvClient.connect(kv);
    return new Naming(client, options, true);
  }

  /** Registers an instance (registration.ts); {@link close} deregisters it if still registered. */
  async register(spec: InstanceSpec, options: RegisterOptions = {}): Promise<Registration> {
    this.checkOpen();
    const detector = options.detector ?? this.options.detector;
    const inst = this.options.instances;
    const reg = await registerInstance(this.kv, spec, {
      ...(this.options.clock === undefined ? {} : { clock: this.options.clock }),
      ...options,
      ...(detector === undefined
        ? {}
        : {
            detector: {
              logger: this.log,
              ...(inst?.clusterId === undefined ? {} : { clusterId: inst.clusterId }),
              ...(inst?.tls === undefined ? {} : { tls: inst.tls }),
              ...detector,
            },
          }),
    });
    this.registrations.add(reg);
    const forget = (): boolean => this.registrations.delete(reg);
    return {
      get instance() {
        return reg.instance;
      },
      get leaseId() {
        return reg.leaseId;
      },
      key: reg.key,
      detector: reg.detector,
      move: (address, o) => reg.move(address, o),
      close: async (o) => {
        forget();
        await reg.close(o);
      },
    };
  }

  /** The resolver of `service` (one per name, shared, closed with this object). */
  resolver(service: string): ServiceResolver {
    this.checkOpen();
    let r = this.resolvers.get(service);
    if (r === undefined) {
      r = new ServiceResolver(this.kv, service, {
        logger: this.log,
        ...(this.options.clock === undefined ? {} : { clock: this.options.clock }),
      });
      this.resolvers.set(service, r);
      if (this.options.detector !== undefined) r.subscribe((list) => this.follow(service, list));
    }
    return r;
  }

  /**
   * The instances of `service` a call may go to now: the resolver's, less
   * those naming's detector declared `failed` or `left` (with
   * `options.detector`; their entries may live on until their leases expire).
   */
  instances(service: string): readonly ServiceInstance[] {
    return this.resolver(service)
      .instances()
      .filter((i) => !this.detectedDown(i));
  }

  /** This object's detector member, once started (with `options.detector`, at the first resolve). */
  detectorMember(): Promise<DetectorMember> | undefined {
    return this.member;
  }

  private detectedDown(i: ServiceInstance): boolean {
    return i.detector !== undefined && this.down.has(i.detector.id);
  }

  /** Feeds a resolved list to the detector: new members are introduced, re-registered ones trusted again. */
  private follow(service: string, list: readonly ServiceInstance[]): void {
    if (this.closed) return;
    const refs = list.flatMap((i) => (i.detector === undefined ? [] : [i.detector]));
    const now = new Set<string>();
    for (const i of list) {
      const k = `${service}/${i.id}`;
      now.add(k);
      if (i.detector === undefined) continue;
      // A new entry (it was gone, or its detector moved: a restart) is trusted again.
      if (this.listed.get(k) !== i.detector.address) this.down.delete(i.detector.id);
      this.listed.set(k, i.detector.address);
    }
    for (const k of [...this.listed.keys()]) {
      if (k.startsWith(`${service}/`) && !now.has(k)) this.listed.delete(k);
    }
    if (refs.length === 0 && this.member === undefined) return;
    this.member ??= this.startMember(refs);
    void this.member.then(
      (m) => {
        for (const r of refs) m.detector.introduce(r);
      },
      () => undefined, // logged by startMember
    );
  }

  private startMember(seeds: readonly { id: string; address: string }[]): Promise<DetectorMember> {
    const inst = this.options.instances;
    const started = startDetectorMember({
      swim: this.options.detector ?? {},
      seeds,
      logger: this.log,
      ...(inst?.clusterId === undefined ? {} : { clusterId: inst.clusterId }),
      ...(inst?.tls === undefined ? {} : { tls: inst.tls }),
      ...(this.options.clock === undefined ? {} : { clock: this.options.clock }),
    }).then((m) => {
      const gone = (e: { member: string; incarnation: number; type: string }): void => {
        this.log.info({ member: e.member }, `naming: instance detector member ${e.type}`);
        this.down.set(e.member, e.incarnation);
      };
      const back = (e: { member: string; incarnation: number }): void => {
        const at = this.down.get(e.member);
        if (at !== undefined && e.incarnation > at) this.down.delete(e.member);
      };
      m.detector.on('failed', gone).on('left', gone).on('alive', back).on('joined', back);
      return m;
    });
    started.catch((err: unknown) => {
      this.log.warn({ err }, 'naming: could not start the detector member; following leases only');
    });
    return started;
  }

  /**
   * One listing of the registry: the instances of `service`, or of every
   * service, by service then id. Malformed entries are skipped (counted in
   * `skipped`, with why).
   */
  async list(
    service?: string,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<{
    revision: number;
    instances: ServiceInstance[];
    skipped: { key: string; reason: string }[];
  }> {
    if (service !== undefined) checkServiceName(service);
    let listing;
    try {
      listing = await listRegistry(
        this.kv,
        service === undefined ? registryRoot : `${registryRoot}${service}/`,
        options,
      );
    } catch (e) {
      throw isCohortError(e) && e.code === 'PERMISSION_DENIED'
        ? registryPermissionError(e, 'list', service)
        : e;
    }
    const byService = new Map<string, typeof listing.entries>();
    const skipped: { key: string; reason: string }[] = [];
    for (const e of listing.entries) {
      const rest = e.key.slice(registryRoot.length);
      const name = rest.slice(0, Math.max(0, rest.indexOf('/')));
      if (!isValidServiceName(name)) {
        skipped.push({ key: e.key, reason: 'not a registry key' });
        continue;
      }
      let list = byService.get(name);
      if (list === undefined) byService.set(name, (list = []));
      list.push(e);
    }
    const instances: ServiceInstance[] = [];
    for (const name of [...byService.keys()].sort()) {
      const set = new InstanceSet(name);
      const u = set.reset(byService.get(name) ?? [], listing.revision);
      skipped.push(...u.skipped);
      instances.push(...set.list());
    }
    return { revision: listing.revision, instances, skipped };
  }

  /**
   * A typed client of `def` whose calls go to the instances registered
   * under its name (see the file comment). `$counters` counts its calls.
   */
  service<S extends ServiceDef>(def: S, options: ServiceClientOptions = {}): ServiceClient<S> {
    const name = options.name ?? def.name;
    const resolver = this.resolver(name);
    const picker = new InstancePicker(options.balance ?? 'p2c', this.random.fork(`pick:${name}`));
    const counters: ServiceClientCounters = { calls: 0, retries: 0, failed: 0 };
    const invoker: Invoker = {
      unary: async (method, request, callOptions) => {
        counters.calls++;
        try {
          return await this.unary(
            resolver,
            picker,
            counters,
            method,
            request,
            callOptions,
            options,
          );
        } catch (e) {
          counters.failed++;
          throw e;
        }
      },
      stream: (method, request, callOptions) =>
        new DeferredStream(this.openStream(resolver, picker, method, request, callOptions)),
    };
    return Object.freeze({ ...makeClient(def, invoker), $counters: counters }) as ServiceClient<S>;
  }

  /** Deregisters what this object registered, stops resolving, closes the links (and the KV client it owns). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.registrations].map((r) => r.close({ timeoutMs: 3_000 })));
    await Promise.allSettled([...this.resolvers.values()].map((r) => r.close()));
    const m = this.member;
    if (m !== undefined) await m.then((x) => x.close()).catch(() => undefined);
    const d = this.dialer;
    if (d !== undefined) await d.then((x) => x.node.close()).catch(() => undefined);
    if (this.ownsKv) await this.kv.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new CohortError('CLOSED', 'naming is closed');
  }

  private dial(): Promise<Dialer> {
    this.dialer ??= (async () => {
      const tls = this.options.instances?.tls;
      const transport = await TcpTransport.start<RpcWireMessage>({
        self:
          tls !== undefined
            ? claimForCertificate(tls.cert)
            : nodeId(`client-${randomBytes(6).toString('hex')}`),
        clusterId: clusterId(this.options.instances?.clusterId ?? defaultClusterId),
        codec: rpcCodec,
        peers: {},
        logger: this.log,
        ...(tls === undefined ? {} : { tls }),
        ...(this.options.clock === undefined ? {} : { clock: this.options.clock }),
      });
      return { transport, node: new RpcNode(transport, { clock: this.clock }) };
    })();
    return this.dialer;
  }

  /** Points the dialer at `i`'s registered address (a moved instance is dialled anew). */
  private aim(d: Dialer, i: ServiceInstance): NodeId {
    const id = nodeId(i.id);
    const where = `${i.address.host}:${i.address.port}`;
    const known = this.addresses.get(i.id);
    if (known !== where) {
      if (known !== undefined) d.transport.removePeer(id);
      d.transport.setPeer(id, { host: i.address.host, port: i.address.port });
      this.addresses.set(i.id, where);
    }
    return id;
  }

  private suspected(id: string, now: number): boolean {
    const until = this.suspects.get(id);
    if (until === undefined) return false;
    if (until > now) return true;
    this.suspects.delete(id);
    return false;
  }

  /** An instance to try, or undefined after waiting (up to `waitMs`) for the set to change. */
  private async choose(
    resolver: ServiceResolver,
    picker: InstancePicker,
    waitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<ServiceInstance | undefined> {
    const now = this.clock.now();
    const all = resolver.instances().filter((i) => !this.detectedDown(i));
    const fresh = all.filter((i) => !this.suspected(i.id, now));
    const weights = new Map(fresh.map((i) => [i.id, i.weight]));
    const id = picker.pick(
      fresh.map((i) => i.id),
      (x) => this.outstanding.get(x) ?? 0,
      (x) => weights.get(x) ?? 1,
    );
    const chosen = id === undefined ? undefined : fresh.find((i) => i.id === id);
    if (chosen !== undefined) return chosen;
    // None to try: wait for a registration, or for a suspicion to lapse.
    const soonest = Math.min(
      ...all.map((i) => (this.suspects.get(i.id) ?? now) - now),
      limits.namingSuspectMs,
    );
    // With the detector, its `alive` does not wake the wait: hence the cap.
    const idleMs = this.options.detector === undefined ? waitMs : limits.namingSuspectMs;
    await resolver.nextChange(
      Math.max(1, Math.min(waitMs, all.length === 0 ? idleMs : soonest)),
      signal,
    );
    return undefined;
  }

  private async unary(
    resolver: ServiceResolver,
    picker: InstancePicker,
    counters: ServiceClientCounters,
    method: CompiledMethod,
    request: unknown,
    callOptions: CallOptions,
    options: ServiceClientOptions,
  ): Promise<unknown> {
    this.checkOpen();
    const what = `${method.service}.${method.name}`;
    const totalMs = callOptions.timeoutMs ?? options.timeoutMs ?? limits.rpcDeadlineMsDefault;
    const deadline = this.clock.now() + totalMs;
    const signal = callOptions.signal;
    const idempotent = method.def.idempotent;
    const release = this.clock.hold?.();
    let last: CohortError | undefined;
    let mayHaveRun = false;
    let tries = 0;
    try {
      method.checkRequest(request);
      await resolver.ready({ timeoutMs: totalMs });
      const d = await this.dial();
      for (;;) {
        this.checkOpen();
        if (signal?.aborted === true) {
          throw new CohortError('CANCELLED', `${what} cancelled by the caller`, {
            definite: !mayHaveRun,
            cause: signal.reason,
          });
        }
        const left = deadline - this.clock.now();
        if (left < 1) throw this.giveUp(what, resolver, totalMs, last, mayHaveRun);
        const instance = await this.choose(resolver, picker, left, signal);
        if (instance === undefined) continue;
        if (tries++ > 0) counters.retries++;
        const peer = this.aim(d, instance);
        const tryMs = Math.max(
          1,
          Math.floor(
            idempotent
              ? Math.min(left, options.tryTimeoutMs ?? limits.namingTryTimeoutMsDefault)
              : left,
          ),
        );
        this.outstanding.set(instance.id, (this.outstanding.get(instance.id) ?? 0) + 1);
        try {
          if (!d.transport.isConnected(peer)) {
            await d.transport.connect(peer, Math.min(tryMs, limits.connectTimeoutMs));
          }
          return await d.node.calls.unary(peer, method, request, {
            ...callOptions,
            timeoutMs: tryMs,
          });
        } catch (e) {
          if (!isCohortError(e)) throw e;
          if (isAborted(signal) || !routingCodes.has(e.code)) throw e;
          last = e;
          this.suspects.set(instance.id, this.clock.now() + limits.namingSuspectMs);
          if (e.definite) continue;
          if (idempotent) {
            mayHaveRun = true;
            continue;
          }
          throw new CohortError(
            'UNAVAILABLE',
            `${what} on instance ${instance.id} (${instance.address.host}:${instance.address.port}) failed after it may have run (${e.code}: ${e.message}); not retried, since ${what} is not idempotent: its outcome is unknown`,
            {
              definite: false,
              cause: e,
              details: { instance: instance.id, cause: e.code, service: resolver.service },
            },
          );
        } finally {
          const n = (this.outstanding.get(instance.id) ?? 1) - 1;
          if (n <= 0) this.outstanding.delete(instance.id);
          else this.outstanding.set(instance.id, n);
        }
      }
    } finally {
      release?.();
    }
  }

  private giveUp(
    what: string,
    resolver: ServiceResolver,
    totalMs: number,
    last: CohortError | undefined,
    mayHaveRun: boolean,
  ): CohortError {
    if (resolver.instances().length === 0 && last === undefined) {
      return new CohortError(
        'UNAVAILABLE',
        `no instance of service ${resolver.service} is registered (waited ${totalMs} ms); nothing was sent`,
        { details: { service: resolver.service } },
      );
    }
    const why = last === undefined ? '' : ` (last: ${last.code}: ${last.message})`;
    return mayHaveRun
      ? new CohortError(
          'TIMEOUT',
          `${what}: no instance of ${resolver.service} answered within ${totalMs} ms${why}`,
          {
            definite: false,
            ...(last === undefined ? {} : { cause: last }),
            details: { service: resolver.service },
          },
        )
      : new CohortError(
          'UNAVAILABLE',
          `${what}: no instance of ${resolver.service} could be reached within ${totalMs} ms${why}; nothing was sent`,
          {
            ...(last === undefined ? {} : { cause: last }),
            details: { service: resolver.service },
          },
        );
  }

  private async openStream(
    resolver: ServiceResolver,
    picker: InstancePicker,
    method: CompiledMethod,
    request: unknown,
    callOptions: CallOptions,
  ): Promise<ServerStream<unknown>> {
    this.checkOpen();
    const totalMs = callOptions.timeoutMs ?? limits.rpcStreamDeadlineMsDefault;
    const deadline = this.clock.now() + totalMs;
    await resolver.ready({ timeoutMs: totalMs });
    const d = await this.dial();
    let last: CohortError | undefined;
    for (;;) {
      const left = deadline - this.clock.now();
      if (left < 1)
        throw this.giveUp(`${method.service}.${method.name}`, resolver, totalMs, last, false);
      const instance = await this.choose(
        resolver,
        picker,
        Math.min(left, limits.connectTimeoutMs),
        callOptions.signal,
      );
      if (instance === undefined) continue;
      const peer = this.aim(d, instance);
      try {
        if (!d.transport.isConnected(peer))
          await d.transport.connect(peer, Math.min(left, limits.connectTimeoutMs));
      } catch (e) {
        if (!isCohortError(e)) throw e;
        last = e;
        this.suspects.set(instance.id, this.clock.now() + limits.namingSuspectMs);
        continue;
      }
      return d.node.calls.stream(peer, method, request, {
        ...callOptions,
        timeoutMs: Math.max(1, Math.floor(left)),
      });
    }
  }
}

/** True if `signal` was aborted (a function: the compiler cannot see it change across awaits). */
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}
