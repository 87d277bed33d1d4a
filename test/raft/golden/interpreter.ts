/**
 * Interpreter for the golden Raft interaction scripts in test/raft/testdata/.
 *
 * A script is a sequence of blocks. Each block is one command line, a line
 * `----`, and the expected output (no blank lines), ended by a blank line.
 * Lines starting with `#` and blank lines between blocks are kept as they are.
 *
 * ```
 * # a comment
 * add-nodes n1 n2 n3 pre-vote=false
 * ----
 * ok
 *
 * campaign n1
 * ----
 * n1 is candidate term=1 leader=none
 * ```
 *
 * Commands (ids are node names):
 * - `add-nodes <id>... [pre-vote=b] [check-quorum=b] [election=n] [heartbeat=n]
 *   [inflight=n] [max-entries=n] [chunk=n] [lease=b] [seed=n]`: create the
 *   cluster, all given nodes voters (once, first).
 * - `add-node <id>`: a new, empty node that waits to be added to the configuration.
 * - `campaign <id>`, `tick <id|all> [n]`, `propose <id> <text>`,
 *   `propose-conf <id> add-learner|promote|remove <node>`, `transfer <id> <to>`,
 *   `read-index <id> <ctx>`, `compact <id>`.
 * - `deliver [from=<id>] [to=<id>] [type=<Type>]`: deliver the messages now in
 *   flight that match, printing each and what it caused.
 * - `drop [from=] [to=] [type=]`, `inflight`: drop or list messages in flight.
 * - `stabilize`: deliver until nothing is in flight.
 * - `run <n> [verbose=b]`: n times, tick every node and stabilize (time passing
 *   with a working network); prints state changes, and messages if verbose.
 * - `partition <ids> | <ids>`, `isolate <id>`, `heal`, `crash <id>`, `restart <id>`.
 * - `status [<id>...]`, `log <id>`, `applied <id>`: dumps.
 *
 * Every command prints what happened while it ran: messages delivered, role
 * changes, entries applied, snapshots restored, reads answered; `ok` if nothing.
 */
import type { NodeId } from '../../../src/lib/ids.js';
import { decodeConfig } from '../../../src/raft/core/config.js';
import type { RaftMessage } from '../../../src/raft/core/messages.js';
import type { ConfigChange, RaftOptions } from '../../../src/raft/core/raft-core.js';
import type { Entry } from '../../../src/raft/core/types.js';
import { Cluster, cmd, text } from '../core/harness.js';
import type { TestNode } from '../core/harness.js';

/** One parsed piece of a script: a literal line, or a command with its expected output. */
export type ScriptItem =
  | { readonly kind: 'text'; readonly line: string }
  | {
      readonly kind: 'case';
      readonly command: string;
      readonly expected: readonly string[];
      readonly line: number;
    };

/** Splits a script into literal lines and command blocks. */
export function parseScript(source: string): ScriptItem[] {
  const lines = source.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const items: ScriptItem[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '' || line.startsWith('#')) {
      items.push({ kind: 'text', line });
      continue;
    }
    if (lines[i + 1] !== '----')
      throw new Error(`line ${i + 1}: command "${line}" must be followed by ----`);
    const expected: string[] = [];
    let j = i + 2;
    while (j < lines.length && (lines[j] as string).trim() !== '')
      expected.push(lines[j++] as string);
    items.push({ kind: 'case', command: line, expected, line: i + 1 });
    i = j - 1;
  }
  return items;
}

/** Renders a script back from its items, with `outputs` replacing each case's expected output. */
export function renderScript(
  items: readonly ScriptItem[],
  outputs: readonly (readonly string[])[],
): string {
  const out: string[] = [];
  let k = 0;
  for (const item of items) {
    if (item.kind === 'text') {
      out.push(item.line);
    } else {
      out.push(item.command, '----', ...(outputs[k++] ?? item.expected));
    }
  }
  return out.join('\n') + '\n';
}

function fmtEntry(e: Entry): string {
  const at = `${e.index}/${e.term}`;
  switch (e.kind) {
    case 'noop':
      return `${at} noop`;
    case 'config': {
      const c = decodeConfig(e.data);
      return `${at} conf[voters=${c.voters.join(',')};learners=${c.learners.join(',')}]`;
    }
    case 'normal':
      return `${at} ${JSON.stringify(text(e.data))}`;
  }
}

function fmtEntries(es: readonly Entry[]): string {
  return `[${es.map(fmtEntry).join(', ')}]`;
}

/** One line per message, compact and stable. */
export function fmtMessage(m: RaftMessage): string {
  const head = `${m.from}->${m.to}`;
  switch (m.type) {
    case 'RequestVote':
      return `${head} Vote t${m.term} last=${m.lastLogIndex}/${m.lastLogTerm}${m.transfer ? ' transfer' : ''}`;
    case 'RequestVoteResponse':
      return `${head} VoteResp t${m.term} ${m.granted ? 'granted' : 'rejected'}`;
    case 'PreVote':
      return `${head} PreVote t${m.term} last=${m.lastLogIndex}/${m.lastLogTerm}`;
    case 'PreVoteResponse':
      return `${head} PreVoteResp t${m.term} ${m.granted ? 'granted' : 'rejected'}`;
    case 'AppendEntries':
      return `${head} App t${m.term} prev=${m.prevLogIndex}/${m.prevLogTerm} ${fmtEntries(m.entries)} commit=${m.leaderCommit}`;
    case 'AppendEntriesResponse':
      return m.success
        ? `${head} AppResp t${m.term} ok match=${m.matchIndex}`
        : `${head} AppResp t${m.term} reject at=${m.rejectedIndex} hint=${m.conflictIndex}/${m.conflictTerm}`;
    case 'Heartbeat':
      return `${head} Heartbeat t${m.term} commit=${m.commit} seq=${m.seq}`;
    case 'HeartbeatResponse':
      return `${head} HeartbeatResp t${m.term} seq=${m.seq}`;
    case 'InstallSnapshot':
      return `${head} Snap t${m.term} index=${m.meta.index}/${m.meta.term} bytes=${m.offset}+${m.data.length}/${m.totalBytes}${m.done ? ' done' : ''}`;
    case 'InstallSnapshotResponse':
      return `${head} SnapResp t${m.term} index=${m.snapshotIndex} ${m.done ? 'done' : `next=${m.nextOffset}`}`;
    case 'TimeoutNow':
      return `${head} TimeoutNow t${m.term}`;
  }
}

function parseBool(v: string): boolean {
  if (v !== 'true' && v !== 'false') throw new Error(`expected true/false, got ${v}`);
  return v === 'true';
}

function parseNum(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`expected an integer, got ${v}`);
  return n;
}

/** Runs script commands against one in-memory cluster and returns their output lines. */
export class Interpreter {
  private cluster: Cluster | null = null;
  private out: string[] = [];

  private get c(): Cluster {
    if (this.cluster === null) throw new Error('add-nodes first');
    return this.cluster;
  }

  private watch(c: Cluster): void {
    c.observer = {
      delivered: (m) => this.out.push(fmtMessage(m)),
      ready: (n: TestNode, rd) => {
        if (rd.softState !== undefined) {
          const s = n.core.status();
          this.out.push(
            `${n.id} is ${rd.softState.role} term=${s.term} leader=${rd.softState.leader ?? 'none'}`,
          );
        }
        if (rd.snapshot?.restore === true) {
          const meta = rd.snapshot.snapshot.meta;
          this.out.push(`${n.id} restored snapshot ${meta.index}/${meta.term}`);
        }
        const ce = rd.committedEntries;
        if (ce.length > 0) this.out.push(`${n.id} applied ${fmtEntries(ce)}`);
        for (const r of rd.readStates) {
          this.out.push(
            r.ok
              ? `${n.id} read ${r.ctx} ok index=${r.index}`
              : `${n.id} read ${r.ctx} failed hint=${r.leaderHint ?? 'none'}`,
          );
        }
      },
    };
  }

  /** Runs one command line; returns its output (at least one line). */
  run(line: string): string[] {
    this.out = [];
    const [name = '', ...args] = line.trim().split(/\s+/);
    const kv = new Map<string, string>();
    const pos: string[] = [];
    for (const a of args) {
      const eq = a.indexOf('=');
      if (eq > 0) kv.set(a.slice(0, eq), a.slice(eq + 1));
      else pos.push(a);
    }
    const arg = (i: number): string => {
      const v = pos[i];
      if (v === undefined) throw new Error(`${name}: missing argument ${i + 1}`);
      return v;
    };
    switch (name) {
      case 'add-nodes': {
        if (this.cluster !== null) throw new Error('add-nodes runs once; use add-node');
        const raft: { -readonly [K in keyof RaftOptions]?: RaftOptions[K] } = {};
        for (const [k, v] of kv) {
          if (k === 'pre-vote') raft.preVote = parseBool(v);
          else if (k === 'check-quorum') raft.checkQuorum = parseBool(v);
          else if (k === 'election') raft.electionTicks = parseNum(v);
          else if (k === 'heartbeat') raft.heartbeatTicks = parseNum(v);
          else if (k === 'inflight') raft.maxInflightAppends = parseNum(v);
          else if (k === 'max-entries') raft.maxAppendEntries = parseNum(v);
          else if (k === 'chunk') raft.snapshotChunkBytes = parseNum(v);
          else if (k === 'lease') raft.leaseReads = parseBool(v);
          else if (k !== 'seed') throw new Error(`add-nodes: unknown option ${k}`);
        }
        const seed = kv.has('seed') ? parseNum(kv.get('seed') as string) : 1;
        this.cluster = new Cluster(pos, { seed, raft });
        this.watch(this.cluster);
        break;
      }
      case 'add-node':
        this.c.addNode(arg(0), { voters: [], learners: [] });
        break;
      case 'campaign':
        this.c.campaign(arg(0));
        break;
      case 'tick': {
        const times = pos[1] === undefined ? 1 : parseNum(pos[1]);
        this.c.tick(arg(0) === 'all' ? undefined : arg(0), times);
        break;
      }
      case 'propose': {
        const r = this.c.core(arg(0)).propose(cmd(pos.slice(1).join(' ')));
        this.out.push(
          r.kind === 'accepted'
            ? `accepted ${r.index}/${r.term}`
            : `rejected ${r.reason} hint=${r.leaderHint ?? 'none'}`,
        );
        this.c.processAll();
        break;
      }
      case 'propose-conf': {
        const type = {
          'add-learner': 'addLearner',
          promote: 'promoteLearner',
          remove: 'removeNode',
        }[arg(1)];
        if (type === undefined) throw new Error(`propose-conf: unknown change ${arg(1)}`);
        const change = { type, node: arg(2) as NodeId } as ConfigChange;
        const r = this.c.core(arg(0)).proposeConfigChange(change);
        this.out.push(
          r.kind === 'accepted'
            ? `accepted ${r.index}/${r.term}`
            : `rejected ${r.reason} hint=${r.leaderHint ?? 'none'}`,
        );
        this.c.processAll();
        break;
      }
      case 'transfer':
      case 'read-index': {
        const core = this.c.core(arg(0));
        const r =
          name === 'transfer' ? core.transferLeadership(arg(1) as NodeId) : core.readIndex(arg(1));
        this.out.push(
          r.kind === 'accepted'
            ? 'accepted'
            : `rejected ${r.reason} hint=${r.leaderHint ?? 'none'}`,
        );
        this.c.processAll();
        break;
      }
      case 'compact':
        this.out.push(
          this.c.compact(arg(0))
            ? `compacted to ${this.c.core(arg(0)).status().snapshotIndex}`
            : 'nothing to compact',
        );
        this.c.processAll();
        break;
      case 'deliver':
        this.c.deliver(this.filter(kv));
        break;
      case 'drop':
        this.out.push(`dropped ${this.c.drop(this.filter(kv))}`);
        break;
      case 'inflight':
        for (const m of this.c.network) this.out.push(`in flight: ${fmtMessage(m)}`);
        break;
      case 'stabilize':
        this.c.stabilize();
        break;
      case 'run': {
        // Time passes with a working network: n times (tick everyone, deliver until quiet).
        // Messages are not printed unless verbose=true; state changes are.
        const verbose = kv.has('verbose') && parseBool(kv.get('verbose') as string);
        const hook = this.c.observer.delivered;
        if (!verbose) delete this.c.observer.delivered;
        try {
          for (let i = 0; i < parseNum(arg(0)); i++) {
            this.c.tick();
            this.c.stabilize();
          }
        } finally {
          if (hook !== undefined) this.c.observer.delivered = hook;
        }
        break;
      }
      case 'partition': {
        const bar = pos.indexOf('|');
        if (bar < 0) throw new Error('partition: use "a b | c"');
        this.c.partition(pos.slice(0, bar), pos.slice(bar + 1));
        break;
      }
      case 'isolate':
        this.c.isolate(arg(0));
        break;
      case 'heal':
        this.c.heal();
        break;
      case 'crash':
        this.c.crash(arg(0));
        break;
      case 'restart':
        this.c.restart(arg(0));
        break;
      case 'status':
        for (const id of pos.length > 0 ? pos : [...this.c.nodes.keys()]) this.status(id);
        break;
      case 'log': {
        const core = this.c.core(arg(0));
        const s = core.status();
        this.out.push(`${arg(0)} snapshot=${s.snapshotIndex} commit=${s.commit}`);
        for (const e of core.entries()) this.out.push(`  ${fmtEntry(e)}`);
        break;
      }
      case 'applied':
        this.out.push(
          `${arg(0)} applied [${this.c
            .applied(arg(0))
            .map((x) => JSON.stringify(x))
            .join(', ')}]`,
        );
        break;
      default:
        throw new Error(`unknown command ${name}`);
    }
    return this.out.length > 0 ? this.out : ['ok'];
  }

  private filter(kv: ReadonlyMap<string, string>): (m: RaftMessage) => boolean {
    const from = kv.get('from');
    const to = kv.get('to');
    const type = kv.get('type');
    return (m) =>
      (from === undefined || m.from === from) &&
      (to === undefined || m.to === to) &&
      (type === undefined || m.type === type);
  }

  private status(id: string): void {
    const n = this.c.node(id);
    if (!n.up) {
      this.out.push(`${id} down`);
      return;
    }
    const s = n.core.status();
    this.out.push(
      `${id} ${s.role} term=${s.term} vote=${s.vote ?? 'none'} leader=${s.leader ?? 'none'} commit=${s.commit} applied=${s.applied} last=${s.lastIndex}/${s.lastTerm} snapshot=${s.snapshotIndex} voters=[${s.config.voters.join(',')}] learners=[${s.config.learners.join(',')}]`,
    );
    for (const [peer, p] of s.progress) {
      this.out.push(`  ${peer} match=${p.match} next=${p.next} ${p.state}`);
    }
  }
}

/** Runs a whole script; returns the parsed items and each case's actual output. */
export function runScript(source: string): { items: ScriptItem[]; outputs: string[][] } {
  const items = parseScript(source);
  const interp = new Interpreter();
  const outputs: string[][] = [];
  for (const item of items) {
    if (item.kind !== 'case') continue;
    try {
      outputs.push(interp.run(item.command));
    } catch (err) {
      outputs.push([`error: ${err instanceof Error ? err.message : String(err)}`]);
    }
  }
  return { items, outputs };
}
