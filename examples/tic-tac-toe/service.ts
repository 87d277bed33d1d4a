/**
 * The tic-tac-toe service: the server keeps every game's board; clients send
 * moves and watch games. Illegal moves are answers, not errors (DESIGN.md:
 * an expected outcome is a value): `{ ok: false, reason: 'occupied', ... }`.
 *
 * ```ts
 * node.serve(TicTacToe, new TicTacToeServer().handlers());
 * const ttt = client.client(TicTacToe, nodeId('ttt-server'));
 * await ttt.move({ game: 'g1', player: 'X', x: 1, y: 1 });   // { ok: true, state: {...} }
 * for await (const state of ttt.watch({ game: 'g1' })) console.log(state.status);
 * ```
 */
import { CohortError } from 'cohort';
import { defineService, serverStream, Type, unary } from 'cohort/rpc';
import type { Handlers, Static } from 'cohort/rpc';
import { newGame, play } from './game.js';
import type { Game } from './game.js';

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
        ]),
        state: GameState,
      }),
    ]),
    { description: 'play X or O at column x, row y (0..2)' },
  ),
  state: unary(Type.Object({ game: GameName }), GameState, {
    idempotent: true,
    description: 'the board of a game (created empty if new)',
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

/** Games a server keeps before refusing new ones (bounds memory). */
export const GAMES_MAX = 1000;

/** The server's games and its handlers. */
export class TicTacToeServer {
  private readonly games = new Map<string, Game>();
  private readonly watchers = new Map<string, Set<() => void>>();

  /** The handlers to pass to `node.serve(TicTacToe, ...)`. */
  handlers(): Handlers<typeof TicTacToe> {
    return {
      move: ({ game, player, x, y }) => {
        const r = play(this.get(game), player, x, y);
        if (!r.ok) return { ok: false, reason: r.reason, state: toState(game, r.game) };
        this.set(game, r.game);
        return { ok: true, state: toState(game, r.game) };
      },
      state: ({ game }) => toState(game, this.get(game)),
      reset: ({ game }) => {
        this.set(game, newGame());
        return toState(game, this.get(game));
      },
      watch: ({ game }, ctx) => this.watch(game, ctx.signal),
    };
  }

  private async *watch(game: string, signal: AbortSignal): AsyncGenerator<GameStateT> {
    let last: Game | undefined;
    while (!signal.aborted) {
      const current = this.get(game);
      if (current !== last) {
        last = current;
        yield toState(game, current);
        continue;
      }
      await new Promise<void>((resolve) => {
        let set = this.watchers.get(game);
        if (set === undefined) {
          set = new Set();
          this.watchers.set(game, set);
        }
        const wake = (): void => {
          set.delete(wake);
          signal.removeEventListener('abort', wake);
          resolve();
        };
        set.add(wake);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
  }

  private get(game: string): Game {
    let g = this.games.get(game);
    if (g === undefined) {
      if (this.games.size >= GAMES_MAX) {
        throw new CohortError('OVERLOADED', `this server already keeps ${GAMES_MAX} games`);
      }
      g = newGame();
      this.games.set(game, g);
    }
    return g;
  }

  private set(game: string, g: Game): void {
    this.games.set(game, g);
    for (const wake of [...(this.watchers.get(game) ?? [])]) wake();
  }
}

function toState(game: string, g: Game): GameStateT {
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
