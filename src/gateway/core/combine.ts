/**
 * Replicated calls through the gateway, pure: one request fanned out to N
 * backends, their replies combined by a rule, decided as replies arrive.
 * The same modes as the RPC library's `replicated()` (src/rpc/resilience.ts),
 * but as a step-driven object that also says *how* it decided, so the
 * gateway can put the rule and the outcome in the response's headers.
 *
 * ```ts
 * const c = new Combiner('majority', 3);
 * c.reply(0, { ok: true, digest: 'h1' });   // undefined: not decided yet
 * c.reply(1, { ok: true, digest: 'h1' });   // { kind: 'success', replica: 0, agreed: 2, ... }
 * ```
 *
 * Rules:
 * - `first`: the first success wins; fails when every replica failed.
 * - `majority`: the first digest that more than half of the N replicas
 *   return wins (the reply of the first replica that returned it); fails as
 *   soon as no digest can reach a majority any more.
 * - `all`: succeeds when every replica succeeded (the reply of the lowest
 *   replica; `agreed` says how many match it); fails at the first failure.
 * A failure is `definite` only if no replica succeeded and every failure was
 * definite (otherwise some replica may have done the work).
 */
import { assert } from '../../lib/assert.js';

/** How replies are combined. */
export type CombineMode = 'first' | 'majority' | 'all';

/** Every mode by name. */
export const combineModes: readonly CombineMode[] = ['first', 'majority', 'all'];

/** One replica's reply: a success with a digest of its content, or a failure. */
export type ReplicaReply =
  | { readonly ok: true; readonly digest: string }
  | { readonly ok: false; readonly definite: boolean };

/** The combined outcome. */
export type Combined =
  | {
      readonly kind: 'success';
      /** The replica whose reply is the answer. */
      readonly replica: number;
      /** Replicas whose reply had the answer's digest (so far). */
      readonly agreed: number;
      readonly replied: number;
      readonly failed: number;
      readonly of: number;
    }
  | {
      readonly kind: 'failure';
      readonly definite: boolean;
      readonly agreed: number;
      readonly replied: number;
      readonly failed: number;
      readonly of: number;
    };

/** Combines the replies of `n` replicas by `mode` (see the file comment). */
export class Combiner {
  private readonly replies: (ReplicaReply | undefined)[];
  private decided: Combined | undefined;

  constructor(
    readonly mode: CombineMode,
    readonly n: number,
  ) {
    assert(n >= 1, 'at least one replica');
    this.replies = new Array<ReplicaReply | undefined>(n).fill(undefined);
  }

  /** The decision, once made. */
  get result(): Combined | undefined {
    return this.decided;
  }

  /** Records replica `i`'s reply; returns the decision when this reply makes it (once). */
  reply(i: number, r: ReplicaReply): Combined | undefined {
    assert(i >= 0 && i < this.n && this.replies[i] === undefined, `replica ${i} replied twice`);
    this.replies[i] = r;
    if (this.decided !== undefined) return undefined;
    this.decided = this.decide();
    return this.decided;
  }

  private decide(): Combined | undefined {
    let replied = 0;
    let failed = 0;
    let allDefinite = true;
    const votes = new Map<string, { first: number; count: number }>();
    this.replies.forEach((r, i) => {
      if (r === undefined) return;
      if (!r.ok) {
        failed++;
        if (!r.definite) allDefinite = false;
        return;
      }
      replied++;
      const v = votes.get(r.digest);
      if (v === undefined) votes.set(r.digest, { first: i, count: 1 });
      else v.count++;
    });
    const of = this.n;
    const outstanding = of - replied - failed;
    let best: { first: number; count: number } | undefined;
    for (const v of votes.values()) {
      if (best === undefined || v.count > best.count) best = v;
    }
    const agreed = best?.count ?? 0;
    const fail = (): Combined => ({
      kind: 'failure',
      definite: replied === 0 && allDefinite,
      agreed,
      replied,
      failed,
      of,
    });
    switch (this.mode) {
      case 'first': {
        const winner = this.replies.findIndex((r) => r?.ok === true);
        if (winner >= 0) {
          const digest = (this.replies[winner] as { digest: string }).digest;
          return {
            kind: 'success',
            replica: winner,
            agreed: votes.get(digest)?.count ?? 1,
            replied,
            failed,
            of,
          };
        }
        return outstanding === 0 ? fail() : undefined;
      }
      case 'majority': {
        const need = Math.floor(of / 2) + 1;
        if (best !== undefined && best.count >= need) {
          return { kind: 'success', replica: best.first, agreed, replied, failed, of };
        }
        return agreed + outstanding < need ? fail() : undefined;
      }
      case 'all': {
        if (failed > 0) return fail();
        if (outstanding > 0) return undefined;
        const first = this.replies[0] as { digest: string };
        return {
          kind: 'success',
          replica: 0,
          agreed: votes.get(first.digest)?.count ?? 1,
          replied,
          failed,
          of,
        };
      }
    }
  }
}
