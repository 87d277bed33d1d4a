/**
 * Interactive optimistic transactions (BEGIN / READ / WRITE / COMMIT / ABORT)
 * on top of the store's single-shot txn, like etcd's STM: reads go to the
 * server at one pinned revision (the first read's), writes are buffered, and
 * commit sends one txn guarded by "every key read still has the modRevision
 * it had" that applies the buffered writes. If another writer got there first
 * the guard fails, nothing is written, and the whole body runs again against
 * fresh reads. The result is serializable: the transaction takes effect
 * atomically at its commit revision, as if its reads happened there too.
 *
 * It needs only `range` and `txn`, so it runs against the KV client, or
 * directly against a state machine in tests.
 *
 * ```ts
 * const out = await runOptimisticTxn(client, async (tx) => {
 *   const from = Number(kvText((await tx.get(kvKey('acct/a'))) ?? kvKey('0')));
 *   if (from < 10) return tx.abort('insufficient funds');
 *   const to = Number(kvText((await tx.get(kvKey('acct/b'))) ?? kvKey('0')));
 *   tx.put(kvKey('acct/a'), kvKey(String(from - 10)));
 *   tx.put(kvKey('acct/b'), kvKey(String(to + 10)));
 * });
 * if (out.status === 'committed') console.log('at revision', out.revision);
 * ```
 */
import { CohortError, isCohortError } from '../lib/errors.js';
import { toByteString } from './core/bytes.js';
import type {
  Compare,
  KeyValue,
  RangeRequest,
  RangeResult,
  TxnOp,
  TxnRequest,
  TxnResult,
} from './core/types.js';

/** The two store calls a transaction needs. Errors are CohortErrors. */
export interface KvTxnBackend {
  range(req: RangeRequest): Promise<RangeResult>;
  txn(req: TxnRequest): Promise<TxnResult>;
}

/** Options of {@link runOptimisticTxn}. */
export interface OptimisticTxnOptions {
  /** Attempts before giving up with CONFLICT (default 16). */
  readonly attemptsMax?: number;
  /** Called before each retry (e.g. to back off); `attempt` is the one about to start. */
  readonly onRetry?: (attempt: number, reason: 'conflict' | 'compacted') => Promise<void> | void;
}

/** How a transaction ended. */
export type OptimisticTxnOutcome<T> =
  | {
      readonly status: 'committed';
      readonly value: T;
      /** Revision the transaction took effect at (its read revision if it wrote nothing). */
      readonly revision: number;
      readonly attempts: number;
    }
  | {
      readonly status: 'aborted';
      readonly reason: string;
      readonly attempts: number;
    };

/** Thrown inside the body by {@link OptimisticTxn.abort}; caught by runOptimisticTxn. */
class Aborted extends Error {
  constructor(readonly reason: string) {
    super(`transaction aborted: ${reason}`);
  }
}

/** Thrown when a commit's guard failed; caught by runOptimisticTxn, which retries. */
class Conflict extends Error {
  constructor(readonly why: 'conflict' | 'compacted') {
    super(`transaction conflict (${why})`);
  }
}

/** One attempt of a transaction: the handle the body reads and writes through. */
export class OptimisticTxn {
  private readRevision = 0;
  /** Keys read, by byte string, with the modRevision seen (0: absent). */
  private readonly reads = new Map<string, { key: Uint8Array; kv: KeyValue | undefined }>();
  /** Buffered writes by byte string, in first-write order (undefined value: delete). */
  private readonly writes = new Map<string, { key: Uint8Array; value: Uint8Array | undefined }>();
  private done = false;
  private conflicted = false;

  constructor(private readonly backend: KvTxnBackend) {}

  /** The revision reads are pinned to (0 before the first read). */
  get revision(): number {
    return this.readRevision;
  }

  /** The value of `key` as of the pinned revision, or this transaction's own write. */
  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return (await this.getKv(key))?.value;
  }

  /**
   * The state of `key` at the pinned revision (the first read pins it), or a
   * synthetic state for a key this transaction wrote (modRevision 0).
   */
  async getKv(key: Uint8Array): Promise<KeyValue | undefined> {
    this.checkOpen();
    const k = toByteString(key);
    const w = this.writes.get(k);
    if (w !== undefined) {
      return w.value === undefined
        ? undefined
        : { key, value: w.value, createRevision: 0, modRevision: 0, version: 0, lease: 0 };
    }
    const seen = this.reads.get(k);
    if (seen !== undefined) return seen.kv;
    let res: RangeResult;
    try {
      res = await this.backend.range(
        this.readRevision === 0
          ? { type: 'range', key }
          : { type: 'range', key, revision: this.readRevision },
      );
    } catch (e) {
      if (isCohortError(e) && e.code === 'COMPACTED') {
        this.conflicted = true;
        throw new Conflict('compacted');
      }
      throw e;
    }
    if (this.readRevision === 0) this.readRevision = res.revision;
    const kv = res.kvs[0];
    this.reads.set(k, { key, kv });
    return kv;
  }

  /** Buffers a put of `key` (applied at commit). */
  put(key: Uint8Array, value: Uint8Array): void {
    this.checkOpen();
    this.writes.set(toByteString(key), { key, value });
  }

  /** Buffers a delete of `key` (applied at commit). */
  delete(key: Uint8Array): void {
    this.checkOpen();
    this.writes.set(toByteString(key), { key, value: undefined });
  }

  /** Ends the transaction without writing anything; the body stops here. */
  abort(reason = 'aborted'): never {
    this.checkOpen();
    this.done = true;
    throw new Aborted(reason);
  }

  /** Sends the guarded txn; throws Conflict if a key read has changed. Returns the revision. */
  async commit(): Promise<number> {
    this.checkOpen();
    this.done = true;
    if (this.conflicted) throw new Conflict('compacted');
    if (this.writes.size === 0) return this.readRevision;
    const compare: Compare[] = [...this.reads.values()].map(({ key, kv }) => ({
      target: 'modRevision',
      key,
      op: '=',
      value: kv?.modRevision ?? 0,
    }));
    const success: TxnOp[] = [...this.writes.values()].map(({ key, value }) =>
      value === undefined ? { type: 'deleteRange', key } : { type: 'put', key, value },
    );
    const res = await this.backend.txn({ type: 'txn', compare, success, failure: [] });
    if (!res.succeeded) throw new Conflict('conflict');
    return res.revision;
  }

  private checkOpen(): void {
    if (this.done) {
      throw new CohortError('FAILED_PRECONDITION', 'the transaction already committed or aborted');
    }
  }
}

/**
 * Runs `body` as an optimistic transaction, re-running it (on fresh reads) when
 * a concurrent writer changed a key it read, up to `attemptsMax` times
 * (then CONFLICT, nothing written). The body must have no effects other than
 * through `tx`, since it may run more than once. Errors the body or the store
 * throw end the transaction (after a commit's indefinite error, the writes may
 * or may not have happened).
 */
export async function runOptimisticTxn<T>(
  backend: KvTxnBackend,
  body: (tx: OptimisticTxn) => Promise<T>,
  options: OptimisticTxnOptions = {},
): Promise<OptimisticTxnOutcome<T>> {
  const attemptsMax = options.attemptsMax ?? 16;
  for (let attempt = 1; ; attempt++) {
    const tx = new OptimisticTxn(backend);
    try {
      const value = await body(tx);
      const revision = await tx.commit();
      return { status: 'committed', value, revision, attempts: attempt };
    } catch (e) {
      if (e instanceof Aborted) return { status: 'aborted', reason: e.reason, attempts: attempt };
      if (!(e instanceof Conflict)) throw e;
      if (attempt >= attemptsMax) {
        throw new CohortError(
          'CONFLICT',
          `optimistic transaction lost to concurrent writers ${attempt} times`,
          { details: { attempts: attempt } },
        );
      }
      await options.onRetry?.(attempt + 1, e.why);
    }
  }
}
