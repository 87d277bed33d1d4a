/**
 * Leases in the KV simulation. Two parts:
 *
 * - {@link LeaseDriver}: what a KV server does on the leader (kv/README.md,
 *   Leases). Once a node leads and has applied an entry of its own term (so
 *   its whole log), it builds a {@link LeaseClock} from the replicated lease
 *   table on simulated time (`LeaseClock.promote`, with a drawn grace), feeds
 *   it every entry it applies, and on its ticks proposes `leaseExpire` for
 *   leases past their deadline and, now and then, `leaseCheckpoint`. It drops
 *   the clock when it stops leading or crashes. Followers never expire
 *   anything.
 * - {@link LeaseClients}: clients that grant a lease, attach a key to it, keep
 *   it alive for a while (each request with an exactly-once session and
 *   retries, requests.ts), then let it lapse and start over. A session that
 *   expired while the client idled is registered again and the command
 *   resent when no attempt of it can have applied.
 *
 * The check (the client's view of safety): a lease is never expired before
 * its TTL has elapsed since the send of any acknowledged grant or keep-alive
 * of it. The send time is when the client started the request (its first
 * attempt), a lower bound of when any attempt was applied, so this holds
 * across retries and across leader changes (a new leader starts deadlines
 * from the replicated remaining TTL, never earlier than the old leader's).
 * The expiry time is when the first replica applied the `leaseExpire` that
 * removed the lease (its keys are deleted at that revision).
 *
 * ```ts
 * const driver = new LeaseDriver(scheduler, counts, { random: rng.fork('lease-driver') });
 * const machines = kvReplicaFactory({ node, checks, listener: driver.listener });
 * driver.start(nodes, tickMs);                    // leader duties every tick of simulated time
 * const clients = new LeaseClients({ ..., driver });
 * clients.start();  ...  clients.stop();  clients.check();
 * ```
 */
import type { Random } from '../../lib/random.js';
import { decodeKvEntry } from '../../kv/core/codec.js';
import { LeaseClock } from '../../kv/core/lease-clock.js';
import type { KvApplied, KvEntry } from '../../kv/core/types.js';
import { encodeKvEntry } from '../../host/kv-state-machine.js';
import { CheckFailure } from '../scenario.js';
import type { Scheduler } from '../scheduler.js';
import type { ApplyListener, SimKvReplica } from './replica.js';
import { isSessionExpired, openSession, sendWithRetries, stamped } from './requests.js';
import type { KvSimNode, RequestClient, RequestEnv } from './requests.js';

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

const encoder = new TextEncoder();

/** TEST-ONLY deliberate bugs of the lease driver, to show the lease check catches them. */
export interface LeaseDriverBugs {
  /** A new leader ignores the replicated remaining TTLs: every lease gets only the grace period. */
  readonly promoteWithoutRemaining?: boolean;
}

/** Options for {@link LeaseDriver}. */
export interface LeaseDriverOptions {
  readonly random: Random;
  readonly bugs?: LeaseDriverBugs;
}

interface LeaderClock {
  readonly term: number;
  readonly clock: LeaseClock;
  lastCheckpointMs: number;
}

/** The leader's lease clock on every node (see the file header). */
export class LeaseDriver {
  /** Drawn parameters, printed with the scenario's. */
  readonly params: { readonly leaseGraceMs: number; readonly checkpointEveryMs: number };
  /** Time the first replica applied the leaseExpire that removed each lease. */
  readonly expiredAt = new Map<number, number>();
  /** The clock of each replica that leads: a crash or a new incarnation starts without one. */
  private readonly clocks = new WeakMap<SimKvReplica, LeaderClock>();
  private readonly bugs: LeaseDriverBugs;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly counts: Record<string, number>,
    o: LeaseDriverOptions,
  ) {
    this.bugs = o.bugs ?? {};
    this.params = {
      leaseGraceMs: o.random.pick([0, 0, 50, 300]),
      checkpointEveryMs: o.random.pick([0, 100, 300]),
    };
  }

  /** Give every replica this listener: it follows applied commands (kvReplicaFactory's `listener`). */
  readonly listener: ApplyListener = (replica, e, out) => {
    if (out === undefined || !out.ok || out.duplicate) return;
    if (out.result.type === 'leaseExpire') {
      for (const id of out.result.expired) {
        if (!this.expiredAt.has(id)) {
          this.expiredAt.set(id, this.scheduler.now());
          bump(this.counts, 'leases expired');
        }
      }
    }
    const lc = this.clocks.get(replica);
    if (lc === undefined) return;
    let entry: KvEntry;
    try {
      entry = decodeKvEntry(e.data);
    } catch {
      return;
    }
    lc.clock.onApplied(entry.command, out, this.scheduler.now());
  };

  /** Runs every node's leader duties each `tickMs` of simulated time. */
  start(nodes: readonly KvSimNode[], tickMs: number): void {
    const loop = (): void => {
      for (const n of nodes) this.tick(n);
      this.scheduler.after(tickMs, 'kv lease clocks', loop);
    };
    this.scheduler.after(tickMs, 'kv lease clocks', loop);
  }

  private tick(node: KvSimNode): void {
    const core = node.core;
    const s = core?.status();
    const replica = node.sm;
    if (core === undefined || s === undefined || s.role !== 'leader') {
      this.clocks.delete(replica);
      return;
    }
    const now = this.scheduler.now();
    let lc = this.clocks.get(replica);
    if (lc === undefined || lc.term !== s.term) {
      // Only once the whole log is applied: an applied entry of this term (its first, the noop).
      if (core.termAt(s.applied) !== s.term) {
        this.clocks.delete(replica);
        return;
      }
      let leases = replica.kv.leaseList();
      if (this.bugs.promoteWithoutRemaining === true) {
        leases = leases.map((l) => ({ ...l, remainingMs: 0 }));
      }
      lc = {
        term: s.term,
        clock: LeaseClock.promote(leases, now, this.params.leaseGraceMs, 300),
        lastCheckpointMs: now,
      };
      this.clocks.set(replica, lc);
      bump(this.counts, 'lease clocks promoted');
    }
    const expire = lc.clock.expired(now);
    if (expire !== undefined) {
      bump(this.counts, 'leaseExpire proposed');
      node.proposeData(encodeKvEntry({ command: expire }), () => {});
    }
    const every = this.params.checkpointEveryMs;
    if (every > 0 && lc.clock.size > 0 && now - lc.lastCheckpointMs >= every) {
      lc.lastCheckpointMs = now;
      bump(this.counts, 'leaseCheckpoint proposed');
      node.proposeData(encodeKvEntry({ command: lc.clock.checkpoint(now) }), () => {});
    }
  }
}

/** Options for {@link LeaseClients}. */
export interface LeaseClientsOptions extends RequestEnv {
  readonly clients: number;
  readonly driver: LeaseDriver;
  /** Give up on a request after this long (ms). */
  readonly deadlineMs: number;
}

/** One lease as its holder saw it. */
interface HeldLease {
  readonly id: number;
  readonly ttlMs: number;
  readonly holder: string;
  /** Send times of the acknowledged grant and keep-alives. */
  readonly acked: number[];
}

interface LeaseClient extends RequestClient {
  readonly base: string;
  /** The registered session's id; undefined: register before the next command. */
  clientId: string | undefined;
  seq: number;
  /** Puts issued, for unique values. */
  puts: number;
  rounds: number;
}

/** Clients holding leases, and the lease safety check (see the file header). */
export class LeaseClients {
  private readonly leases = new Map<number, HeldLease>();
  private stopped = false;

  constructor(private readonly o: LeaseClientsOptions) {}

  /** Starts every lease client. */
  start(): void {
    for (let c = 0; c < this.o.clients; c++) {
      const client: LeaseClient = {
        base: `lease-client-${c}`,
        clientId: undefined,
        name: `lease client ${c}`,
        hint: this.o.random.pick(this.o.nodes),
        seq: 0,
        puts: 0,
        rounds: 0,
      };
      this.o.scheduler.after(this.o.random.intBetween(1, 50), client.name, () =>
        this.grant(client),
      );
    }
  }

  /** Stops starting requests. */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Sends one command of `client`'s session (registering one first if it has
   * none); `then` gets the applied outcome, or undefined if none came.
   */
  private send(
    client: LeaseClient,
    label: string,
    command: KvEntry['command'],
    then: (out: KvApplied | undefined, sentAt: number) => void,
    registrations = 0,
  ): void {
    const session = client.clientId;
    if (session === undefined) {
      if (registrations >= 2) {
        then(undefined, this.o.scheduler.now());
        return;
      }
      openSession(this.o, client, this.o.deadlineMs, (id) => {
        if (id === undefined) {
          then(undefined, this.o.scheduler.now());
          return;
        }
        client.clientId = id;
        client.seq = 0;
        this.send(client, label, command, then, registrations + 1);
      });
      return;
    }
    const entry: KvEntry = { command, session: { clientId: session, seq: ++client.seq } };
    const sentAt = this.o.scheduler.now();
    sendWithRetries(
      this.o,
      client,
      {
        write: true,
        deadline: sentAt + this.o.deadlineMs,
        label,
        send: (node, done) => node.proposeData(stamped(this.o, entry), done),
      },
      (e) => {
        if (e.outcome === 'ok' && isSessionExpired(e.out)) {
          // Not applied by this attempt. If no earlier one can have been, register and resend.
          bump(this.o.counts, 'sessions expired');
          client.clientId = undefined;
          if (!e.uncertain) this.send(client, label, command, then, registrations);
          else then(undefined, sentAt);
          return;
        }
        bump(
          this.o.counts,
          `${label} ${e.outcome === 'ok' ? (e.out.ok ? 'ok' : e.out.error.code) : e.outcome}`,
        );
        then(e.outcome === 'ok' ? e.out : undefined, sentAt);
      },
    );
  }

  private after(client: LeaseClient, ms: number, fn: () => void): void {
    this.o.scheduler.after(ms, client.name, () => {
      if (!this.stopped) fn();
    });
  }

  private grant(client: LeaseClient): void {
    const r = this.o.random;
    const ttlMs = r.intBetween(1000, 1500);
    this.send(client, 'lease grant', { type: 'leaseGrant', ttlMs }, (out, sentAt) => {
      if (out === undefined) {
        this.after(client, r.intBetween(10, 50), () => this.grant(client));
        return;
      }
      if (!out.ok || out.result.type !== 'leaseGrant') {
        throw new CheckFailure(
          `${client.name}: lease grant refused: ${out.ok ? out.result.type : out.error.message}`,
        );
      }
      const lease: HeldLease = {
        id: out.result.id,
        ttlMs,
        holder: client.name,
        acked: [sentAt],
      };
      this.leases.set(lease.id, lease);
      client.rounds = r.intBetween(0, 4);
      this.attach(client, lease);
    });
  }

  private attach(client: LeaseClient, lease: HeldLease): void {
    const key = encoder.encode(`lease-key-${client.base}`);
    const value = encoder.encode(`${client.base}.${++client.puts}`);
    this.send(client, 'lease put', { type: 'put', key, value, lease: lease.id }, () =>
      this.keepAlive(client, lease),
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
        this.send(
          client,
          'lease keepAlive',
          { type: 'leaseKeepAlive', id: lease.id },
          (out, sentAt) => {
            if (out !== undefined && out.ok) lease.acked.push(sentAt);
            if (out !== undefined && !out.ok) {
              // Expired under us (NOT_FOUND): the check at the end says whether it was too early.
              this.grant(client);
              return;
            }
            this.keepAlive(client, lease);
          },
        );
      },
    );
  }

  /** No lease expired before its TTL elapsed since an acknowledged grant or keep-alive was sent. */
  check(): void {
    for (const [id, t] of this.o.driver.expiredAt) {
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
