/**
 * The failover rules (src/gateway/core/failover.ts) and the replicated-call
 * combiner (src/gateway/core/combine.ts), one test per rule.
 */
import { describe, expect, it } from 'vitest';
import { Combiner } from '../../../src/gateway/core/combine.js';
import { retryDecision } from '../../../src/gateway/core/failover.js';

const base = { tries: 1, maybeSentRetries: 0, triesMax: 3, msLeft: 1_000 };

describe('retryDecision', () => {
  it('rule 1: a try that never reached the backend is retried, idempotent or not', () => {
    expect(retryDecision({ ...base, phase: 'not-sent', idempotent: false })).toEqual({
      retry: true,
    });
    // Even after a maybe-sent retry was spent: nothing reached that backend.
    expect(
      retryDecision({ ...base, phase: 'not-sent', idempotent: false, maybeSentRetries: 1 }),
    ).toEqual({ retry: true });
  });

  it('rule 2: a try that may have reached the backend is retried only if idempotent, once', () => {
    expect(retryDecision({ ...base, phase: 'maybe-sent', idempotent: false })).toEqual({
      retry: false,
      why: 'not-idempotent',
    });
    expect(retryDecision({ ...base, phase: 'maybe-sent', idempotent: true })).toEqual({
      retry: true,
    });
    expect(
      retryDecision({ ...base, phase: 'maybe-sent', idempotent: true, maybeSentRetries: 1 }),
    ).toEqual({ retry: false, why: 'retried-once' });
  });

  it('rule 3: no retry past triesMax or the deadline', () => {
    expect(retryDecision({ ...base, phase: 'not-sent', idempotent: true, tries: 3 })).toEqual({
      retry: false,
      why: 'tries-exhausted',
    });
    expect(retryDecision({ ...base, phase: 'not-sent', idempotent: true, msLeft: 0 })).toEqual({
      retry: false,
      why: 'deadline',
    });
  });
});

describe('Combiner', () => {
  it('first: the first success in arrival order wins', () => {
    const c = new Combiner('first', 3);
    expect(c.reply(2, { ok: false, definite: true })).toBeUndefined();
    expect(c.reply(1, { ok: true, digest: 'x' })).toMatchObject({ kind: 'success', replica: 1 });
    expect(c.reply(0, { ok: true, digest: 'y' })).toBeUndefined(); // decided once
    expect(c.result).toMatchObject({ replica: 1 });
  });

  it('first: fails when every replica failed; definite only if all were definite', () => {
    const c = new Combiner('first', 2);
    c.reply(0, { ok: false, definite: true });
    expect(c.reply(1, { ok: false, definite: false })).toMatchObject({
      kind: 'failure',
      definite: false,
      failed: 2,
    });
    const d = new Combiner('first', 2);
    d.reply(0, { ok: false, definite: true });
    expect(d.reply(1, { ok: false, definite: true })).toMatchObject({ definite: true });
  });

  it('majority: the first digest more than half agree on wins', () => {
    const c = new Combiner('majority', 3);
    expect(c.reply(0, { ok: true, digest: 'a' })).toBeUndefined();
    expect(c.reply(1, { ok: true, digest: 'b' })).toBeUndefined();
    expect(c.reply(2, { ok: true, digest: 'b' })).toEqual({
      kind: 'success',
      replica: 1,
      agreed: 2,
      replied: 3,
      failed: 0,
      of: 3,
    });
  });

  it('majority: fails as soon as no digest can reach a majority; a reply means indefinite', () => {
    const c = new Combiner('majority', 3);
    c.reply(0, { ok: true, digest: 'a' });
    expect(c.reply(1, { ok: false, definite: true })).toBeUndefined();
    expect(c.reply(2, { ok: true, digest: 'b' })).toMatchObject({
      kind: 'failure',
      definite: false,
      agreed: 1,
    });
    const d = new Combiner('majority', 3);
    d.reply(0, { ok: false, definite: true });
    expect(d.reply(1, { ok: false, definite: true })).toMatchObject({
      kind: 'failure',
      definite: true,
    });
  });

  it('all: succeeds when every replica did, saying how many agree with the first', () => {
    const c = new Combiner('all', 3);
    c.reply(2, { ok: true, digest: 'a' });
    c.reply(0, { ok: true, digest: 'a' });
    expect(c.reply(1, { ok: true, digest: 'b' })).toMatchObject({
      kind: 'success',
      replica: 0,
      agreed: 2,
      of: 3,
    });
  });

  it('all: fails at the first failure', () => {
    const c = new Combiner('all', 3);
    c.reply(0, { ok: true, digest: 'a' });
    expect(c.reply(1, { ok: false, definite: true })).toMatchObject({
      kind: 'failure',
      definite: false,
    });
  });
});
