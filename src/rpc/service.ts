/**
 * Service definitions: a service is declared once, as data, and everything
 * else (the typed client stub, the typed server skeleton, validation, the
 * HTTP gateway's JSON Schemas) comes from that one object. No per-method glue.
 *
 * ```ts
 * import { Type } from '@sinclair/typebox';
 * export const ListMax = defineService('ListMax', {
 *   listMax: unary(
 *     Type.Object({ values: Type.Array(Type.Number(), { minItems: 1, maxItems: 100_000 }) }),
 *     Type.Object({ max: Type.Number() }),
 *     { idempotent: true },
 *   ),
 *   countTo: serverStream(Type.Object({ n: Type.Integer() }), Type.Object({ i: Type.Integer() })),
 * });
 * const handlers: Handlers<typeof ListMax> = {           // the compiler checks every handler
 *   listMax: ({ values }) => ({ max: Math.max(...values) }),
 *   async *countTo({ n }, ctx) { for (let i = 0; i < n && !ctx.signal.aborted; i++) yield { i }; },
 * };
 * node.serve(ListMax, handlers);
 * const client = node.client(ListMax, nodeId('server'));  // Client<typeof ListMax>
 * const { max } = await client.listMax({ values: [3, 1, 2] });
 * for await (const { i } of client.countTo({ n: 3 })) console.log(i);
 * ```
 *
 * Why TypeBox (already the wire codec's schema library): a schema is plain
 * JSON Schema (the gateway publishes it as is), its static type comes from the
 * same object, and `TypeCompiler` makes a specialised check function per
 * schema, cheap enough to run on every call (src/wire/schema-check.ts: its
 * interpreter where the process may not generate code). zod 4 would also emit JSON Schema
 * but needs a conversion step and a second schema system beside the wire's.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { compileCheck } from '../wire/schema-check.js';
import type { SchemaCheck } from '../wire/schema-check.js';
import { assert } from '../lib/assert.js';
import { CohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import type { PeerIdentity } from '../trust/identity.js';

/** Options of a method. */
export interface MethodOptions {
  /**
   * True if running the method twice has the same effect as once. Only
   * idempotent methods are retried after an indefinite error (TIMEOUT,
   * CONNECTION_LOST); others only after definite ones. Default false.
   */
  readonly idempotent?: boolean;
  /** One line for the gateway listing and `--help`. */
  readonly description?: string;
}

/** A request/response method. */
export interface UnaryMethod<Req extends TSchema = TSchema, Res extends TSchema = TSchema> {
  readonly kind: 'unary';
  readonly request: Req;
  readonly response: Res;
  readonly idempotent: boolean;
  readonly description: string;
}

/** A server-streaming method: one request, then a stream of items with backpressure. */
export interface StreamMethod<Req extends TSchema = TSchema, Item extends TSchema = TSchema> {
  readonly kind: 'stream';
  readonly request: Req;
  readonly item: Item;
  readonly idempotent: boolean;
  readonly description: string;
}

/** Any method. */
export type MethodDef = UnaryMethod | StreamMethod;

/** Declares a unary method. */
export function unary<Req extends TSchema, Res extends TSchema>(
  request: Req,
  response: Res,
  options: MethodOptions = {},
): UnaryMethod<Req, Res> {
  return {
    kind: 'unary',
    request,
    response,
    idempotent: options.idempotent ?? false,
    description: options.description ?? '',
  };
}

/** Declares a server-streaming method. */
export function serverStream<Req extends TSchema, Item extends TSchema>(
  request: Req,
  item: Item,
  options: MethodOptions = {},
): StreamMethod<Req, Item> {
  return {
    kind: 'stream',
    request,
    item,
    idempotent: options.idempotent ?? false,
    description: options.description ?? '',
  };
}

/** A method with its compiled validators, as the client and server use it. */
export interface CompiledMethod {
  readonly service: string;
  readonly name: string;
  readonly def: MethodDef;
  /** Checks a request payload; throws INVALID_ARGUMENT with the field path. */
  checkRequest(value: unknown): void;
  /** Checks a response payload or a stream item; returns the error or undefined. */
  responseError(value: unknown): CohortError | undefined;
}

/** A declared service: its name, its methods and their compiled validators. */
export interface ServiceDef<
  N extends string = string,
  M extends Record<string, MethodDef> = Record<string, MethodDef>,
> {
  readonly name: N;
  readonly methods: M;
  /** @internal Compiled methods by name. */
  readonly compiled: ReadonlyMap<string, CompiledMethod>;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** Declares a service (see the file example). Validators are compiled once, here. */
export function defineService<const N extends string, const M extends Record<string, MethodDef>>(
  name: N,
  methods: M,
): ServiceDef<N, M> {
  assert(NAME.test(name) && name.length <= limits.rpcNameCharsMax, `bad service name ${name}`);
  const compiled = new Map<string, CompiledMethod>();
  for (const [method, def] of Object.entries(methods)) {
    assert(
      NAME.test(method) && method.length <= limits.rpcNameCharsMax,
      `bad method name ${method}`,
    );
    compiled.set(method, compileMethod(name, method, def));
  }
  return { name, methods, compiled };
}

function compileMethod(service: string, name: string, def: MethodDef): CompiledMethod {
  const req = compileCheck(def.request);
  const res = compileCheck(def.kind === 'unary' ? def.response : def.item);
  return {
    service,
    name,
    def,
    checkRequest(value) {
      if (!req.Check(value)) throw schemaError(req, value, `${service}.${name} request`, true);
    },
    responseError(value) {
      return res.Check(value)
        ? undefined
        : schemaError(res, value, `${service}.${name} response`, false);
    },
  };
}

/**
 * The error for a value that fails `check`: INVALID_ARGUMENT (a request) or
 * PROTOCOL_ERROR (a reply), naming the JSON Pointer path of the first problem.
 */
export function schemaError(
  check: SchemaCheck,
  value: unknown,
  what: string,
  request: boolean,
): CohortError {
  const first = check.Errors(value).First();
  const path = first?.path ?? '';
  const text = `${what}${path === '' ? '' : ` at ${path}`}: ${first?.message ?? 'does not match its schema'}`;
  return request
    ? new CohortError('INVALID_ARGUMENT', text, { details: { path } })
    : // A malformed reply: the server ran the call, so the outcome is unknown.
      new CohortError('PROTOCOL_ERROR', text, { definite: false, details: { path } });
}

/** Per-call options of a client call. */
export interface CallOptions {
  /** Time allowed for the call, in ms (default `limits.rpcDeadlineMsDefault`, streams `rpcStreamDeadlineMsDefault`). */
  readonly timeoutMs?: number;
  /** Cancels the call: the caller gets CANCELLED and the server is told to stop. */
  readonly signal?: AbortSignal;
  /** Metadata sent with the call (auth tokens, trace ids), seen by server interceptors. */
  readonly meta?: Readonly<Record<string, string>>;
  /**
   * Called with the reply metadata of a unary call that succeeded, before its
   * promise resolves, when the handler set any ({@link CallContext.setReplyMeta}).
   */
  readonly onReplyMeta?: (meta: Readonly<Record<string, string>>) => void;
}

/** What a handler knows about its call. */
export interface CallContext {
  /** The calling node (the id its connection claims; on TLS, bound to `identity`). */
  readonly peer: NodeId;
  /**
   * Who is calling, as the transport authenticated it: a node or a user
   * named by its TLS certificate, or `anonymous` on a plaintext link (and
   * in-process). Authorization decisions use this, never `peer` or `meta`.
   */
  readonly identity: PeerIdentity;
  readonly service: string;
  readonly method: string;
  /** Metadata sent by the client. */
  readonly meta: Readonly<Record<string, string>>;
  /** Aborted when the deadline passes, the client cancels or disconnects, or the server closes. */
  readonly signal: AbortSignal;
  /** Milliseconds left before the deadline (may be negative). */
  remainingMs(): number;
  /**
   * Sets metadata sent back with a unary call's successful reply (a
   * gateway's combine rule and outcome, say); the caller gets it through
   * {@link CallOptions.onReplyMeta}. Bounded like call metadata: throws a
   * definite INVALID_ARGUMENT past `limits.rpcMeta*`. Streams and errors
   * carry none.
   */
  setReplyMeta(key: string, value: string): void;
}

/** A stream of items from the server; breaking out of `for await` cancels it on the server. */
export interface ServerStream<T> extends AsyncIterable<T> {
  /** Stops the stream: the server is told to stop, and iteration ends. */
  cancel(): void;
}

/** The handler of a unary method. */
export type UnaryHandler<M extends UnaryMethod> = (
  request: Static<M['request']>,
  ctx: CallContext,
) => Static<M['response']> | Promise<Static<M['response']>>;

/** The handler of a server-streaming method (typically an async generator). */
export type StreamHandler<M extends StreamMethod> = (
  request: Static<M['request']>,
  ctx: CallContext,
) => AsyncIterable<Static<M['item']>>;

/** The server skeleton of service `S`: one handler per method, each checked by the compiler. */
export type Handlers<S extends ServiceDef> = {
  readonly [K in keyof S['methods']]: S['methods'][K] extends UnaryMethod
    ? UnaryHandler<S['methods'][K]>
    : S['methods'][K] extends StreamMethod
      ? StreamHandler<S['methods'][K]>
      : never;
};

/** The typed client stub of service `S`. */
export type Client<S extends ServiceDef> = {
  readonly [K in keyof S['methods']]: S['methods'][K] extends UnaryMethod
    ? (
        request: Static<S['methods'][K]['request']>,
        options?: CallOptions,
      ) => Promise<Static<S['methods'][K]['response']>>
    : S['methods'][K] extends StreamMethod
      ? (
          request: Static<S['methods'][K]['request']>,
          options?: CallOptions,
        ) => ServerStream<Static<S['methods'][K]['item']>>
      : never;
};

/** The request type of method `K` of service `S`. */
export type RequestOf<S extends ServiceDef, K extends keyof S['methods']> = Static<
  S['methods'][K]['request']
>;
