/**
 * Leases in the KV simulation. The leader's side is the production KV
 * server's (kv/server.ts): once a node leads and has applied its log, it
 * builds a lease clock from the replicated lease table, proposes
 * `leaseExpire` for leases past their deadline and `leaseCheckpoint` now and
 * then, and drops the clock when it stops leading. This file holds the
 * clients' side and the check:
 *
 * - {@link LeaseClients}: client processes (production KvClients) that grant
 *   a lease, attach a key to it, keep it alive for a while, then let it lapse
 *   and start over (the pause before the next grant is about a lease's TTL,
 *   so with the short session TTLs the client's session has often expired:
 *   its KvClient registers a new one and resends when no attempt can have
 *   applied);
 * - {@link LeaseExpiries}: follows applied commands on every replica and
 *   notes when the first replica applied the `leaseExpire` that removed each
 *   lease (its keys are deleted at that revision).
 *
 * The check (the client's view of safety): a lease is never expired before
 * its TTL has elapsed since the send of any acknowledged grant or keep-alive
 * of it. The send time is when the client started the call (its first
 * attempt), a lower bound of when any attempt was applied, so this holds
 * across retries and across leader changes (a new leader starts deadlines
 * from the replicated remaining TTL, never earlier than the old leader's).
 *
 * ```ts
 * const expiries = new LeaseExpiries(scheduler, counts);
 * const replica = { node, checks, listener: expiries.listener };
 * const clients = new LeaseClients({ scheduler, random, clients: [l1, l2], expiries, counts, trap });
 * clients.start();  ...  clients.stop();  clients.check();
 * ```
 */
import { isCohortError } from '../../lib/errors.js';
import type { Random } from '../../lib/random.js';
import { CheckFailure } from '../scenario.js';
import type { FailureTrap } from '../scenario.js';
import type { Scheduler } from '../scheduler.js';
import type { KvClientNode } from './client-node.js';
import type { ApplyListener } from './replica.js';

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** When each lease was first seen expired (see the file header). */
export class LeaseExpiries {
  /** Time the first replica applied the leaseExpire that removed each lease. */
  readonly expiredAt = new Map<number, number>();

  constructor(
    private readonly scheduler: Scheduler,
    private readonly counts: Record<string, number>,
  ) {}

  /** Give every replica this listener (KvReplicaOptions.listener). */
  readonly listener: ApplyListener = (_replica, _e, out) => {
    if (!out.ok || out.duplicate) return;
    if (out.result.type === 'leaseCheckpoint') bump(this.counts, 'lease checkpoints applied');
    if (out.result.type !== 'leaseExpire') return;
    for (const id of out.result.expired) {
      if (!this.expiredAt.has(id)) {
        this.expiredAt.set(id, this.scheduler.now());
        bump(this.counts, 'leases expired');
      }
    }
  };
}

/** Options for {@link LeaseClients}. */
export interface LeaseClientsOptions {
  readonly scheduler: Scheduler;
  readonly random: Random;
  /** The client processes holding leases. */
  readonly clients: readonly KvClientNode[];
  readonly expiries: LeaseExpiries;
  readonly trap: FailureTrap;
  readonly counts: Record<string, number>;
}

/** One lease as its holder saw it. */
interface HeldLease {
  readonly id: number;
  readonly ttlMs: number;
  readonly holder: string;
  /** Send times of the acknowledged grant and keep-alives. */
  readonly acked: number[];
}

interface LeaseClient {
  readonly node: KvClientNode;
  rounds: number;
  writes: number;
}

/** Clients holding leases, and the lease safety check (see the file header). */
export class LeaseClients {
  private readonly leases = new Map<number, HeldLease>();
  private stopped = false;

  constructor(private readonly o: LeaseClientsOptions) {}

  /** Starts every lease client. */
  start(): void {
    for (const node of this.o.clients) {
      const client: LeaseClient = { node, rounds: 0, writes: 0 };
      this.after(client, this.o.random.intBetween(1, 50), () => this.grant(client));
    }
  }

  /** Stops starting requests. */
  stop(): void {
    this.stopped = true;
  }

  /**
   * One call of `client`; `then` gets the result, or undefined after an
   * error (a definite NOT_FOUND from a keep-alive: `lost`), with the time the
   * call was sent.
   */
  private call<T>(
    client: LeaseClient,
    label: string,
    call: () => Promise<T>,
    then: (out: T | 'failed' | 'lost', sentAt: number) => void,
  ): void {
    const sentAt = this.o.scheduler.now();
    call().then(
      (out) =>
        this.o.trap.guard(() => {
          bump(this.o.counts, `${label} ok`);
          then(out, sentAt);
        }),
      (err: unknown) =>
        this.o.trap.guard(() => {
          if (!isCohortError(err)) throw err;
          bump(this.o.counts, `${label} ${err.code}`);
          then(err.code === 'NOT_FOUND' ? 'lost' : 'failed', sentAt);
        }),
    );
  }

  private after(client: LeaseClient, ms: number, fn: () => void): void {
    this.o.scheduler.after(ms, `lease client ${client.node.id}`, () => {
      if (this.stopped) return;
      if (!client.node.ready) this.after(client, 10, fn);
      else fn();
    });
  }

  private grant(client: LeaseClient): void {
    const r = this.o.random;
    const ttlMs = r.intBetween(1000, 1500);
    this.call(
      client,
      'lease grant',
      () => client.node.kv.leaseGrant(ttlMs),
      (out, sentAt) => {
        if (out === 'failed' || out === 'lost') {
          this.after(client, r.intBetween(10, 50), () => this.grant(client));
          return;
        }
        const lease: HeldLease = {
          id: out.id,
          ttlMs,
          holder: client.node.id,
          acked: [sentAt],
        };
        this.leases.set(lease.id, lease);
        client.rounds = r.intBetween(0, 4);
        this.attach(client, lease);
      },
    );
  }

  private attach(client: LeaseClient, lease: HeldLease): void {
    const key = `lease-key-${client.node.id}`;
    const value = `${client.node.id}.${++client.writes}`;
    this.call(
      client,
      'lease put',
      () => client.node.kv.put(key, value, { lease: lease.id }),
      () => this.keepAlive(client, lease),
    );
  }

  private keepAlive(client: LeaseClient, lease: HeldLease): void {
    const r = this.o.random;
    if (client.rounds-- <= 0) {
      // Let the lease lapse; start over once it should be gone.
      bump(this.o.counts, 'leases abandoned');
      this.after(client, lease.ttlMs + r.intBetween(0, 400), () => this.grant(client));
      return;
    }
    this.after(
      client,
      r.intBetween(Math.floor(lease.ttlMs / 5), Math.floor(lease.ttlMs / 2)),
      () => {
        this.call(
          client,
          'lease keepAlive',
          () => client.node.kv.leaseKeepAlive(lease.id),
          (out, sentAt) => {
            if (out === 'lost') {
              // Expired under us: the check at the end says whether it was too early.
              this.grant(client);
              return;
            }
            if (out !== 'failed') lease.acked.push(sentAt);
            this.keepAlive(client, lease);
          },
        );
      },
    );
  }

  /** No lease expired before its TTL elapsed since an acknowledged grant or keep-alive was sent. */
  check(): void {
    for (const [id, t] of this.o.expiries.expiredAt) {
      const lease = this.leases.get(id);
      if (lease === undefined) continue;
      for (const sent of lease.acked) {
        if (t < sent + lease.ttlMs) {
          throw new CheckFailure(
            `lease ${id} of ${lease.holder} (TTL ${lease.ttlMs} ms) expired at ${t} ms, but a ` +
              `grant or keep-alive sent at ${sent} ms was acknowledged: only ${t - sent} ms elapsed`,
          );
        }
      }
    }
  }
}
