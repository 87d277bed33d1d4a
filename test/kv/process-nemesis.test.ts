/**
 * The KV store on three real `cohort node` processes (127.0.0.1, WAL
 * fdatasync on) under a nemesis, with a linearizability check of what the
 * clients saw (DESIGN.md: real-process tests prove the shells):
 *
 * - five clients do get / put / cas on six keys while the nemesis kill -9s
 *   the leader, kill -9s a follower, SIGSTOPs the leader until another is
 *   elected then SIGCONTs it, restarts the killed nodes, and wipes a
 *   follower's data dir so it rejoins by installing the leader's snapshot
 *   (--snapshot-entries is small so the leader has compacted its log);
 * - the recorded history (ok / fail / unknown, invoke and complete times) is
 *   linearizable under the kv model, and no acknowledged write is lost;
 * - the check can fail: the same history with one read changed to a value
 *   the key no longer held, or a final read that misses an acknowledged
 *   write, is rejected; and a real stale read — a serializable read (no
 *   ReadIndex) from a node that was down while a newer write committed and
 *   came back alone — is caught.
 *
 * `COHORT_NEMESIS_CYCLES=5` runs more fault cycles (CI runs one);
 * `COHORT_NEMESIS_VERBOSE=1` prints the nemesis steps and figures;
 * `COHORT_NEMESIS_RETRY_MS=300` shortens the clients' retry budget (default
 * 5000) so faults leave operations with unknown outcomes for the checker;
 * `COHORT_NEMESIS_CLASSIFY=client` records errors as the client's definite
 * flag says instead of the conservative rule (see classifyKvError);
 * `COHORT_NEMESIS_HISTORY=file.json` saves the history.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient } from '../../src/kv/client.js';
import { checkLinearizability, formatCheckResult } from '../../src/sim/checkers/linearizability.js';
import { HistoryRecorder } from '../../src/sim/checkers/history.js';
import type { KvInput, KvOutput } from '../../src/sim/checkers/models.js';
import { kvModel } from '../../src/sim/checkers/models.js';
import {
  classifyKvError,
  historyFigures,
  KvWorkload,
  lostWrites,
  Nemesis,
  runKvOp,
} from '../harness/kv-nemesis.js';
import type { KvHistory } from '../harness/kv-nemesis.js';
import { ProcessCluster, sleep, until } from '../harness/process-cluster.js';
import { conditionWaitMs } from '../harness/wait.js';

const cycles = Math.max(1, Number(process.env.COHORT_NEMESIS_CYCLES ?? 1));
const verbose = process.env.COHORT_NEMESIS_VERBOSE !== undefined;
const retryMs = Number(process.env.COHORT_NEMESIS_RETRY_MS ?? 5000);
const classify = process.env.COHORT_NEMESIS_CLASSIFY === 'client' ? 'client' : 'conservative';
const say = (s: string): void => {
  if (verbose) process.stderr.write(`[nemesis] ${s}\n`);
};

let cluster: ProcessCluster;
let history: KvHistory = [];

beforeAll(async () => {
  cluster = await ProcessCluster.start({ nodes: 3, snapshotEntries: 200 });
});

afterAll(async () => {
  await cluster.close();
});

/** The checker with its default step budget (not a time budget: a busy machine changes no verdict). */
function check(
  h: KvHistory,
): ReturnType<typeof checkLinearizability<string | null, KvInput, KvOutput>> {
  return checkLinearizability(h, kvModel());
}

describe('KV store under a real-process nemesis', () => {
  it(
    'stays linearizable through kill -9, SIGSTOP/SIGCONT, restarts and a wiped node, and loses no acknowledged write',
    async () => {
      await cluster.waitForLeader();
      const workload = await KvWorkload.start({
        endpoints: cluster.endpoints(),
        clients: 5,
        keys: 6,
        retryMs,
        classify,
      });
      // Between faults the workload completes a set number of operations (not
      // only runs for a set time), so the figures below hold on a busy machine.
      const nemesis = new Nemesis(cluster, say, { workload });
      try {
        for (let c = 0; c < cycles; c++) {
          await nemesis.cycle();
          say(`cycle ${c + 1}/${cycles} done, ${workload.operations} ops so far`);
        }
        await sleep(500);
        await workload.stop();
        await cluster.waitForLeader();
        await workload.finalReads();
      } catch (e) {
        for (const n of cluster.nodes) say(`${n.id} output:\n${cluster.output(n.id).slice(-3000)}`);
        throw e;
      } finally {
        await workload.close();
      }
      history = workload.recorder.history();
      const figures = historyFigures(history);
      const t0 = performance.now();
      const result = check(history);
      const checkMs = performance.now() - t0;
      say(
        `${cycles} cycle(s): ${figures.ops} ops (${figures.ok} ok, ${figures.fail} fail, ${figures.unknown} unknown of which ${figures.unknownWrites} writes); ` +
          `checker ${result.verdict} in ${checkMs.toFixed(0)} ms (${result.stats.steps} steps); snapshot installs ${JSON.stringify(nemesis.snapshotInstalls)}; ` +
          `client errors ${JSON.stringify(Object.fromEntries(workload.errors))}`,
      );
      if (result.verdict !== 'linearizable') say(formatCheckResult(result));
      if (process.env.COHORT_NEMESIS_HISTORY !== undefined) {
        writeFileSync(process.env.COHORT_NEMESIS_HISTORY, JSON.stringify(history));
      }
      expect(result.verdict).toBe('linearizable');
      expect(lostWrites(history)).toEqual([]);
      // The workload really ran through the faults (the nemesis waited for 4.5
      // dwells of 50 ok operations per cycle), and the wiped node installed a snapshot.
      expect(figures.ok).toBeGreaterThan(200 * cycles);
      expect(history.some((op) => op.outcome === 'ok' && op.input.f === 'cas')).toBe(true);
      expect(nemesis.snapshotInstalls.length).toBe(cycles);
    },
    // A hang guard per cycle (vitest.config.ts): every wait above has its own bound.
    cycles * 600_000,
  );

  it('rejects the same history with a stale read or a lost write in it', () => {
    expect(history.length).toBeGreaterThan(0);
    // A read that saw the key's value, changed to a value the key held before
    // another acknowledged write completed: not linearizable.
    const byKey = new Map<string, KvHistory[number][]>();
    for (const op of history) byKey.set(op.input.key, [...(byKey.get(op.input.key) ?? []), op]);
    let stale: KvHistory | undefined;
    for (const read of history) {
      if (read.outcome !== 'ok' || read.output.f !== 'get' || read.output.value === null) continue;
      const key = read.input.key;
      // An acknowledged put on this key that completed before the read began,
      // whose value is not what the read saw, and a different acknowledged put
      // that completed after it and before the read: its value is overwritten.
      const puts = (byKey.get(key) ?? []).filter(
        (op) => op.outcome === 'ok' && op.input.f === 'put' && op.completeTime < read.invokeTime,
      );
      const older = puts.find((p) =>
        puts.some(
          (q) =>
            q !== p && p.outcome === 'ok' && q.outcome === 'ok' && q.invokeTime > p.completeTime,
        ),
      );
      if (older === undefined || older.input.f !== 'put') continue;
      if (older.input.value === read.output.value) continue;
      const oldValue = older.input.value;
      stale = history.map((op) =>
        op.id === read.id ? { ...read, output: { f: 'get', value: oldValue } } : op,
      );
      break;
    }
    expect(stale).toBeDefined();
    if (stale === undefined) return;
    expect(check(stale).verdict).toBe('not-linearizable');

    // A final read that does not see the last acknowledged write.
    const finals = history.filter((op) => op.process === 'final' && op.outcome === 'ok');
    const f = finals.find(
      (op) => op.outcome === 'ok' && op.output.f === 'get' && op.output.value !== null,
    );
    expect(f).toBeDefined();
    if (f === undefined) return;
    const lost = history.map((op) =>
      op.id === f.id ? { ...f, output: { f: 'get' as const, value: null } } : op,
    );
    expect(lostWrites(lost).length).toBeGreaterThan(0);
    expect(check(lost).verdict).toBe('not-linearizable');
  });

  it('catches a stale serializable read (no ReadIndex) from a node that missed a write and is alone', async () => {
    const leader = await cluster.waitForLeader();
    const isolated = cluster.nodes.map((n) => n.id).find((id) => id !== leader.id) as string;
    const rec = new HistoryRecorder<KvInput, KvOutput>(() => performance.now());
    // Budgets a starved node can meet: these calls must succeed.
    const kv = await KvClient.connect({
      endpoints: cluster.endpoints(),
      timeoutMs: 5000,
      retryMs: conditionWaitMs,
    });
    const lone = await KvClient.connect({
      endpoints: cluster.endpoints().filter((e) => e.id === isolated),
      timeoutMs: 5000,
      retryMs: conditionWaitMs,
    });
    // This one's call must fail (no leader): a short budget only makes that quicker.
    const loneStrict = await KvClient.connect({
      endpoints: cluster.endpoints().filter((e) => e.id === isolated),
      timeoutMs: 500,
      retryMs: 3000,
    });
    try {
      const put = (value: string): Promise<KvOutput> =>
        rec.track('writer', { f: 'put', key: 'stale', value }, () =>
          runKvOp(kv, { f: 'put', key: 'stale', value }),
        );
      await put('old');
      await cluster.waitForApplied(isolated, (await cluster.waitForLeader()).commitIndex);
      // Kill it, write a newer value through the other two, kill them, and
      // bring it back alone: it never received the newer value, and no
      // leader can tell it (a SIGSTOP instead would leave the newer entry and
      // maybe its commit in the frozen node's socket buffer).
      await cluster.kill(isolated);
      await put('new');
      for (const n of cluster.nodes) if (n.id !== isolated) await cluster.kill(n.id);
      await cluster.restart(isolated);
      await until('the isolated node to answer', () => cluster.status(isolated));
      const serializable = await rec.track(
        'reader',
        { f: 'get', key: 'stale' },
        async () => {
          const v = await lone.get('stale', { serializable: true });
          return {
            f: 'get' as const,
            value: v === undefined ? null : new TextDecoder().decode(v.value),
          };
        },
        classifyKvError,
      );
      // 'old', or nothing if its commit index was not yet durable: stale either way.
      expect(serializable.f === 'get' && serializable.value !== 'new').toBe(true);
      expect(check(rec.history()).verdict).toBe('not-linearizable');
      // A linearizable read there cannot be answered (no leader, no ReadIndex): never stale.
      await expect(loneStrict.get('stale')).rejects.toThrow();
    } finally {
      await kv.close();
      await lone.close();
      await loneStrict.close();
    }
  });
});
