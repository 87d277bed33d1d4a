/**
 * The adapter that lets a {@link RaftNode} drive the KV store's pure
 * {@link KvStateMachine}: a Raft entry's data is one MessagePack-encoded
 * {@link KvEntry}; `apply` decodes it and applies it. Undecodable data is
 * refused as a result (DECODE_ERROR), never thrown: every replica refuses
 * the same bytes the same way, so replicas cannot diverge over it.
 *
 * ```ts
 * const sm = new KvRaftStateMachine();
 * const node = await RaftNode.start({ ..., stateMachine: sm });
 * const out = await node.propose(encodeKvEntry({ command: { type: 'put', key, value } }));
 * ```
 */
import { Packr, Unpackr } from 'msgpackr';
import { KvStateMachine } from '../kv/core/state-machine.js';
import type { KvApplied, KvEntry } from '../kv/core/types.js';
import type { Entry } from '../raft/core/types.js';
import type { RaftStateMachine } from '../raft/raft-node.js';

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });

/** Encodes a KV command as the data of a Raft entry. */
export function encodeKvEntry(entry: KvEntry): Uint8Array {
  return packr.pack(entry);
}

/** The KV state machine as a {@link RaftStateMachine} (see the file comment). */
export class KvRaftStateMachine implements RaftStateMachine<KvApplied> {
  /** The store itself (reads go through RaftNode.read to be consistent). */
  kv = new KvStateMachine();

  /** Decodes the entry's command and applies it; undecodable bytes are refused. */
  apply(entry: Entry): KvApplied {
    let decoded: unknown;
    try {
      decoded = unpackr.unpack(entry.data);
    } catch (e) {
      return this.refuse(`entry ${entry.index} is not MessagePack: ${(e as Error).message}`);
    }
    if (typeof decoded !== 'object' || decoded === null || !('command' in decoded)) {
      return this.refuse(`entry ${entry.index} does not hold a KV command`);
    }
    return this.kv.apply(decoded as KvEntry);
  }

  /** The KV snapshot bytes (Raft §7). */
  snapshot(): Uint8Array {
    return this.kv.snapshot();
  }

  /** Replaces the store with a snapshot's. */
  restore(bytes: Uint8Array): void {
    this.kv.restore(bytes);
  }

  private refuse(message: string): KvApplied {
    return {
      ok: false,
      error: { code: 'DECODE_ERROR', message, definite: true, details: {} },
      revision: this.kv.revision,
      duplicate: false,
    };
  }
}
