/**
 * The tic-tac-toe service over memory and TCP: moves, refusals as answers,
 * two games at once, watching, and two terminal players (the `play` loop)
 * finishing a game against a TCP server.
 */
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeId } from '../../src/lib/ids.js';
import { startTcpClient, startTcpServer } from '../../src/rpc/tcp-endpoints.js';
import { harnesses } from '../../test/rpc/harness.js';
import type { RpcHarness } from '../../test/rpc/harness.js';
import { playGame, SERVER_ID } from './cli.js';
import { TicTacToe, TicTacToeServer } from './service.js';

describe.each(harnesses)('tic-tac-toe service (%o)', (make) => {
  let h: RpcHarness | undefined;
  afterEach(async () => {
    await h?.cleanup();
  });

  async function setup(): Promise<ReturnType<typeof clientOf>> {
    h = make();
    const server = await h.node('a');
    server.serve(TicTacToe, new TicTacToeServer().handlers());
    const player = await h.node('b');
    return clientOf(player);
  }
  function clientOf(node: Awaited<ReturnType<RpcHarness['node']>>) {
    return node.client(TicTacToe, nodeId('a'));
  }

  it('checks moves on the server and answers refusals as values', async () => {
    const ttt = await setup();
    expect(await ttt.move({ game: 'g', player: 'X', x: 1, y: 1, turn: 0 })).toMatchObject({
      ok: true,
      state: { next: 'O', moves: 1 },
    });
    expect(await ttt.move({ game: 'g', player: 'X', x: 0, y: 0, turn: 1 })).toMatchObject({
      ok: false,
      reason: 'not-your-turn',
    });
    expect(await ttt.move({ game: 'g', player: 'O', x: 1, y: 1, turn: 1 })).toMatchObject({
      ok: false,
      reason: 'occupied',
    });
    expect(await ttt.move({ game: 'g', player: 'O', x: 5, y: 1, turn: 1 })).toMatchObject({
      ok: false,
      reason: 'out-of-bounds',
    });
  });

  it('a move sent twice is played once: the retry answers ok, an old turn is stale', async () => {
    const ttt = await setup();
    const first = await ttt.move({ game: 'd', player: 'X', x: 0, y: 0, turn: 0 });
    const again = await ttt.move({ game: 'd', player: 'X', x: 0, y: 0, turn: 0 });
    expect(first).toEqual(again);
    expect(again).toMatchObject({ ok: true, state: { moves: 1, next: 'O' } });
    await ttt.move({ game: 'd', player: 'O', x: 1, y: 0, turn: 1 });
    // The retry of move 0 after O played: still ok, nothing played again.
    expect(await ttt.move({ game: 'd', player: 'X', x: 0, y: 0, turn: 0 })).toMatchObject({
      ok: true,
      state: { moves: 2, next: 'X' },
    });
    // A different move for a turn already played is stale, not applied.
    expect(await ttt.move({ game: 'd', player: 'X', x: 2, y: 2, turn: 0 })).toMatchObject({
      ok: false,
      reason: 'stale-turn',
      state: { moves: 2 },
    });
    expect(await ttt.move({ game: 'd', player: 'X', x: 2, y: 2, turn: 5 })).toMatchObject({
      ok: false,
      reason: 'stale-turn',
    });
  });

  it('keeps two games apart, played at once', async () => {
    const ttt = await setup();
    // g1: X wins the top row; g2: the same moves mirrored, interleaved.
    const g1 = [
      ['X', 0, 0],
      ['O', 0, 1],
      ['X', 1, 0],
      ['O', 1, 1],
      ['X', 2, 0],
    ] as const;
    for (const [turn, [p, x, y]] of g1.entries()) {
      const [a, b] = await Promise.all([
        ttt.move({ game: 'g1', player: p, x, y, turn }),
        ttt.move({ game: 'g2', player: p, x: y, y: x, turn }),
      ]);
      expect(a.ok && b.ok).toBe(true);
    }
    const [s1, s2] = await Promise.all([ttt.state({ game: 'g1' }), ttt.state({ game: 'g2' })]);
    expect(s1).toMatchObject({ status: 'won', winner: 'X' });
    expect(s1.cells.slice(0, 3)).toEqual(['X', 'X', 'X']);
    expect(s2).toMatchObject({ status: 'won', winner: 'X' });
    expect([s2.cells[0], s2.cells[3], s2.cells[6]]).toEqual(['X', 'X', 'X']);
    expect(await ttt.move({ game: 'g1', player: 'O', x: 2, y: 2, turn: 5 })).toMatchObject({
      ok: false,
      reason: 'game-over',
    });
    expect(await ttt.reset({ game: 'g1' })).toMatchObject({ status: 'playing', moves: 0 });
  });

  it('bad requests get INVALID_ARGUMENT with the field path', async () => {
    const ttt = await setup();
    await expect(
      ttt.move({ game: 'g', player: 'Z', x: 0, y: 0, turn: 0 } as never),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: { path: '/player' },
    });
    await expect(
      ttt.move({ game: 'bad name!', player: 'X', x: 0, y: 0, turn: 0 }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: { path: '/game' },
    });
  });
});

describe('tic-tac-toe from two terminals (TCP, dial-only clients)', () => {
  it('X and O play a whole game through the play loop', async () => {
    const server = await startTcpServer({ id: SERVER_ID, port: 0 });
    server.serve(TicTacToe, new TicTacToeServer().handlers());
    const at = { id: SERVER_ID, host: '127.0.0.1', port: server.address.port };
    const nx = await startTcpClient({ server: at, id: 'client-1' });
    const no = await startTcpClient({ server: at, id: 'client-2' });
    try {
      const inX = new PassThrough();
      const inO = new PassThrough();
      const outX = new PassThrough();
      const outO = new PassThrough();
      let textX = '';
      let textO = '';
      outX.on('data', (d: Buffer) => (textX += d.toString()));
      outO.on('data', (d: Buffer) => (textO += d.toString()));
      // X takes the diagonal; O answers on the left column.
      inX.end('1 1\n0 0\n2 2\n');
      inO.end('9 9\n0 1\n0 2\n');
      const [rx, ro] = await Promise.all([
        playGame(nx.client(TicTacToe, nx.serverId), 'X', 'match', inX, outX),
        playGame(no.client(TicTacToe, no.serverId), 'O', 'match', inO, outO),
      ]);
      expect([rx, ro]).toEqual(['won', 'lost']);
      expect(textO).toContain('refused: out-of-bounds');
      expect(textX).toContain('X wins');
    } finally {
      await nx.close();
      await no.close();
      await server.close();
    }
  });
});
