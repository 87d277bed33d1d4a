/**
 * Growing and shrinking a cluster of real `cohort node` processes under a
 * client write load (issue 15, "Done when"): three nodes started with
 * --peers; n4 and n5 start with `--join` and are promoted by the leader once
 * caught up (--snapshot-entries is small, so they may start from the
 * leader's snapshot); then `cohort
 * member remove` takes out the leader (it hands leadership over first) and
 * one more original node. Five KV clients run get / put / cas throughout;
 * the history is linearizable and no acknowledged write is lost, and
 * `Members.list` on every remaining node names the same three voters.
 *
 * `COHORT_NEMESIS_VERBOSE=1` prints the steps and the figures.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkLinearizability, formatCheckResult } from '../../src/sim/checkers/linearizability.js';
import type { KvInput, KvOutput } from '../../src/sim/checkers/models.js';
import { kvModel } from '../../src/sim/checkers/models.js';
import { callLeader } from '../../src/node/members.js';
import type { MemberList } from '../../src/node/members.js';
import { historyFigures, KvWorkload, lostWrites } from '../harness/kv-nemesis.js';
import { runCli } from '../harness/cli.js';
import { ProcessCluster, sleep, until } from '../harness/process-cluster.js';

const verbose = process.env.COHORT_NEMESIS_VERBOSE !== undefined;
const say = (s: string): void => {
  if (verbose) process.stderr.write(`[members] ${s}\n`);
};

const cohort = runCli;

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start({ nodes: 3, snapshotEntries: 200 });
});

afterAll(async () => {
  await cluster.close();
});

describe('a running cluster grows from 3 to 5 voters and shrinks back to 3', () => {
  it('under a write load, with --join and cohort member remove (the leader among the removed): nothing acknowledged is lost', async () => {
    await cluster.waitForLeader();
    await cluster.plan('n4');
    await cluster.plan('n5');
    // The clients know all five endpoints; n4 and n5 answer once they run.
    const workload = await KvWorkload.start({
      endpoints: cluster.endpoints(),
      clients: 5,
      keys: 6,
    });
    const endpointsFlag = (ids: string[]): string =>
      cluster
        .endpoints()
        .filter((e) => ids.includes(e.id))
        .map((e) => `${e.id}=${e.host}:${e.port}`)
        .join(',');
    const voters = async (id: string): Promise<string[] | undefined> =>
      (await cluster.status(id))?.members;
    let removedLeader = '';
    try {
      await until('some writes before growing', () =>
        Promise.resolve(workload.operations > 300 ? true : undefined),
      );
      for (const id of ['n4', 'n5']) {
        say(`${id} joins`);
        cluster.join(id);
        await until(`${id} promoted to voter`, async () =>
          (await voters(id))?.includes(id) === true ? true : undefined,
        );
      }
      const grown = await cluster.waitForLeader();
      expect(grown.members).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);
      say(`grown to 5; leader ${grown.id}, ${workload.operations} ops`);
      await sleep(500);

      // Shrink: the leader first (it hands over), then one more original node.
      removedLeader = grown.id;
      const other = ['n1', 'n2', 'n3'].find((id) => id !== removedLeader) as string;
      for (const id of [removedLeader, other]) {
        const r = await cohort([
          'member',
          'remove',
          id,
          '--json',
          '--endpoints',
          endpointsFlag(['n4', 'n5']),
        ]);
        say(`member remove ${id}: exit ${r.code} ${r.stderr.trim()}`);
        expect(r.code).toBe(0);
        const list = JSON.parse(r.stdout) as MemberList;
        expect(list.members.map((m) => m.id)).not.toContain(id);
        expect(list.node).not.toBe(id);
      }
      const remaining = ['n1', 'n2', 'n3', 'n4', 'n5'].filter(
        (id) => id !== removedLeader && id !== other,
      );
      const shrunk = await cluster.waitForLeader({ followers: 3 });
      expect(remaining).toContain(shrunk.id);
      say(`shrunk to ${remaining.join(',')}; leader ${shrunk.id}, ${workload.operations} ops`);
      await sleep(500);
      await workload.stop();
      await workload.finalReads();

      // Every remaining node lists the same three voters, and no learner.
      for (const id of remaining) {
        const ep = cluster.endpoints().find((e) => e.id === id);
        if (ep === undefined) throw new Error(id);
        const list = await until(`${id} lists 3 voters`, async () => {
          const l = await callLeader(
            [{ id, rpc: { host: ep.host, port: ep.port } }],
            cluster.clusterId,
            (m, timeoutMs) => m.list({}, { timeoutMs }),
          );
          return l.members.length === 3 ? l : undefined;
        });
        expect(list.members.map((m) => [m.id, m.role])).toEqual(
          [...remaining].sort().map((m) => [m, 'voter']),
        );
      }
      const listed = await cohort(['member', 'list', '--endpoints', endpointsFlag(remaining)]);
      expect(listed.code).toBe(0);
      for (const id of remaining) expect(listed.stdout).toContain(id);
      // The removed nodes learn it by asking the leader, and stop by themselves with 0.
      for (const id of [removedLeader, other]) {
        const ended = await until(`${id} stopped after its removal`, () =>
          Promise.resolve(cluster.ended(id)),
        );
        expect(ended).toBe(0);
        expect(cluster.output(id)).toContain('this node was removed from the cluster');
      }
    } catch (e) {
      for (const n of cluster.nodes) say(`${n.id} output:\n${cluster.output(n.id).slice(-3000)}`);
      throw e;
    } finally {
      await workload.close();
    }
    const history = workload.recorder.history();
    const figures = historyFigures(history);
    const result = checkLinearizability<string | null, KvInput, KvOutput>(history, kvModel(), {
      timeoutMs: 60_000,
    });
    say(
      `${figures.ops} ops (${figures.ok} ok, ${figures.fail} fail, ${figures.unknown} unknown); checker ${result.verdict}; errors ${JSON.stringify(Object.fromEntries(workload.errors))}`,
    );
    if (result.verdict !== 'linearizable') say(formatCheckResult(result));
    expect(result.verdict).toBe('linearizable');
    expect(lostWrites(history)).toEqual([]);
    expect(figures.ok).toBeGreaterThan(300);
  });
});
