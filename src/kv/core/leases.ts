/**
 * The replicated lease table. Time never enters the state machine on its own:
 * it only holds, per lease, its TTL, an upper bound on its remaining TTL, an
 * epoch and its attached keys. The leader keeps the clock.
 *
 * The scheme (etcd's, with its lease checkpoints, made explicit):
 * - `leaseGrant` / `leaseKeepAlive` set `remainingMs = ttlMs`; a keep-alive
 *   also advances `epoch`. Keep-alives are replicated, so every node knows the
 *   last renewal.
 * - The leader keeps a local deadline per lease on its monotonic clock
 *   (`now + remainingMs` when it takes office or a lease is granted / renewed).
 *   Now and then it replicates `leaseCheckpoint` with each lease's
 *   `deadline - now` and epoch, so the next leader does not hand leases their
 *   whole TTL back after every failover. A checkpoint whose epoch is stale (a
 *   keep-alive was applied after it was made) is skipped for that lease, so
 *   it can never understate a renewed lease's TTL.
 * - A new leader, once it has applied its log, starts each lease's deadline at
 *   `now + remainingMs (+ an optional grace for clients to find it)`.
 *   `remainingMs` was an upper bound when it was written and time has only
 *   passed since, so no lease expires earlier than its holder was promised.
 * - When a deadline passes, the leader proposes `leaseExpire` with the lease's
 *   epoch as it saw it. If a keep-alive was applied in between, the epochs
 *   differ and the expiry is skipped: a renewed lease is never revoked.
 * Followers never expire anything by their own clock.
 *
 * ```ts
 * const t = new LeaseTable();
 * const l = t.grant(0, 10_000);           // id 1
 * t.attach(l.id, 'k');
 * t.keepAlive(l.id);                      // epoch 1
 * ```
 */
import { assert } from '../../lib/assert.js';

/** One lease's replicated state. */
export interface Lease {
  readonly id: number;
  readonly ttlMs: number;
  remainingMs: number;
  epoch: number;
  /** Attached keys as byte strings. */
  readonly keys: Set<string>;
}

/** Leases by id, and the next id handed out when a grant names none. */
export class LeaseTable {
  private readonly byId = new Map<number, Lease>();
  private next = 1;

  /** Leases alive. */
  get size(): number {
    return this.byId.size;
  }

  /** The id the next grant without an id would get (snapshot state). */
  get nextId(): number {
    return this.next;
  }

  /** The lease `id`, if alive. */
  get(id: number): Lease | undefined {
    return this.byId.get(id);
  }

  /** Every lease, by id ascending. */
  list(): Lease[] {
    return [...this.byId.values()].sort((a, b) => a.id - b.id);
  }

  /** Id a grant without an id gets: the smallest free id from the counter on. */
  peekFreeId(): number {
    let id = this.next;
    while (this.byId.has(id)) id++;
    return id;
  }

  /** Creates lease `id` (0: the next free id). The caller checked bounds and clashes. */
  grant(id: number, ttlMs: number): Lease {
    const chosen = id === 0 ? this.peekFreeId() : id;
    assert(!this.byId.has(chosen), 'lease id in use');
    if (id === 0) this.next = chosen + 1;
    const lease: Lease = { id: chosen, ttlMs, remainingMs: ttlMs, epoch: 0, keys: new Set() };
    this.byId.set(chosen, lease);
    return lease;
  }

  /** Renews `id`: full TTL again, next epoch. */
  keepAlive(id: number): Lease {
    const lease = this.byId.get(id);
    assert(lease !== undefined, 'keep-alive of an unknown lease');
    lease.remainingMs = lease.ttlMs;
    lease.epoch++;
    return lease;
  }

  /** Removes `id`; returns its keys in byte order (the caller deletes them). */
  remove(id: number): string[] {
    const lease = this.byId.get(id);
    assert(lease !== undefined, 'removal of an unknown lease');
    this.byId.delete(id);
    return [...lease.keys].sort();
  }

  /** Records that `keyStr` now carries lease `id` (0: none). */
  attach(id: number, keyStr: string): void {
    if (id === 0) return;
    const lease = this.byId.get(id);
    assert(lease !== undefined, 'attach to an unknown lease');
    lease.keys.add(keyStr);
  }

  /** Records that `keyStr` no longer carries lease `id` (0: none). */
  detach(id: number, keyStr: string): void {
    if (id === 0) return;
    const lease = this.byId.get(id);
    assert(lease !== undefined && lease.keys.delete(keyStr), 'detach of an unattached key');
  }

  /** Replaces the whole table (restore). Keys are attached afterwards. */
  load(leases: readonly Omit<Lease, 'keys'>[], nextId: number): void {
    this.byId.clear();
    for (const l of leases) this.byId.set(l.id, { ...l, keys: new Set() });
    this.next = nextId;
  }
}
