/**
 * The classic web farm, for real: tic-tac-toe's server as three stateless
 * replica processes behind `cohort gateway` (its RPC front end), the games
 * in a three-node cohort KV cluster. A game is played through the gateway
 * while a replica is killed (kill -9) and then the KV leader is killed: the
 * game goes on, the move made across the election completes after it, and
 * a move sent twice is played once. No timing is asserted.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startTcpClient } from '../../src/rpc/tcp-endpoints.js';
import { startCli } from '../../test/harness/cli.js';
import type { CliProcess } from '../../test/harness/cli.js';
import { ProcessCluster, until } from '../../test/harness/process-cluster.js';
import { freePort } from '../../test/transport/tcp-harness.js';
import { TicTacToe } from './service.js';

const procs: CliProcess[] = [];
let cluster: ProcessCluster | undefined;
afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exit));
  await cluster?.close();
});

function started(p: CliProcess, text: string): Promise<true> {
  return until(
    `"${text}" from a process`,
    () => {
      if (p.child.exitCode !== null) {
        throw new Error(`exited ${p.child.exitCode}: ${p.out.stderr.slice(-2000)}`);
      }
      return Promise.resolve(p.out.stdout.includes(text) ? true : undefined);
    },
    120_000,
    100,
  );
}

interface RpcBackendView {
  id: string;
  eligible: boolean;
  connected: boolean;
}

async function rpcBackends(admin: number): Promise<RpcBackendView[]> {
  const r = await fetch(`http://127.0.0.1:${admin}/status`);
  return ((await r.json()) as { rpc: { backends: RpcBackendView[] } }).rpc.backends;
}

describe('tic-tac-toe farm: three stateless replicas behind the gateway, games in KV', () => {
  it('a game goes on through a replica kill -9 and a KV leader kill; a move sent twice is played once', async () => {
    cluster = await ProcessCluster.start({ nodes: 3 });
    await cluster.waitForLeader();
    const kv = cluster
      .endpoints()
      .map((e) => `${e.id}=${e.host}:${e.port}`)
      .join(',');
    const replicas: { id: string; port: number; proc: CliProcess }[] = [];
    for (const id of ['ttt-1', 'ttt-2', 'ttt-3']) {
      const port = await freePort();
      const proc = startCli([
        'example',
        'tictactoe',
        'serve',
        '--id',
        id,
        '--port',
        String(port),
        '--kv',
        kv,
      ]);
      procs.push(proc);
      replicas.push({ id, port, proc });
    }
    for (const r of replicas) await started(r.proc, `tic-tac-toe server ${r.id}`);
    const port = await freePort();
    const admin = await freePort();
    const gateway = startCli([
      'gateway',
      '--rpc-listen',
      `127.0.0.1:${port}`,
      '--rpc-backends',
      replicas.map((r) => `${r.id}=127.0.0.1:${r.port}`).join(','),
      '--rpc-methods',
      'TicTacToe.move:idempotent,TicTacToe.state:idempotent,TicTacToe.reset:idempotent,TicTacToe.watch:stream:idempotent',
      '--admin',
      `127.0.0.1:${admin}`,
      '--check-interval-ms',
      '300',
      '--check-timeout-ms',
      '2000',
      '--try-timeout-ms',
      '40000',
    ]);
    procs.push(gateway);
    await started(gateway, 'cohort gateway:');
    await until(
      'every replica connected to the gateway',
      async () =>
        (await rpcBackends(admin)).every((b) => b.connected && b.eligible) ? true : undefined,
      120_000,
    );

    const player = await startTcpClient({ server: { id: 'gateway', host: '127.0.0.1', port } });
    try {
      const ttt = player.client(TicTacToe, player.serverId, { timeoutMs: 120_000 });
      const game = 'farm';
      // X takes the diagonal, O the top row's middle and right.
      const script = [
        ['X', 0, 0],
        ['O', 1, 0],
        ['X', 1, 1],
        ['O', 2, 0],
        ['X', 2, 2],
      ] as const;
      const play = async (turn: number) => {
        const [p, x, y] = script[turn]!;
        return ttt.move({ game, player: p, x, y, turn });
      };
      expect(await ttt.reset({ game })).toMatchObject({ moves: 0 });
      expect(await play(0)).toMatchObject({ ok: true, state: { moves: 1 } });
      expect(await play(1)).toMatchObject({ ok: true, state: { moves: 2 } });

      // A replica dies mid-game: the gateway sends the next moves to the others.
      replicas[0]!.proc.child.kill('SIGKILL');
      await replicas[0]!.proc.exit;
      expect(await play(2)).toMatchObject({ ok: true, state: { moves: 3 } });
      expect(await ttt.state({ game })).toMatchObject({ moves: 3, next: 'O' });

      // The KV leader dies: the next move completes after the election.
      const leader = await cluster.waitForLeader();
      await cluster.kill(leader.id);
      expect(await play(3)).toMatchObject({ ok: true, state: { moves: 4 } });
      const next = await cluster.waitForLeader({ notId: leader.id, minTerm: leader.term + 1 });
      expect(next.id).not.toBe(leader.id);

      // The same move again (a client retry): answered ok, not played twice.
      expect(await play(3)).toMatchObject({ ok: true, state: { moves: 4 } });
      expect(await play(4)).toMatchObject({
        ok: true,
        state: { moves: 5, status: 'won', winner: 'X' },
      });
      const final = await ttt.state({ game });
      expect(final).toMatchObject({ moves: 5, status: 'won', winner: 'X' });
      expect(final.cells.filter((c) => c !== '.')).toHaveLength(5);
      // The dead replica is out of rotation; the gateway is still up.
      expect((await rpcBackends(admin)).find((b) => b.id === 'ttt-1')?.connected).toBe(false);
      expect(gateway.child.exitCode).toBe(null);
    } finally {
      await player.close();
    }
  });
});
