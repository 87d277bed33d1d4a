/**
 * The replicated state machine of the Raft simulator: a small key-value map
 * driven by commands carried in `normal` log entries, plus a running digest of
 * every entry applied (index, term, kind, data). Two replicas that applied the
 * same entries up to an index have the same digest there, so comparing digests
 * per index checks state machine safety over the whole prefix, including state
 * restored from a snapshot (which carries the index and digest).
 *
 * ```ts
 * const data = encodeCommand({ f: 'put', key: 'a', value: 'v1', client: 1, seq: 3 });
 * await raftNode.propose(data);             // { f: 'put' }, what MapMachine.apply returned
 * const sm = new MapMachine(hooks);         // RaftNode's state machine; hooks feed the invariants
 * const snap = sm.snapshot();               // bytes for log compaction
 * other.restore(snap);                      // other.digest === sm.digest
 * ```
 */
import type { Entry } from '../../raft/core/types.js';
import type { RaftStateMachine } from '../../raft/raft-node.js';
import type { KvInput, KvOutput } from '../checkers/models.js';

/**
 * What a simulated node's state machine reports, so the invariants can check
 * state machine safety (Raft §5.4.3) on the production shell.
 */
export interface SimMachineHooks {
  /** After each entry applied, with the digest of every entry applied so far. */
  applied(e: Entry, digest: number): void;
  /** After the whole state was replaced by a snapshot's, holding entries up to `index` with `digest`. */
  restored(index: number, digest: number): void;
  /** After a snapshot of the state was taken (for log compaction). */
  snapshotTaken(): void;
  /**
   * Runs a check of the state machine's own (RaftNode calls it from promise
   * callbacks): a failure is recorded and reported after the event.
   */
  check(fn: () => void): void;
}

/**
 * A state machine the production shell drives in the simulator: what
 * RaftNode applies (normal entries only; noop and configuration entries are
 * its own business, so indexes skip), plus the index of the last entry
 * applied and a digest of the entries applied, both carried inside its
 * snapshots so a replica restored from one is checked like one that applied.
 */
export interface SimStateMachine<Out> extends RaftStateMachine<Out> {
  readonly index: number;
  readonly digest: number;
}

/** Makes a node's state machine for one incarnation; it must report through `hooks`. */
export type SimStateMachineFactory<SM> = (hooks: SimMachineHooks) => SM;

/** A write command of the workload: put or compare-and-set on one key. */
export type KvCommand =
  | {
      readonly f: 'put';
      readonly key: string;
      readonly value: string;
      readonly client: number;
      readonly seq: number;
    }
  | {
      readonly f: 'cas';
      readonly key: string;
      readonly expected: string | null;
      readonly value: string;
      readonly client: number;
      readonly seq: number;
    };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a command as the data of a `normal` entry (JSON: readable in traces). */
export function encodeCommand(c: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(c));
}

/** Decodes entry data written by {@link encodeCommand}. */
export function decodeCommand(data: Uint8Array): KvCommand {
  return JSON.parse(decoder.decode(data)) as KvCommand;
}

/** The checker's view of a command (its input, without client bookkeeping). */
export function commandInput(c: KvCommand): KvInput {
  return c.f === 'put'
    ? { f: 'put', key: c.key, value: c.value }
    : { f: 'cas', key: c.key, expected: c.expected, value: c.value };
}

/** FNV-1a over 32 bits, folded with more input. */
function fnv(h: number, x: number): number {
  return Math.imul(h ^ x, 16777619) >>> 0;
}

/** Digest after applying `e` to a replica whose digest was `digest`. */
export function digestStep(digest: number, e: Entry): number {
  let h = fnv(digest, e.index);
  h = fnv(h, e.term);
  h = fnv(h, e.kind === 'normal' ? 1 : e.kind === 'noop' ? 2 : 3);
  for (let i = 0; i < e.data.length; i++) h = fnv(h, e.data[i] as number);
  return h;
}

interface SnapshotBody {
  readonly index: number;
  readonly digest: number;
  readonly kv: [string, string][];
}

/** Applies one encoded put or cas to `kv`. */
export function applyCommand(kv: Map<string, string>, data: Uint8Array): KvOutput {
  const c = decodeCommand(data);
  if (c.f === 'put') {
    kv.set(c.key, c.value);
    return { f: 'put' };
  }
  const cur = kv.get(c.key) ?? null;
  if (cur !== c.expected) return { f: 'cas', ok: false };
  kv.set(c.key, c.value);
  return { f: 'cas', ok: true };
}

/**
 * The key-value map plus the applied index and digest, as RaftNode's state
 * machine (it sees `normal` entries only).
 */
export class MapMachine implements SimStateMachine<KvOutput> {
  private kv = new Map<string, string>();
  /** Digest of every entry applied so far (see the file header). */
  digest = 0x811c9dc5;
  /** Index of the last entry applied (or of the snapshot restored). */
  index = 0;

  constructor(private readonly hooks: SimMachineHooks) {}

  /** Applies one committed command; returns its result for the proposer. */
  apply(e: Entry): KvOutput {
    this.index = e.index;
    this.digest = digestStep(this.digest, e);
    this.hooks.applied(e, this.digest);
    return applyCommand(this.kv, e.data);
  }

  /** The value of `key`, null if absent (a read served after ReadIndex). */
  get(key: string): string | null {
    return this.kv.get(key) ?? null;
  }

  /** Serialises the state (keys sorted, so equal states give equal bytes). */
  snapshot(): Uint8Array {
    const body: SnapshotBody = {
      index: this.index,
      digest: this.digest,
      kv: [...this.kv.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)),
    };
    this.hooks.snapshotTaken();
    return encoder.encode(JSON.stringify(body));
  }

  /** Replaces the state with a {@link snapshot}'s. */
  restore(data: Uint8Array): void {
    const body = JSON.parse(decoder.decode(data)) as SnapshotBody;
    this.kv = new Map(body.kv);
    this.digest = body.digest;
    this.index = body.index;
    this.hooks.restored(this.index, this.digest);
  }
}
