/**
 * Where the tic-tac-toe server keeps its games: in its own memory (one
 * server), or in cohort's replicated KV store, which makes the servers
 * stateless replicas that can run behind the gateway (`cohort gateway`)
 * and die at any moment.
 *
 * ```ts
 * const store = await KvGameStore.connect({ endpoints: ['n1=127.0.0.1:7201'] });
 * const server = new TicTacToeServer(store);   // or new TicTacToeServer() for memory
 * ```
 *
 * A store holds one {@link GameRecord} per game with a revision; a write is
 * a compare-and-set on that revision (for KV: a transaction comparing the
 * key's `modRevision`), so two replicas racing on one game never both win,
 * and the server re-reads and re-decides when it loses.
 */
import { CohortError } from 'cohort';
import type { KvClientOptions } from 'cohort/kv';
import { KvClient, kvKey, kvText } from 'cohort/kv';
import type { Game } from './game.js';

/** What is stored per game: the board and every move's cell, in order. */
export interface GameRecord {
  readonly game: Game;
  /** Cell index (y * 3 + x) of each move made, in order: history[n] is move number n. */
  readonly history: readonly number[];
}

/** A record and the revision it was read at (0: the game does not exist yet). */
export interface Versioned {
  readonly record: GameRecord | undefined;
  readonly revision: number;
}

/** The games' storage (see the file comment). */
export interface GameStore {
  read(game: string): Promise<Versioned>;
  /** Writes `record` if the game is still at `revision`; false if another write came first. */
  write(game: string, record: GameRecord, revision: number): Promise<boolean>;
  /** Resolves after the game next changes (or when `signal` aborts). */
  changed(game: string, after: number, signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** Games a memory store keeps before refusing new ones (bounds memory). */
export const GAMES_MAX = 1000;

/** Games in this process's memory. */
export class MemoryGameStore implements GameStore {
  private readonly games = new Map<string, { record: GameRecord; revision: number }>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private revision = 0;

  read(game: string): Promise<Versioned> {
    const g = this.games.get(game);
    return Promise.resolve({ record: g?.record, revision: g?.revision ?? 0 });
  }

  write(game: string, record: GameRecord, revision: number): Promise<boolean> {
    const g = this.games.get(game);
    if ((g?.revision ?? 0) !== revision) return Promise.resolve(false);
    if (g === undefined && this.games.size >= GAMES_MAX) {
      return Promise.reject(
        new CohortError('OVERLOADED', `this server already keeps ${GAMES_MAX} games`),
      );
    }
    this.games.set(game, { record, revision: ++this.revision });
    for (const wake of [...(this.waiters.get(game) ?? [])]) wake();
    return Promise.resolve(true);
  }

  changed(game: string, after: number, signal: AbortSignal): Promise<void> {
    if ((this.games.get(game)?.revision ?? 0) !== after || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.waiters.get(game);
      if (set === undefined) {
        set = new Set();
        this.waiters.set(game, set);
      }
      const s = set;
      const wake = (): void => {
        s.delete(wake);
        signal.removeEventListener('abort', wake);
        resolve();
      };
      s.add(wake);
      signal.addEventListener('abort', wake, { once: true });
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The key of a game in the KV store. */
function keyOf(game: string): string {
  return `tictactoe/games/${game}`;
}

/**
 * Games in cohort's KV store. {@link KvGameStore.connect} is the one place
 * the example builds its KV client (add TLS options there).
 */
export class KvGameStore implements GameStore {
  private constructor(readonly kv: KvClient) {}

  /** Connects to the cluster; `retryMs` covers a leader election (default 30 s). */
  static async connect(options: KvClientOptions): Promise<KvGameStore> {
    return new KvGameStore(await KvClient.connect({ retryMs: 30_000, ...options }));
  }

  async read(game: string): Promise<Versioned> {
    const kv = await this.kv.get(keyOf(game));
    if (kv === undefined) return { record: undefined, revision: 0 };
    return { record: JSON.parse(kvText(kv.value)) as GameRecord, revision: kv.modRevision };
  }

  async write(game: string, record: GameRecord, revision: number): Promise<boolean> {
    const key = kvKey(keyOf(game));
    const r = await this.kv.txn({
      // A missing key has modRevision 0, so revision 0 means "create".
      compare: [{ target: 'modRevision', key, op: '=', value: revision }],
      success: [{ type: 'put', key, value: kvKey(JSON.stringify(record)) }],
    });
    return r.succeeded;
  }

  async changed(game: string, after: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const batch of this.kv.watch(keyOf(game), {
        startRevision: after + 1,
        signal: stop.signal,
      })) {
        if (batch.events.length > 0) return;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      stop.abort();
    }
  }

  close(): Promise<void> {
    return this.kv.close();
  }
}
