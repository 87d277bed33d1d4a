/** Tic-tac-toe rules: illegal moves, turn order, every win line for both players, draw. */
import { describe, expect, it } from 'vitest';
import { LINES, newGame, play } from './game.js';
import type { Game, Player } from './game.js';

/** Plays cells (row-major indices) alternately from X; fails the test on a refused move. */
function playAll(cells: readonly number[]): Game {
  let g = newGame();
  cells.forEach((c, i) => {
    const player: Player = i % 2 === 0 ? 'X' : 'O';
    const r = play(g, player, c % 3, Math.floor(c / 3));
    if (!r.ok) throw new Error(`move ${i} (${player} at ${c}) refused: ${r.reason}`);
    g = r.game;
  });
  return g;
}

function formsLine(cells: readonly number[]): boolean {
  return LINES.some((l) => l.every((c) => cells.includes(c)));
}

describe('tic-tac-toe rules', () => {
  it('refuses out-of-bounds, occupied, wrong-turn and after-the-end moves, leaving the game unchanged', () => {
    const g = newGame();
    for (const [x, y] of [
      [-1, 0],
      [3, 0],
      [0, 3],
      [0, -1],
      [1.5, 0],
    ] as const) {
      expect(play(g, 'X', x, y)).toEqual({ ok: false, reason: 'out-of-bounds', game: g });
    }
    expect(play(g, 'O', 0, 0)).toEqual({ ok: false, reason: 'not-your-turn', game: g });
    const r = play(g, 'X', 1, 1);
    expect(r.ok).toBe(true);
    const g1 = r.game;
    expect(play(g1, 'O', 1, 1)).toEqual({ ok: false, reason: 'occupied', game: g1 });
    expect(play(g1, 'X', 0, 0)).toEqual({ ok: false, reason: 'not-your-turn', game: g1 });
    const won = playAll([0, 3, 1, 4, 2]);
    expect(won.status).toBe('won');
    expect(play(won, 'O', 2, 2)).toEqual({ ok: false, reason: 'game-over', game: won });
  });

  it('alternates turns starting with X', () => {
    const g = playAll([4, 0, 8]);
    expect(g.next).toBe('O');
    expect(g.cells).toEqual(['O', '.', '.', '.', 'X', '.', '.', '.', 'X']);
    expect(g.moves).toBe(3);
  });

  it.each(LINES.map((l, i) => [i, l] as const))('X wins on line %i %j', (_i, line) => {
    const others = [0, 1, 2, 3, 4, 5, 6, 7, 8].filter((c) => !line.includes(c));
    const g = playAll([line[0], others[0] as number, line[1], others[1] as number, line[2]]);
    expect(g).toMatchObject({ status: 'won', winner: 'X', moves: 5 });
  });

  it.each(LINES.map((l, i) => [i, l] as const))('O wins on line %i %j', (_i, line) => {
    const others = [0, 1, 2, 3, 4, 5, 6, 7, 8].filter((c) => !line.includes(c));
    // Three X cells outside the line that do not make a line themselves.
    let xs: number[] = [];
    for (let a = 0; a < others.length && xs.length === 0; a++)
      for (let b = a + 1; b < others.length && xs.length === 0; b++)
        for (let c = b + 1; c < others.length && xs.length === 0; c++) {
          const pick = [others[a], others[b], others[c]] as number[];
          if (!formsLine(pick)) xs = pick;
        }
    const [x1, x2, x3] = xs as [number, number, number];
    const g = playAll([x1, line[0], x2, line[1], x3, line[2]]);
    expect(g).toMatchObject({ status: 'won', winner: 'O', moves: 6 });
  });

  it('a full board without a line is a draw', () => {
    const g = playAll([0, 1, 2, 4, 3, 5, 7, 6, 8]);
    expect(g.status).toBe('draw');
    expect(g.winner).toBeUndefined();
    expect(play(g, 'O', 0, 0)).toMatchObject({ ok: false, reason: 'game-over' });
  });
});
