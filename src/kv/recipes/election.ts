/**
 * Leader election from the lock queue (see lock.ts): candidates queue under
 * `<prefix><name>/` with their value; the candidate whose key has the lowest
 * create revision leads. Observers watch the prefix and see the leader's value
 * change.
 *
 * ```ts
 * const election = new Election(client, 'scheduler', { ttlMs: 5_000 });
 * const term = await election.campaign('node-a');     // waits until elected
 * await term.proclaim('node-a:v2');                   // update the value while leading
 * for await (const leader of election.observe({ signal })) console.log(leader?.value);
 * await term.resign();
 * ```
 */
import { CohortError } from '../../lib/errors.js';
import type { Bytes, KvClient, LeaseLostReason } from '../client.js';
import { toBytes } from '../client.js';
import { kvKey, prefixRange } from '../core/bytes.js';
import type { KeyValue } from '../core/types.js';
import { enqueueAndWait } from './lock.js';
import type { LockOptions } from './lock.js';

/** A won election (see {@link Election.campaign}). */
export interface Leadership {
  readonly key: Uint8Array;
  /** Create revision of the leader's key (increases with every new leader). */
  readonly revision: number;
  readonly lease: number;
  /** Resolves if the lease is lost (leadership ends). */
  readonly lost: Promise<LeaseLostReason>;
  /** Replaces the leader's value, only while this key still leads (FAILED_PRECONDITION otherwise). */
  proclaim(value: Bytes): Promise<void>;
  /** Steps down: deletes the key and revokes the lease. */
  resign(): Promise<void>;
}

/** The current leader as observers see it. */
export interface LeaderInfo {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly revision: number;
}

/** A named election (see the file comment). */
export class Election {
  private readonly ttlMs: number;
  private readonly dir: string;

  constructor(
    private readonly client: KvClient,
    readonly name: string,
    options: LockOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 10_000;
    this.dir = `${options.prefix ?? 'elections/'}${name}/`;
  }

  /** Waits until elected with `value`. */
  async campaign(value: Bytes, options: { signal?: AbortSignal } = {}): Promise<Leadership> {
    const q = await enqueueAndWait(
      this.client,
      this.dir,
      toBytes(value),
      this.ttlMs,
      options.signal,
    );
    const client = this.client;
    return {
      key: q.key,
      revision: q.revision,
      lease: q.lease,
      lost: q.lost,
      async proclaim(v) {
        const t = await client.txn({
          compare: [{ target: 'createRevision', key: q.key, op: '=', value: q.revision }],
          success: [{ type: 'put', key: q.key, value: toBytes(v), lease: q.lease }],
        });
        if (!t.succeeded) throw new CohortError('FAILED_PRECONDITION', 'no longer the leader');
      },
      async resign() {
        q.keeper.stop();
        await client.delete(q.key).catch(() => undefined);
        await client.leaseRevoke(q.lease).catch(() => undefined);
      },
    };
  }

  /** The current leader, or undefined if there is none. */
  async leader(): Promise<LeaderInfo | undefined> {
    return (await this.read()).leader;
  }

  /** The leader and the store revision it was read at. */
  private async read(): Promise<{ leader: LeaderInfo | undefined; revision: number }> {
    const r = prefixRange(kvKey(this.dir));
    const res = await this.client.range(r.key, {
      rangeEnd: r.rangeEnd,
      sortTarget: 'createRevision',
      sortOrder: 'ascend',
      limit: 1,
    });
    const kv: KeyValue | undefined = res.kvs[0];
    return {
      leader:
        kv === undefined
          ? undefined
          : { key: kv.key, value: kv.value, revision: kv.createRevision },
      revision: res.revision,
    };
  }

  /** Yields the leader (or undefined) now and after every change, until `signal` fires. */
  async *observe(options: { signal?: AbortSignal } = {}): AsyncGenerator<LeaderInfo | undefined> {
    const first = await this.read();
    let current = first.leader;
    yield current;
    for await (const batch of this.client.watch(this.dir, {
      prefix: true,
      startRevision: first.revision + 1,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    })) {
      if (batch.events.length === 0) continue;
      const next = await this.leader();
      const same =
        next?.revision === current?.revision &&
        (next === undefined ||
          current === undefined ||
          Buffer.compare(next.value, current.value) === 0);
      if (!same) {
        current = next;
        yield current;
      }
    }
  }
}
