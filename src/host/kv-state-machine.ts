/**
 * The node's replicated state machine: the KV store's pure
 * {@link KvStateMachine} plus any {@link ReplicatedModule}s sharing the log (see
 * modules.ts). A Raft entry's data is MessagePack: a {@link KvEntry}
 * (`{ command, session? }`) for the store, or `{ module, command }` for a
 * module. Undecodable data and unknown modules are refused as a result
 * (DECODE_ERROR / NOT_FOUND), never thrown: every replica refuses the same
 * bytes the same way, so replicas cannot diverge over it.
 *
 * ```ts
 * const sm = new KvRaftStateMachine([mapReduceModule]);
 * const node = await RaftNode.start({ ..., stateMachine: sm });
 * const out = await node.propose(encodeKvEntry({ command: { type: 'put', key, value } })); // KvApplied
 * const mr = await node.propose(encodeModuleEntry('mapreduce', { type: 'submit', ... })); // { module, result }
 * ```
 *
 * Snapshot: with no modules, the KV store's snapshot bytes as they are; with
 * modules, a MessagePack map `{ format: 'cohort-node/1', kv, modules: { name: bytes } }`.
 * Restore accepts both and replaces every part of the state: the store, and
 * each module from its part, or reset to a fresh state (`ReplicatedModule.reset`)
 * when the snapshot has none for it (it was taken before the module ran, or
 * by a node without modules). Nothing survives from before the restore.
 */
import { Packr } from 'msgpackr';
import { assert } from '../lib/assert.js';
import { CohortError } from '../lib/errors.js';
import { KvStateMachine } from '../kv/core/state-machine.js';
import { encodeKvEntry } from '../kv/core/codec.js';
import type { KvApplied, KvEntry } from '../kv/core/types.js';
import type { Entry } from '../raft/core/types.js';
import type { RaftStateMachine, SnapshotEncoder } from '../raft/raft-node.js';

export { encodeKvEntry };

/** Module names: short identifiers (they are written into every entry and snapshot). */
export const MODULE_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/**
 * The replicated part of a node module (modules.ts's NodeModule adds its
 * start and stop on a running node): what this state machine routes entries
 * to and snapshots.
 */
export interface ReplicatedModule {
  /** Unique per node; tags the module's log entries and snapshot part. */
  readonly name: string;
  /**
   * Applies one committed command. Must be deterministic and must not throw on
   * bad input (return an error result): every replica applies the same bytes.
   */
  apply(command: unknown, entry: Entry): unknown;
  /** The module's whole state as of the last applied entry. */
  snapshot(): Uint8Array;
  /** Replaces the module's state with a snapshot's. */
  restore(bytes: Uint8Array): void;
  /**
   * Replaces the module's state with a fresh one, as before its first entry:
   * the node restored a snapshot that has no part for this module.
   */
  reset(): void;
}

const packr = new Packr({ useRecords: false });
const SNAPSHOT_FORMAT = 'cohort-node/1';
// A wrapped snapshot opens with a 3-entry map whose first key is "format", so
// it is told from the store's own bytes without decoding them.
// Copied out: pack() may return a view of msgpackr's reused buffer.
const WRAPPED_PREFIX = Buffer.from(
  packr.pack({ format: SNAPSHOT_FORMAT, kv: null, modules: null }).subarray(0, 8),
);

function isWrapped(bytes: Uint8Array): boolean {
  return (
    bytes.length >= WRAPPED_PREFIX.length &&
    WRAPPED_PREFIX.equals(bytes.subarray(0, WRAPPED_PREFIX.length))
  );
}

/** What applying a module's entry returns to its proposer. */
export interface ModuleApplied {
  readonly module: string;
  readonly result: unknown;
}

/** What applying any entry returns: the store's result, or a module's. */
export type NodeApplied = KvApplied | ModuleApplied;

/** Encodes a module's command as the data of a Raft entry. */
export function encodeModuleEntry(module: string, command: unknown): Uint8Array {
  return new Uint8Array(packr.pack({ module, command }));
}

/** True if `applied` came from a module (not the KV store). */
export function isModuleApplied(applied: NodeApplied): applied is ModuleApplied {
  return 'module' in applied;
}

/** The node's state machine (see the file comment). */
export class KvRaftStateMachine implements RaftStateMachine<NodeApplied> {
  /** The store itself (reads go through RaftNode.read to be consistent). */
  kv = new KvStateMachine();
  private readonly modules = new Map<string, ReplicatedModule>();

  constructor(modules: readonly ReplicatedModule[] = []) {
    for (const m of modules) {
      assert(MODULE_NAME.test(m.name), `module name ${JSON.stringify(m.name)} is not valid`);
      assert(!this.modules.has(m.name), `module ${m.name} registered twice`);
      this.modules.set(m.name, m);
    }
  }

  /** Decodes the entry and applies it to the store or its module; undecodable bytes are refused. */
  apply(entry: Entry): NodeApplied {
    let decoded: unknown;
    try {
      // A fresh view: msgpackr caches a DataView on the object it decodes.
      decoded = packr.unpack(entry.data.subarray());
    } catch (e) {
      return this.refuse(
        'DECODE_ERROR',
        `entry ${entry.index} is not MessagePack: ${(e as Error).message}`,
      );
    }
    if (typeof decoded !== 'object' || decoded === null || !('command' in decoded)) {
      return this.refuse('DECODE_ERROR', `entry ${entry.index} does not hold a command`);
    }
    if ('module' in decoded) {
      const name = decoded.module;
      const module = typeof name === 'string' ? this.modules.get(name) : undefined;
      if (module === undefined) {
        return this.refuse(
          'NOT_FOUND',
          `entry ${entry.index} is for module ${JSON.stringify(name)}, which this node does not run`,
        );
      }
      return { module: module.name, result: module.apply(decoded.command, entry) };
    }
    return this.kv.apply(decoded as KvEntry);
  }

  /** The snapshot bytes (Raft §7; format in the file comment). */
  snapshot(): Uint8Array {
    const kv = this.kv.snapshot();
    if (this.modules.size === 0) return kv;
    const modules: Record<string, Uint8Array> = {};
    for (const [name, m] of this.modules) modules[name] = m.snapshot();
    return new Uint8Array(packr.pack({ format: SNAPSHOT_FORMAT, kv, modules }));
  }

  /**
   * A snapshot encoded in steps (RaftStateMachine.beginSnapshot): the store's
   * columns are encoded a step at a time while entries keep applying; the
   * modules' states, small, are taken at once, as of the same entry.
   */
  beginSnapshot(): SnapshotEncoder {
    const kvEncoder = this.kv.beginSnapshot();
    const modules: Record<string, Uint8Array> = {};
    for (const [name, m] of this.modules) modules[name] = m.snapshot();
    let out: Uint8Array | null = null;
    return {
      step: (budget) => {
        if (out !== null) return true;
        if (!kvEncoder.step(budget)) return false;
        const kv = kvEncoder.bytes();
        out =
          this.modules.size === 0
            ? kv
            : new Uint8Array(packr.pack({ format: SNAPSHOT_FORMAT, kv, modules }));
        return true;
      },
      bytes: () => {
        assert(out !== null, 'snapshot bytes before the encoding finished');
        return out;
      },
    };
  }

  /**
   * Replaces the store and every module with a snapshot's (a module without
   * a part in it is reset). CORRUPTION on bad bytes: the wrapper and the
   * parts' types are checked and the store decoded before any module
   * changes; a module whose own part is corrupt throws from its restore
   * after the parts before it changed (the node cannot go on either way).
   */
  restore(bytes: Uint8Array): void {
    if (!isWrapped(bytes)) {
      this.kv.restore(bytes);
      for (const m of this.modules.values()) m.reset();
      return;
    }
    let wrapped: unknown;
    try {
      wrapped = packr.unpack(bytes.subarray());
    } catch (e) {
      throw new CohortError('CORRUPTION', 'node snapshot is not MessagePack', { cause: e });
    }
    if (
      typeof wrapped !== 'object' ||
      wrapped === null ||
      (wrapped as { format?: unknown }).format !== SNAPSHOT_FORMAT
    ) {
      throw new CohortError('CORRUPTION', `node snapshot is not in format ${SNAPSHOT_FORMAT}`);
    }
    const { kv, modules } = wrapped as { kv?: unknown; modules?: unknown };
    if (!(kv instanceof Uint8Array) || typeof modules !== 'object' || modules === null) {
      throw new CohortError('CORRUPTION', 'node snapshot lacks its kv or modules part');
    }
    const parts = new Map<ReplicatedModule, Uint8Array | undefined>();
    for (const [name, m] of this.modules) {
      const part = Object.prototype.hasOwnProperty.call(modules, name)
        ? (modules as Record<string, unknown>)[name]
        : undefined;
      if (part !== undefined && !(part instanceof Uint8Array)) {
        throw new CohortError('CORRUPTION', `node snapshot part of module ${name} is not bytes`);
      }
      parts.set(m, part);
    }
    this.kv.restore(kv);
    for (const [m, part] of parts) {
      if (part === undefined) m.reset();
      else m.restore(part);
    }
  }

  private refuse(code: 'DECODE_ERROR' | 'NOT_FOUND', message: string): KvApplied {
    return {
      ok: false,
      error: { code, message, definite: true, details: {} },
      revision: this.kv.revision,
      duplicate: false,
    };
  }
}
