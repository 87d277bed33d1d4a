/**
 * A distributed lock from leases, transactions and watches (the scheme of
 * etcd's concurrency package, written from its description): each contender
 * creates a key `<prefix><name>/<lease id>` attached to its own lease, in a
 * txn that only creates it if absent; contenders are ordered by the keys'
 * create revisions; a contender holds the lock when no key of the lock has a
 * lower create revision, and otherwise watches just its predecessor's key
 * (no herd) until it is deleted.
 *
 * ```ts
 * const lock = new Lock(client, 'jobs', { ttlMs: 10_000 });
 * const held = await lock.acquire({ signal });        // waits its turn
 * await storage.write(data, { fencingToken: held.fencingToken });
 * held.lost.then((why) => stopWorking());             // 'expired', or 'unreachable' for a TTL
 * await held.release();
 * ```
 *
 * - **Fencing token**: the create revision of the holder's key. A later holder
 *   created its key later, so tokens strictly increase; a resource that
 *   rejects tokens lower than the highest it saw stops a paused old holder.
 * - **Never on an expired lease**: the key is put with the lease, which fails
 *   (NOT_FOUND, nothing written) if the lease is gone; and before answering,
 *   acquire checks in one linearizable read that the key still exists.
 * - **At most one holder**: the holder is the lowest create revision among the
 *   keys that exist; a holder whose lease expires loses its key (and `lost`
 *   resolves) before anyone else can see itself first.
 */
import { CohortError, isCohortError } from '../../lib/errors.js';
import type { KvClient, LeaseKeeper, LeaseLostReason } from '../client.js';
import { kvKey, kvText, prefixRange } from '../core/bytes.js';
import type { KeyValue } from '../core/types.js';

/** Options of a {@link Lock} (and an election). */
export interface LockOptions {
  /** TTL of the contender's lease (default 10 s): how long a dead holder blocks others. */
  readonly ttlMs?: number;
  /** Key prefix of all locks (default `locks/`). */
  readonly prefix?: string;
}

/** A lock that is held (see {@link Lock.acquire}). */
export interface HeldLock {
  /** The holder's key. */
  readonly key: Uint8Array;
  /** Create revision of the key: strictly increasing across holders. */
  readonly fencingToken: number;
  /** The holder's lease. */
  readonly lease: number;
  /**
   * Resolves if the lease is lost while held (the lock then belongs to no
   * one, or to the next): `'expired'` when the cluster dropped it,
   * `'unreachable'` when no renewal got through for a whole TTL (a holder
   * cut off from the cluster; the cluster may have expired it).
   */
  readonly lost: Promise<LeaseLostReason>;
  /** Deletes the key and revokes the lease; the next contender then holds the lock. */
  release(): Promise<void>;
}

/** A contender's place in the queue of a lock or an election. */
export interface Queued {
  readonly key: Uint8Array;
  readonly revision: number;
  readonly lease: number;
  readonly keeper: LeaseKeeper;
  readonly lost: Promise<LeaseLostReason>;
}

/**
 * Joins the queue under `dir` (a lease, and a key created only if absent with
 * `value`), then waits until no key in `dir` has a lower create revision.
 * Shared by {@link Lock} and the election recipe.
 */
export async function enqueueAndWait(
  client: KvClient,
  dir: string,
  value: Uint8Array,
  ttlMs: number,
  signal: AbortSignal | undefined,
): Promise<Queued> {
  const { id: lease } = await client.leaseGrant(ttlMs);
  let lostResolve: (reason: LeaseLostReason) => void = () => undefined;
  const lost = new Promise<LeaseLostReason>((r) => (lostResolve = r));
  const keeper = client.keepAlive(lease, { ttlMs, onLost: (reason) => lostResolve(reason) });
  const key = kvKey(`${dir}${lease.toString(16)}`);
  const giveUp = async (): Promise<void> => {
    keeper.stop();
    await client.leaseRevoke(lease).catch(() => undefined);
  };
  try {
    const t = await client.txn({
      compare: [{ target: 'createRevision', key, op: '=', value: 0 }],
      success: [{ type: 'put', key, value, lease }],
      failure: [{ type: 'range', key }],
    });
    let revision = t.revision;
    if (!t.succeeded) {
      const r = t.responses[0];
      const kv = r?.type === 'range' ? r.kvs[0] : undefined;
      if (kv === undefined) throw new CohortError('INTERNAL', 'lock key vanished');
      revision = kv.createRevision;
    }
    await waitForTurn(client, dir, key, revision, signal);
    return { key, revision, lease, keeper, lost };
  } catch (e) {
    await giveUp();
    throw e;
  }
}

async function waitForTurn(
  client: KvClient,
  dir: string,
  key: Uint8Array,
  myRevision: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const range = prefixRange(kvKey(dir));
  for (;;) {
    if (signal?.aborted === true) throw new CohortError('CANCELLED', 'lock wait cancelled');
    const all = await client.range(range.key, {
      rangeEnd: range.rangeEnd,
      sortTarget: 'createRevision',
      sortOrder: 'ascend',
    });
    const mine = all.kvs.find(
      (kv) => kv.createRevision === myRevision && kvText(kv.key) === kvText(key),
    );
    if (mine === undefined) {
      // Our key is gone: the lease expired (or was revoked) while we waited.
      throw new CohortError('FAILED_PRECONDITION', 'lease expired while waiting for the lock', {
        details: { reason: 'leaseLost' },
      });
    }
    let predecessor: KeyValue | undefined;
    for (const kv of all.kvs) if (kv.createRevision < myRevision) predecessor = kv;
    if (predecessor === undefined) return;
    await waitDeleted(client, predecessor.key, all.revision + 1, signal);
  }
}

/** Resolves once `key` is deleted at a revision >= `from` (or the signal fires). */
async function waitDeleted(
  client: KvClient,
  key: Uint8Array,
  from: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const ac = new AbortController();
  const onAbort = (): void => ac.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const batch of client.watch(key, { startRevision: from, signal: ac.signal })) {
      if (batch.events.some((e) => e.type === 'DELETE')) return;
    }
  } catch (e) {
    if (!isCohortError(e) || e.code !== 'COMPACTED') throw e;
    // History gone: re-read the queue.
  } finally {
    signal?.removeEventListener('abort', onAbort);
    ac.abort();
  }
}

/** A named distributed lock (see the file comment). */
export class Lock {
  private readonly ttlMs: number;
  private readonly dir: string;

  constructor(
    private readonly client: KvClient,
    readonly name: string,
    options: LockOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 10_000;
    this.dir = `${options.prefix ?? 'locks/'}${name}/`;
  }

  /**
   * Waits until this caller holds the lock. CANCELLED if `signal` fires first
   * (nothing is left behind); FAILED_PRECONDITION (reason leaseLost) if the
   * lease expired while waiting.
   */
  async acquire(options: { signal?: AbortSignal } = {}): Promise<HeldLock> {
    const q = await enqueueAndWait(
      this.client,
      this.dir,
      new Uint8Array(0),
      this.ttlMs,
      options.signal,
    );
    const client = this.client;
    return {
      key: q.key,
      fencingToken: q.revision,
      lease: q.lease,
      lost: q.lost,
      async release() {
        q.keeper.stop();
        await client.delete(q.key).catch(() => undefined);
        await client.leaseRevoke(q.lease).catch((e: unknown) => {
          if (!isCohortError(e) || e.code !== 'NOT_FOUND') throw e;
        });
      },
    };
  }
}
