/**
 * `cohort example tictactoe serve` and `cohort example tictactoe play X|O`:
 * a server process keeps the boards; each player runs `play` in a terminal,
 * sees the board after every move (a `watch` stream) and types moves as `x y`.
 *
 * ```sh
 * npx cohort example tictactoe serve                 # terminal 1 (127.0.0.1:7400)
 * npx cohort example tictactoe play X                # terminal 2
 * npx cohort example tictactoe play O                # terminal 3
 * ```
 */
import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { isCohortError } from 'cohort';
import { HttpGateway, startTcpClient, startTcpServer } from 'cohort/rpc';
import type { Client } from 'cohort/rpc';
import { describeGame, render } from './game.js';
import type { Game, Player } from './game.js';
import { TicTacToe, TicTacToeServer } from './service.js';
import type { GameStateT } from './service.js';
import { KvGameStore, MemoryGameStore } from './store.js';
import type { GameStore } from './store.js';

/** The server's node id. */
export const SERVER_ID = 'tictactoe-server';

/** Options of `serve`. */
export interface ServeOptions {
  readonly host: string;
  readonly port: number;
  /** Also serve the HTTP/JSON gateway on this port. */
  readonly http?: number;
  /** This server's node id (default {@link SERVER_ID}; replicas behind a gateway need their own). */
  readonly id?: string;
  /** Keep the games in cohort's KV store at these endpoints (`n1=host:port,...`), not in memory. */
  readonly kv?: readonly string[];
  /** The KV cluster's id (default: KvClient's, `cohort-local`). */
  readonly kvClusterId?: string;
}

/** Starts the server; resolves when it listens (it runs until the process ends). */
export async function serve(
  options: ServeOptions,
  out: Writable = process.stdout,
): Promise<{ port: number; close(): Promise<void> }> {
  const store: GameStore =
    options.kv === undefined || options.kv.length === 0
      ? new MemoryGameStore()
      : await KvGameStore.connect({
          endpoints: options.kv,
          ...(options.kvClusterId === undefined ? {} : { clusterId: options.kvClusterId }),
        });
  const node = await startTcpServer({
    id: options.id ?? SERVER_ID,
    host: options.host,
    port: options.port,
  });
  node.serve(TicTacToe, new TicTacToeServer(store).handlers());
  const gw =
    options.http === undefined
      ? undefined
      : await HttpGateway.start(node, { host: options.host, port: options.http });
  out.write(
    `tic-tac-toe server ${options.id ?? SERVER_ID} on ${node.address.host}:${node.address.port}` +
      (store instanceof KvGameStore ? ' (games in the KV store)' : ''),
  );
  out.write(gw === undefined ? '\n' : `, HTTP on ${gw.address.port}\n`);
  return {
    port: node.address.port,
    async close() {
      await gw?.close();
      await node.close();
      await store.close();
    },
  };
}

/** Options of `play`. */
export interface PlayOptions {
  readonly player: Player;
  readonly game: string;
  readonly host: string;
  readonly port: number;
  /** The node id to dial: the server's, or a gateway's (default {@link SERVER_ID}). */
  readonly server?: string;
}

/** Connects to the server and plays one game in the terminal; resolves with the final status. */
export async function play(
  options: PlayOptions,
  input: Readable = process.stdin,
  out: Writable = process.stdout,
): Promise<string> {
  const node = await startTcpClient({
    server: { id: options.server ?? SERVER_ID, host: options.host, port: options.port },
  });
  try {
    return await playGame(
      node.client(TicTacToe, node.serverId),
      options.player,
      options.game,
      input,
      out,
    );
  } finally {
    await node.close();
  }
}

/** The play loop over any stub (tests drive it with in-memory streams). */
export async function playGame(
  ttt: Client<typeof TicTacToe>,
  me: Player,
  game: string,
  input: Readable,
  out: Writable,
): Promise<string> {
  const rl = readline.createInterface({ input, terminal: false });
  const lines = rl[Symbol.asyncIterator]();
  const stop = new AbortController();
  const stream = watchOn(ttt, game, out, stop.signal);
  out.write(`you play ${me} in game "${game}"; type moves as "x y" (0..2), q to quit\n`);
  try {
    for await (const state of stream) {
      out.write(`\n${render(asGame(state))}\n${describeGame(asGame(state))}\n`);
      if (state.status !== 'playing') {
        return state.status === 'draw' ? 'draw' : state.winner === me ? 'won' : 'lost';
      }
      if (state.next !== me) {
        out.write(`waiting for ${state.next}...\n`);
        continue;
      }
      for (;;) {
        out.write('your move (x y): ');
        const line = await lines.next();
        if (line.done === true || line.value.trim() === 'q') return 'quit';
        const [x, y] = line.value
          .trim()
          .split(/[\s,]+/)
          .map(Number);
        if (x === undefined || y === undefined || !Number.isInteger(x) || !Number.isInteger(y)) {
          out.write('type two numbers, e.g. "1 2"\n');
          continue;
        }
        try {
          const r = await ttt.move({ game, player: me, x, y, turn: state.moves });
          if (r.ok) break;
          out.write(`refused: ${r.reason}\n`);
          if (r.reason === 'game-over' || r.reason === 'not-your-turn' || r.reason === 'stale-turn')
            break;
        } catch (err) {
          if (!isCohortError(err)) throw err;
          out.write(`error: ${err.code}: ${err.message}\n`);
        }
      }
    }
    return 'disconnected';
  } finally {
    stop.abort();
    await stream.return(undefined);
    rl.close();
  }
}

/**
 * The game's states, watched again after the watch broke (the server, or a
 * replica behind the gateway, went away): the game goes on elsewhere.
 */
async function* watchOn(
  ttt: Client<typeof TicTacToe>,
  game: string,
  out: Writable,
  signal: AbortSignal,
): AsyncGenerator<GameStateT, void, undefined> {
  for (let failures = 0; !signal.aborted;) {
    const stream = ttt.watch({ game }, { signal });
    try {
      for await (const state of stream) {
        failures = 0;
        yield state;
      }
      return;
    } catch (err) {
      if (signal.aborted || !isCohortError(err) || err.code === 'INVALID_ARGUMENT') throw err;
      if (++failures > 20) throw err;
      out.write(`(watch interrupted: ${err.code}; watching again)\n`);
      await new Promise((r) => setTimeout(r, 250));
    } finally {
      stream.cancel();
    }
  }
}

function asGame(s: GameStateT): Game {
  return s.winner === undefined
    ? { cells: s.cells, next: s.next, status: s.status, moves: s.moves }
    : { cells: s.cells, next: s.next, status: s.status, moves: s.moves, winner: s.winner };
}
