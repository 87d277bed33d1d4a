/**
 * The KV simulation's clients: production {@link KvClient}s (client-node.ts),
 * each with at most one operation in flight, running get (linearizable,
 * through the leader's ReadIndex), put, compare-and-set (a txn comparing the
 * value, the key's absence, or its modRevision, then a put) and delete on a
 * few keys, plus serializable gets (answered by whichever node the client
 * reaches, possibly stale). The KvClient does the rest: it finds the leader,
 * follows redirects, retries by the definite / indefinite rules with a
 * session, so a retried write is applied once, and gives up after its retry
 * deadline. An operation is recorded `ok` with what the client returned,
 * `fail` when the client's error is definite (it certainly did not happen),
 * `unknown` otherwise: the client's promises are what is checked.
 *
 * Checked at the end ({@link KvWorkload.check}):
 * - the history of linearizable operations is linearizable under the kv model
 *   (Wing–Gong search, src/sim/checkers). A CAS on modRevision is checked as a
 *   CAS on the value the client saw with that modRevision: values are unique
 *   per write, so "modRevision = r" and "value = the value written at r" are
 *   the same condition — the revision checks below verify the pairing;
 * - every result agrees with the revision log (checks.ts) at the revision it
 *   reports: a put's value is there, a failed CAS's comparison is false there,
 *   a delete removed the key there, a get's value and modRevision are the key's
 *   state there. Serializable gets are checked by this alone (a weaker
 *   property: they may be stale, but must return a committed state, exactly
 *   as it was at the revision they report);
 * - revisions respect real time: an operation invoked after another completed
 *   reports a revision at least as high (linearizable operations only);
 * - every acknowledged write is present at the end on every replica, or
 *   overwritten by a later revision (see {@link KvWorkload.checkFinal}).
 *
 * ```ts
 * const w = new KvWorkload({ scheduler, random, clients: [c1, c2], keys: 2, checks, ... });
 * w.start();  ...  w.stop();  ...  w.check();
 * ```
 */
import { isCohortError } from '../../lib/errors.js';
import type { Random } from '../../lib/random.js';
import type { KvClient } from '../../kv/client.js';
import { kvKey, kvText } from '../../kv/core/bytes.js';
import type { Compare, RangeResult } from '../../kv/core/types.js';
import { HistoryRecorder } from '../checkers/history.js';
import type { OperationHandle } from '../checkers/history.js';
import { checkLinearizability, formatCheckResult } from '../checkers/linearizability.js';
import { kvModel } from '../checkers/models.js';
import type { KvInput, KvOutput } from '../checkers/models.js';
import { CheckFailure } from '../scenario.js';
import type { FailureTrap } from '../scenario.js';
import type { Scheduler } from '../scheduler.js';
import type { KvStateChecks } from './checks.js';
import type { KvClientNode } from './client-node.js';
import type { SimKvReplica } from './replica.js';

/** Relative frequencies of the operations. */
export interface KvMix {
  readonly get: number;
  readonly serializable: number;
  readonly put: number;
  readonly cas: number;
  readonly delete: number;
}

/** A simulated node running the KV store, as the final checks read it. */
export interface KvReplicaNode {
  readonly id: string;
  readonly up: boolean;
  readonly sm: SimKvReplica;
}

/** Options for {@link KvWorkload}. */
export interface KvWorkloadOptions {
  readonly scheduler: Scheduler;
  readonly random: Random;
  /** The client processes, one per history process. */
  readonly clients: readonly KvClientNode[];
  readonly keys: number;
  readonly mix: KvMix;
  /** Longest pause between a client's operations (ms). */
  readonly thinkMsMax: number;
  readonly checks: KvStateChecks;
  readonly trap: FailureTrap;
  readonly counts: Record<string, number>;
}

/** What a completed operation reported, for the revision checks. */
interface Ack {
  readonly op: number;
  readonly input: KvInput;
  readonly output: KvOutput;
  /** The store revision the answer carried. */
  readonly revision: number;
  /** Gets: the key's modRevision (0 if absent). CAS on modRevision: the revision compared. */
  readonly modRevision?: number;
  readonly invokeTime: number;
  readonly completeTime: number;
  /** False for serializable gets (not in the linearizability check). */
  readonly linearizable: boolean;
  /** The client that got the answer. */
  readonly client: string;
}

interface Client {
  readonly id: number;
  readonly node: KvClientNode;
  generation: number;
  /** Writes issued: makes every written value unique. */
  writes: number;
  /** The last state of each key this client saw (value, modRevision; null value: absent). */
  readonly seen: Map<string, { value: string | null; modRevision: number }>;
}

/** What one operation asks the KvClient and how its answer is read. */
interface Op {
  readonly input: KvInput;
  /** CAS on modRevision: the revision compared. */
  readonly modRevision?: number;
  call(kv: KvClient): Promise<{ output: KvOutput; revision: number; modRevision?: number }>;
}

function bump(counts: Record<string, number>, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

/** The single key of a range: its value (null if absent) and modRevision (0 if absent). */
function firstKv(r: RangeResult): { value: string | null; modRevision: number } {
  const kv = r.kvs[0];
  return kv === undefined
    ? { value: null, modRevision: 0 }
    : { value: kvText(kv.value), modRevision: kv.modRevision };
}

/** Clients driving the KV cluster, and the checks of what they saw (see the file header). */
export class KvWorkload {
  /** Every linearizable operation with its outcome. */
  readonly recorder: HistoryRecorder<KvInput, KvOutput>;
  private readonly acks: Ack[] = [];
  private readonly keys: string[];
  private untilMs = Number.MAX_SAFE_INTEGER;

  constructor(private readonly o: KvWorkloadOptions) {
    this.recorder = new HistoryRecorder(() => o.scheduler.now());
    this.keys = Array.from({ length: o.keys }, (_, i) => `k${i}`);
  }

  /** Starts every client. */
  start(): void {
    this.o.clients.forEach((node, id) => {
      const client: Client = { id, node, generation: 0, writes: 0, seen: new Map() };
      this.later(client);
    });
  }

  /** Stops invoking operations (those in flight still end normally). */
  stop(): void {
    this.untilMs = Math.min(this.untilMs, this.o.scheduler.now());
  }

  private later(client: Client): void {
    this.o.scheduler.after(
      this.o.random.intBetween(1, this.o.thinkMsMax),
      `client ${client.node.id}`,
      () => this.next(client),
    );
  }

  private next(client: Client): void {
    const { scheduler: sched, random: r, mix } = this.o;
    if (sched.now() > this.untilMs) return;
    if (!client.node.ready) {
      this.later(client);
      return;
    }
    const key = r.pick(this.keys);
    let x = r.next() * (mix.get + mix.serializable + mix.put + mix.cas + mix.delete);
    if ((x -= mix.serializable) < 0) {
      this.serializableGet(client, key);
      return;
    }
    const value = `${client.node.id}.${client.writes + 1}`;
    let op: Op;
    if ((x -= mix.get) < 0) {
      op = {
        input: { f: 'get', key },
        call: async (kv) => {
          const res = await kv.range(key);
          const first = firstKv(res);
          client.seen.set(key, first);
          return {
            output: { f: 'get', value: first.value },
            revision: res.revision,
            modRevision: first.modRevision,
          };
        },
      };
    } else if ((x -= mix.put) < 0) {
      client.writes++;
      op = {
        input: { f: 'put', key, value },
        call: async (kv) => {
          const res = await kv.put(key, value);
          client.seen.set(key, { value, modRevision: res.revision });
          return { output: { f: 'put' }, revision: res.revision };
        },
      };
    } else if (x - mix.delete < 0) {
      op = {
        input: { f: 'delete', key },
        call: async (kv) => {
          const res = await kv.delete(key);
          client.seen.set(key, { value: null, modRevision: 0 });
          return { output: { f: 'delete', deleted: res.deleted > 0 }, revision: res.revision };
        },
      };
    } else {
      // CAS: against what this client last saw (so many succeed), or a guess.
      client.writes++;
      const seen = client.seen.get(key);
      let compare: Compare;
      let expected: string | null;
      let modRevision: number | undefined;
      if (seen !== undefined && r.chance(0.5)) {
        // Compare the modRevision the client saw with the value (0: absent).
        modRevision = seen.modRevision;
        expected = seen.value;
        compare = { target: 'modRevision', key: kvKey(key), op: '=', value: seen.modRevision };
      } else {
        expected =
          seen !== undefined && r.chance(0.6)
            ? seen.value
            : r.chance(0.3)
              ? null
              : `${r.pick(this.o.clients).id}.${Math.max(1, client.writes - r.int(4))}`;
        // A value compare on a missing key is false (etcd): absence is version 0.
        compare =
          expected === null
            ? { target: 'version', key: kvKey(key), op: '=', value: 0 }
            : { target: 'value', key: kvKey(key), op: '=', value: kvKey(expected) };
      }
      const put = { type: 'put', key: kvKey(key), value: kvKey(value) } as const;
      op = {
        input: { f: 'cas', key, expected, value },
        ...(modRevision === undefined ? {} : { modRevision }),
        call: async (kv) => {
          const res = await kv.txn({ compare: [compare], success: [put] });
          if (res.succeeded) client.seen.set(key, { value, modRevision: res.revision });
          return { output: { f: 'cas', ok: res.succeeded }, revision: res.revision };
        },
      };
    }
    this.run(client, op);
  }

  private run(client: Client, op: Op): void {
    const sched = this.o.scheduler;
    const handle: OperationHandle = this.recorder.invoke(
      `${client.id}.${client.generation}`,
      op.input,
    );
    const invokeTime = sched.now();
    const requestsBefore = client.node.requests;
    const f = op.input.f;
    const finished = (outcome: string): void => {
      bump(this.o.counts, `op ${f} ${outcome}`);
      const retries = client.node.requests - requestsBefore - 1;
      if (retries > 0) bump(this.o.counts, `op ${f} retries`, retries);
      this.later(client);
    };
    op.call(client.node.kv).then(
      (answer) =>
        this.o.trap.guard(() => {
          this.recorder.complete(handle, answer.output);
          const modRevision = op.modRevision ?? answer.modRevision;
          this.acks.push({
            op: handle.id,
            input: op.input,
            output: answer.output,
            revision: answer.revision,
            ...(modRevision === undefined ? {} : { modRevision }),
            invokeTime,
            completeTime: sched.now(),
            linearizable: true,
            client: client.node.id,
          });
          finished('ok');
        }),
      (err: unknown) =>
        this.o.trap.guard(() => {
          if (!isCohortError(err)) throw err;
          // A read changes nothing: whatever the error, it did not take effect.
          if (err.definite || f === 'get') {
            this.recorder.fail(handle);
            finished('fail');
          } else {
            this.recorder.unknown(handle);
            // A process with an operation of unknown outcome never issues another.
            client.generation++;
            finished('unknown');
          }
        }),
    );
  }

  /** A serializable get: answered by whichever node the client reaches, possibly stale. */
  private serializableGet(client: Client, key: string): void {
    const sched = this.o.scheduler;
    const invokeTime = sched.now();
    client.node.kv.range(key, { serializable: true }).then(
      (res) =>
        this.o.trap.guard(() => {
          const { value, modRevision } = firstKv(res);
          bump(this.o.counts, 'op serializable get ok');
          this.acks.push({
            op: -1,
            input: { f: 'get', key },
            output: { f: 'get', value },
            revision: res.revision,
            modRevision,
            invokeTime,
            completeTime: sched.now(),
            linearizable: false,
            client: client.node.id,
          });
          this.later(client);
        }),
      (err: unknown) =>
        this.o.trap.guard(() => {
          if (!isCohortError(err)) throw err;
          bump(this.o.counts, 'op serializable get fail');
          this.later(client);
        }),
    );
  }

  /** The end-of-run checks on the history (see the file header); throws CheckFailure. */
  check(): void {
    const counts = this.o.counts;
    const result = checkLinearizability(this.recorder.history(), kvModel(), {
      maxSteps: 200_000,
    });
    counts[`linearizability ${result.verdict}`] = 1;
    if (result.verdict === 'not-linearizable') {
      throw new CheckFailure(`client history not linearizable: ${formatCheckResult(result)}`);
    }
    for (const a of this.acks) this.checkAck(a);
    this.checkRealTimeRevisions();
  }

  /** Each answer agrees with the revision log at the revision it reports. */
  private checkAck(a: Ack): void {
    const checks = this.o.checks;
    const fail = (why: string): never => {
      throw new CheckFailure(
        `${a.linearizable ? '' : 'serializable '}${describeOutput(a)} answered to ${a.client} at ` +
          `revision ${a.revision} (op ${a.op}, ${a.invokeTime}..${a.completeTime} ms): ${why}`,
      );
    };
    const input = a.input;
    if (a.revision > checks.maxRevision) fail(`revision ${a.revision} was never applied anywhere`);
    const state = checks.stateAt(input.key, a.revision);
    const show = state === null ? 'absent' : `${JSON.stringify(state.value)}@${state.modRevision}`;
    switch (input.f) {
      case 'get': {
        const value = (a.output as { value: string | null }).value;
        if ((state?.value ?? null) !== value || (state?.modRevision ?? 0) !== a.modRevision) {
          fail(`the key was ${show} at that revision`);
        }
        return;
      }
      case 'put':
        if (!checks.changedAt(input.key, a.revision, input.value)) {
          fail(`the log has no put of it there (the key was ${show})`);
        }
        return;
      case 'delete': {
        const deleted = (a.output as { deleted?: boolean }).deleted === true;
        if (state !== null) fail(`the key was ${show} there`);
        if (deleted && !checks.changedAt(input.key, a.revision, null)) {
          fail('the log has no delete of the key there');
        }
        return;
      }
      case 'cas': {
        const ok = (a.output as { ok: boolean }).ok;
        if (ok) {
          if (!checks.changedAt(input.key, a.revision, input.value)) {
            fail(`the log has no put of it there (the key was ${show})`);
          }
          return;
        }
        // A failed comparison changed nothing: at that revision the key did not match.
        const matched =
          a.modRevision !== undefined
            ? (state?.modRevision ?? 0) === a.modRevision
            : (state?.value ?? null) === input.expected;
        if (matched) fail(`the comparison failed but the key was ${show} there`);
        return;
      }
      case 'append':
        return;
    }
  }

  /** An operation invoked after another completed never reports a lower revision. */
  private checkRealTimeRevisions(): void {
    const lin = this.acks.filter((a) => a.linearizable);
    const byComplete = [...lin].sort((a, b) => a.completeTime - b.completeTime);
    const byInvoke = [...lin].sort((a, b) => a.invokeTime - b.invokeTime);
    let i = 0;
    let best: Ack | undefined;
    for (const b of byInvoke) {
      while (i < byComplete.length && (byComplete[i] as Ack).completeTime < b.invokeTime) {
        const c = byComplete[i] as Ack;
        if (best === undefined || c.revision > best.revision) best = c;
        i++;
      }
      if (best !== undefined && b.revision < best.revision) {
        throw new CheckFailure(
          `revisions go back in real time: ${describeOutput(b)} (op ${b.op}, invoked at ` +
            `${b.invokeTime} ms) reports revision ${b.revision}, but ${describeOutput(best)} ` +
            `(op ${best.op}) completed at ${best.completeTime} ms with revision ${best.revision}`,
        );
      }
    }
  }

  /**
   * Every acknowledged write is present on every replica at the end, or
   * overwritten by a later revision; every replica's keys match the revision
   * log at its own revision.
   */
  checkFinal(nodes: readonly KvReplicaNode[]): void {
    const checks = this.o.checks;
    for (const a of this.acks) {
      const write =
        a.input.f === 'put' ||
        (a.input.f === 'cas' && (a.output as { ok: boolean }).ok) ||
        (a.input.f === 'delete' && (a.output as { deleted?: boolean }).deleted === true);
      if (!write) continue;
      if (checks.lastChange(a.input.key) < a.revision) {
        throw new CheckFailure(
          `acknowledged ${describeOutput(a)} at revision ${a.revision} is lost: the last change of ` +
            `the key is at revision ${checks.lastChange(a.input.key)}`,
        );
      }
    }
    for (const n of nodes) {
      if (!n.up) continue;
      const kv = n.sm.kv;
      for (const key of this.keys) {
        const have = firstKv(kv.read({ type: 'range', key: kvKey(key) }));
        const want = checks.stateAt(key, kv.revision);
        if ((want?.value ?? null) !== have.value || (want?.modRevision ?? 0) !== have.modRevision) {
          throw new CheckFailure(
            `${n.id} at revision ${kv.revision} holds ${key}=${JSON.stringify(have.value)}@${have.modRevision}; ` +
              `the revision log says ${want === null ? 'absent' : `${JSON.stringify(want.value)}@${want.modRevision}`}`,
          );
        }
      }
    }
  }
}

function describeOutput(a: Ack): string {
  return kvModel().describeOperation(a.input, a.output);
}
