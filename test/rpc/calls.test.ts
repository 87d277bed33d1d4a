/**
 * RPC calls over both transports: typed calls, multiplexing, deadlines,
 * cancellation, OVERLOADED, errors, interceptors, streams with credit and
 * cancellation, and malformed requests.
 */
import fc from 'fast-check';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CohortError, isCohortError } from '../../src/lib/errors.js';
import type { ErrorCode } from '../../src/lib/errors.js';
import { nodeId } from '../../src/lib/ids.js';
import type { RpcWire, RpcWireMessage } from '../../src/rpc/messages.js';
import { limits } from '../../src/lib/limits.js';
import { settle, waitFor } from '../transport/compliance.js';
import { conditionWaitMs, waitUntil } from '../harness/wait.js';
import { rpcCodec } from '../../src/rpc/messages.js';
import { RpcNode } from '../../src/rpc/node.js';
import { MemoryNetwork } from '../../src/transport/memory-transport.js';
import { harnesses, Observed, rejection, TestService } from './harness.js';
import type { RpcHarness } from './harness.js';

const A = nodeId('a');
const D = nodeId('d');

function expectError(err: CohortError, code: ErrorCode, definite: boolean): void {
  expect({ code: err.code, definite: err.definite }).toEqual({ code, definite });
}

describe.each(harnesses)('rpc calls (%o)', (make) => {
  let h: RpcHarness;
  let server: RpcNode;
  let caller: RpcNode;
  let obs: Observed;

  beforeEach(async () => {
    h = make();
    obs = new Observed();
    server = await h.node('a', { server: { inflightMax: 8 } });
    server.serve(TestService, obs.handlers());
    caller = await h.node('b');
  });
  afterEach(async () => {
    await h.cleanup();
  });

  it('makes typed calls, many multiplexed at once, each answered with its own reply', async () => {
    const stub = caller.client(TestService, A);
    const one = await stub.echo({ text: 'hi', n: 1 });
    expect(one).toEqual({ text: 'hi', n: 1 });
    const many = await Promise.all(
      Array.from({ length: 8 }, (_, i) => stub.echo({ text: `m${i}`, n: i })),
    );
    expect(many.map((r) => r.n)).toEqual(Array.from({ length: 8 }, (_, i) => i));
    const big = await h.node('c');
    big.serve(TestService, new Observed().handlers());
    const bigStub = caller.client(TestService, nodeId('c'));
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, i) => bigStub.echo({ text: `m${i}`, n: i })),
    );
    expect(results.every((r, i) => r.text === `m${i}` && r.n === i)).toBe(true);
    expect(many.every((r, i) => r.text === `m${i}`)).toBe(true);
    expect(caller.calls.pendingCount).toBe(0);
  });

  it('deadline expiry gives an indefinite TIMEOUT and the server abandons the work', async () => {
    const stub = caller.client(TestService, A);
    const err = await rejection(stub.block({ key: 'k' }, { timeoutMs: 50 }));
    expectError(err, 'TIMEOUT', false);
    await waitFor(() => obs.aborted.has('k'), 'server abort');
    // The client's RpcCancel or the server's own deadline timer stopped it.
    expect(['TIMEOUT', 'CANCELLED']).toContain(obs.aborted.get('k'));
    await waitFor(() => server.server.inflight === 0, 'server drained');
  });

  it('calls with the default deadline (one shared timer) expire in order, mixed with custom ones', async () => {
    const quick = await h.node('c', { client: { timeoutMs: 40 } });
    const stub = quick.client(TestService, A);
    const first = rejection(stub.block({ key: 'l1' }));
    const custom = rejection(stub.block({ key: 'l2' }, { timeoutMs: conditionWaitMs }));
    // (Not l1 too: on a busy machine its 40 ms may pass before it reaches the server.)
    await waitFor(() => obs.started.has('l2'), 'the custom-deadline call started');
    const second = rejection(stub.block({ key: 'l3' }));
    expectError(await first, 'TIMEOUT', false);
    expectError(await second, 'TIMEOUT', false);
    expect(quick.calls.pendingCount).toBe(1); // the custom-deadline call is still waiting
    obs.release('l2');
    await expect(custom).rejects.toThrow(/succeeded/);
    // The default lane still works: a call answers within its 40 ms (retried
    // while a busy machine makes it miss them; each miss is a TIMEOUT).
    const after = await waitUntil('an echo within the default deadline', () =>
      stub.echo({ text: 'after' }).catch((e: unknown) => {
        if (isCohortError(e) && e.code === 'TIMEOUT') return undefined;
        throw e;
      }),
    );
    expect(after).toEqual({ text: 'after' });
  });

  it('the server stops work at the deadline on its own, even if the cancel is lost', async () => {
    const raw = await h.raw('raw');
    const replies: RpcWireMessage[] = [];
    raw.onMessage((_from, msg) => replies.push(msg));
    raw.send(A, {
      type: 'RpcRequest',
      id: 7,
      service: 'Test',
      method: 'block',
      timeoutMs: 30,
      payload: { key: 'own' },
    });
    await waitFor(() => obs.aborted.has('own'), 'server-side deadline');
    expect(obs.aborted.get('own')).toBe('TIMEOUT');
    await waitFor(() => replies.length > 0, 'timeout reply');
    expect(replies[0]).toMatchObject({ type: 'RpcError', id: 7, code: 'TIMEOUT', definite: false });
  });

  it('cancellation by AbortSignal: CANCELLED for the caller, the handler is aborted', async () => {
    const stub = caller.client(TestService, A);
    const ac = new AbortController();
    const call = stub.block({ key: 'c' }, { signal: ac.signal });
    await waitFor(() => obs.started.has('c'), 'handler started');
    ac.abort();
    const err = await rejection(call);
    expectError(err, 'CANCELLED', false);
    await waitFor(() => obs.aborted.has('c'), 'server abort');
    expect(obs.aborted.get('c')).toBe('CANCELLED');
    // Already aborted: definite, nothing sent.
    const before = obs.calls.length;
    expectError(
      await rejection(stub.block({ key: 'd' }, { signal: ac.signal })),
      'CANCELLED',
      true,
    );
    await settle();
    expect(obs.calls.length).toBe(before);
  });

  it('answers a definite OVERLOADED past the in-flight bound, and recovers', async () => {
    const stub = caller.client(TestService, A);
    const blocked = Array.from({ length: 8 }, (_, i) => stub.block({ key: `o${i}` }));
    await waitFor(() => obs.started.size === 8, 'all 8 running');
    expectError(await rejection(stub.echo({ text: 'x' })), 'OVERLOADED', true);
    for (let i = 0; i < 8; i++) obs.release(`o${i}`);
    expect((await Promise.all(blocked)).every((r) => r.released)).toBe(true);
    expect(await stub.echo({ text: 'x' })).toEqual({ text: 'x' });
    expect(server.server.counters.overloaded).toBe(1);
  });

  it('carries handler errors with their code and definite flag; others become INTERNAL', async () => {
    const stub = caller.client(TestService, A);
    expectError(await rejection(stub.fail({ code: 'NOT_FOUND' })), 'NOT_FOUND', true);
    expectError(await rejection(stub.fail({ code: 'IO_ERROR' })), 'IO_ERROR', false);
    expectError(await rejection(stub.fail({ code: 'plain' })), 'INTERNAL', false);
  });

  it('refuses a malformed request with INVALID_ARGUMENT and the field path (client side, nothing sent)', async () => {
    const stub = caller.client(TestService, A);
    const err = await rejection(stub.echo({ text: 5 } as never));
    expectError(err, 'INVALID_ARGUMENT', true);
    expect(err.details.path).toBe('/text');
    expect(obs.calls).toEqual([]);
  });

  it('the server refuses malformed requests (wrong type, missing, oversize, unknown method) and keeps serving', async () => {
    const raw = await h.raw('raw');
    const replies = new Map<number, RpcWire<'RpcError'>>();
    raw.onMessage((_from, msg) => {
      if (msg.type === 'RpcError') replies.set(msg.id, msg);
    });
    const send = (id: number, method: string, payload: unknown): void =>
      raw.send(A, { type: 'RpcRequest', id, service: 'Test', method, timeoutMs: 1000, payload });
    send(1, 'echo', { text: 42 });
    send(2, 'echo', {});
    send(3, 'echo', { text: 'x'.repeat(1001) });
    send(4, 'echo', { text: 'ok', n: 1.5 });
    send(5, 'nope', {});
    send(6, 'echo', null);
    send(7, 'count', { n: 1 }); // a stream method without credit
    await waitFor(() => replies.size === 7, 'seven errors');
    const summary = [...replies.entries()]
      .sort(([x], [y]) => x - y)
      .map(([, e]) => [e.code, e.definite, e.details?.path]);
    expect(summary).toEqual([
      ['INVALID_ARGUMENT', true, '/text'],
      ['INVALID_ARGUMENT', true, '/text'],
      ['INVALID_ARGUMENT', true, '/text'],
      ['INVALID_ARGUMENT', true, '/n'],
      ['NOT_FOUND', true, undefined],
      ['INVALID_ARGUMENT', true, ''],
      ['INVALID_ARGUMENT', true, '/credit'],
    ]);
    expect(obs.calls).toEqual([]);
    expect(await caller.client(TestService, A).echo({ text: 'still up' })).toEqual({
      text: 'still up',
    });
  });

  it('logs a flood of refused calls as a few lines and a summary, and handler bugs at error', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
    const logged = await h.node('d', { server: { logger } });
    logged.serve(TestService, new Observed().handlers());
    const raw = await h.raw('raw');
    let replies = 0;
    raw.onMessage((_from, msg) => {
      if (msg.type === 'RpcError') replies++;
    });
    for (let id = 1; id <= 500; id++) {
      raw.send(D, {
        type: 'RpcRequest',
        id,
        service: 'Test',
        method: 'echo',
        timeoutMs: 1000,
        payload: {},
      });
    }
    await waitFor(() => replies === 500, '500 refusals');
    const refusals = lines.filter((l) => l.includes('refused a call with an invalid request'));
    expect(refusals.length).toBe(limits.logRepeatBurstMax);
    expect(refusals[0]).toContain('"code":"INVALID_ARGUMENT"');
    const stub = caller.client(TestService, D);
    expectError(await rejection(stub.fail({ code: 'plain' })), 'INTERNAL', false);
    expect(lines.some((l) => l.includes('"level":50') && l.includes('unexpected error'))).toBe(
      true,
    );
    await logged.close();
    expect(
      lines.filter((l) =>
        l.includes(`${500 - limits.logRepeatBurstMax} more like this suppressed`),
      ),
    ).toHaveLength(1);
  });

  it('interceptors: the client adds a token, the server refuses calls without it', async () => {
    const seen: string[] = [];
    server.intercept(async (call, next) => {
      seen.push(`${call.service}.${call.method}`);
      if (call.meta.token !== 'secret') throw new CohortError('PERMISSION_DENIED', 'no token');
      return next();
    });
    const anonymous = caller.client(TestService, A);
    expectError(await rejection(anonymous.echo({ text: 'x' })), 'PERMISSION_DENIED', true);
    const tokenNode = await h.node('c', {
      client: {
        interceptors: [
          async (call, next) => {
            call.meta.token = 'secret';
            return next(call);
          },
        ],
      },
    });
    expect(await tokenNode.client(TestService, A).echo({ text: 'y' })).toEqual({ text: 'y' });
    expect(seen).toEqual(['Test.echo', 'Test.echo']);
    // Streams go through the interceptors on both sides too.
    const items: number[] = [];
    for await (const { i } of tokenNode.client(TestService, A).count({ n: 3 })) items.push(i);
    expect(items).toEqual([0, 1, 2]);
    const refused = await rejection(
      (async () => {
        for await (const item of anonymous.count({ n: 3 })) void item;
      })(),
    );
    expect(refused.code).toBe('PERMISSION_DENIED');
    expect(seen).toEqual(['Test.echo', 'Test.echo', 'Test.count', 'Test.count']);
  });

  it('reply metadata: set by the server, seen by the caller of a unary call; bounded like call metadata', async () => {
    server.intercept(async (call, next) => {
      if (call.meta.reply !== undefined) call.setReplyMeta('echo', call.meta.reply);
      if (call.meta.big !== undefined) call.setReplyMeta('big', 'x'.repeat(8 * 1024));
      return next();
    });
    const stub = caller.client(TestService, A);
    const seen: Readonly<Record<string, string>>[] = [];
    const onReplyMeta = (m: Readonly<Record<string, string>>): void => void seen.push(m);
    expect(await stub.echo({ text: 'a' }, { meta: { reply: 'r1' }, onReplyMeta })).toEqual({
      text: 'a',
    });
    expect(seen).toEqual([{ echo: 'r1' }]);
    // No metadata set: the callback is not called; no callback: the reply is the same.
    await stub.echo({ text: 'b' }, { onReplyMeta });
    expect(seen).toHaveLength(1);
    expect(await stub.echo({ text: 'c' }, { meta: { reply: 'r2' } })).toEqual({ text: 'c' });
    // Over the bound: the handler's setReplyMeta throws INVALID_ARGUMENT, the link stays.
    expectError(
      await rejection(stub.echo({ text: 'd' }, { meta: { big: '1' }, onReplyMeta })),
      'INVALID_ARGUMENT',
      true,
    );
    expect(await stub.echo({ text: 'e' })).toEqual({ text: 'e' });
    expect(seen).toHaveLength(1);
  });

  it('streams every item in order', async () => {
    const stub = caller.client(TestService, A);
    const got: number[] = [];
    for await (const { i } of stub.count({ n: 500 })) got.push(i);
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => i));
    await waitFor(() => server.server.inflight === 0, 'stream done on the server');
  });

  it('stream backpressure: the server produces no more than the credit window ahead', async () => {
    const stub = caller.client(TestService, A);
    const stream = stub.forever({ key: 'bp' });
    const it = stream[Symbol.asyncIterator]();
    await waitFor(() => (obs.produced.get('bp') ?? 0) >= limits.rpcStreamCreditItems, 'window');
    await new Promise((r) => setTimeout(r, 50));
    expect(obs.produced.get('bp')).toBe(limits.rpcStreamCreditItems);
    // Consuming returns credit, so production resumes.
    for (let i = 0; i < limits.rpcStreamCreditItems; i++) {
      expect(await it.next()).toEqual({ done: false, value: { i } });
    }
    await waitFor(
      () => (obs.produced.get('bp') ?? 0) >= limits.rpcStreamCreditItems * 2,
      'more credit',
    );
    stream.cancel();
    await waitFor(() => obs.finished.has('bp'), 'server stopped');
  });

  it('a streaming call cancelled by the client stops on the server', async () => {
    const stub = caller.client(TestService, A);
    let n = 0;
    for await (const item of stub.forever({ key: 'cancel' })) {
      expect(item.i).toBe(n++);
      if (n === 5) break;
    }
    await waitFor(() => obs.finished.has('cancel'), 'generator finally ran');
    await waitFor(() => server.server.inflight === 0, 'no call left');
  });

  it('the server can end a stream with an error after some items', async () => {
    const stub = caller.client(TestService, A);
    const got: number[] = [];
    const err = await rejection(
      (async () => {
        for await (const { i } of stub.forever({ key: 'boom' })) got.push(i);
      })(),
    );
    expect(got).toEqual([0, 1, 2]);
    expectError(err, 'FAILED_PRECONDITION', true);
    await waitFor(() => server.server.inflight === 0, 'server done');
  });

  it('any payload gets an answer, never a crash (property)', async () => {
    const raw = await h.raw('raw');
    const answered = new Set<number>();
    raw.onMessage((_from, msg) => {
      if (msg.type !== 'RpcCredit' && msg.type !== 'RpcCancel' && 'id' in msg) answered.add(msg.id);
      if (msg.type === 'RpcError') expect(msg.code).toBe('INVALID_ARGUMENT');
    });
    let id = 1000;
    await fc.assert(
      fc.asyncProperty(
        fc.jsonValue(),
        fc.constantFrom('echo', 'count', 'block'),
        async (payload, method) => {
          const mine = id++;
          raw.send(A, {
            type: 'RpcRequest',
            id: mine,
            service: 'Test',
            method,
            timeoutMs: conditionWaitMs, // never the answer, even on a busy machine
            payload,
            ...(method === 'count' ? { credit: 4 } : {}),
          });
          await waitFor(
            () => answered.has(mine) || (method === 'block' && obs.started.size > 0),
            'an answer',
          );
          for (const key of obs.started) obs.release(key);
        },
      ),
      { numRuns: 60 },
    );
    expect(await caller.client(TestService, A).echo({ text: 'alive' })).toEqual({ text: 'alive' });
  });

  it('a stream past its deadline ends with TIMEOUT for the client and stops on the server', async () => {
    const stub = caller.client(TestService, A);
    const err = await rejection(
      (async () => {
        for await (const item of stub.forever({ key: 'dl' }, { timeoutMs: 60 })) void item;
      })(),
    );
    expectError(err, 'TIMEOUT', false);
    await waitFor(() => obs.finished.has('dl'), 'generator stopped');
  });

  it('a server that goes away mid-call gives CONNECTION_LOST, then UNAVAILABLE (definite) while down', async () => {
    const stub = caller.client(TestService, A);
    const call = stub.block({ key: 'lost' }, { timeoutMs: conditionWaitMs });
    const outcome = rejection(call);
    await waitFor(() => obs.started.has('lost'), 'started');
    await server.close();
    expectError(await outcome, 'CONNECTION_LOST', false);
    expectError(await rejection(stub.echo({ text: 'x' })), 'UNAVAILABLE', true);
  });
});

describe('replies that cannot be sent (memory)', () => {
  it('a reply larger than the frame limit reaches the caller as an indefinite FRAME_TOO_LARGE', async () => {
    const net = new MemoryNetwork();
    const server = new RpcNode(
      net.transport(nodeId('s'), rpcCodec, { limits: { frameBytesMax: 600 } }),
    );
    server.serve(TestService, new Observed().handlers());
    const client = new RpcNode(net.transport(nodeId('c'), rpcCodec));
    try {
      const stub = client.client(TestService, nodeId('s'));
      expect(await stub.echo({ text: 'small' })).toEqual({ text: 'small' });
      const err = await rejection(stub.echo({ text: 'x'.repeat(700) }));
      expect([err.code, err.definite]).toEqual(['FRAME_TOO_LARGE', false]);
    } finally {
      await client.close();
      await server.close();
    }
  });
});

describe('the caller identity', () => {
  it("hands each handler the caller's authenticated identity, never what it claims", async () => {
    const net = new MemoryNetwork();
    const server = new RpcNode(net.transport(A, rpcCodec));
    const seen: string[] = [];
    server.serve(TestService, {
      ...new Observed().handlers(),
      echo: (req, ctx) => {
        seen.push(`${ctx.peer} ${JSON.stringify(ctx.identity)}`);
        return req;
      },
    });
    const alice = new RpcNode(
      net.transport(nodeId('user:alice:1'), rpcCodec, {
        identity: { kind: 'user', clusterId: 'c' as never, name: 'alice' },
      }),
    );
    const anon = new RpcNode(net.transport(D, rpcCodec));
    await alice.client(TestService, A).echo({ text: 'x', n: 1 });
    await anon.client(TestService, A).echo({ text: 'y', n: 2 });
    expect(seen).toEqual([
      `user:alice:1 ${JSON.stringify({ kind: 'user', clusterId: 'c', name: 'alice' })}`,
      `d ${JSON.stringify({ kind: 'anonymous' })}`,
    ]);
    await Promise.all([server.close(), alice.close(), anon.close()]);
  });

  it('fails calls to a peer whose link was refused with that reason, definite, at once', async () => {
    const net = new MemoryNetwork();
    const node = new RpcNode(net.transport(A, rpcCodec));
    // A call waits for the link to b (absent), then the link is refused.
    const pending = rejection(node.client(TestService, nodeId('b')).echo({ text: 'x', n: 1 }));
    const reason = new CohortError('HANDSHAKE_FAILED', 'b refused the handshake (identity): nope');
    node.peerStatus(nodeId('b'), 'down', reason);
    const err = await pending;
    expectError(err, 'HANDSHAKE_FAILED', true);
    expect(err.message).toMatch(/cannot connect to b: b refused the handshake \(identity\): nope/);
    const later = await rejection(node.client(TestService, nodeId('b')).echo({ text: 'x', n: 1 }));
    expectError(later, 'HANDSHAKE_FAILED', true);
    node.peerStatus(nodeId('b'), 'up');
    await node.close();
  });
});
