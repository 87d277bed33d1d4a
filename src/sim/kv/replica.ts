/**
 * One simulated node's KV replica: the real {@link KvStateMachine}, behind the
 * production Raft adapter ({@link KvRaftStateMachine}: MessagePack entries,
 * undecodable data refused), plus what the simulator's shell needs from a
 * state machine ({@link SimStateMachine}): the applied index and a digest of
 * every entry applied, both carried inside its snapshots so that a replica
 * restored from a snapshot is checked like one that applied the log.
 *
 * Each replica reports to the scenario's {@link KvStateChecks}: every applied
 * command's watch events (the global revision log), and its whole state as
 * snapshot bytes at sampled indexes, at every compaction and every restore
 * (equal applied index, equal bytes, on every replica).
 *
 * ```ts
 * const machines = kvReplicaFactory({ node: id, checks });      // for RaftSimNodeOf
 * const node = new RaftSimNodeOf(options, machines);
 * // or on the production shell (RaftNode applies normal entries only):
 * new ProductionSimNodeOf(options, (onApplied) => new ProductionKvReplica({ node: id, checks }, onApplied));
 * node.proposeData(encodeKvEntry({ command, session }), (outcome, applied) => ...);
 * node.query((sm) => readAnswer(sm, key), done);                 // ReadIndex read
 * ```
 */
import { assert } from '../../lib/assert.js';
import type { NodeId } from '../../lib/ids.js';
import type { KvApplied, KvEntry } from '../../kv/core/types.js';
import type { KvStateMachine } from '../../kv/core/state-machine.js';
import { decodeKvEntry } from '../../kv/core/codec.js';
import { KvRaftStateMachine, encodeKvEntry, isModuleApplied } from '../../host/kv-state-machine.js';
import type { Entry } from '../../raft/core/types.js';
import { CheckFailure } from '../scenario.js';
import type { SimStateMachine, SimStateMachineFactory } from '../raft/node.js';
import type { ProductionStateMachine } from '../raft/production-node.js';
import { digestStep } from '../raft/state-machine.js';
import type { KvStateChecks } from './checks.js';

/** Bytes before the KV snapshot in a replica snapshot: applied index (float64), digest (uint32). */
const headerBytes = 12;

/** TEST-ONLY deliberate bugs of the replica, to show the checks catch them. */
export interface KvReplicaBugs {
  /** Apply every command without its session tag: a retried write is applied again. */
  readonly dropSessions?: boolean;
}

/** Called after a replica applied an entry (the lease driver follows applied commands). */
export type ApplyListener = (replica: SimKvReplica, e: Entry, out: KvApplied | undefined) => void;

/** How a replica is built (see {@link SimKvReplica}). */
export interface KvReplicaOptions {
  readonly node: NodeId;
  readonly checks: KvStateChecks;
  readonly bugs?: KvReplicaBugs;
  /** Called after every entry applied. */
  readonly listener?: ApplyListener;
}

/** A KV replica driven by the simulator's Raft shell (see the file header). */
export class SimKvReplica implements SimStateMachine<KvApplied> {
  /** Index of the last entry applied (or of the snapshot restored). */
  index = 0;
  /** Digest of entries 1..index (Raft invariants: state machine safety). */
  digest = 0x811c9dc5;
  /** The production adapter around the store. */
  private readonly adapter = new KvRaftStateMachine();

  protected readonly node: NodeId;
  private readonly checks: KvStateChecks;
  private readonly bugs: KvReplicaBugs;

  constructor(private readonly o: KvReplicaOptions) {
    this.node = o.node;
    this.checks = o.checks;
    this.bugs = o.bugs ?? {};
  }

  /** The store (reads: ReadIndex reads after the shell confirmed the index, serializable reads at once). */
  get kv(): KvStateMachine {
    return this.adapter.kv;
  }

  /** Applies the next entry; normal entries are KV commands, whose outcome is returned. */
  apply(e: Entry): KvApplied | undefined {
    assert(e.index === this.index + 1, `apply of ${e.index} after ${this.index}`);
    return this.applyEntry(e);
  }

  /** Applies `e` (its index checked by the caller). */
  protected applyEntry(e: Entry): KvApplied | undefined {
    this.index = e.index;
    this.digest = digestStep(this.digest, e);
    let out: KvApplied | undefined;
    if (e.kind === 'normal') {
      const before = this.kv.revision;
      out = this.applyKv(this.bugs.dropSessions === true ? withoutSession(e) : e);
      if (out.ok && out.events.length > 0) {
        if (out.revision !== before + 1) {
          throw new CheckFailure(
            `${this.node}: entry ${e.index} changed keys at revision ${out.revision} after ${before} (one revision per change)`,
          );
        }
        this.checks.onEvents(this.node, out.revision, out.events);
      } else if (out.revision !== before) {
        throw new CheckFailure(
          `${this.node}: entry ${e.index} moved the revision from ${before} to ${out.revision} without an event`,
        );
      }
    }
    this.checks.onApplied(this.node, this);
    this.o.listener?.(this, e, out);
    return out;
  }

  /** The replica as bytes: header, then the KV store's own snapshot. */
  snapshot(): Uint8Array {
    const kv = this.kv.snapshot();
    const bytes = new Uint8Array(headerBytes + kv.length);
    const view = new DataView(bytes.buffer);
    view.setFloat64(0, this.index);
    view.setUint32(8, this.digest);
    bytes.set(kv, headerBytes);
    this.checks.onState(this.node, this.index, kv, 'snapshot taken');
    return bytes;
  }

  /** The KV store's snapshot bytes alone (for state comparisons). */
  kvSnapshot(): Uint8Array {
    return this.kv.snapshot();
  }

  /** Replaces the whole state with a {@link snapshot}'s (a restart or an InstallSnapshot). */
  restore(bytes: Uint8Array): void {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.adapter.restore(bytes.subarray(headerBytes));
    this.index = view.getFloat64(0);
    this.digest = view.getUint32(8);
    // The restored store must be the one snapshotted: its own snapshot gives the same bytes.
    this.checks.onState(this.node, this.index, this.kvSnapshot(), 'snapshot restored');
    this.checks.checkReplay(this.node, this.kv, 'snapshot restored');
  }

  private applyKv(e: Entry): KvApplied {
    const applied = this.adapter.apply(e);
    if (isModuleApplied(applied)) {
      throw new CheckFailure(`${this.node}: entry ${e.index} went to module ${applied.module}`);
    }
    return applied;
  }
}

/** TEST-ONLY (dropSessions): the entry with its command re-encoded without its session tag. */
function withoutSession(e: Entry): Entry {
  let entry: KvEntry;
  try {
    entry = decodeKvEntry(e.data);
  } catch {
    return e;
  }
  const timeMs = entry.timeMs;
  return {
    ...e,
    data: encodeKvEntry(
      timeMs === undefined ? { command: entry.command } : { command: entry.command, timeMs },
    ),
  };
}

/** The factory the simulator's shell uses to make a node's replica, empty or from a snapshot. */
export function kvReplicaFactory(o: KvReplicaOptions): SimStateMachineFactory<SimKvReplica> {
  return {
    empty: () => new SimKvReplica(o),
    restore: (data) => {
      const r = new SimKvReplica(o);
      r.restore(data);
      return r;
    },
  };
}

/**
 * The replica under the production shell: RaftNode applies only normal
 * entries (noop and configuration entries are its own business), so indexes
 * skip and the digest covers normal entries only, the same way on every
 * replica. Each applied entry is reported to the invariants (`onApplied`).
 */
export class ProductionKvReplica extends SimKvReplica implements ProductionStateMachine<KvApplied> {
  constructor(
    o: KvReplicaOptions,
    private readonly onApplied: (e: Entry, digest: number) => void,
  ) {
    super(o);
  }

  override apply(e: Entry): KvApplied {
    assert(e.index > this.index && e.kind === 'normal', `apply of ${e.index} after ${this.index}`);
    const out = this.applyEntry(e);
    assert(out !== undefined, 'a normal entry has an outcome');
    this.onApplied(e, this.digest);
    return out;
  }
}
