/**
 * Tic-tac-toe rules, pure: a board, whose turn it is, and what a move does.
 * The server keeps one {@link Game} per game name; clients only send moves.
 *
 * ```ts
 * let g = newGame();
 * const r = play(g, 'X', 1, 1);        // { ok: true, game: {...} } or { ok: false, reason: 'occupied' }
 * if (r.ok) g = r.game;
 * render(g);                           // " . | . | . \n---+---+---\n . | X | . ..."
 * ```
 */

/** A player. */
export type Player = 'X' | 'O';
/** A cell: a player's mark or empty. */
export type Cell = Player | '.';

/** The state of one game. Cells are row-major: index = y * 3 + x. */
export interface Game {
  readonly cells: readonly Cell[];
  /** Whose turn it is (meaningless once the game is over). */
  readonly next: Player;
  readonly status: 'playing' | 'won' | 'draw';
  /** Set when status is 'won'. */
  readonly winner?: Player;
  /** Moves made so far. */
  readonly moves: number;
}

/** Why a move was refused. */
export type MoveRefusal = 'out-of-bounds' | 'occupied' | 'not-your-turn' | 'game-over';

/** The outcome of a move: the new game, or why it was refused (the game is unchanged). */
export type MoveResult = { ok: true; game: Game } | { ok: false; reason: MoveRefusal; game: Game };

/** The eight lines that win: three rows, three columns, two diagonals. */
export const LINES: readonly (readonly [number, number, number])[] = [
  [0, 1, 2],
  [3, 4, 5],
  [6, 7, 8],
  [0, 3, 6],
  [1, 4, 7],
  [2, 5, 8],
  [0, 4, 8],
  [2, 4, 6],
];

/** An empty board; X moves first. */
export function newGame(): Game {
  return { cells: Array<Cell>(9).fill('.'), next: 'X', status: 'playing', moves: 0 };
}

/** Plays `player` at column `x`, row `y` (both 0..2). */
export function play(game: Game, player: Player, x: number, y: number): MoveResult {
  if (game.status !== 'playing') return { ok: false, reason: 'game-over', game };
  if (!Number.isInteger(x) || !Number.isInteger(y) || x < 0 || x > 2 || y < 0 || y > 2) {
    return { ok: false, reason: 'out-of-bounds', game };
  }
  if (player !== game.next) return { ok: false, reason: 'not-your-turn', game };
  const i = y * 3 + x;
  if (game.cells[i] !== '.') return { ok: false, reason: 'occupied', game };
  const cells = [...game.cells];
  cells[i] = player;
  const moves = game.moves + 1;
  const next: Player = player === 'X' ? 'O' : 'X';
  if (LINES.some((line) => line.every((c) => cells[c] === player))) {
    return { ok: true, game: { cells, next, status: 'won', winner: player, moves } };
  }
  if (moves === 9) return { ok: true, game: { cells, next, status: 'draw', moves } };
  return { ok: true, game: { cells, next, status: 'playing', moves } };
}

/** The board as three text lines (x across, y down). */
export function render(game: Game): string {
  const row = (y: number): string =>
    ` ${[0, 1, 2].map((x) => game.cells[y * 3 + x] ?? '.').join(' | ')} `;
  return [row(0), '---+---+---', row(1), '---+---+---', row(2)].join('\n');
}

/** One line saying where the game stands. */
export function describeGame(game: Game): string {
  if (game.status === 'won') return `${game.winner ?? '?'} wins`;
  if (game.status === 'draw') return 'draw';
  return `${game.next} to move`;
}
