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
import { RpcFront } from './rpc-front.js';
import type { RpcFrontOptions } from './rpc-front.js';

/** What a gateway serves; each part is optional (at least one of http and rpc). */
export interface GatewayOptions {
  readonly http?: HttpProxyOptions;
  readonly rpc?: RpcFrontOptions;
  /** The admin port: `/status` (JSON), `/metrics` (Prometheus), `/healthz`. */
  readonly admin?: { readonly host: string; readonly port: number };
}

/** A running gateway (see the file comment). */
export class Gateway {
  private adminServer: http.Server | undefined;

  private constructor(
    readonly http: HttpProxy | undefined,
    readonly rpc: RpcFront | undefined,
  ) {}

  /** Starts every part asked for; if one fails to start, the others are closed again. */
  static async start(options: GatewayOptions): Promise<Gateway> {
    let proxy: HttpProxy | undefined;
    let rpc: RpcFront | undefined;
    try {
      if (options.http !== undefined) proxy = await HttpProxy.start(options.http);
      if (options.rpc !== undefined) rpc = await RpcFront.start(options.rpc);
      const gw = new Gateway(proxy, rpc);
      if (options.admin !== undefined) gw.adminServer = await listenAdmin(gw, options.admin);
      return gw;
    } catch (err) {
      await proxy?.close();
      await rpc?.close();
      throw err;
    }
  }

  /** The admin port's address, if it has one. */
  get adminAddress(): { host: string; port: number } | undefined {
    const a = this.adminServer?.address() as AddressInfo | undefined | null;
    return a === undefined || a === null ? undefined : { host: a.address, port: a.port };
  }

  /** What `/status` shows. */
  status(): unknown {
    return {
      http:
        this.http === undefined
          ? undefined
          : {
              address: this.http.address,
              balance: this.http.farm.balance,
              counters: this.http.counters,
              latency: this.http.latency.summary(),
              panics: this.http.farm.panics,
              backends: this.http.status(),
            },
      rpc: this.rpc?.status(),
    };
  }

  /** What `/metrics` shows. */
  metrics(): string {
    const families: MetricFamily[] = [
      ...(this.http?.metrics() ?? []),
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
    await Promise.all([this.http?.close(), this.rpc?.close()]);
  }
}

async function listenAdmin(gw: Gateway, at: { host: string; port: number }): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    req.resume();
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET') {
        res.writeHead(405, { allow: 'GET' }).end();
        return;
      }
      if (path === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(gw.metrics());
        return;
      }
      if (path === '/status' || path === '/') {
        const body = JSON.stringify(gw.status(), null, 2);
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
        return;
      }
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('try /status or /metrics\n');
    } catch {
      res.destroy();
    }
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
