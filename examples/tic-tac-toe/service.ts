/**
 * The tic-tac-toe service: the server keeps every game's board (in its
 * memory, or in cohort's KV store: see store.ts); clients send moves and
 * watch games. Illegal moves are answers, not errors (DESIGN.md: an
 * expected outcome is a value): `{ ok: false, reason: 'occupied', ... }`.
 *
 * ```ts
 * node.serve(TicTacToe, new TicTacToeServer().handlers());          // or new TicTacToeServer(kvStore)
 * const ttt = client.client(TicTacToe, nodeId('ttt-server'));
 * await ttt.move({ game: 'g1', player: 'X', x: 1, y: 1, turn: 0 });   // { ok: true, state: {...} }
 * for await (const state of ttt.watch({ game: 'g1' })) console.log(state.status);
 * ```
 *
 * Every move names its `turn` (the number of moves made before it, which
 * the player saw in the state). That makes `move` idempotent: a move sent
 * twice — a retry after a lost reply, a gateway failing over — finds its
 * own cell at `history[turn]` the second time and answers `ok` without
 * playing again; a move for a turn that is already past gets
 * `stale-turn`. Each write is a compare-and-set on the stored game's
 * revision (a KV transaction), so replicas racing on one game never both
 * apply a move.
 */
import { defineService, serverStream, Type, unary } from 'cohort/rpc';
import type { Handlers, Static } from 'cohort/rpc';
import { newGame, play } from './game.js';
import type { Game } from './game.js';
import { MemoryGameStore } from './store.js';
import type { GameRecord, GameStore } from './store.js';

const GameName = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' });
const PlayerT = Type.Union([Type.Literal('X'), Type.Literal('O')]);

/** A game as clients see it. */
export const GameState = Type.Object({
  game: GameName,
  cells: Type.Array(Type.Union([PlayerT, Type.Literal('.')]), { minItems: 9, maxItems: 9 }),
  next: PlayerT,
  status: Type.Union([Type.Literal('playing'), Type.Literal('won'), Type.Literal('draw')]),
  winner: Type.Optional(PlayerT),
  moves: Type.Integer({ minimum: 0, maximum: 9 }),
});
/** The static type of {@link GameState}. */
export type GameStateT = Static<typeof GameState>;

/** The service definition. */
export const TicTacToe = defineService('TicTacToe', {
  move: unary(
    Type.Object({
      game: GameName,
      player: PlayerT,
      // Bounds are the game's rule (answered as 'out-of-bounds'); the schema only keeps numbers sane.
      x: Type.Integer({ minimum: -1000, maximum: 1000 }),
      y: Type.Integer({ minimum: -1000, maximum: 1000 }),
      /** Moves made before this one (from the state the player saw). */
      turn: Type.Integer({ minimum: 0, maximum: 9 }),
    }),
    Type.Union([
      Type.Object({ ok: Type.Literal(true), state: GameState }),
      Type.Object({
        ok: Type.Literal(false),
        reason: Type.Union([
          Type.Literal('out-of-bounds'),
          Type.Literal('occupied'),
          Type.Literal('not-your-turn'),
          Type.Literal('game-over'),
          Type.Literal('stale-turn'),
        ]),
        state: GameState,
      }),
    ]),
    {
      idempotent: true,
      description: 'play X or O at column x, row y (0..2) as move number turn',
    },
  ),
  state: unary(Type.Object({ game: GameName }), GameState, {
    idempotent: true,
    description: 'the board of a game (empty if new)',
  }),
  reset: unary(Type.Object({ game: GameName }), GameState, {
    idempotent: true,
    description: 'start the game again',
  }),
  watch: serverStream(Type.Object({ game: GameName }), GameState, {
    idempotent: true,
    description: 'the board now and after every change',
  }),
});

/** The server's handlers over a {@link GameStore}. */
export class TicTacToeServer {
  constructor(private readonly store: GameStore = new MemoryGameStore()) {}

  /** The handlers to pass to `node.serve(TicTacToe, ...)`. */
  handlers(): Handlers<typeof TicTacToe> {
    return {
      move: (req) => this.move(req),
      state: async ({ game }) => toState(game, (await this.store.read(game)).record),
      reset: async ({ game }) => {
        for (;;) {
          const { revision } = await this.store.read(game);
          const fresh: GameRecord = { game: newGame(), history: [] };
          if (await this.store.write(game, fresh, revision)) return toState(game, fresh);
        }
      },
      watch: ({ game }, ctx) => this.watch(game, ctx.signal),
    };
  }

  private async move(req: {
    game: string;
    player: 'X' | 'O';
    x: number;
    y: number;
    turn: number;
  }): Promise<Static<(typeof TicTacToe)['methods']['move']['response']>> {
    const { game, player, x, y, turn } = req;
    // Compare-and-set loop: a lost race re-reads and decides again.
    for (;;) {
      const { record, revision } = await this.store.read(game);
      const current = record ?? { game: newGame(), history: [] };
      const cell = y * 3 + x;
      if (turn < current.history.length) {
        // This turn was played: by this very move (a retry), or by another.
        const mover = turn % 2 === 0 ? 'X' : 'O';
        if (current.history[turn] === cell && mover === player) {
          return { ok: true, state: toState(game, current) };
        }
        return { ok: false, reason: 'stale-turn', state: toState(game, current) };
      }
      if (turn > current.history.length) {
        return { ok: false, reason: 'stale-turn', state: toState(game, current) };
      }
      const r = play(current.game, player, x, y);
      if (!r.ok) return { ok: false, reason: r.reason, state: toState(game, current) };
      const next: GameRecord = { game: r.game, history: [...current.history, cell] };
      if (await this.store.write(game, next, revision))
        return { ok: true, state: toState(game, next) };
    }
  }

  private async *watch(game: string, signal: AbortSignal): AsyncGenerator<GameStateT> {
    let lastRevision = -1;
    while (!signal.aborted) {
      const { record, revision } = await this.store.read(game);
      if (revision !== lastRevision) {
        lastRevision = revision;
        yield toState(game, record);
        continue;
      }
      await this.store.changed(game, revision, signal);
    }
  }
}

function toState(game: string, record: GameRecord | undefined): GameStateT {
  const g: Game = record?.game ?? newGame();
  return g.winner === undefined
    ? { game, cells: [...g.cells], next: g.next, status: g.status, moves: g.moves }
    : {
        game,
        cells: [...g.cells],
        next: g.next,
        status: g.status,
        winner: g.winner,
        moves: g.moves,
      };
}
