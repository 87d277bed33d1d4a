/**
 * The KV simulation's clients. Each client that writes registers an
 * exactly-once session (`sessionOpen`: the cluster names it; then sequence
 * numbers 1, 2, 3...) and has at most one operation in flight; it runs
 * get (linearizable, through ReadIndex), put, compare-and-set (a txn comparing
 * the value, the key's absence, or its modRevision, then a put) and delete on
 * a few keys, plus serializable gets (answered at once from any node's
 * replica). Requests go to the actual leader (an oracle) or to the client's
 * last hint, so deposed leaders and followers get requests too.
 *
 * Retries follow the definite/indefinite rule: a write whose attempt may
 * have taken effect (the node crashed, the entry was cut, no answer in time)
 * is retried with the same sequence number, to the same or another node, so
 * the session answers a retry of an applied write with the remembered
 * result; a definite refusal (not the leader) is retried too. An operation
 * ends with the first `ok` of any attempt; at its deadline it is `fail` if no
 * attempt could have taken effect, else `unknown`. A write answered
 * SESSION_EXPIRED (its session idled past its TTL of log time) was not
 * applied by that attempt: it ends `fail` if no earlier attempt can have
 * applied, else `unknown`, and the client registers a new session.
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
 * const w = new KvWorkload({ scheduler, random, nodes, clients: 3, keys: 2, checks, ... });
 * w.start();  ...  w.stop();  ...  w.check();
 * ```
 */
import { kvKey, kvText } from '../../kv/core/bytes.js';
import type { Compare, KvApplied, KvCommand, KvEntry, TxnResult } from '../../kv/core/types.js';
import { HistoryRecorder } from '../checkers/history.js';
import type { OperationHandle } from '../checkers/history.js';
import { checkLinearizability, formatCheckResult } from '../checkers/linearizability.js';
import { kvModel } from '../checkers/models.js';
import type { KvInput, KvOutput } from '../checkers/models.js';
import { CheckFailure } from '../scenario.js';
import type { KvStateChecks } from './checks.js';
import type { SimKvReplica } from './replica.js';
import { isSessionExpired, openSession, sendWithRetries, stamped } from './requests.js';
import type { KvSimNode, Request, RequestClient, RequestEnv } from './requests.js';

/** Relative frequencies of the operations. */
export interface KvMix {
  readonly get: number;
  readonly serializable: number;
  readonly put: number;
  readonly cas: number;
  readonly delete: number;
}

/** Options for {@link KvWorkload}. */
export interface KvWorkloadOptions extends RequestEnv {
  readonly clients: number;
  readonly keys: number;
  readonly mix: KvMix;
  /** Longest pause between a client's operations (ms). */
  readonly thinkMsMax: number;
  /** An operation not done after this long ends fail or unknown (ms). */
  readonly deadlineMs: number;
  /**
   * Client 0 only reads (linearizable and serializable gets) and only from the node it
   * believes leads, never the oracle: after a partition it keeps asking a deposed leader,
   * which must not answer with stale data (ReadIndex confirms leadership first).
   */
  readonly stickyReader: boolean;
  readonly checks: KvStateChecks;
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
  readonly node: string;
}

interface Client extends RequestClient {
  readonly id: number;
  readonly readOnly: boolean;
  /** The registered session's id; undefined: register before the next operation. */
  clientId: string | undefined;
  generation: number;
  seq: number;
  /** Writes issued, for unique values (`c<id>.<n>`). */
  writes: number;
  hint: KvSimNode;
  /** The last state of each key this client saw (value, modRevision; null value: absent). */
  readonly seen: Map<string, { value: string | null; modRevision: number }>;
}

/** One operation in flight, across its attempts. */
interface Op {
  readonly handle: OperationHandle;
  readonly input: KvInput;
  readonly invokeTime: number;
  /** Writes: the entry (with its session tag) every attempt proposes. */
  readonly entry: KvEntry | undefined;
  /** CAS on modRevision: the revision compared. */
  readonly modRevision: number | undefined;
  readonly deadline: number;
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** The answer of a ReadIndex or serializable get of `key`, in the shape of an applied command. */
export function readAnswer(replica: SimKvReplica, key: string): KvApplied {
  const result = replica.kv.read({ type: 'range', key: kvKey(key) });
  return { ok: true, result, events: [], revision: result.revision, duplicate: false };
}

/** Clients with sessions driving the KV cluster, and the checks of what they saw (see the file header). */
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
    for (let c = 0; c < this.o.clients; c++) {
      const sticky = c === 0 && this.o.stickyReader;
      const client: Client = {
        id: c,
        readOnly: sticky,
        ...(sticky ? { leaderShare: 0 } : {}),
        clientId: undefined,
        name: `client ${c}`,
        generation: 0,
        seq: 0,
        writes: 0,
        hint: this.o.random.pick(this.o.nodes),
        seen: new Map(),
      };
      this.o.scheduler.after(this.o.random.intBetween(1, this.o.thinkMsMax), `client ${c}`, () =>
        this.next(client),
      );
    }
  }

  /** Stops invoking operations (those in flight still end normally). */
  stop(): void {
    this.untilMs = Math.min(this.untilMs, this.o.scheduler.now());
  }

  private next(client: Client): void {
    const { scheduler: sched, random: r, mix } = this.o;
    if (sched.now() > this.untilMs) return;
    if (!client.readOnly && client.clientId === undefined) {
      openSession(this.o, client, this.o.deadlineMs, (id) => {
        if (id !== undefined) {
          client.clientId = id;
          client.seq = 0;
        }
        this.later(client);
      });
      return;
    }
    const session = client.clientId;
    const key = r.pick(this.keys);
    const total =
      mix.get + mix.serializable + (client.readOnly ? 0 : mix.put + mix.cas + mix.delete);
    let x = r.next() * total;
    if ((x -= mix.serializable) < 0) {
      this.serializableGet(key);
      this.later(client);
      return;
    }
    const value = `c${client.id}.${client.writes + 1}`;
    let input: KvInput;
    let command: KvCommand | undefined;
    let modRevision: number | undefined;
    if ((x -= mix.get) < 0) {
      input = { f: 'get', key };
    } else if ((x -= mix.put) < 0) {
      input = { f: 'put', key, value };
      command = { type: 'put', key: kvKey(key), value: kvKey(value) };
    } else if (x - mix.delete < 0) {
      input = { f: 'delete', key };
      command = { type: 'deleteRange', key: kvKey(key) };
    } else {
      // CAS: against what this client last saw (so many succeed), or a guess.
      const seen = client.seen.get(key);
      const put = { type: 'put', key: kvKey(key), value: kvKey(value) } as const;
      let compare: Compare;
      let expected: string | null;
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
              : `c${r.int(this.o.clients)}.${Math.max(1, client.writes - r.int(4))}`;
        // A value compare on a missing key is false (etcd): absence is version 0.
        compare =
          expected === null
            ? { target: 'version', key: kvKey(key), op: '=', value: 0 }
            : { target: 'value', key: kvKey(key), op: '=', value: kvKey(expected) };
      }
      input = { f: 'cas', key, expected, value };
      command = { type: 'txn', compare: [compare], success: [put], failure: [] };
    }
    let entry: KvEntry | undefined;
    if (command !== undefined) {
      if (session === undefined) throw new CheckFailure(`${client.name} writes without a session`);
      client.writes++;
      entry = { command, session: { clientId: session, seq: ++client.seq } };
    }
    const op: Op = {
      handle: this.recorder.invoke(`${client.id}.${client.generation}`, input),
      input,
      invokeTime: sched.now(),
      entry,
      modRevision,
      deadline: sched.now() + this.o.deadlineMs,
    };
    this.attempt(client, op);
  }

  /** A serializable get: answered at once by any up node's replica, possibly stale. */
  private serializableGet(key: string): void {
    const up = this.o.nodes.filter((n) => n.up);
    if (up.length === 0) return;
    const node = this.o.random.pick(up);
    const now = this.o.scheduler.now();
    const answer = readAnswer(node.sm, key);
    const { value, modRevision } = firstKv(answer);
    const revision = answer.ok ? answer.result.revision : answer.revision;
    bump(this.o.counts, 'op serializable get ok');
    this.acks.push({
      op: -1,
      input: { f: 'get', key },
      output: { f: 'get', value },
      revision,
      modRevision,
      invokeTime: now,
      completeTime: now,
      linearizable: false,
      node: node.id,
    });
  }

  private later(client: Client): void {
    this.o.scheduler.after(
      this.o.random.intBetween(1, this.o.thinkMsMax),
      `client ${client.id}`,
      () => this.next(client),
    );
  }

  private attempt(client: Client, op: Op): void {
    const o = this.o;
    const entry = op.entry;
    const request: Request = {
      write: entry !== undefined,
      deadline: op.deadline,
      label: `op ${op.input.f}`,
      send: (node, done) => {
        if (entry !== undefined) node.proposeData(stamped(o, entry), done);
        else node.query((sm) => readAnswer(sm, op.input.key), done);
      },
    };
    sendWithRetries(o, client, request, (e) => {
      if (e.outcome === 'ok') {
        if (op.input.f === 'get' && this.deposed(e.node)) {
          bump(this.o.counts, 'op get answered by a deposed leader');
        }
        this.complete(client, op, e.out, e.node.id, e.uncertain);
      } else this.end(client, op, e.outcome);
    });
  }

  /** True if `node` is not the leader of the highest term any node is in (it may not know yet). */
  private deposed(node: KvSimNode): boolean {
    const term = node.core?.status().term ?? 0;
    return this.o.nodes.some((n) => (n.core?.status().term ?? 0) > term);
  }

  /** The first ok answer of any attempt: record it, learn from it, go on. */
  private complete(client: Client, op: Op, out: KvApplied, node: string, uncertain: boolean): void {
    if (isSessionExpired(out)) {
      // This attempt was not applied; an earlier one may have been, before the session expired.
      bump(this.o.counts, 'sessions expired');
      client.clientId = undefined;
      this.end(client, op, uncertain ? 'unknown' : 'fail');
      return;
    }
    if (!out.ok) {
      // The workload only sends valid commands; a refusal is a bug somewhere.
      throw new CheckFailure(
        `${node} refused ${describeInput(op.input)} of ${client.name} (session ${client.clientId ?? '-'}, seq ${op.entry?.session?.seq ?? '-'}): ` +
          `${out.error.code}: ${out.error.message}`,
      );
    }
    if (out.duplicate) bump(this.o.counts, 'session duplicate answers');
    const input = op.input;
    let output: KvOutput;
    let modRevision: number | undefined = op.modRevision;
    // The result's revision: for a retry answered from the session, the original's (out.revision
    // is the store's revision now).
    const revision = out.result.revision;
    switch (input.f) {
      case 'get': {
        const kv = firstKv(out);
        output = { f: 'get', value: kv.value };
        modRevision = kv.modRevision;
        client.seen.set(input.key, kv);
        break;
      }
      case 'put':
        output = { f: 'put' };
        client.seen.set(input.key, { value: input.value, modRevision: revision });
        break;
      case 'delete': {
        const deleted = out.result.type === 'deleteRange' ? out.result.deleted : -1;
        output = { f: 'delete', deleted: deleted > 0 };
        client.seen.set(input.key, { value: null, modRevision: 0 });
        break;
      }
      case 'cas': {
        const ok = (out.result as TxnResult).succeeded;
        output = { f: 'cas', ok };
        if (ok) client.seen.set(input.key, { value: input.value, modRevision: revision });
        break;
      }
      case 'append':
        throw new CheckFailure('the KV workload issues no append');
    }
    this.recorder.complete(op.handle, output);
    bump(this.o.counts, `op ${input.f} ok`);
    this.acks.push({
      op: op.handle.id,
      input,
      output,
      revision,
      ...(modRevision === undefined ? {} : { modRevision }),
      invokeTime: op.invokeTime,
      completeTime: this.o.scheduler.now(),
      linearizable: true,
      node,
    });
    this.later(client);
  }

  private end(client: Client, op: Op, outcome: 'fail' | 'unknown'): void {
    if (outcome === 'fail') this.recorder.fail(op.handle);
    else {
      this.recorder.unknown(op.handle);
      // A process with an operation of unknown outcome never issues another (the session goes on).
      client.generation++;
    }
    bump(this.o.counts, `op ${op.input.f} ${outcome}`);
    client.hint = this.o.random.pick(this.o.nodes);
    this.later(client);
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
        `${a.linearizable ? '' : 'serializable '}${describeOutput(a)} answered by ${a.node} at ` +
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
  checkFinal(nodes: readonly KvSimNode[]): void {
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
        const have = firstKv(readAnswer(n.sm, key));
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

/** The single key a get returned: its value (null if absent) and modRevision (0 if absent). */
function firstKv(out: KvApplied): { value: string | null; modRevision: number } {
  if (!out.ok || out.result.type !== 'range') return { value: null, modRevision: 0 };
  const kv = out.result.kvs[0];
  return kv === undefined
    ? { value: null, modRevision: 0 }
    : { value: kvText(kv.value), modRevision: kv.modRevision };
}

function describeInput(input: KvInput): string {
  return kvModel().describeOperation(input, undefined);
}

function describeOutput(a: Ack): string {
  return kvModel().describeOperation(a.input, a.output);
}
