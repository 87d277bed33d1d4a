/**
 * Test harness for the RPC layer: starts {@link RpcNode}s over the memory
 * transport or over TCP on 127.0.0.1 (every node listens, all addresses known),
 * plus a test service whose handlers report what the server did.
 *
 * ```ts
 * const h = harnesses.tcp(); const s = await h.node('s'); ...; await h.cleanup();
 * ```
 */
import { Type } from '@sinclair/typebox';
import { CohortError, isCohortError } from '../../src/lib/errors.js';
import { nodeId } from '../../src/lib/ids.js';
import type { NodeId } from '../../src/lib/ids.js';
import { rpcCodec } from '../../src/rpc/messages.js';
import type { RpcWireMessage } from '../../src/rpc/messages.js';
import { RpcNode } from '../../src/rpc/node.js';
import type { RpcNodeOptions } from '../../src/rpc/node.js';
import { defineService, serverStream, unary } from '../../src/rpc/service.js';
import type { Handlers } from '../../src/rpc/service.js';
import { MemoryNetwork } from '../../src/transport/memory-transport.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import type { PeerAddress } from '../../src/transport/tcp-transport.js';
import type { Transport } from '../../src/transport/transport.js';
import { fastLimits, freePort, testCluster, testLogger } from '../transport/tcp-harness.js';

/** Node ids the harness knows (TCP needs every address up front). */
export const IDS = ['a', 'b', 'c', 'd', 'raw'] as const;

/** Starts RPC nodes on one kind of transport. */
export interface RpcHarness {
  readonly name: string;
  /** Starts node `id` (again after `stop`: a restart at the same address). */
  node(id: (typeof IDS)[number], options?: RpcNodeOptions): Promise<RpcNode>;
  /** A bare transport speaking the RPC codec (to send malformed or raw messages). */
  raw(id: (typeof IDS)[number]): Promise<Transport<RpcWireMessage>>;
  cleanup(): Promise<void>;
}

/** The memory-transport harness. */
export function memoryHarness(): RpcHarness {
  const net = new MemoryNetwork();
  const open = new Set<{ close(): Promise<void> }>();
  return {
    name: 'memory',
    node(id, options) {
      const n = new RpcNode(net.transport(nodeId(id), rpcCodec), options);
      open.add(n);
      return Promise.resolve(n);
    },
    raw(id) {
      const t = net.transport(nodeId(id), rpcCodec);
      open.add(t);
      return Promise.resolve(t);
    },
    async cleanup() {
      await Promise.all([...open].map((n) => n.close()));
    },
  };
}

/** The TCP harness (127.0.0.1, fast reconnects). */
export function tcpHarness(): RpcHarness {
  const open = new Set<{ close(): Promise<void> }>();
  let book: Map<NodeId, PeerAddress> | undefined;
  async function addresses(): Promise<Map<NodeId, PeerAddress>> {
    if (book === undefined) {
      const entries: [NodeId, PeerAddress][] = [];
      for (const id of IDS)
        entries.push([nodeId(id), { host: '127.0.0.1', port: await freePort() }]);
      book = new Map(entries);
    }
    return book;
  }
  async function transport(id: string): Promise<TcpTransport<RpcWireMessage>> {
    const peers = await addresses();
    return TcpTransport.start<RpcWireMessage>({
      self: nodeId(id),
      clusterId: testCluster,
      codec: rpcCodec,
      listen: peers.get(nodeId(id)) as PeerAddress,
      peers,
      limits: fastLimits,
      logger: testLogger(),
    });
  }
  return {
    name: 'tcp',
    async node(id, options) {
      const n = new RpcNode(await transport(id), options);
      open.add(n);
      return n;
    },
    async raw(id) {
      const t = await transport(id);
      open.add(t);
      return t;
    },
    async cleanup() {
      await Promise.all([...open].map((n) => n.close()));
    },
  };
}

/** Both harnesses, for `describe.each`. */
export const harnesses: readonly (() => RpcHarness)[] = [memoryHarness, tcpHarness];

/** The service the RPC tests call. */
export const TestService = defineService('Test', {
  echo: unary(
    Type.Object({ text: Type.String({ maxLength: 1000 }), n: Type.Optional(Type.Integer()) }),
    Type.Object({ text: Type.String(), n: Type.Optional(Type.Integer()) }),
    { idempotent: true },
  ),
  /** Waits until released or aborted; reports which. */
  block: unary(Type.Object({ key: Type.String() }), Type.Object({ released: Type.Boolean() })),
  fail: unary(Type.Object({ code: Type.String() }), Type.Object({})),
  /** Idempotent: the first call per key blocks until aborted, later ones answer with the call count. */
  slowOnce: unary(Type.Object({ key: Type.String() }), Type.Object({ n: Type.Integer() }), {
    idempotent: true,
  }),
  count: serverStream(
    Type.Object({ n: Type.Integer({ minimum: 0 }) }),
    Type.Object({ i: Type.Integer() }),
  ),
  /** An endless stream; reports how far it got and whether its finally ran. */
  forever: serverStream(Type.Object({ key: Type.String() }), Type.Object({ i: Type.Integer() })),
});

/** What the test handlers observed on the server. */
export class Observed {
  /** Per key: the abort reason code once the handler saw its signal abort. */
  readonly aborted = new Map<string, string>();
  readonly started = new Set<string>();
  readonly produced = new Map<string, number>();
  readonly finished = new Set<string>();
  readonly calls: string[] = [];
  private readonly releases = new Map<string, () => void>();
  private readonly waiters: (() => void)[] = [];

  /** Lets `block({key})` return. */
  release(key: string): void {
    this.releases.get(key)?.();
  }

  /** Resolves after the next observation (for waitFor loops without polling delays). */
  changed(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The handlers of {@link TestService}. */
  handlers(): Handlers<typeof TestService> {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const obs = this;
    return {
      echo: (req) => {
        obs.calls.push(`echo:${req.text}`);
        return req.n === undefined ? { text: req.text } : { text: req.text, n: req.n };
      },
      block: ({ key }, ctx) => {
        obs.started.add(key);
        obs.calls.push(`block:${key}`);
        return new Promise((resolve) => {
          obs.releases.set(key, () => resolve({ released: true }));
          ctx.signal.addEventListener('abort', () => {
            const reason: unknown = ctx.signal.reason;
            obs.aborted.set(key, reason instanceof CohortError ? reason.code : String(reason));
            resolve({ released: false });
          });
        });
      },
      fail: ({ code }) => {
        obs.calls.push(`fail:${code}`);
        if (code === 'plain') throw new Error('boom');
        throw new CohortError(code as 'NOT_FOUND', `failing with ${code}`);
      },
      slowOnce: ({ key }, ctx) => {
        obs.calls.push(`slowOnce:${key}`);
        const n = obs.calls.filter((c) => c === `slowOnce:${key}`).length;
        if (n > 1) return { n };
        return new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => resolve({ n }));
        });
      },
      async *count({ n }) {
        for (let i = 0; i < n; i++) yield await Promise.resolve({ i });
      },
      async *forever({ key }, ctx) {
        obs.started.add(key);
        try {
          for (let i = 0; !ctx.signal.aborted; i++) {
            if (key === 'boom' && i === 3) {
              throw new CohortError('FAILED_PRECONDITION', 'the server ends this stream');
            }
            obs.produced.set(key, i + 1);
            yield await Promise.resolve({ i });
          }
        } finally {
          obs.finished.add(key);
        }
      },
    };
  }
}

/** The CohortError a promise rejects with (fails the test if it resolves or throws something else). */
export async function rejection(p: Promise<unknown>): Promise<CohortError> {
  try {
    await p;
  } catch (err) {
    if (isCohortError(err)) return err;
    throw err;
  }
  throw new Error('expected a CohortError, the call succeeded');
}
