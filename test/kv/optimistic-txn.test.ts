import { describe, expect, it } from 'vitest';
import { KvStateMachine, kvKey, kvText, prefixRange } from '../../src/kv/core/index.js';
import type { KvCommand, TxnResult } from '../../src/kv/core/index.js';
import { OptimisticTxn, runOptimisticTxn } from '../../src/kv/optimistic-txn.js';
import type { KvTxnBackend } from '../../src/kv/optimistic-txn.js';
import { CohortError } from '../../src/lib/errors.js';
import { seededRandom } from '../../src/lib/random.js';
import type { Random } from '../../src/lib/random.js';

/** A backend applying straight to a state machine, yielding a random number of turns first. */
function backendOf(sm: KvStateMachine, random?: Random): KvTxnBackend & { txns: number } {
  const turns = async () => {
    for (let i = random === undefined ? 0 : random.int(4); i > 0; i--) await Promise.resolve();
  };
  const backend = {
    txns: 0,
    async range(req: Parameters<KvTxnBackend['range']>[0]) {
      await turns();
      return sm.read(req);
    },
    async txn(req: Parameters<KvTxnBackend['txn']>[0]) {
      await turns();
      backend.txns++;
      const out = sm.apply({ command: req });
      if (!out.ok) throw new CohortError(out.error.code, out.error.message);
      return out.result as TxnResult;
    },
  };
  return backend;
}

function apply(sm: KvStateMachine, command: KvCommand) {
  const out = sm.apply({ command });
  if (!out.ok) throw new Error(out.error.message);
  return out;
}

const num = (v: Uint8Array | undefined) => Number(kvText(v ?? kvKey('0')));

describe('runOptimisticTxn', () => {
  it('commits reads and writes at one revision, reading its own writes', async () => {
    const sm = new KvStateMachine();
    apply(sm, { type: 'put', key: kvKey('a'), value: kvKey('5') });
    const out = await runOptimisticTxn(backendOf(sm), async (tx) => {
      const a = num(await tx.get(kvKey('a')));
      tx.put(kvKey('b'), kvKey(String(a * 2)));
      tx.delete(kvKey('a'));
      expect(await tx.get(kvKey('a'))).toBeUndefined();
      expect(num(await tx.get(kvKey('b')))).toBe(10);
      return a;
    });
    expect(out).toEqual({ status: 'committed', value: 5, revision: 2, attempts: 1 });
    const all = sm.read({ type: 'range', ...prefixRange(new Uint8Array()) });
    expect(all.kvs.map((kv) => `${kvText(kv.key)}=${kvText(kv.value)}@${kv.modRevision}`)).toEqual([
      'b=10@2',
    ]);
  });

  it('retries when a key it read changed before commit, and sees the new value', async () => {
    const sm = new KvStateMachine();
    apply(sm, { type: 'put', key: kvKey('n'), value: kvKey('1') });
    const seen: number[] = [];
    const out = await runOptimisticTxn(backendOf(sm), async (tx) => {
      const n = num(await tx.get(kvKey('n')));
      seen.push(n);
      if (seen.length === 1) apply(sm, { type: 'put', key: kvKey('n'), value: kvKey('100') });
      tx.put(kvKey('n'), kvKey(String(n + 1)));
    });
    expect(seen).toEqual([1, 100]);
    expect(out).toMatchObject({ status: 'committed', attempts: 2 });
    expect(num(sm.read({ type: 'range', key: kvKey('n') }).kvs[0]?.value)).toBe(101);
  });

  it('a key created by someone else after it was read as absent is a conflict', async () => {
    const sm = new KvStateMachine();
    let attempts = 0;
    await runOptimisticTxn(backendOf(sm), async (tx) => {
      attempts++;
      if ((await tx.get(kvKey('lock'))) !== undefined) return tx.abort('taken');
      if (attempts === 1) apply(sm, { type: 'put', key: kvKey('lock'), value: kvKey('them') });
      tx.put(kvKey('lock'), kvKey('me'));
    }).then((out) => expect(out).toEqual({ status: 'aborted', reason: 'taken', attempts: 2 }));
    expect(kvText(sm.read({ type: 'range', key: kvKey('lock') }).kvs[0]!.value)).toBe('them');
  });

  it('pins every read to the first read’s revision', async () => {
    const sm = new KvStateMachine();
    apply(sm, { type: 'put', key: kvKey('x'), value: kvKey('1') });
    apply(sm, { type: 'put', key: kvKey('y'), value: kvKey('1') });
    const out = await runOptimisticTxn(backendOf(sm), async (tx) => {
      const x = num(await tx.get(kvKey('x')));
      if (tx.revision === 2) apply(sm, { type: 'put', key: kvKey('y'), value: kvKey('2') });
      const y = num(await tx.get(kvKey('y')));
      return [x, y, tx.revision];
    });
    // First attempt read y at revision 2 (value 1), a read-only txn: nothing to commit.
    expect(out).toEqual({ status: 'committed', value: [1, 1, 2], revision: 2, attempts: 1 });
  });

  it('retries when its pinned revision was compacted away', async () => {
    const sm = new KvStateMachine();
    apply(sm, { type: 'put', key: kvKey('x'), value: kvKey('1') });
    const reasons: string[] = [];
    const out = await runOptimisticTxn(
      backendOf(sm),
      async (tx) => {
        await tx.get(kvKey('x'));
        if (tx.revision === 1) {
          apply(sm, { type: 'put', key: kvKey('y'), value: kvKey('1') });
          apply(sm, { type: 'put', key: kvKey('y'), value: kvKey('2') });
          apply(sm, { type: 'compact', revision: 3 });
        }
        return num(await tx.get(kvKey('y')));
      },
      { onRetry: (_n, why) => void reasons.push(why) },
    );
    expect(reasons).toEqual(['compacted']);
    expect(out).toMatchObject({ status: 'committed', value: 2, attempts: 2 });
  });

  it('gives up with CONFLICT after attemptsMax and writes nothing', async () => {
    const sm = new KvStateMachine();
    const backend = backendOf(sm);
    const run = runOptimisticTxn(
      backend,
      async (tx) => {
        await tx.get(kvKey('hot'));
        apply(sm, { type: 'put', key: kvKey('hot'), value: kvKey('other') });
        tx.put(kvKey('mine'), kvKey('1'));
      },
      { attemptsMax: 3 },
    );
    await expect(run).rejects.toMatchObject({ code: 'CONFLICT', definite: true });
    expect(backend.txns).toBe(3);
    expect(sm.read({ type: 'range', key: kvKey('mine') }).count).toBe(0);
  });

  it('a finished transaction refuses more use; body errors propagate', async () => {
    const sm = new KvStateMachine();
    const tx = new OptimisticTxn(backendOf(sm));
    tx.put(kvKey('a'), kvKey('1'));
    await tx.commit();
    expect(() => tx.put(kvKey('a'), kvKey('2'))).toThrow(
      expect.objectContaining({ code: 'FAILED_PRECONDITION' }),
    );
    await expect(
      runOptimisticTxn(backendOf(sm), () => Promise.reject(new Error('boom'))),
    ).rejects.toThrow('boom');
  });

  it('concurrent transfers between accounts conserve the total (serializable)', async () => {
    let retries = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const random = seededRandom(seed);
      const sm = new KvStateMachine();
      const accounts = ['a', 'b', 'c', 'd'];
      for (const acct of accounts)
        apply(sm, { type: 'put', key: kvKey(acct), value: kvKey('100') });
      const backend = backendOf(sm, random);
      const transfer = async (i: number) => {
        const from = accounts[i % 4]!;
        const to = accounts[(i + 1 + (i % 3)) % 4]!;
        return runOptimisticTxn(
          backend,
          async (tx) => {
            const f = num(await tx.get(kvKey(from)));
            const t = num(await tx.get(kvKey(to)));
            if (f < 30) return tx.abort('insufficient');
            tx.put(kvKey(from), kvKey(String(f - 30)));
            tx.put(kvKey(to), kvKey(String(t + 30)));
          },
          { attemptsMax: 100 },
        );
      };
      const outs = await Promise.all(Array.from({ length: 12 }, (_, i) => transfer(i)));
      const balances = accounts.map((acct) =>
        num(sm.read({ type: 'range', key: kvKey(acct) }).kvs[0]?.value),
      );
      expect(balances.reduce((x, y) => x + y, 0)).toBe(400);
      expect(balances.every((x) => x >= 0)).toBe(true);
      const committed = outs.filter((o) => o.status === 'committed').length;
      // Every committed transfer is one revision on top of the 4 initial puts.
      expect(sm.revision).toBe(4 + committed);
      retries += outs.reduce((n, o) => n + o.attempts - 1, 0);
    }
    expect(retries).toBeGreaterThan(0); // the interleavings did collide
  });
});
