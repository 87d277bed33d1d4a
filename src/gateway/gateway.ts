/**
 * `cohort gateway`: the serving farm's front door. An HTTP reverse proxy
 * ({@link HttpProxy}) and an RPC front end ({@link RpcFront}) in front of
 * stateless backends, plus an admin port with the status of every backend
 * (JSON at `/status`) and Prometheus metrics (`/metrics`).
 *
 * ```ts
 * const gw = await Gateway.start({
 *   http: { listen: { host: '127.0.0.1', port: 8080 }, source: new StaticBackendSource(parseBackends('a=127.0.0.1:8081')) },
 *   admin: { host: '127.0.0.1', port: 8081 },
 * });
 * // curl localhost:8081/status   → { http: { backends: [...], counters }, rpc: ... }
 * // curl localhost:8081/metrics  → cohort_gateway_* in Prometheus text
 * await gw.close();
 * ```
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpProxy } from './http-proxy.js';
import type { HttpProxyOptions } from './http-proxy.js';
import { prometheusText } from './metrics.js';
import type { MetricFamily } from './metrics.js';
import { httpBackends, httpMetrics, httpTotals } from './report.js';
import type { HttpSnapshot } from './report.js';
import { RpcFront } from './rpc-front.js';
import type { RpcFrontOptions } from './rpc-front.js';
import { HttpWorkers } from './workers.js';

/** What a gateway serves; each part is optional (at least one of http and rpc). */
export interface GatewayOptions {
  readonly http?: HttpProxyOptions;
  readonly rpc?: RpcFrontOptions;
  /** The admin port: `/status` (JSON), `/metrics` (Prometheus), `/healthz`. */
  readonly admin?: { readonly host: string; readonly port: number };
  /**
   * Processes running the HTTP proxy (default 1: this one). More fork
   * worker processes sharing the listening port ({@link HttpWorkers}); the
   * RPC front end and the admin port stay in this process.
   */
  readonly workers?: number;
}

/** A running gateway (see the file comment). */
export class Gateway {
  private adminServer: http.Server | undefined;

  private constructor(
    /** The HTTP proxy when it runs in this process (`workers` 1). */
    readonly http: HttpProxy | undefined,
    readonly rpc: RpcFront | undefined,
    /** The HTTP proxy's worker processes (`workers` above 1). */
    readonly httpWorkers: HttpWorkers | undefined,
  ) {}

  /** Starts every part asked for; if one fails to start, the others are closed again. */
  static async start(options: GatewayOptions): Promise<Gateway> {
    let proxy: HttpProxy | undefined;
    let workers: HttpWorkers | undefined;
    let rpc: RpcFront | undefined;
    try {
      if (options.http !== undefined) {
        if ((options.workers ?? 1) > 1) {
          workers = await HttpWorkers.start(options.http, options.workers ?? 1);
        } else proxy = await HttpProxy.start(options.http);
      }
      if (options.rpc !== undefined) rpc = await RpcFront.start(options.rpc);
      const gw = new Gateway(proxy, rpc, workers);
      if (options.admin !== undefined) gw.adminServer = await listenAdmin(gw, options.admin);
      return gw;
    } catch (err) {
      await proxy?.close();
      await workers?.close();
      await rpc?.close();
      throw err;
    }
  }

  /** The HTTP proxy's address (shared by its workers), if it runs. */
  get httpAddress(): { host: string; port: number } | undefined {
    return this.http?.address ?? this.httpWorkers?.address;
  }

  /** Processes serving HTTP: 1, or the number of workers. */
  get httpProcesses(): number {
    return this.httpWorkers?.count ?? (this.http === undefined ? 0 : 1);
  }

  private async httpSnapshots(): Promise<HttpSnapshot[] | undefined> {
    if (this.http !== undefined) return [this.http.snapshot()];
    return this.httpWorkers?.snapshots();
  }

  /** The admin port's address, if it has one. */
  get adminAddress(): { host: string; port: number } | undefined {
    const a = this.adminServer?.address() as AddressInfo | undefined | null;
    return a === undefined || a === null ? undefined : { host: a.address, port: a.port };
  }

  /** What `/status` shows (with workers: added up over those that answered). */
  async status(): Promise<unknown> {
    const snaps = await this.httpSnapshots();
    let http: unknown;
    if (snaps !== undefined) {
      const totals = httpTotals(snaps);
      http = {
        address: this.httpAddress,
        balance: this.http?.farm.balance ?? this.httpWorkers?.balance,
        ...(this.httpWorkers === undefined
          ? {}
          : {
              workers: {
                count: this.httpWorkers.count,
                answered: snaps.length,
                restarts: this.httpWorkers.restarts,
                pids: this.httpWorkers.pids,
              },
            }),
        counters: totals.counters,
        latency: totals.latency.summary(),
        panics: totals.panics,
        backends: httpBackends(snaps),
      };
    }
    return { http, rpc: this.rpc?.status() };
  }

  /** What `/metrics` shows (with workers: added up over those that answered). */
  async metrics(): Promise<string> {
    const snaps = await this.httpSnapshots();
    const families: MetricFamily[] = [
      ...(snaps === undefined ? [] : httpMetrics(snaps)),
      ...(this.rpc?.metrics() ?? []),
    ];
    return prometheusText(families);
  }

  /** Stops everything. */
  async close(): Promise<void> {
    const admin = this.adminServer;
    if (admin !== undefined) {
      await new Promise<void>((resolve) => {
        admin.close(() => resolve());
        admin.closeAllConnections();
      });
    }
    await Promise.all([this.http?.close(), this.httpWorkers?.close(), this.rpc?.close()]);
  }
}

async function listenAdmin(gw: Gateway, at: { host: string; port: number }): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    req.resume();
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/metrics') {
      gw.metrics().then(
        (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(text),
        () => res.destroy(),
      );
      return;
    }
    if (path === '/status' || path === '/') {
      gw.status().then(
        (s) => {
          const body = JSON.stringify(s, null, 2);
          res.writeHead(200, { 'content-type': 'application/json' }).end(body);
        },
        () => res.destroy(),
      );
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('try /status or /metrics\n');
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
