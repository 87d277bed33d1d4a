/**
 * The serving side of RPC: dispatch to registered handlers, request
 * validation, the in-flight bound, deadlines and cancellation (an
 * `AbortSignal` per call), server streams paced by the client's credit, and
 * interceptors. An {@link RpcNode} owns one; applications call
 * `node.serve(Service, handlers)`.
 *
 * ```ts
 * node.serve(ListMax, { listMax: ({ values }) => ({ max: Math.max(...values) }) });
 * node.intercept(async (call, next) => {                 // an auth hook
 *   if (call.meta.token !== secret) throw new CohortError('PERMISSION_DENIED', 'bad token');
 *   return next();
 * });
 * ```
 *
 * A handler's failure becomes an error reply: its CohortError, or INTERNAL
 * for anything else. An AssertionError (a broken invariant, DESIGN.md,
 * Errors) never does: it crashes the process (crashOnAssertion).
 *
 * With a `logger`, refused calls (OVERLOADED at warn, bad requests at info)
 * and handlers that fail with something other than a CohortError (error)
 * are logged through a {@link LogLimiter}: a client repeating a bad call
 * thousands of times logs a few lines and a summary per window.
 *
 * The per-call signal is created lazily: a handler that never looks at
 * `ctx.signal` costs no AbortController and no deadline timer (it could not
 * stop early anyway; its late reply is simply ignored by the client).
 */
import { crashOnAssertion } from '../lib/assert.js';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { LogLimiter } from '../lib/log-limiter.js';
import { anonymous, identityField } from '../trust/identity.js';
import type { PeerIdentity } from '../trust/identity.js';
import { metaError } from './messages.js';
import type { RpcWire, RpcWireMessage } from './messages.js';
import type {
  CallContext,
  CompiledMethod,
  Handlers,
  ServiceDef,
  StreamHandler,
  StreamMethod,
  UnaryHandler,
  UnaryMethod,
} from './service.js';

/** What a server interceptor sees: the call's context plus its (validated) request. */
export interface ServerCall extends CallContext {
  readonly request: unknown;
  readonly kind: 'unary' | 'stream';
}

/**
 * Wraps every call a server runs (logging, metrics, auth). `next()` runs the
 * handler (for a stream: the whole stream) and resolves with its result;
 * throw a CohortError to refuse the call.
 */
export type ServerInterceptor = (
  call: ServerCall,
  next: () => Promise<unknown>,
) => Promise<unknown>;

/** Options of the server side of an {@link RpcNode}. */
export interface RpcServerOptions {
  /** Calls run at once before OVERLOADED (default `limits.rpcServerInflightMax`). */
  readonly inflightMax?: number;
  /** Interceptors, outermost first (more can be added with `intercept`). */
  readonly interceptors?: readonly ServerInterceptor[];
  /** Where refused and failed calls are logged, rate-limited (default: not logged). */
  readonly logger?: Logger;
  /**
   * The authenticated identity behind a peer id (default: the transport's
   * `identityOf`, else anonymous); it becomes the call's `identity`.
   */
  readonly identify?: (peer: NodeId) => PeerIdentity;
  /**
   * An access policy, checked synchronously for every call once its request
   * is valid and before any handler or interceptor runs: a returned error
   * (PERMISSION_DENIED) refuses the call, which then changes nothing
   * (counted in `denied`, logged with the identity).
   */
  readonly authorize?: (call: ServerCallInfo) => CohortError | undefined;
}

/** What an access policy sees of a call (see RpcServerOptions.authorize). */
export interface ServerCallInfo {
  readonly peer: NodeId;
  readonly identity: PeerIdentity;
  readonly service: string;
  readonly method: string;
  readonly meta: Readonly<Record<string, string>>;
  readonly request: unknown;
}

/** Counters of the server side. */
export interface RpcServerCounters {
  callsReceived: number;
  callsSucceeded: number;
  callsFailed: number;
  /** Calls refused with OVERLOADED. */
  overloaded: number;
  /** Requests refused with INVALID_ARGUMENT or NOT_FOUND. */
  rejected: number;
  /** Calls aborted (deadline, cancel, disconnect, close). */
  aborted: number;
  /** Calls the access policy refused. */
  denied: number;
  /** Replies the transport refused (client gone, queue full). */
  repliesDropped: number;
}

type Send = (to: NodeId, message: RpcWireMessage) => void;

interface Registered {
  readonly method: CompiledMethod;
  readonly handler: (request: unknown, ctx: CallContext) => unknown;
}

/** One running call; it is the handler's {@link CallContext}. */
class RunningCall implements ServerCall {
  private controller: AbortController | undefined;
  private timer: TimerHandle | undefined;
  /** Why the call was aborted, once it was. */
  abortReason: CohortError | undefined;
  credit: number;
  private creditWaiter: (() => void) | undefined;
  readonly meta: Readonly<Record<string, string>>;
  /** What {@link setReplyMeta} set, sent with a unary reply. */
  replyMeta: Record<string, string> | undefined;

  constructor(
    private readonly side: RpcServerSide,
    readonly id: number,
    readonly peer: NodeId,
    readonly identity: PeerIdentity,
    readonly service: string,
    readonly method: string,
    readonly kind: 'unary' | 'stream',
    readonly request: unknown,
    readonly deadline: number,
    meta: Readonly<Record<string, string>> | undefined,
    credit: number,
  ) {
    this.meta = meta ?? {};
    this.credit = credit;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
      else this.armDeadline();
    }
    return this.controller.signal;
  }

  remainingMs(): number {
    return this.deadline - this.side.clock.now();
  }

  setReplyMeta(key: string, value: string): void {
    const next = { ...this.replyMeta, [key]: value };
    const bad = metaError(next);
    if (bad !== undefined) throw bad;
    this.replyMeta = next;
  }

  /** Stops the call; idempotent. */
  abort(reason: CohortError): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.disarm();
    this.controller?.abort(reason);
    this.wakeCredit();
  }

  addCredit(n: number): void {
    this.credit += n;
    this.wakeCredit();
  }

  /** Resolves when credit is available or the call is aborted. */
  waitCredit(): Promise<void> {
    return new Promise((resolve) => {
      this.creditWaiter = resolve;
    });
  }

  disarm(): void {
    if (this.timer !== undefined) this.side.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  private armDeadline(): void {
    const left = this.remainingMs();
    if (left <= 0) {
      this.side.expire(this);
      return;
    }
    this.timer = this.side.clock.setTimer(left, () => {
      this.timer = undefined;
      this.side.expire(this);
    });
  }

  private wakeCredit(): void {
    const w = this.creditWaiter;
    this.creditWaiter = undefined;
    w?.();
  }
}

/** The server side of an RpcNode (internal; see the file comment). */
export class RpcServerSide {
  private readonly services = new Map<string, Map<string, Registered>>();
  private readonly calls = new Map<NodeId, Map<number, RunningCall>>();
  private running = 0;
  private readonly inflightMax: number;
  private readonly interceptors: ServerInterceptor[];
  private readonly limited: LogLimiter | undefined;
  private readonly identify: (peer: NodeId) => PeerIdentity;
  private readonly authorize: ((call: ServerCallInfo) => CohortError | undefined) | undefined;
  private closed = false;
  /** Live counters. */
  readonly counters: RpcServerCounters = {
    callsReceived: 0,
    callsSucceeded: 0,
    callsFailed: 0,
    overloaded: 0,
    rejected: 0,
    aborted: 0,
    denied: 0,
    repliesDropped: 0,
  };

  constructor(
    private readonly send: Send,
    readonly clock: Clock,
    options: RpcServerOptions = {},
  ) {
    this.inflightMax = options.inflightMax ?? limits.rpcServerInflightMax;
    this.identify = options.identify ?? (() => anonymous);
    this.authorize = options.authorize;
    this.interceptors = [...(options.interceptors ?? [])];
    this.limited =
      options.logger === undefined
        ? undefined
        : new LogLimiter(options.logger.child({ component: 'rpc-server' }), { clock });
  }

  /** Calls running now. */
  get inflight(): number {
    return this.running;
  }

  /** The registered services (for the gateway's listing). */
  get serviceDefs(): readonly ServiceDef[] {
    return [...this.defs.values()];
  }

  private readonly defs = new Map<string, ServiceDef>();

  /** Registers the handlers of `service`; a service is served once per node. */
  serve<S extends ServiceDef>(service: S, handlers: Handlers<S>): void {
    if (this.services.has(service.name)) {
      throw new CohortError('ALREADY_EXISTS', `service ${service.name} is already served`);
    }
    const methods = new Map<string, Registered>();
    for (const [name, method] of service.compiled) {
      const handler = (handlers as Record<string, unknown>)[name];
      if (typeof handler !== 'function') {
        throw new CohortError('INVALID_ARGUMENT', `no handler for ${service.name}.${name}`);
      }
      methods.set(name, {
        method,
        handler: (handler as (r: unknown, c: CallContext) => unknown).bind(handlers),
      });
    }
    this.services.set(service.name, methods);
    this.defs.set(service.name, service);
  }

  /** Adds a server interceptor (innermost so far). */
  intercept(interceptor: ServerInterceptor): void {
    this.interceptors.push(interceptor);
  }

  /** Looks up a method (the gateway calls handlers through {@link runLocal}). */
  lookup(service: string, method: string): CompiledMethod | undefined {
    return this.services.get(service)?.get(method)?.method;
  }

  /** Handles a call-side message from a client. */
  onMessage(from: NodeId, msg: RpcWire<'RpcRequest' | 'RpcCancel' | 'RpcCredit'>): void {
    switch (msg.type) {
      case 'RpcRequest':
        this.onRequest(from, msg);
        return;
      case 'RpcCancel': {
        const call = this.calls.get(from)?.get(msg.id);
        if (call !== undefined) {
          this.counters.aborted++;
          call.abort(new CohortError('CANCELLED', 'the client cancelled the call'));
          this.forget(call);
        }
        return;
      }
      case 'RpcCredit':
        this.calls.get(from)?.get(msg.id)?.addCredit(msg.credit);
        return;
    }
  }

  private onRequest(from: NodeId, msg: RpcWire<'RpcRequest'>): void {
    this.counters.callsReceived++;
    // Looked up now, while the link that delivered the request is the peer's.
    const identity = this.identify(from);
    const reg = this.services.get(msg.service)?.get(msg.method);
    if (reg === undefined) {
      this.counters.rejected++;
      this.limited?.info(
        {
          peer: from,
          identity: identityField(identity),
          service: msg.service,
          method: msg.method,
          code: 'NOT_FOUND',
        },
        'refused a call to an unknown method',
      );
      this.replyError(
        from,
        msg.id,
        new CohortError('NOT_FOUND', `no method ${msg.service}.${msg.method} on this node`, {
          details: { service: msg.service, method: msg.method },
        }),
      );
      return;
    }
    const isStream = reg.method.def.kind === 'stream';
    if (isStream !== (msg.credit !== undefined)) {
      this.counters.rejected++;
      this.replyError(
        from,
        msg.id,
        new CohortError(
          'INVALID_ARGUMENT',
          `${msg.service}.${msg.method} is ${isStream ? 'a streaming' : 'a unary'} method`,
          { details: { path: '/credit' } },
        ),
      );
      return;
    }
    if (this.closed || this.running >= this.inflightMax) {
      this.counters.overloaded++;
      if (!this.closed) {
        this.limited?.warn(
          {
            peer: from,
            identity: identityField(identity),
            service: msg.service,
            method: msg.method,
            inflight: this.running,
          },
          'refused a call: too many in flight (OVERLOADED)',
        );
      }
      this.replyError(
        from,
        msg.id,
        new CohortError(
          'OVERLOADED',
          this.closed ? 'the server is closing' : `${this.running} calls in flight`,
          { details: { limit: this.inflightMax } },
        ),
      );
      return;
    }
    try {
      reg.method.checkRequest(msg.payload);
    } catch (err) {
      crashOnAssertion(err);
      this.counters.rejected++;
      const e = toCohortError(err);
      this.limited?.info(
        {
          peer: from,
          identity: identityField(identity),
          service: msg.service,
          method: msg.method,
          code: e.code,
          err: e.message,
        },
        'refused a call with an invalid request',
      );
      this.replyError(from, msg.id, e);
      return;
    }
    if (this.authorize !== undefined) {
      const denied = this.authorize({
        peer: from,
        identity,
        service: msg.service,
        method: msg.method,
        meta: msg.meta ?? {},
        request: msg.payload,
      });
      if (denied !== undefined) {
        this.counters.denied++;
        this.limited?.info(
          {
            peer: from,
            identity: identityField(identity),
            service: msg.service,
            method: msg.method,
            code: denied.code,
            err: denied.message,
          },
          'refused a call: not permitted',
        );
        this.replyError(from, msg.id, denied);
        return;
      }
    }
    if (this.calls.get(from)?.has(msg.id) === true) {
      this.counters.rejected++;
      this.replyError(
        from,
        msg.id,
        new CohortError('PROTOCOL_ERROR', `request id ${msg.id} is already in flight`),
      );
      return;
    }
    const call = new RunningCall(
      this,
      msg.id,
      from,
      identity,
      msg.service,
      msg.method,
      isStream ? 'stream' : 'unary',
      msg.payload,
      this.clock.now() + msg.timeoutMs,
      msg.meta,
      msg.credit ?? 0,
    );
    if (!isStream && this.interceptors.length === 0) {
      // Fast path: a handler that answers synchronously needs no table entry
      // (no message can arrive while it runs) and no promise.
      let result: unknown;
      try {
        result = (reg.handler as UnaryHandler<UnaryMethod>)(call.request, call);
      } catch (err) {
        this.complete(call, undefined, err);
        return;
      }
      if (!isThenable(result)) {
        this.complete(call, result, undefined);
        return;
      }
      this.register(call);
      result.then(
        (value) => this.complete(call, value, undefined),
        (err: unknown) => this.complete(call, undefined, err),
      );
      return;
    }
    this.register(call);
    const run = isStream
      ? () => this.pump(call, reg.handler as StreamHandler<StreamMethod>)
      : () =>
          Promise.resolve((reg.handler as UnaryHandler<UnaryMethod>)(call.request as never, call));
    const done =
      this.interceptors.length === 0 ? invokeSafely(run) : this.intercepted(call, run, 0);
    done.then(
      (result) => this.complete(call, result, undefined),
      (err: unknown) => this.complete(call, undefined, err),
    );
  }

  private intercepted(call: RunningCall, run: () => Promise<unknown>, i: number): Promise<unknown> {
    const interceptor = this.interceptors[i];
    if (interceptor === undefined) return invokeSafely(run);
    return invokeSafely(() => interceptor(call, () => this.intercepted(call, run, i + 1)));
  }

  private complete(call: RunningCall, result: unknown, err: unknown): void {
    // A handler's bug is not an answer.
    if (err !== undefined) crashOnAssertion(err);
    const wasLive = this.forget(call);
    call.disarm();
    if (call.abortReason !== undefined) {
      // Cancelled or disconnected: nobody to answer. Past the deadline: say so.
      if (call.abortReason.code === 'TIMEOUT' && wasLive)
        this.replyError(call.peer, call.id, call.abortReason);
      this.counters.callsFailed++;
      return;
    }
    if (err !== undefined) {
      this.counters.callsFailed++;
      if (!isCohortError(err)) {
        this.limited?.error(
          {
            peer: call.peer,
            identity: identityField(call.identity),
            service: call.service,
            method: call.method,
            err,
          },
          'a handler failed with an unexpected error (answered INTERNAL)',
        );
      }
      this.replyError(call.peer, call.id, toCohortError(err));
      return;
    }
    this.counters.callsSucceeded++;
    if (call.kind === 'stream') {
      this.trySend(call.peer, { type: 'RpcStreamEnd', id: call.id });
      return;
    }
    try {
      const reply: RpcWire<'RpcResponse'> = { type: 'RpcResponse', id: call.id, payload: result };
      if (call.replyMeta !== undefined) reply.meta = call.replyMeta;
      this.send(call.peer, reply);
    } catch (sendErr) {
      if (!isCohortError(sendErr)) throw sendErr;
      this.counters.repliesDropped++;
      if (
        sendErr.code === 'OVERLOADED' ||
        sendErr.code === 'UNAVAILABLE' ||
        sendErr.code === 'CLOSED'
      ) {
        return; // the link refuses: the client's deadline or a 'down' event ends its call
      }
      // The reply itself is bad (too large, not encodable): tell the client, whose
      // call did run (indefinite).
      this.replyError(
        call.peer,
        call.id,
        new CohortError(
          sendErr.code === 'FRAME_TOO_LARGE' ? 'FRAME_TOO_LARGE' : 'INTERNAL',
          `the reply could not be sent: ${sendErr.message}`,
          { definite: false },
        ),
      );
    }
  }

  /** Runs a stream handler, sending items only while the client has given credit. */
  private async pump(call: RunningCall, handler: StreamHandler<StreamMethod>): Promise<void> {
    const signal = call.signal; // arms the deadline
    const iterator = handler(call.request, call)[Symbol.asyncIterator]();
    try {
      for (;;) {
        while (call.credit <= 0 && !signal.aborted) await call.waitCredit();
        if (signal.aborted) return;
        const r = await iterator.next();
        if (r.done === true || signal.aborted) return;
        call.credit--;
        this.send(call.peer, { type: 'RpcStreamItem', id: call.id, payload: r.value });
      }
    } finally {
      // Runs the generator's finally blocks: the work stops here.
      await iterator.return?.();
    }
  }

  /** @internal The deadline of `call` passed. */
  expire(call: RunningCall): void {
    this.counters.aborted++;
    call.abort(
      new CohortError('TIMEOUT', `${call.service}.${call.method}: deadline passed on the server`),
    );
  }

  /** Link status: a client that went away has its calls aborted. */
  peerStatus(peer: NodeId, status: 'up' | 'down'): void {
    if (status === 'up') return;
    const perPeer = this.calls.get(peer);
    if (perPeer === undefined) return;
    for (const call of [...perPeer.values()]) {
      this.counters.aborted++;
      call.abort(new CohortError('CONNECTION_LOST', `client ${peer} disconnected`));
      this.forget(call);
    }
  }

  /** Aborts every running call; new ones get OVERLOADED until the node closes. */
  close(): void {
    this.closed = true;
    this.limited?.close();
    for (const perPeer of this.calls.values()) {
      for (const call of [...perPeer.values()]) {
        call.abort(new CohortError('CLOSED', 'the server is closing'));
        this.forget(call);
      }
    }
  }

  private register(call: RunningCall): void {
    let perPeer = this.calls.get(call.peer);
    if (perPeer === undefined) {
      perPeer = new Map();
      this.calls.set(call.peer, perPeer);
    }
    perPeer.set(call.id, call);
    this.running++;
  }

  /** Removes a call from the in-flight table; false if it was already gone. */
  private forget(call: RunningCall): boolean {
    const perPeer = this.calls.get(call.peer);
    if (perPeer?.get(call.id) !== call) return false;
    perPeer.delete(call.id);
    if (perPeer.size === 0) this.calls.delete(call.peer);
    this.running--;
    return true;
  }

  private replyError(to: NodeId, id: number, err: CohortError): void {
    this.trySend(to, {
      type: 'RpcError',
      id,
      code: err.code,
      message: err.message,
      definite: err.definite,
      details: jsonSafe(err.details),
    });
  }

  private trySend(to: NodeId, msg: RpcWireMessage): void {
    try {
      this.send(to, msg);
    } catch (err) {
      if (!isCohortError(err)) throw err;
      this.counters.repliesDropped++;
    }
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

function invokeSafely(run: () => Promise<unknown>): Promise<unknown> {
  try {
    return run();
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/** A handler's failure as a CohortError: its own, or INTERNAL (indefinite: it may have done part). */
function toCohortError(err: unknown): CohortError {
  if (isCohortError(err)) return err;
  return new CohortError(
    'INTERNAL',
    `handler failed: ${err instanceof Error ? err.message : String(err)}`,
    {
      cause: err,
    },
  );
}

function jsonSafe(details: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(details)) {
    if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) out[k] = v;
    else out[k] = JSON.stringify(v) ?? null;
  }
  return out;
}
