/**
 * How a simulated KV client sends one request: to the actual leader (an
 * oracle, with some probability) or to its hint, retrying after a definite
 * refusal (not the leader: the hint becomes the leader that node knows), after
 * an indefinite one (the node crashed, the entry was cut) and after an attempt
 * timeout, until the first `ok` of any attempt or the deadline. Attempt
 * timeouts and pauses double with each attempt (up to 8×), as a real client's
 * backoff: each retried write is a new log entry, and a cluster drawn slow
 * (one entry per append, slow disks) must not be buried under them. A write is
 * retried with the very same entry, session tag included, so its session
 * answers a retry of a write already applied with the remembered result: the
 * client's exactly-once path. At the deadline the request ends `fail` if no
 * attempt could have taken effect, else `unknown`. Every attempt's entry is
 * stamped with the virtual time it is sent (`KvEntry.timeMs`, what a leader
 * stamps in production): the log time sessions expire by.
 *
 * Sessions are registered first ({@link openSession}: a `sessionOpen` entry,
 * retried like a write; a lost reply leaves an unused session that expires).
 *
 * ```ts
 * sendWithRetries(env, client, { write: true, deadline: now + 1000,
 *   send: (node, done) => node.proposeData(encodeKvEntry(entry), done) },
 *   (end) => end.outcome === 'ok' ? use(end.out) : giveUp(end.outcome));
 * ```
 */
import type { Random } from '../../lib/random.js';
import type { KvApplied, KvEntry } from '../../kv/core/types.js';
import { encodeKvEntry } from '../../host/kv-state-machine.js';
import type { RequestCallbackOf, SimRaftNodeBase } from '../raft/node.js';
import type { Scheduler } from '../scheduler.js';
import type { SimKvReplica } from './replica.js';

/**
 * A simulated node running the KV replica, on either shell: the simulator's
 * (RaftSimNodeOf) or the production RaftNode (ProductionSimNodeOf).
 */
export interface KvSimNode extends SimRaftNodeBase {
  readonly sm: SimKvReplica;
  /** Proposes an entry; `done` gets the replica's outcome once applied on this node. */
  proposeData(data: Uint8Array, done: RequestCallbackOf<KvApplied>): void;
  /** A linearizable read through ReadIndex: `done` gets `query(sm)`. */
  query(query: (sm: SimKvReplica) => KvApplied, done: RequestCallbackOf<KvApplied>): void;
}

/** What {@link sendWithRetries} needs of the cluster. */
export interface RequestEnv {
  readonly scheduler: Scheduler;
  readonly random: Random;
  readonly nodes: readonly KvSimNode[];
  /** Share of attempts sent to the actual leader. */
  readonly leaderShare: number;
  readonly leader: () => KvSimNode | undefined;
  /** An attempt with no answer after this long may have taken effect: retry (ms). */
  readonly attemptMs: number;
  readonly counts: Record<string, number>;
  /** TTL (log time) of the sessions clients register. */
  readonly sessionTtlMs: number;
}

/** The client's routing state: where it sends next. */
export interface RequestClient {
  readonly name: string;
  hint: KvSimNode;
  /** This client's share of attempts sent to the actual leader, if not the environment's. */
  readonly leaderShare?: number;
}

/** One request. */
export interface Request {
  /** True if an attempt can take effect without an answer (a log entry); false for reads. */
  readonly write: boolean;
  /** Virtual time after which no new attempt starts. */
  readonly deadline: number;
  /** Counter label (e.g. `put`). */
  readonly label: string;
  /** Sends one attempt to `node`. */
  send(node: KvSimNode, done: RequestCallbackOf<KvApplied>): void;
}

/** How a request ended. */
export type RequestEnd =
  | {
      readonly outcome: 'ok';
      readonly out: KvApplied;
      readonly node: KvSimNode;
      /** An earlier attempt may have taken effect (it timed out or failed indefinitely). */
      readonly uncertain: boolean;
    }
  | { readonly outcome: 'fail' | 'unknown' };

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** Sends `req` with retries (see the file header); `end` is called once. */
export function sendWithRetries(
  env: RequestEnv,
  client: RequestClient,
  req: Request,
  end: (e: RequestEnd) => void,
): void {
  const { scheduler: sched, random: r } = env;
  let attempt = 0;
  let maybeApplied = false;
  let ended = false;
  const finish = (e: RequestEnd): void => {
    ended = true;
    end(e);
  };
  const next = (): void => {
    if (ended) return;
    if (sched.now() >= req.deadline) {
      finish({ outcome: maybeApplied ? 'unknown' : 'fail' });
      return;
    }
    const n = ++attempt;
    if (n > 1) bump(env.counts, `${req.label} retries`);
    const oracle = r.chance(client.leaderShare ?? env.leaderShare) ? env.leader() : undefined;
    const node = oracle ?? (client.hint.up ? client.hint : r.pick(env.nodes));
    // Exponential backoff (capped): a slow cluster is not buried under retried proposals.
    const backoff = 2 ** Math.min(n - 1, 3);
    const timer = sched.after(env.attemptMs * backoff, `${client.name} attempt timeout`, () => {
      if (ended || attempt !== n) return;
      if (req.write) maybeApplied = true;
      client.hint = r.pick(env.nodes);
      next();
    });
    req.send(node, (outcome, out) => {
      if (ended) {
        bump(env.counts, 'late answers after the request ended');
        return;
      }
      if (outcome === 'ok' && out !== undefined) {
        // The first ok of any attempt answers the request (a retry's is the session's memory).
        sched.cancel(timer);
        // Stick to the node that answered: the client believes it leads (a deposed leader too).
        client.hint = node;
        finish({ outcome: 'ok', out, node, uncertain: maybeApplied });
        return;
      }
      if (attempt !== n) return; // a superseded attempt's failure tells nothing new
      sched.cancel(timer);
      if (outcome === 'unknown') {
        if (req.write) maybeApplied = true;
        client.hint = r.pick(env.nodes);
      } else {
        // Definite for this attempt: try the leader this node knows, else any node.
        const leader = node.core?.status().leader;
        client.hint = env.nodes.find((x) => x.id === leader) ?? r.pick(env.nodes);
      }
      sched.after(r.intBetween(5, 30) * backoff, `${client.name} retry`, next);
    });
  };
  next();
}

/**
 * True if the store refused a command because its session is unknown or
 * expired (kv/core/sessions.ts): the command was not applied; the client
 * registers again.
 */
export function isSessionExpired(out: KvApplied): boolean {
  return !out.ok && out.error.code === 'SESSION_EXPIRED';
}

/** `entry` as an attempt sends it: stamped with the virtual time now (the log time). */
export function stamped(env: Pick<RequestEnv, 'scheduler'>, entry: KvEntry): Uint8Array {
  return encodeKvEntry({ ...entry, timeMs: Math.floor(env.scheduler.now()) });
}

/**
 * Registers a session for `client` (a `sessionOpen` entry with retries for
 * up to `deadlineMs`): `done` gets its id, or undefined if no attempt was
 * answered in time.
 */
export function openSession(
  env: RequestEnv,
  client: RequestClient,
  deadlineMs: number,
  done: (clientId: string | undefined) => void,
): void {
  const entry: KvEntry = { command: { type: 'sessionOpen', ttlMs: env.sessionTtlMs } };
  sendWithRetries(
    env,
    client,
    {
      write: true,
      deadline: env.scheduler.now() + deadlineMs,
      label: 'session open',
      send: (node, cb) => node.proposeData(stamped(env, entry), cb),
    },
    (e) => {
      const id =
        e.outcome === 'ok' && e.out.ok && e.out.result.type === 'sessionOpen'
          ? e.out.result.clientId
          : undefined;
      bump(env.counts, id === undefined ? 'sessions not opened' : 'sessions opened');
      done(id);
    },
  );
}
