/**
 * One simulated node's KV replica: the node's production state machine (the
 * KV server's {@link ObservedStateMachine}: the real {@link KvStateMachine}
 * behind the Raft adapter, MessagePack entries, undecodable data refused),
 * plus what the simulator needs from RaftNode's state machine
 * ({@link SimStateMachine}): the applied index and a digest of every entry
 * applied (normal entries: RaftNode applies only those, so indexes skip),
 * both carried inside its snapshots so that a replica restored from a
 * snapshot is checked like one that applied the log.
 *
 * Each replica reports to the scenario's {@link KvStateChecks}: every applied
 * command's watch events (the global revision log), and its whole state as
 * snapshot bytes at sampled indexes, at every snapshot and every restore
 * (equal applied index, equal bytes, on every replica).
 *
 * ```ts
 * const node = new KvServerNode(options, (hooks) => new SimKvReplica({ node: id, checks }, hooks), ...);
 * // RaftNode applies entries; the KV server (kv/server.ts) sees them through onApplied
 * ```
 *
 * TEST-ONLY bug switches ({@link KvReplicaBugs}) break the state machine on
 * purpose, so the checks are shown to catch what they are for.
 */
import { assert } from '../../lib/assert.js';
import type { NodeId } from '../../lib/ids.js';
import { decodeKvEntry } from '../../kv/core/codec.js';
import { KvStateMachine } from '../../kv/core/state-machine.js';
import type { KvApplied, KvEntry, LeaseInfo } from '../../kv/core/types.js';
import { ObservedStateMachine } from '../../kv/server.js';
import { encodeKvEntry, isModuleApplied } from '../../host/kv-state-machine.js';
import type { NodeApplied } from '../../host/kv-state-machine.js';
import type { SnapshotEncoder } from '../../raft/raft-node.js';
import type { Entry } from '../../raft/core/types.js';
import { CheckFailure } from '../scenario.js';
import { digestStep } from '../raft/state-machine.js';
import type { SimMachineHooks, SimStateMachine } from '../raft/state-machine.js';
import type { KvStateChecks } from './checks.js';

/** Bytes before the KV snapshot in a replica snapshot: applied index (float64), digest (uint32). */
const headerBytes = 12;

/** TEST-ONLY deliberate bugs of the replica, to show the checks catch them. */
export interface KvReplicaBugs {
  /** Apply every command without its session tag: a retried write is applied again. */
  readonly dropSessions?: boolean;
  /**
   * The lease table reports no remaining TTL for any lease, so a new leader's
   * lease clock (kv/server.ts) gives every lease only the grace period.
   */
  readonly leasesWithoutRemaining?: boolean;
}

/** Called after a replica applied an entry (the lease check follows applied commands). */
export type ApplyListener = (replica: SimKvReplica, e: Entry, out: KvApplied) => void;

/** How a replica is built (see {@link SimKvReplica}). */
export interface KvReplicaOptions {
  readonly node: NodeId;
  readonly checks: KvStateChecks;
  readonly bugs?: KvReplicaBugs;
  /** Called after every entry applied. */
  readonly listener?: ApplyListener;
}

/** TEST-ONLY (leasesWithoutRemaining): a store whose lease table forgot the remaining TTLs. */
class LeasesWithoutRemaining extends KvStateMachine {
  override leaseList(): LeaseInfo[] {
    return super.leaseList().map((l) => ({ ...l, remainingMs: 0 }));
  }
}

/** A KV replica driven by RaftNode in the simulator (see the file header). */
export class SimKvReplica extends ObservedStateMachine implements SimStateMachine<NodeApplied> {
  /** Index of the last entry applied (or of the snapshot restored). */
  index = 0;
  /** Digest of the entries applied up to index (Raft invariants: state machine safety). */
  digest = 0x811c9dc5;

  private readonly node: NodeId;
  private readonly checks: KvStateChecks;
  private readonly bugs: KvReplicaBugs;

  constructor(
    private readonly o: KvReplicaOptions,
    private readonly hooks: SimMachineHooks,
  ) {
    super();
    this.node = o.node;
    this.checks = o.checks;
    this.bugs = o.bugs ?? {};
    if (this.bugs.leasesWithoutRemaining === true) this.kv = new LeasesWithoutRemaining();
  }

  /** Applies the next committed KV command (a normal entry) and returns its outcome. */
  override apply(e: Entry): NodeApplied {
    assert(e.index > this.index && e.kind === 'normal', `apply of ${e.index} after ${this.index}`);
    this.index = e.index;
    this.digest = digestStep(this.digest, e);
    const before = this.kv.revision;
    const out = super.apply(this.bugs.dropSessions === true ? withoutSession(e) : e);
    // No module runs in the simulation: the adapter hands every entry to the store.
    assert(!isModuleApplied(out), `${this.node}: entry ${e.index} went to a module`);
    this.hooks.applied(e, this.digest);
    // RaftNode applies from its promise callbacks: check failures go through the hooks' trap.
    this.hooks.check(() => {
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
      this.checks.onApplied(this.node, this);
      this.o.listener?.(this, e, out);
    });
    return out;
  }

  /** The replica as bytes: header, then the KV store's own snapshot. */
  override snapshot(): Uint8Array {
    return this.sealed(this.index, this.digest, super.snapshot());
  }

  /** A snapshot encoded in steps (as RaftNode takes them), sealed with the index and digest it began at. */
  override beginSnapshot(): SnapshotEncoder {
    const index = this.index;
    const digest = this.digest;
    const inner = super.beginSnapshot();
    let bytes: Uint8Array | undefined;
    return {
      step: (budget) => inner.step(budget),
      bytes: () => (bytes ??= this.sealed(index, digest, inner.bytes())),
    };
  }

  /** The KV store's snapshot bytes alone (for state comparisons). */
  kvSnapshot(): Uint8Array {
    return this.kv.snapshot();
  }

  /** Replaces the whole state with a {@link snapshot}'s (a restart or an InstallSnapshot). */
  override restore(bytes: Uint8Array): void {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    super.restore(bytes.subarray(headerBytes));
    this.index = view.getFloat64(0);
    this.digest = view.getUint32(8);
    this.hooks.restored(this.index, this.digest);
    this.hooks.check(() => {
      // The restored store must be the one snapshotted: its own snapshot gives the same bytes.
      this.checks.onState(this.node, this.index, this.kvSnapshot(), 'snapshot restored');
      this.checks.checkReplay(this.node, this.kv, 'snapshot restored');
    });
  }

  private sealed(index: number, digest: number, kv: Uint8Array): Uint8Array {
    const bytes = new Uint8Array(headerBytes + kv.length);
    const view = new DataView(bytes.buffer);
    view.setFloat64(0, index);
    view.setUint32(8, digest);
    bytes.set(kv, headerBytes);
    this.hooks.check(() => this.checks.onState(this.node, index, kv, 'snapshot taken'));
    this.hooks.snapshotTaken();
    return bytes;
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
  // Everything else it carries (log time, quota) stays.
  const { session: _session, ...rest } = entry;
  return { ...e, data: encodeKvEntry(rest) };
}
