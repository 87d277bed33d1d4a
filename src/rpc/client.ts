/**
 * The calling side of RPC: pending calls keyed by request id (many calls
 * multiplexed on one transport link), deadlines, cancellation, server
 * streams with credit, and the typed stub built from a service definition.
 * An {@link RpcNode} owns one; applications use `node.client(Service, peer)`.
 *
 * ```ts
 * const calc = node.client(ListMax, nodeId('server'), { timeoutMs: 2_000 });
 * try {
 *   const { max } = await calc.listMax({ values: [1, 5, 2] }, { signal });
 * } catch (err) {
 *   if (isCohortError(err) && !err.definite) { ... } // TIMEOUT, CONNECTION_LOST: may have run
 * }
 * ```
 *
 * A pending call (unary or stream) keeps the process alive through
 * `Clock.hold`; an idle client holds nothing, so a script that is done exits.
 *
 * Error model (DESIGN.md, Errors): every failure is a CohortError.
 * - Definite (nothing ran): INVALID_ARGUMENT (request failed its schema, here
 *   or on the server), a synchronous transport refusal (OVERLOADED,
 *   UNAVAILABLE, CLOSED, FRAME_TOO_LARGE), UNAVAILABLE for a peer known to be
 *   down, CANCELLED before sending, and the server's definite answers
 *   (OVERLOADED, NOT_FOUND, ...).
 * - Indefinite (it may have run): TIMEOUT (deadline passed), CONNECTION_LOST
 *   (the link went down after the request was sent), CANCELLED after sending,
 *   PROTOCOL_ERROR for a malformed reply, and the handler's own indefinite errors.
 */
import { DeferredStream } from './deferred-stream.js';
import { crashOnAssertion } from '../lib/assert.js';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { CohortError, isCohortError, isErrorCode } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { metaError } from './messages.js';
import type { RpcWire, RpcWireMessage } from './messages.js';
import type { CallOptions, Client, CompiledMethod, ServerStream, ServiceDef } from './service.js';

/** What a client interceptor sees of a unary call; it may change `meta` or `request`. */
export interface ClientCall {
  /** A stream call's `next` resolves with the stream as soon as the request is sent. */
  readonly kind: 'unary' | 'stream';
  readonly peer: NodeId;
  readonly service: string;
  readonly method: string;
  readonly idempotent: boolean;
  request: unknown;
  meta: Record<string, string>;
  readonly options: CallOptions;
}

/**
 * Wraps every call of a client (logging, metrics, auth tokens). Call
 * `next(call)` to proceed; throw a CohortError to refuse. For a stream
 * (`call.kind === 'stream'`) `next` resolves with the stream once the request
 * is sent, and a refusal surfaces when the stream is iterated.
 */
export type ClientInterceptor = (
  call: ClientCall,
  next: (call: ClientCall) => Promise<unknown>,
) => Promise<unknown>;

/** How the stub reaches a server: the plain peer call, or a resilient policy around it. */
export interface Invoker {
  unary(method: CompiledMethod, request: unknown, options: CallOptions): Promise<unknown>;
  stream(method: CompiledMethod, request: unknown, options: CallOptions): ServerStream<unknown>;
}

/** Builds the typed stub of `service` over `invoker`: one function per method, no glue. */
export function makeClient<S extends ServiceDef>(service: S, invoker: Invoker): Client<S> {
  const stub: Record<string, unknown> = {};
  for (const [name, method] of service.compiled) {
    stub[name] =
      method.def.kind === 'unary'
        ? (request: unknown, options: CallOptions = {}) => invoker.unary(method, request, options)
        : (request: unknown, options: CallOptions = {}) => invoker.stream(method, request, options);
  }
  return Object.freeze(stub) as Client<S>;
}

/** Options of the client side of an {@link RpcNode}. */
export interface RpcClientOptions {
  /** Default deadline of unary calls (default `limits.rpcDeadlineMsDefault`). */
  readonly timeoutMs?: number;
  /** Outstanding calls before new ones get OVERLOADED (default `limits.rpcClientPendingMax`). */
  readonly pendingMax?: number;
  /** Stream credit window in items (default `limits.rpcStreamCreditItems`). */
  readonly streamCredit?: number;
  /** Interceptors of unary calls, outermost first. */
  readonly interceptors?: readonly ClientInterceptor[];
  /**
   * Makes sure the link to `peer` is up before a call is sent (a dial-only
   * client passes TcpTransport.connect): a call then fails at once, definite,
   * with why the peer cannot be reached (refused, another cluster) instead of
   * waiting out its deadline with the request queued. Called with the call's
   * remaining time (at most connectTimeoutMs).
   */
  readonly connect?: (peer: NodeId, timeoutMs: number) => Promise<void>;
}

/** Counters of the client side. */
export interface RpcClientCounters {
  callsStarted: number;
  callsSucceeded: number;
  callsFailed: number;
  /** Replies for calls no longer pending (late after a timeout or cancel). */
  lateReplies: number;
}

interface Pending {
  readonly peer: NodeId;
  readonly method: CompiledMethod;
  /** Own timer, for calls with a non-default deadline. */
  timer: TimerHandle | undefined;
  /** When a default-deadline call expires (clock time). */
  deadline: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  resolve: ((value: unknown) => void) | undefined;
  reject: ((err: CohortError) => void) | undefined;
  stream: ClientStream | undefined;
  /** Lets the process exit again (see Clock.hold): a pending call keeps it alive. */
  release: (() => void) | undefined;
  onReplyMeta: CallOptions['onReplyMeta'];
}

type Send = (to: NodeId, message: RpcWireMessage) => void;

/** The messages a server sends back to a client. */
export type RpcReplyMessage = RpcWire<
  'RpcResponse' | 'RpcError' | 'RpcStreamItem' | 'RpcStreamEnd'
>;

/** The client side of an RpcNode (internal; see the file comment). */
export class RpcClientSide {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Calls with the default deadline, oldest first (so in deadline order). */
  private readonly lane = new Map<number, Pending>();
  private laneTimer: TimerHandle | undefined;
  /** Peers whose link is down, with the refusal that keeps it down if it was refused. */
  private readonly downPeers = new Map<NodeId, CohortError | undefined>();
  private readonly timeoutMs: number;
  private readonly pendingMax: number;
  readonly streamCredit: number;
  private readonly interceptors: readonly ClientInterceptor[];
  private readonly connectPeer: ((peer: NodeId, timeoutMs: number) => Promise<void>) | undefined;
  private closed = false;
  /** Live counters. */
  readonly counters: RpcClientCounters = {
    callsStarted: 0,
    callsSucceeded: 0,
    callsFailed: 0,
    lateReplies: 0,
  };

  constructor(
    private readonly send: Send,
    private readonly clock: Clock,
    options: RpcClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? limits.rpcDeadlineMsDefault;
    this.pendingMax = options.pendingMax ?? limits.rpcClientPendingMax;
    this.streamCredit = options.streamCredit ?? limits.rpcStreamCreditItems;
    this.interceptors = options.interceptors ?? [];
    this.connectPeer = options.connect;
  }

  /** Calls currently outstanding. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** The plain invoker for `peer`. */
  invoker(peer: NodeId, defaults: CallOptions = {}): Invoker {
    return {
      unary: (method, request, options) =>
        this.unary(peer, method, request, mergeOptions(defaults, options)),
      stream: (method, request, options) =>
        this.stream(peer, method, request, mergeOptions(defaults, options)),
    };
  }

  /** One unary call to `peer`, through the interceptors. */
  unary(
    peer: NodeId,
    method: CompiledMethod,
    request: unknown,
    options: CallOptions,
  ): Promise<unknown> {
    if (this.connectPeer !== undefined) {
      const connect = this.connectPeer;
      const started = this.clock.now();
      return this.linkUp(connect, peer, options, this.timeoutMs).then(() =>
        this.unaryNow(peer, method, request, remaining(options, started, this.clock.now())),
      );
    }
    return this.unaryNow(peer, method, request, options);
  }

  /** Waits for the link to `peer` (see RpcClientOptions.connect), within the call's time and signal. */
  private async linkUp(
    connect: (peer: NodeId, timeoutMs: number) => Promise<void>,
    peer: NodeId,
    options: CallOptions,
    defaultMs: number,
  ): Promise<void> {
    const signal = options.signal;
    const cancelled = (): CohortError =>
      new CohortError('CANCELLED', 'cancelled before it was sent', { definite: true });
    if (signal?.aborted === true) throw cancelled();
    const ms = Math.max(1, Math.min(options.timeoutMs ?? defaultMs, limits.connectTimeoutMs));
    if (signal === undefined) {
      await connect(peer, ms);
      return;
    }
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        connect(peer, ms),
        new Promise<never>((_, reject) => {
          onAbort = () => reject(cancelled());
          signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
    }
  }

  private unaryNow(
    peer: NodeId,
    method: CompiledMethod,
    request: unknown,
    options: CallOptions,
  ): Promise<unknown> {
    if (this.interceptors.length === 0) {
      return this.invoke(peer, method, request, options, options.meta);
    }
    return this.intercept('unary', peer, method, request, options, (c) =>
      this.invoke(peer, method, c.request, options, c.meta),
    );
  }

  private invoke(
    peer: NodeId,
    method: CompiledMethod,
    request: unknown,
    options: CallOptions,
    meta: Readonly<Record<string, string>> | undefined,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const p = this.start(peer, method, request, options, meta, undefined);
      if (isCohortError(p)) {
        this.counters.callsFailed++;
        reject(p);
        return;
      }
      p.resolve = resolve;
      p.reject = reject;
    });
  }

  /** One server-streaming call to `peer`. Failures surface when the stream is iterated. */
  stream(
    peer: NodeId,
    method: CompiledMethod,
    request: unknown,
    options: CallOptions,
  ): ServerStream<unknown> {
    if (this.connectPeer !== undefined) {
      const connect = this.connectPeer;
      return new DeferredStream(
        this.linkUp(connect, peer, options, limits.rpcStreamDeadlineMsDefault).then(() =>
          this.streamNow(peer, method, request, options),
        ),
      );
    }
    return this.streamNow(peer, method, request, options);
  }

  private streamNow(
    peer: NodeId,
    method: CompiledMethod,
    request: unknown,
    options: CallOptions,
  ): ServerStream<unknown> {
    if (this.interceptors.length === 0) {
      return this.startStream(peer, method, request, options, options.meta);
    }
    const started = this.intercept('stream', peer, method, request, options, (c) =>
      Promise.resolve(this.startStream(peer, method, c.request, options, c.meta)),
    );
    return new DeferredStream(started as Promise<ServerStream<unknown>>);
  }

  /** Runs `call` through the client interceptors in order; `last` performs it. */
  private intercept(
    kind: ClientCall['kind'],
    peer: NodeId,
    method: CompiledMethod,
    request: unknown,
    options: CallOptions,
    last: (call: ClientCall) => Promise<unknown>,
  ): Promise<unknown> {
    const call: ClientCall = {
      kind,
      peer,
      service: method.service,
      method: method.name,
      idempotent: method.def.idempotent,
      request,
      meta: { ...options.meta },
      options,
    };
    const run = (i: number, c: ClientCall): Promise<unknown> => {
      const interceptor = this.interceptors[i];
      if (interceptor === undefined) return last(c);
      return interceptor(c, (next) => run(i + 1, next));
    };
    return run(0, call);
  }

  private startStream(
    peer: NodeId,
    method: CompiledMethod,
    request: unknown,
    options: CallOptions,
    meta: Readonly<Record<string, string>> | undefined,
  ): ServerStream<unknown> {
    const stream = new ClientStream(this, this.streamCredit);
    const p = this.start(peer, method, request, options, meta, stream);
    if (isCohortError(p)) {
      this.counters.callsFailed++;
      stream.fail(p);
    }
    return stream;
  }

  /** Registers and sends a call; returns the pending entry or a definite error (nothing sent). */
  private start(
    peer: NodeId,
    method: CompiledMethod,
    request: unknown,
    options: CallOptions,
    meta: Readonly<Record<string, string>> | undefined,
    stream: ClientStream | undefined,
  ): Pending | CohortError {
    this.counters.callsStarted++;
    if (this.closed) return new CohortError('CLOSED', 'the RPC node is closed');
    try {
      method.checkRequest(request);
    } catch (err) {
      crashOnAssertion(err);
      if (!isCohortError(err)) throw err;
      return err;
    }
    if (meta !== undefined) {
      // Checked here: metadata the server's schema refuses would close the connection.
      const bad = metaError(meta);
      if (bad !== undefined) return bad;
    }
    const signal = options.signal;
    if (signal?.aborted === true) {
      return new CohortError(
        'CANCELLED',
        `${method.service}.${method.name} cancelled before it was sent`,
        {
          definite: true,
        },
      );
    }
    if (this.downPeers.has(peer)) {
      const refused = this.downPeers.get(peer);
      if (refused !== undefined) return refusedCall(peer, refused);
      return new CohortError('UNAVAILABLE', `node ${peer} is down; nothing was sent`, {
        details: { peer },
      });
    }
    if (this.pending.size >= this.pendingMax) {
      return new CohortError('OVERLOADED', `${this.pending.size} calls outstanding`, {
        details: { limit: this.pendingMax },
      });
    }
    const timeoutMs = Math.ceil(
      options.timeoutMs ??
        (stream === undefined ? this.timeoutMs : limits.rpcStreamDeadlineMsDefault),
    );
    if (!(timeoutMs >= 1 && timeoutMs <= limits.rpcDeadlineMsMax)) {
      return new CohortError(
        'INVALID_ARGUMENT',
        `timeoutMs must be 1..${limits.rpcDeadlineMsMax}`,
        {
          details: { path: 'timeoutMs', value: timeoutMs },
        },
      );
    }
    const id = this.nextId++;
    const msg: RpcWire<'RpcRequest'> = {
      type: 'RpcRequest',
      id,
      service: method.service,
      method: method.name,
      timeoutMs,
      payload: request,
    };
    if (stream !== undefined) msg.credit = stream.window;
    if (meta !== undefined) msg.meta = meta;
    try {
      this.send(peer, msg);
    } catch (err) {
      if (isCohortError(err)) return err; // definite: not queued
      throw err;
    }
    const p: Pending = {
      peer,
      method,
      timer: undefined,
      deadline: 0,
      signal: undefined,
      onAbort: undefined,
      resolve: undefined,
      reject: undefined,
      stream,
      release: this.clock.hold?.(),
      onReplyMeta: options.onReplyMeta,
    };
    if (stream !== undefined) stream.id = id;
    this.pending.set(id, p);
    if (timeoutMs === this.timeoutMs) {
      // The common case: calls with the default deadline expire in the order
      // they started, so one timer for the oldest serves them all.
      p.deadline = this.clock.now() + timeoutMs;
      this.lane.set(id, p);
      if (this.laneTimer === undefined) this.armLane(timeoutMs);
    } else {
      p.timer = this.clock.setTimer(timeoutMs, () => {
        p.timer = undefined;
        this.expire(id, p, timeoutMs);
      });
    }
    if (signal !== undefined) {
      p.signal = signal;
      p.onAbort = () => {
        this.cancelOnServer(id, p);
        this.fail(
          id,
          new CohortError('CANCELLED', `${method.service}.${method.name} cancelled by the caller`, {
            cause: signal.reason,
          }),
        );
      };
      signal.addEventListener('abort', p.onAbort, { once: true });
    }
    return p;
  }

  /** Handles a reply message addressed to this client. */
  onReply(from: NodeId, msg: RpcReplyMessage): void {
    switch (msg.type) {
      case 'RpcResponse': {
        const p = this.pending.get(msg.id);
        if (p === undefined || p.peer !== from || p.stream !== undefined) {
          this.counters.lateReplies++;
          return;
        }
        const bad = p.method.responseError(msg.payload);
        if (bad !== undefined) {
          this.fail(msg.id, bad);
          return;
        }
        this.finish(msg.id, p);
        this.counters.callsSucceeded++;
        if (msg.meta !== undefined && p.onReplyMeta !== undefined) {
          try {
            p.onReplyMeta(msg.meta);
          } catch (err) {
            crashOnAssertion(err);
            p.reject?.(
              isCohortError(err)
                ? err
                : new CohortError('INTERNAL', `onReplyMeta failed: ${String(err)}`, {
                    definite: false,
                    cause: err,
                  }),
            );
            return;
          }
        }
        p.resolve?.(msg.payload);
        return;
      }
      case 'RpcError': {
        const p = this.pending.get(msg.id);
        if (p === undefined || p.peer !== from) {
          this.counters.lateReplies++;
          return;
        }
        this.fail(msg.id, errorFromWire(msg, from));
        return;
      }
      case 'RpcStreamItem': {
        const p = this.pending.get(msg.id);
        if (p?.stream === undefined || p.peer !== from) {
          this.counters.lateReplies++;
          return;
        }
        const bad = p.method.responseError(msg.payload);
        if (bad !== undefined || !p.stream.push(msg.payload)) {
          this.cancelOnServer(msg.id, p);
          this.fail(
            msg.id,
            bad ??
              new CohortError('PROTOCOL_ERROR', `${from} sent stream items beyond its credit`, {
                definite: false,
              }),
          );
        }
        return;
      }
      case 'RpcStreamEnd': {
        const p = this.pending.get(msg.id);
        if (p?.stream === undefined || p.peer !== from) {
          this.counters.lateReplies++;
          return;
        }
        this.finish(msg.id, p);
        this.counters.callsSucceeded++;
        p.stream.end();
        return;
      }
    }
  }

  /** @internal A stream's consumer returns credit. */
  credit(id: number, credit: number): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    try {
      this.send(p.peer, { type: 'RpcCredit', id, credit });
    } catch (err) {
      // The link is refusing messages; the deadline or a 'down' event ends the call.
      crashOnAssertion(err);
    }
  }

  /** @internal A stream's consumer stops early. */
  cancelStream(id: number): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.cancelOnServer(id, p);
    this.finish(id, p);
  }

  /**
   * Link status from the transport: a down peer fails its calls as
   * CONNECTION_LOST; a refused link (`reason`) fails them, and calls made
   * while it stays refused, with HANDSHAKE_FAILED (definite: a link that
   * never came up sent nothing).
   */
  peerStatus(peer: NodeId, status: 'up' | 'down', reason?: CohortError): void {
    if (status === 'up') {
      this.downPeers.delete(peer);
      return;
    }
    this.downPeers.set(peer, reason);
    for (const [id, p] of this.pending) {
      if (p.peer !== peer) continue;
      this.fail(
        id,
        reason !== undefined
          ? refusedCall(peer, reason)
          : new CohortError(
              'CONNECTION_LOST',
              `connection to ${peer} lost during ${p.method.service}.${p.method.name}`,
              { details: { peer } },
            ),
      );
    }
  }

  /** Fails every pending call (the node is closing). */
  close(): void {
    this.closed = true;
    if (this.laneTimer !== undefined) this.clock.clearTimer(this.laneTimer);
    this.laneTimer = undefined;
    for (const id of [...this.pending.keys()]) {
      this.fail(
        id,
        new CohortError('CLOSED', 'the RPC node closed during the call', { definite: false }),
      );
    }
  }

  private expire(id: number, p: Pending, timeoutMs: number): void {
    this.cancelOnServer(id, p);
    this.fail(
      id,
      new CohortError(
        'TIMEOUT',
        `${p.method.service}.${p.method.name} to ${p.peer}: no answer within ${timeoutMs} ms`,
        { details: { peer: p.peer, timeoutMs } },
      ),
    );
  }

  /** Arms the shared timer of the default-deadline lane to fire in `delayMs`. */
  private armLane(delayMs: number): void {
    this.laneTimer = this.clock.setTimer(Math.max(0, delayMs), () => {
      this.laneTimer = undefined;
      const now = this.clock.now();
      for (const [id, p] of this.lane) {
        if (p.deadline > now) {
          this.armLane(p.deadline - now);
          return;
        }
        this.expire(id, p, this.timeoutMs);
      }
    });
  }

  private cancelOnServer(id: number, p: Pending): void {
    try {
      this.send(p.peer, { type: 'RpcCancel', id });
    } catch (err) {
      // Best effort: the server's own deadline stops the work anyway.
      crashOnAssertion(err);
    }
  }

  private finish(id: number, p: Pending): void {
    this.pending.delete(id);
    p.release?.();
    p.release = undefined;
    if (p.timer !== undefined) this.clock.clearTimer(p.timer);
    else this.lane.delete(id);
    p.timer = undefined;
    if (p.onAbort !== undefined) p.signal?.removeEventListener('abort', p.onAbort);
  }

  private fail(id: number, err: CohortError): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.finish(id, p);
    this.counters.callsFailed++;
    if (p.stream !== undefined) p.stream.fail(err);
    else p.reject?.(err);
  }
}

/** `options` with its deadline moved on by the time spent since `started` (connecting). */
function remaining(options: CallOptions, started: number, now: number): CallOptions {
  if (options.timeoutMs === undefined || now <= started) return options;
  return { ...options, timeoutMs: Math.max(1, options.timeoutMs - (now - started)) };
}

function mergeOptions(defaults: CallOptions, options: CallOptions): CallOptions {
  if (
    defaults.timeoutMs === undefined &&
    defaults.meta === undefined &&
    defaults.signal === undefined
  )
    return options;
  const merged: {
    timeoutMs?: number;
    signal?: AbortSignal;
    meta?: Readonly<Record<string, string>>;
  } = { ...defaults, ...options };
  if (defaults.meta !== undefined && options.meta !== undefined) {
    merged.meta = { ...defaults.meta, ...options.meta };
  }
  return merged;
}

/** Rebuilds the CohortError a server sent. */
export function errorFromWire(msg: RpcWire<'RpcError'>, from: NodeId): CohortError {
  const code = isErrorCode(msg.code) ? msg.code : 'INTERNAL';
  return new CohortError(code, msg.message, {
    definite: msg.definite,
    details: { ...msg.details, peer: from, ...(code === msg.code ? {} : { remoteCode: msg.code }) },
  });
}

/** The client end of a server stream: a bounded buffer (the credit window) and one reader. */
class ClientStream implements ServerStream<unknown> {
  id = 0;
  private readonly items: unknown[] = [];
  private head = 0;
  private ended = false;
  private error: CohortError | undefined;
  private waiter:
    { resolve: (r: IteratorResult<unknown>) => void; reject: (e: unknown) => void } | undefined;
  private consumed = 0;
  private outstanding: number;

  constructor(
    private readonly side: RpcClientSide,
    readonly window: number,
  ) {
    this.outstanding = window;
  }

  /** Adds an item; false if the server exceeded its credit. */
  push(item: unknown): boolean {
    if (this.outstanding <= 0) return false;
    this.outstanding--;
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      this.consume();
      w.resolve({ done: false, value: item });
      return true;
    }
    this.items.push(item);
    return true;
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  fail(err: CohortError): void {
    if (this.ended) return;
    this.error = err;
    this.ended = true;
    this.wake();
  }

  cancel(): void {
    if (this.ended) return;
    this.ended = true;
    this.items.length = 0;
    this.head = 0;
    this.side.cancelStream(this.id);
    this.wake();
  }

  [Symbol.asyncIterator](): AsyncIterator<unknown> {
    return {
      next: () => this.next(),
      return: () => {
        this.cancel();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  private next(): Promise<IteratorResult<unknown>> {
    if (this.head < this.items.length) {
      const value = this.items[this.head];
      this.items[this.head++] = undefined;
      if (this.head === this.items.length) {
        this.items.length = 0;
        this.head = 0;
      }
      this.consume();
      return Promise.resolve({ done: false, value });
    }
    if (this.error !== undefined) {
      const err = this.error;
      this.error = undefined;
      return Promise.reject(err);
    }
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Counts one consumed item; returns credit at half the window. */
  private consume(): void {
    this.consumed++;
    if (this.consumed * 2 >= this.window && !this.ended) {
      this.outstanding += this.consumed;
      this.side.credit(this.id, this.consumed);
      this.consumed = 0;
    }
  }

  private wake(): void {
    const w = this.waiter;
    if (w === undefined) return;
    this.waiter = undefined;
    if (this.error !== undefined) {
      const err = this.error;
      this.error = undefined;
      w.reject(err);
    } else {
      w.resolve({ done: true, value: undefined });
    }
  }
}

/** The error of a call to a peer whose link was refused (definite: nothing was sent). */
function refusedCall(peer: NodeId, reason: CohortError): CohortError {
  return new CohortError('HANDSHAKE_FAILED', `cannot connect to ${peer}: ${reason.message}`, {
    definite: true,
    cause: reason,
    details: { peer, refused: true },
  });
}
