/**
 * The HTTP proxy in several processes sharing one listening port, as
 * HAProxy runs one thread per core: one Node process can use one core,
 * and the proxy's work per request (two HTTP parsers, two sockets) keeps
 * it there. The primary (the `cohort gateway` process) forks `workers`
 * processes with node:cluster; the primary owns the listening socket,
 * accepts each connection and hands it to the next worker in strict turn
 * (over the IPC channel, {@link HttpProxy.adopt}), and every worker runs a
 * whole {@link HttpProxy}. Not node:cluster's round robin: it hands the
 * next connection to whichever worker acknowledged its last one first, so
 * a burst of connections (wrk's 64 at its start) split 51/13, 38/26 and
 * 50/14 between two workers here, one worker saturated while the other
 * idled; strict turns split them evenly.
 *
 * ```ts
 * const w = await HttpWorkers.start({ listen: { host: '127.0.0.1', port: 8080 }, source }, 2);
 * w.address;                       // the shared port
 * httpBackends(await w.snapshots()); // the admin page, added up over the workers
 * await w.close();
 * ```
 *
 * What stays correct, and how:
 * - Failover, retries and limits are per request, so per worker: unchanged.
 * - Health (active checks, breakers, half-open probes) is per worker: each
 *   checks every backend (N workers send N times the checks) and ejects on
 *   its own failures. A dead backend is found by each worker separately, so
 *   up to `ejectFailures` tries per worker fail on it before all have
 *   ejected it; each of those tries fails over like any other (never-sent
 *   and idempotent requests go to another backend, others get 502).
 * - The backend list lives in the primary: every change of the source (a
 *   SIGHUP reload, the naming service) is sent to every worker, which
 *   drains removed backends itself.
 * - The admin port stays in the primary: `/status` and `/metrics` ask each
 *   worker for a snapshot ({@link HttpSnapshot}) and add them up
 *   (report.ts); a worker that does not answer in time is left out and
 *   the page says how many answered.
 * - A worker that dies is forked again (after a pause, so a crash loop
 *   cannot spin); its clients' connections break, as a crashed single
 *   process's would, and new ones go to the other workers meanwhile. Workers exit when the primary goes (IPC disconnect),
 *   and ignore SIGINT/SIGHUP/SIGTERM sent to the whole process group: the
 *   primary decides when they stop, after draining their connections.
 *
 * node:cluster keeps one set of settings per process, so one process runs
 * at most one {@link HttpWorkers} at a time.
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import net from 'node:net';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { pino } from 'pino';
import { assert } from '../lib/assert.js';
import { CohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import type { BackendSpec } from './backend-source.js';
import type { HttpProxyOptions } from './http-proxy.js';
import type { HttpSnapshot } from './report.js';

/** The proxy settings a worker gets: everything but the objects that cannot cross processes. */
export type HttpWorkerSettings = Omit<HttpProxyOptions, 'source' | 'logger' | 'random'>;

/** Primary → worker. */
export type ToWorker =
  | {
      readonly t: 'start';
      readonly index: number;
      readonly settings: HttpWorkerSettings;
      readonly logLevel: string;
      readonly backends: readonly BackendSpec[];
    }
  | { readonly t: 'backends'; readonly backends: readonly BackendSpec[] }
  | { readonly t: 'snapshot'; readonly id: number }
  /** A client connection, sent with the message as its handle. */
  | { readonly t: 'conn' }
  | { readonly t: 'close' };

/** Worker → primary. */
export type FromWorker =
  /** The worker listens for messages (an ES module loads after cluster's 'online'). */
  | { readonly t: 'hello' }
  | { readonly t: 'ready' }
  | { readonly t: 'failed'; readonly message: string }
  | { readonly t: 'snapshot'; readonly id: number; readonly snapshot: HttpSnapshot };

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  ready: boolean;
}

let started = false;

/** The HTTP proxy run by worker processes (see the file comment). */
export class HttpWorkers {
  private readonly slots: Slot[] = [];
  private backends: readonly BackendSpec[] = [];
  private unsubscribe: (() => void) | undefined;
  private closing = false;
  private nextId = 1;
  private readonly waiting = new Map<number, (s: HttpSnapshot | undefined) => void>();
  /** The bound address (port 0 resolved once the primary listens). */
  private listen: { host: string; port: number };
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  /** The slot whose worker gets the next connection (if ready; else the next ready one). */
  private turn = 0;
  /** Workers forked again after they died. */
  restarts = 0;

  private constructor(
    private readonly settings: HttpWorkerSettings,
    private readonly logLevel: string,
    private readonly log: Logger,
    private readonly server: net.Server,
    count: number,
  ) {
    this.listen = { ...settings.listen };
    for (let i = 0; i < count; i++) this.slots.push({ index: i, worker: undefined, ready: false });
  }

  /** Forks `count` workers serving `options`; rejects (and stops them) if one cannot start. */
  static async start(options: HttpProxyOptions, count: number): Promise<HttpWorkers> {
    assert(!started, 'one HttpWorkers per process (node:cluster settings are per process)');
    assert(count >= 2 && count <= limits.gatewayWorkersMax, `workers ${count} out of range`);
    started = true;
    const { source, logger, random: _random, ...settings } = options;
    const log = (logger ?? pino({ level: 'warn' }, pino.destination(2))).child({
      component: 'gateway-workers',
    });
    // pauseOnConnect: the primary reads nothing; the worker the connection goes to does.
    const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true });
    const w = new HttpWorkers(
      { ...settings, handed: true },
      logger?.level ?? 'warn',
      log,
      server,
      count,
    );
    const entry = fileURLToPath(
      new URL(`./worker-main${extname(fileURLToPath(import.meta.url))}`, import.meta.url),
    );
    // From the sources (tests, benches under tsx) the entry is TypeScript.
    const execArgv =
      entry.endsWith('.ts') && !process.execArgv.some((a) => a.includes('tsx'))
        ? [...process.execArgv, '--import', 'tsx']
        : process.execArgv;
    cluster.setupPrimary({ exec: entry, args: [], execArgv });
    w.unsubscribe = source.subscribe((list) => w.setBackends(list));
    try {
      await Promise.all(w.slots.map((s) => w.fork(s)));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(settings.listen.port, settings.listen.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await w.close();
      throw err;
    }
    const a = server.address() as net.AddressInfo;
    w.listen = { host: a.address, port: a.port };
    server.on('connection', (socket: net.Socket) => w.handOver(socket));
    server.on('error', (err) => log.error({ err }, 'the gateway listener failed'));
    return w;
  }

  /** Gives client connection `socket` to the next ready worker in turn (none ready: closed). */
  private handOver(socket: net.Socket): void {
    const n = this.slots.length;
    for (let k = 0; k < n; k++) {
      const slot = this.slots[(this.turn + k) % n]!;
      const worker = slot.worker;
      if (worker === undefined || !slot.ready || !worker.isConnected()) continue;
      this.turn = (slot.index + 1) % n;
      // The primary's copy of the socket closes once it is sent; a worker that died meanwhile
      // loses it, as it loses the connections it had.
      worker.send({ t: 'conn' } satisfies ToWorker, socket, (err: Error | null) => {
        if (err !== null) {
          this.log.debug({ err }, 'a connection could not be handed to a worker');
          socket.destroy();
        }
      });
      return;
    }
    socket.destroy();
  }

  /** The shared listening address. */
  get address(): { host: string; port: number } {
    return { ...this.listen };
  }

  /** The balancing rule the workers use. */
  get balance(): string {
    return this.settings.balance ?? 'p2c';
  }

  /** How many workers run (configured). */
  get count(): number {
    return this.slots.length;
  }

  /** Process ids of the running workers. */
  get pids(): number[] {
    return this.slots.flatMap((s) =>
      s.worker?.process.pid === undefined ? [] : [s.worker.process.pid],
    );
  }

  /** A snapshot of every worker that answers within `limits.gatewayWorkerReplyMs`. */
  async snapshots(): Promise<HttpSnapshot[]> {
    const asks = this.slots.map((s) => {
      const worker = s.worker;
      if (worker === undefined || !s.ready || !worker.isConnected()) {
        return Promise.resolve(undefined);
      }
      const id = this.nextId++;
      return new Promise<HttpSnapshot | undefined>((resolve) => {
        const timer = setTimeout(() => {
          this.waiting.delete(id);
          resolve(undefined);
        }, limits.gatewayWorkerReplyMs);
        this.waiting.set(id, (snap) => {
          clearTimeout(timer);
          this.waiting.delete(id);
          resolve(snap);
        });
        this.send(worker, { t: 'snapshot', id });
      });
    });
    const snaps = await Promise.all(asks);
    return snaps.filter((s): s is HttpSnapshot => s !== undefined);
  }

  /** Stops listening and stops the workers: each closes its connections, then exits. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    started = false;
    // New connections are refused from now (the port is released at once); the workers
    // close theirs below.
    if (this.server.listening) this.server.close();
    this.unsubscribe?.();
    for (const t of this.restartTimers) clearTimeout(t);
    this.restartTimers.clear();
    for (const [, answer] of this.waiting) answer(undefined);
    await Promise.all(
      this.slots.map(async (s) => {
        const worker = s.worker;
        if (worker === undefined || worker.isDead()) return;
        const gone = new Promise<void>((r) => worker.once('exit', () => r()));
        if (worker.isConnected()) this.send(worker, { t: 'close' });
        else worker.kill('SIGKILL');
        const timer = setTimeout(() => worker.kill('SIGKILL'), limits.gatewayWorkerCloseMs);
        await gone;
        clearTimeout(timer);
      }),
    );
  }

  private setBackends(list: readonly BackendSpec[]): void {
    this.backends = list;
    for (const s of this.slots) {
      if (s.worker !== undefined && s.ready && s.worker.isConnected()) {
        this.send(s.worker, { t: 'backends', backends: list });
      }
    }
  }

  private send(worker: Worker, m: ToWorker): void {
    // A worker that just died: its 'exit' handler takes over.
    worker.send(m, (err: Error | null) => {
      if (err !== null) this.log.debug({ err }, 'a message to a worker was lost');
    });
  }

  /** Forks the worker of `slot`; resolves once its proxy runs. A restart that fails is retried. */
  private fork(slot: Slot, restart = false): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const worker = cluster.fork({ COHORT_GATEWAY_WORKER: String(slot.index) });
      slot.worker = worker;
      slot.ready = false;
      let settled = false;
      worker.on('message', (m: FromWorker) => {
        if (m.t === 'hello') {
          this.send(worker, {
            t: 'start',
            index: slot.index,
            settings: this.settings,
            logLevel: this.logLevel,
            backends: this.backends,
          });
        } else if (m.t === 'ready') {
          if (settled) return;
          settled = true;
          slot.ready = true;
          // The list may have changed while the worker started.
          this.send(worker, { t: 'backends', backends: this.backends });
          resolve();
        } else if (m.t === 'failed') {
          if (settled) return;
          settled = true;
          reject(
            new CohortError('UNAVAILABLE', `gateway worker ${slot.index}: ${m.message}`, {
              details: { worker: slot.index },
            }),
          );
        } else if (m.t === 'snapshot') {
          this.waiting.get(m.id)?.(m.snapshot);
        }
      });
      worker.once('exit', (code, signal) => {
        slot.ready = false;
        if (slot.worker === worker) slot.worker = undefined;
        if (!settled) {
          settled = true;
          reject(
            new CohortError(
              'UNAVAILABLE',
              `gateway worker ${slot.index} exited (${signal ?? code}) before it was ready`,
              { details: { worker: slot.index } },
            ),
          );
          if (!restart) return;
        }
        if (this.closing) return;
        this.log.warn(
          { worker: slot.index, code, signal },
          `gateway worker ${slot.index} exited (${signal ?? code}); starting another`,
        );
        const timer = setTimeout(() => {
          this.restartTimers.delete(timer);
          if (this.closing) return;
          this.restarts++;
          // A failed restart logs here; its exit schedules the next attempt.
          this.fork(slot, true).catch((err: unknown) => {
            this.log.error({ err, worker: slot.index }, 'a gateway worker could not restart');
          });
        }, limits.gatewayWorkerRestartMs);
        this.restartTimers.add(timer);
      });
    });
  }
}
