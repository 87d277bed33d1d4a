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
 * const machines = kvReplicaFactory(nodeId, checks);            // for RaftSimNodeOf
 * const node = new RaftSimNodeOf(options, machines, hooks);
 * node.proposeData(encodeKvEntry({ command, session }), (outcome, applied) => ...);
 * node.query((sm) => readAnswer(sm, key), done);                 // ReadIndex read
 * ```
 */
import { assert } from '../../lib/assert.js';
import type { NodeId } from '../../lib/ids.js';
import type { KvApplied, KvEntry } from '../../kv/core/types.js';
import type { KvStateMachine } from '../../kv/core/state-machine.js';
import { decodeKvEntry } from '../../kv/core/codec.js';
import { KvRaftStateMachine, encodeKvEntry, isModuleApplied } from '../../node/kv-state-machine.js';
import type { Entry } from '../../raft/core/types.js';
import { CheckFailure } from '../scenario.js';
import type { SimStateMachine, SimStateMachineFactory } from '../raft/node.js';
import { digestStep } from '../raft/state-machine.js';
import type { KvStateChecks } from './checks.js';

/** Bytes before the KV snapshot in a replica snapshot: applied index (float64), digest (uint32). */
const headerBytes = 12;

/** TEST-ONLY deliberate bugs of the replica, to show the checks catch them. */
export interface KvReplicaBugs {
  /** Apply every command without its session tag: a retried write is applied again. */
  readonly dropSessions?: boolean;
}

/** A KV replica driven by the simulator's Raft shell (see the file header). */
export class SimKvReplica implements SimStateMachine<KvApplied> {
  /** Index of the last entry applied (or of the snapshot restored). */
  index = 0;
  /** Digest of entries 1..index (Raft invariants: state machine safety). */
  digest = 0x811c9dc5;
  /** The production adapter around the store. */
  private readonly adapter = new KvRaftStateMachine();

  constructor(
    private readonly node: NodeId,
    private readonly checks: KvStateChecks,
    private readonly bugs: KvReplicaBugs = {},
  ) {}

  /** The store (reads: ReadIndex reads after the shell confirmed the index, serializable reads at once). */
  get kv(): KvStateMachine {
    return this.adapter.kv;
  }

  /** Applies the next entry; normal entries are KV commands, whose outcome is returned. */
  apply(e: Entry): KvApplied | undefined {
    assert(e.index === this.index + 1, `apply of ${e.index} after ${this.index}`);
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

  /** Rebuilds a replica from {@link snapshot} bytes (a restart or an InstallSnapshot). */
  static restore(
    node: NodeId,
    checks: KvStateChecks,
    bytes: Uint8Array,
    bugs: KvReplicaBugs = {},
  ): SimKvReplica {
    const r = new SimKvReplica(node, checks, bugs);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    r.index = view.getFloat64(0);
    r.digest = view.getUint32(8);
    const kv = bytes.subarray(headerBytes);
    r.adapter.restore(kv);
    // The restored store must be the one snapshotted: its own snapshot gives the same bytes.
    checks.onState(node, r.index, r.kvSnapshot(), 'snapshot restored');
    return r;
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
  return { ...e, data: encodeKvEntry({ command: entry.command }) };
}

/** The factory the shell uses to make node `id`'s replica, empty or from a snapshot. */
export function kvReplicaFactory(
  id: NodeId,
  checks: KvStateChecks,
  bugs: KvReplicaBugs = {},
): SimStateMachineFactory<SimKvReplica> {
  return {
    empty: () => new SimKvReplica(id, checks, bugs),
    restore: (data) => SimKvReplica.restore(id, checks, data, bugs),
  };
}
