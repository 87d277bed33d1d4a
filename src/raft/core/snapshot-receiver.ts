/**
 * A follower's reassembly of a snapshot sent in chunks (Raft §7,
 * InstallSnapshot with `offset` and `done`). Chunks must arrive in order; a
 * chunk out of order is answered with the offset expected next, and a chunk of
 * another snapshot (or from another leader term) restarts the transfer from
 * offset 0. What to do with a complete snapshot (Raft §7 receiver rules 6–8)
 * is replication.ts's job.
 *
 * ```ts
 * const r = new SnapshotReceiver();
 * const got = r.accept(m);                  // m: InstallSnapshot
 * if (got.done) install(m.meta, got.data);  // else answer with got.nextOffset
 * ```
 */
import type { InstallSnapshot } from './messages.js';
import type { SnapshotMeta } from './types.js';

interface Incoming {
  readonly leaderTerm: number;
  readonly meta: SnapshotMeta;
  readonly chunks: Uint8Array[];
  received: number;
  readonly total: number;
}

/** What one chunk achieved: the whole snapshot, or the byte offset the sender should continue from. */
export type ChunkResult =
  | { readonly done: false; readonly nextOffset: number }
  | { readonly done: true; readonly data: Uint8Array };

/** The snapshot being received, if any (see the file header). */
export class SnapshotReceiver {
  private incoming: Incoming | null = null;

  /** Drops a partial snapshot (it is already covered, or its leader's term is over). */
  reset(): void {
    this.incoming = null;
  }

  /** Takes one chunk; copies its bytes (the message's buffer may be reused). */
  accept(m: InstallSnapshot): ChunkResult {
    const meta = m.meta;
    let inc = this.incoming;
    const same =
      inc !== null &&
      inc.meta.index === meta.index &&
      inc.meta.term === meta.term &&
      inc.leaderTerm === m.term &&
      inc.total === m.totalBytes;
    if (inc === null || !same) {
      if (m.offset !== 0) return { done: false, nextOffset: 0 }; // restart from the first chunk
      inc = { leaderTerm: m.term, meta, chunks: [], received: 0, total: m.totalBytes };
      this.incoming = inc;
    }
    if (m.offset !== inc.received) return { done: false, nextOffset: inc.received };
    inc.chunks.push(m.data.slice());
    inc.received += m.data.length;
    if (!m.done) return { done: false, nextOffset: inc.received };
    const data = new Uint8Array(inc.total);
    let at = 0;
    for (const c of inc.chunks) {
      data.set(c, at);
      at += c.length;
    }
    this.incoming = null;
    return { done: true, data };
  }
}
