/**
 * Resilience over both transports: retries only when allowed by the
 * definite/indefinite rule, backoff bounds, the circuit breaker's
 * transitions, the bulkhead, and replicated calls.
 */
import { Type } from '@sinclair/typebox';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/lib/clock.js';
import { nodeId } from '../../src/lib/ids.js';
import { seededRandom } from '../../src/lib/random.js';
import type { RpcNode } from '../../src/rpc/node.js';
import { makeClient } from '../../src/rpc/client.js';
import type { Invoker } from '../../src/rpc/client.js';
import {
  CircuitBreaker,
  EndpointPolicy,
  replicated,
  replicatedClient,
  resilientClient,
} from '../../src/rpc/resilience.js';
import { defineService, unary } from '../../src/rpc/service.js';
import { CohortError } from '../../src/lib/errors.js';
import { waitFor } from '../transport/compliance.js';
import { harnesses, Observed, rejection, TestService } from './harness.js';
import type { RpcHarness } from './harness.js';

const A = nodeId('a');

const Vote = defineService('Vote', {
  value: unary(Type.Object({}), Type.Object({ v: Type.Integer() }), { idempotent: true }),
});

describe.each(harnesses)('resilience (%o)', (make) => {
  let h: RpcHarness;
  let server: RpcNode;
  let caller: RpcNode;
  let obs: Observed;

  beforeEach(async () => {
    h = make();
    obs = new Observed();
    server = await h.node('a');
    server.serve(TestService, obs.handlers());
    caller = await h.node('b');
  });
  afterEach(async () => {
    await h.cleanup();
  });

  it('never re-sends a non-idempotent call after an indefinite error', async () => {
    const policy = new EndpointPolicy({ retry: { attempts: 5, baseDelayMs: 1 }, breaker: false });
    const stub = resilientClient(caller, TestService, A, policy);
    const err = await rejection(stub.block({ key: 'once' }, { timeoutMs: 40 }));
    expect([err.code, err.definite]).toEqual(['TIMEOUT', false]);
    await waitFor(() => obs.aborted.has('once'), 'server abort');
    expect(obs.calls.filter((c) => c === 'block:once')).toHaveLength(1);
    expect(policy.retries).toBe(0);
  });

  it('retries an idempotent call after an indefinite TIMEOUT', async () => {
    // The first try blocks until it times out; a retry answers at once, but on
    // a busy machine may miss the short deadline too: then it is retried again.
    const policy = new EndpointPolicy({ retry: { attempts: 20, baseDelayMs: 1 }, breaker: false });
    // A per-try deadline from the client's default (a caller's timeoutMs would cover all tries).
    const quick = await h.node('c', { client: { timeoutMs: 40 } });
    const stub = resilientClient(quick, TestService, A, policy);
    const { n } = await stub.slowOnce({ key: 'k' });
    // The answer came from the n-th try, after n - 1 retries (each after a TIMEOUT).
    expect(n).toBeGreaterThanOrEqual(2);
    expect(policy.retries).toBe(n - 1);
  });

  it('retries a non-idempotent call after a definite error, up to the attempt limit', async () => {
    const policy = new EndpointPolicy({ retry: { attempts: 3, baseDelayMs: 1 }, breaker: false });
    const stub = resilientClient(caller, TestService, A, policy);
    const err = await rejection(stub.fail({ code: 'OVERLOADED' }));
    expect([err.code, err.definite]).toEqual(['OVERLOADED', true]);
    expect(obs.calls.filter((c) => c === 'fail:OVERLOADED')).toHaveLength(3);
    // Not retryable: the caller's own mistake.
    await rejection(stub.fail({ code: 'NOT_FOUND' }));
    expect(obs.calls.filter((c) => c === 'fail:NOT_FOUND')).toHaveLength(1);
  });

  it('the breaker opens after consecutive failures, half-opens after openMs and closes on a good probe', async () => {
    const clock = new VirtualClock();
    const policy = new EndpointPolicy({
      clock,
      retry: false,
      breaker: { failures: 3, openMs: 100 },
    });
    const stub = resilientClient(caller, TestService, A, policy);
    for (let i = 0; i < 3; i++) await rejection(stub.fail({ code: 'plain' })); // INTERNAL
    expect(policy.breaker?.state).toBe('open');
    const before = obs.calls.length;
    const refused = await rejection(stub.echo({ text: 'x' }));
    expect([refused.code, refused.definite]).toEqual(['CIRCUIT_OPEN', true]);
    expect(obs.calls.length).toBe(before); // nothing sent
    clock.advance(100);
    expect(policy.breaker?.state).toBe('half-open');
    // A failed probe opens it again.
    await rejection(stub.fail({ code: 'plain' }));
    expect(policy.breaker?.state).toBe('open');
    clock.advance(100);
    expect(await stub.echo({ text: 'probe' })).toEqual({ text: 'probe' });
    expect(policy.breaker?.state).toBe('closed');
    expect(policy.breaker?.transitions).toEqual([
      'open',
      'half-open',
      'open',
      'half-open',
      'closed',
    ]);
  });

  it('the bulkhead refuses calls past its bound with a definite OVERLOADED, nothing sent', async () => {
    const policy = new EndpointPolicy({
      retry: false,
      breaker: false,
      bulkhead: { maxConcurrent: 2 },
    });
    const stub = resilientClient(caller, TestService, A, policy);
    const held = [stub.block({ key: 'h1' }), stub.block({ key: 'h2' })];
    await waitFor(() => obs.started.size === 2, 'two running');
    const err = await rejection(stub.block({ key: 'h3' }));
    expect([err.code, err.definite]).toEqual(['OVERLOADED', true]);
    obs.release('h1');
    obs.release('h2');
    await Promise.all(held);
    expect(obs.started.has('h3')).toBe(false);
  });

  it('replicated calls: first success, majority agreement, all', async () => {
    const values = { a: 1, c: 1, d: 2 } as const;
    server.serve(Vote, { value: () => ({ v: values.a }) });
    for (const id of ['c', 'd'] as const) {
      (await h.node(id)).serve(Vote, { value: () => ({ v: values[id] }) });
    }
    const peers = ['a', 'c', 'd'].map((p) => nodeId(p));
    expect(await replicatedClient(caller, Vote, peers, 'majority').value({})).toEqual({ v: 1 });
    expect([1, 2]).toContain((await replicatedClient(caller, Vote, peers, 'first').value({})).v);
    const all = await replicated(
      peers.map((p) => (signal) => caller.client(Vote, p).value({}, { signal })),
      'all',
    );
    expect(all).toEqual([{ v: 1 }, { v: 1 }, { v: 2 }]);
    // With per-replica policies: an open breaker on one replica is one failed vote, not a failure.
    const clock = new VirtualClock();
    const policies = new Map(
      peers.map((p) => [p, new EndpointPolicy({ clock, retry: false, breaker: { failures: 1 } })]),
    );
    policies.get(nodeId('d'))?.breaker?.record(new CohortError('TIMEOUT', 'x'));
    expect(policies.get(nodeId('d'))?.breaker?.state).toBe('open');
    const guarded = replicatedClient(caller, Vote, peers, 'majority', {}, policies);
    expect(await guarded.value({})).toEqual({ v: 1 });
  });
});

describe('resilience policies (pure)', () => {
  it('backoff delays stay within [0, min(max, base·2^(k-1))]', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer(), (k, seed) => {
        const p = new EndpointPolicy({
          random: seededRandom(seed),
          retry: { baseDelayMs: 10, maxDelayMs: 500 },
        });
        const d = p.backoffMs(k);
        return d >= 0 && d <= Math.min(500, 10 * 2 ** (k - 1));
      }),
    );
  });

  it('retries stay within the caller’s deadline (each try gets what is left)', async () => {
    const clock = new VirtualClock();
    const policy = new EndpointPolicy({
      clock,
      random: seededRandom(7),
      retry: { attempts: 1000, baseDelayMs: 5, maxDelayMs: 5 },
      breaker: false,
    });
    const budgets: number[] = [];
    const inner: Invoker = {
      unary: (_m, _r, options) => {
        budgets.push(options.timeoutMs ?? -1);
        clock.advance(10); // each try takes 10 ms of (virtual) time
        return Promise.reject(new CohortError('OVERLOADED', 'busy'));
      },
      stream: () => {
        throw new Error('unused');
      },
    };
    const ticker = setInterval(() => clock.advance(1), 1); // lets backoff sleeps end
    try {
      const stub = makeClient(TestService, policy.wrap('e', inner));
      const err = await rejection(stub.echo({ text: 'x' }, { timeoutMs: 100 }));
      expect(err.code).toBe('OVERLOADED');
    } finally {
      clearInterval(ticker);
    }
    expect(budgets.length).toBeGreaterThan(1);
    expect(budgets.length).toBeLessThanOrEqual(10);
    expect(budgets[0]).toBe(100);
    for (let i = 1; i < budgets.length; i++)
      expect(budgets[i]).toBeLessThan(budgets[i - 1] as number);
  });

  it('a breaker ignores the caller’s own mistakes and resets on success', () => {
    const b = new CircuitBreaker(new VirtualClock(), { failures: 2 });
    b.record(new CohortError('INVALID_ARGUMENT', 'x'));
    b.record(new CohortError('NOT_FOUND', 'x'));
    b.record(new CohortError('TIMEOUT', 'x'));
    b.record(undefined);
    b.record(new CohortError('TIMEOUT', 'x'));
    expect(b.state).toBe('closed');
    b.record(new CohortError('CONNECTION_LOST', 'x'));
    expect(b.state).toBe('open');
  });

  it('majority fails indefinite when replicas disagree, definite when all fail definitely', async () => {
    const disagree = await rejection(
      replicated(
        [1, 2, 3].map((v) => () => Promise.resolve(v)),
        'majority',
      ),
    );
    expect(disagree.definite).toBe(false);
    const refused = await rejection(
      replicated(
        [1, 2].map(() => () => Promise.reject(new CohortError('OVERLOADED', 'x'))),
        'first',
      ),
    );
    expect([refused.code, refused.definite]).toEqual(['OVERLOADED', true]);
  });
});
