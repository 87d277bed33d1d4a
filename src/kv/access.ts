/**
 * What a KV request needs permission for, and the interface through which
 * the KV server asks whether its caller has it (the node implements it over
 * the replicated auth store: node/access.ts).
 *
 * ```ts
 * keyNeeds({ type: 'put', key, value, prevKv: true });
 * // [{ access: 'write', key }, { access: 'read', key }]   (prevKv returns the old value)
 * keyNeeds(txn);   // every compare's key (read), and every op of both branches, nested txns too
 * ```
 *
 * The rules (as etcd's): a range or a watch needs read on its key or range;
 * a put needs write on its key, a delete on its range, and read as well when
 * they return the previous value (`prevKv`); a txn needs read on every
 * compared key and whatever each op of **both** branches needs (the branch
 * taken is known only when it applies); revoking a lease needs write on
 * every key attached to it (they are deleted); a lease's time-to-live with
 * its keys needs read on them; compaction needs the `compact` capability.
 *
 * Renewing a lease (keep-alive) needs write on every key attached to it, as
 * revoking does. This rule is cohort's, not etcd's (etcd 3.4 checks a
 * revoke's keys, `checkLeasePuts`, but not a renewal): a renewal decides when
 * those keys are deleted, since they go when the lease expires, so whoever
 * may keep them alive past their owner's intent is writing them. Issue 13
 * asks that "leases' attached keys" be checked; a user may still renew a
 * lease with no keys, or whose keys it may all write.
 */
import type { CallContext } from '../rpc/service.js';
import type { KvCommand, TxnOp } from './core/types.js';

/** One access a request makes: a key (no rangeEnd) or a range [key, rangeEnd) (rangeEnd [0]: to the end). */
export interface KeyNeed {
  readonly access: 'read' | 'write';
  readonly key: Uint8Array;
  readonly rangeEnd?: Uint8Array;
}

/** How the KV server asks whether a call may do what it asks (see the file comment). */
export interface KvAccessControl {
  /** Throws a definite PERMISSION_DENIED naming the key and permission unless the caller may make every access. */
  checkKeys(ctx: CallContext, needs: readonly KeyNeed[]): void;
  /** Throws PERMISSION_DENIED unless the caller holds the capability. */
  checkCapability(ctx: CallContext, capability: 'compact'): void;
  /**
   * The user the caller's sessions belong to (undefined: none, an
   * unauthenticated caller): a session opened by a user is named
   * `<user>/<n>`, and only that user may use or end it.
   */
  sessionOwner(ctx: CallContext): string | undefined;
}

function need(
  access: 'read' | 'write',
  r: { key: Uint8Array; rangeEnd?: Uint8Array | undefined },
): KeyNeed {
  return r.rangeEnd === undefined
    ? { access, key: r.key }
    : { access, key: r.key, rangeEnd: r.rangeEnd };
}

function opNeeds(op: TxnOp | KvCommand, out: KeyNeed[]): void {
  switch (op.type) {
    case 'range':
      out.push(need('read', op));
      return;
    case 'put':
      out.push(need('write', { key: op.key }));
      if (op.prevKv === true) out.push(need('read', { key: op.key }));
      return;
    case 'deleteRange':
      out.push(need('write', op));
      if (op.prevKv === true) out.push(need('read', op));
      return;
    case 'txn':
      for (const c of op.compare) out.push(need('read', c));
      for (const o of op.success) opNeeds(o, out);
      for (const o of op.failure) opNeeds(o, out);
      return;
    case 'compact':
    case 'leaseGrant':
    case 'leaseRevoke':
    case 'leaseKeepAlive':
    case 'leaseCheckpoint':
    case 'leaseExpire':
    case 'sessionOpen':
    case 'sessionEnd':
      // Not about keys given in the request (lease revoke's keys: KvServer; compaction: a capability).
      return;
  }
}

/** The key accesses a range, put, delete or txn needs (nothing for other commands). */
export function keyNeeds(command: TxnOp | KvCommand): KeyNeed[] {
  const out: KeyNeed[] = [];
  opNeeds(command, out);
  return out;
}
