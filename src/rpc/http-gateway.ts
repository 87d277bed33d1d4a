/**
 * The HTTP/JSON gateway: every service a node serves, callable with curl or
 * any language (node:http, no framework).
 *
 * ```ts
 * const gw = await HttpGateway.start(node, { host: '127.0.0.1', port: 8080 });
 * // curl -s localhost:8080/rpc                                   → services with JSON Schemas
 * // curl -s -XPOST localhost:8080/rpc/ListMax/listMax -d '{"values":[3,9,4]}'   → {"max":9}
 * // curl -s -XPOST localhost:8080/rpc/ListMax/listMax -d '{"values":"x"}'
 * //   → 400 {"error":{"code":"INVALID_ARGUMENT","details":{"path":"/values"},...}}
 * await gw.close();
 * ```
 *
 * - `GET /rpc` lists services: name, methods, kind, idempotent, and the
 *   request/response JSON Schemas straight from the service definitions.
 * - `POST /rpc/<service>/<method>` with a JSON body runs the call through the
 *   node itself (a loopback RPC), so validation, interceptors, deadlines and
 *   the in-flight bound are exactly those of binary callers. A streaming
 *   method answers NDJSON, one item per line (an error ends it as a last
 *   `{"error":...}` line).
 * - `GET /metrics` serves the given {@link RpcMetrics}-like source as Prometheus text.
 * - Headers: `x-cohort-timeout-ms` sets the deadline; `x-cohort-meta-<key>`
 *   becomes call metadata (e.g. an auth token for a server interceptor).
 *   A unary reply's metadata comes back as `x-cohort-reply-meta`, a JSON
 *   object (non-ASCII escaped).
 *   Metadata beyond its bounds (`limits.rpcMetaKeyCharsMax`,
 *   `rpcMetaValueCharsMax`, `rpcMetaEntriesMax`) is refused with 431.
 * - Errors: `{"error":{code, message, definite, details}}` with a status from
 *   the code (400 INVALID_ARGUMENT — also for bad JSON —, 403, 404, 413, 431
 *   for oversized metadata headers, 503 OVERLOADED/UNAVAILABLE, 504 TIMEOUT,
 *   500 otherwise). The client going away cancels the call.
 * - Nothing a request carries can throw out of the gateway's event handlers:
 *   an unexpected failure while answering one request is logged and answered
 *   500 (or ends that response), never the process.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { RealClock } from '../lib/clock.js';
import { AssertionError } from '../lib/assert.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import type { ErrorCode } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { LogLimiter } from '../lib/log-limiter.js';
import { metaError } from './messages.js';
import type { RpcNode } from './node.js';
import type { ServiceDef } from './service.js';

/** Where the gateway listens. */
export interface HttpGatewayOptions {
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Largest request body (default `limits.httpBodyBytesMax`). */
  readonly bodyBytesMax?: number;
  /** Served as Prometheus text at `GET /metrics` when given. */
  readonly metrics?: { prometheus(): string };
  /** Where unexpected failures are logged (default: pino at 'warn' on stderr). */
  readonly logger?: Logger;
}

const statusOf: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  FRAME_TOO_LARGE: 413,
  OVERLOADED: 503,
  UNAVAILABLE: 503,
  CIRCUIT_OPEN: 503,
  TIMEOUT: 504,
  CANCELLED: 499,
};

/** An HTTP/JSON front for one {@link RpcNode}'s services. */
export class HttpGateway {
  private readonly limited: LogLimiter;

  private constructor(
    private readonly server: http.Server,
    private readonly node: RpcNode,
    private readonly bodyBytesMax: number,
    private readonly metrics: { prometheus(): string } | undefined,
    logger: Logger,
  ) {
    this.limited = new LogLimiter(logger.child({ component: 'http-gateway' }), {
      clock: new RealClock(),
    });
  }

  /** Starts listening. */
  static async start(node: RpcNode, options: HttpGatewayOptions): Promise<HttpGateway> {
    const server = http.createServer();
    const gw = new HttpGateway(
      server,
      node,
      options.bodyBytesMax ?? limits.httpBodyBytesMax,
      options.metrics,
      options.logger ?? pino({ level: 'warn' }, pino.destination(2)),
    );
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) =>
      gw.guard(res, () => gw.handle(req, res)),
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return gw;
  }

  /** The bound address. */
  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Stops accepting and closes idle connections. */
  close(): Promise<void> {
    this.limited.close();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /**
   * Runs one step of answering a request (an event handler or a promise
   * callback): an exception is logged and answered 500 (or ends a response
   * already started) instead of leaving the handler, which would end the
   * process. A failed assertion is a bug and is not caught.
   */
  private guard(res: http.ServerResponse, step: () => void): void {
    try {
      step();
    } catch (err) {
      if (err instanceof AssertionError) throw err;
      this.limited.error({ err }, 'the HTTP gateway failed to answer a request');
      try {
        if (res.headersSent) res.destroy();
        else
          sendError(
            res,
            new CohortError('INTERNAL', `the gateway failed: ${errorText(err)}`, { cause: err }),
          );
      } catch {
        res.destroy();
      }
    }
  }

  /** The listing `GET /rpc` returns. */
  listing(): { services: unknown[] } {
    return { services: this.node.server.serviceDefs.map(describeService) };
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    // Errors on either stream end this exchange only (no listener would make them fatal).
    req.on('error', () => res.destroy());
    res.on('error', () => res.destroy());
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://gateway');
    } catch {
      sendError(res, new CohortError('INVALID_ARGUMENT', 'the request URL does not parse'));
      return;
    }
    const parts = url.pathname.split('/').filter((p) => p !== '');
    if (url.pathname === '/metrics' && req.method === 'GET' && this.metrics !== undefined) {
      const text = this.metrics.prometheus();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(text);
      return;
    }
    if (parts[0] !== 'rpc') {
      sendError(res, new CohortError('NOT_FOUND', `no route ${url.pathname}; try GET /rpc`));
      return;
    }
    if (parts.length === 1) {
      if (req.method !== 'GET') {
        sendJson(res, 405, errorBody(new CohortError('INVALID_ARGUMENT', 'use GET /rpc')));
        return;
      }
      sendJson(res, 200, this.listing());
      return;
    }
    if (parts.length !== 3 || req.method !== 'POST') {
      sendJson(
        res,
        req.method === 'POST' ? 404 : 405,
        errorBody(new CohortError('INVALID_ARGUMENT', 'use POST /rpc/<service>/<method>')),
      );
      return;
    }
    const [, service, method] = parts as [string, string, string];
    // Headers first: a request refused for them needs no body.
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (k.startsWith(META_PREFIX) && typeof v === 'string') meta[k.slice(META_PREFIX.length)] = v;
    }
    const badMeta = metaError(meta);
    if (badMeta !== undefined) {
      // 431 Request Header Fields Too Large (RFC 6585 §5): the header, not the body, is at fault.
      const path = badMeta.details.path;
      sendError(
        res,
        new CohortError('INVALID_ARGUMENT', `${badMeta.message} (x-cohort-meta-* headers)`, {
          details: {
            ...badMeta.details,
            header:
              typeof path === 'string' && path.startsWith('/meta/')
                ? `${META_PREFIX}${path.slice(6)}`
                : `${META_PREFIX}*`,
          },
        }),
        431,
      );
      req.resume();
      return;
    }
    this.readBody(req, res, (body) => this.call(req, res, service, method, body, meta));
  }

  private readBody(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    then: (body: unknown) => void,
  ): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > this.bodyBytesMax) {
        refused = true;
        sendError(
          res,
          new CohortError('INVALID_ARGUMENT', `body exceeds ${this.bodyBytesMax} bytes`, {
            details: { path: '', limit: this.bodyBytesMax },
          }),
          413,
        );
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () =>
      this.guard(res, () => {
        if (refused) return;
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = text.trim() === '' ? {} : JSON.parse(text);
        } catch (err) {
          sendError(
            res,
            new CohortError(
              'INVALID_ARGUMENT',
              `body is not JSON: ${err instanceof Error ? err.message : String(err)}`,
              { details: { path: '' } },
            ),
          );
          return;
        }
        then(body);
      }),
    );
  }

  private call(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    service: string,
    method: string,
    body: unknown,
    meta: Record<string, string>,
  ): void {
    const compiled = this.node.server.lookup(service, method);
    if (compiled === undefined) {
      sendError(res, new CohortError('NOT_FOUND', `no method ${service}.${method}`));
      return;
    }
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort(new CohortError('CANCELLED', 'the HTTP client left'));
    });
    let replyMeta: Readonly<Record<string, string>> | undefined;
    const options: {
      timeoutMs?: number;
      signal: AbortSignal;
      meta?: Record<string, string>;
      onReplyMeta: (m: Readonly<Record<string, string>>) => void;
    } = {
      signal: ac.signal,
      onReplyMeta: (m) => (replyMeta = m),
    };
    if (Object.keys(meta).length > 0) options.meta = meta;
    const timeout = req.headers['x-cohort-timeout-ms'];
    if (typeof timeout === 'string') {
      const ms = Number(timeout);
      if (!Number.isInteger(ms) || ms < 1 || ms > limits.rpcDeadlineMsMax) {
        sendError(
          res,
          new CohortError(
            'INVALID_ARGUMENT',
            `x-cohort-timeout-ms must be 1..${limits.rpcDeadlineMsMax}`,
            {
              details: { path: 'x-cohort-timeout-ms' },
            },
          ),
        );
        return;
      }
      options.timeoutMs = ms;
    }
    const invoker = this.node.invoker(this.node.self);
    if (compiled.def.kind === 'unary') {
      invoker.unary(compiled, body, options).then(
        (result) => this.guard(res, () => sendJson(res, 200, result, replyMetaHeader(replyMeta))),
        (err: unknown) => this.guard(res, () => sendError(res, asCohortError(err))),
      );
      return;
    }
    this.streamTo(res, invoker.stream(compiled, body, options)).catch((err: unknown) =>
      this.guard(res, () => {
        throw err;
      }),
    );
  }

  private async streamTo(res: http.ServerResponse, stream: AsyncIterable<unknown>): Promise<void> {
    let started = false;
    try {
      for await (const item of stream) {
        if (!started) {
          started = true;
          res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        }
        if (!res.write(`${JSON.stringify(item)}\n`)) {
          // Resolves on 'close' too: a client that left never drains.
          await new Promise<void>((resolve) => {
            res.once('drain', resolve);
            res.once('close', resolve);
          });
          if (res.destroyed) return;
        }
      }
      if (!started) res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.end();
    } catch (err) {
      const e = asCohortError(err);
      if (!started) sendError(res, e);
      else res.end(`${JSON.stringify(errorBody(e))}\n`);
    }
  }
}

function describeService(s: ServiceDef): unknown {
  return {
    name: s.name,
    methods: Object.entries(s.methods).map(([name, m]) => ({
      name,
      kind: m.kind,
      idempotent: m.idempotent,
      description: m.description,
      path: `/rpc/${s.name}/${name}`,
      request: m.request,
      ...(m.kind === 'unary' ? { response: m.response } : { item: m.item }),
    })),
  };
}

const META_PREFIX = 'x-cohort-meta-';

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function asCohortError(err: unknown): CohortError {
  return isCohortError(err)
    ? err
    : new CohortError('INTERNAL', err instanceof Error ? err.message : String(err));
}

function errorBody(err: CohortError): { error: ReturnType<CohortError['toJSON']> } {
  return { error: err.toJSON() };
}

function sendError(res: http.ServerResponse, err: CohortError, status?: number): void {
  sendJson(res, status ?? statusOf[err.code] ?? 500, errorBody(err));
}

function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  extra: Readonly<Record<string, string>> = {},
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...extra,
  });
  res.end(text);
}

/**
 * Reply metadata as one `x-cohort-reply-meta` header holding a JSON object,
 * non-ASCII escaped (`\uXXXX`), so any key or value makes a valid header.
 */
function replyMetaHeader(
  meta: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  if (meta === undefined || Object.keys(meta).length === 0) return {};
  const json = JSON.stringify(meta).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return { 'x-cohort-reply-meta': json };
}
