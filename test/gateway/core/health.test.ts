/**
 * BackendHealth, one test per rule of src/gateway/core/health.ts.
 */
import { describe, expect, it } from 'vitest';
import { BackendHealth } from '../../../src/gateway/core/health.js';

const options = { rise: 2, fall: 3, ejectFailures: 3, ejectMs: 1_000, ejectMsMax: 4_000 };

describe('BackendHealth', () => {
  it('rule 1: starts up; fall failed checks in a row take it down, rise successes bring it up', () => {
    const h = new BackendHealth(options);
    expect(h.active).toBe('up');
    expect(h.admits(0)).toBe(true);
    h.checkResult(false);
    h.checkResult(false);
    h.checkResult(true); // breaks the failure run
    h.checkResult(false);
    h.checkResult(false);
    expect(h.active).toBe('up');
    h.checkResult(false);
    expect(h.active).toBe('down');
    expect(h.downs).toBe(1);
    expect(h.admits(0)).toBe(false);
    h.checkResult(true);
    h.checkResult(false); // breaks the success run
    h.checkResult(true);
    expect(h.active).toBe('down');
    h.checkResult(true);
    expect(h.active).toBe('up');
  });

  it('rule 2: ejectFailures request failures in a row open the breaker; a success resets the run', () => {
    const h = new BackendHealth(options);
    h.requestFailed(false, 0);
    h.requestFailed(false, 0);
    h.requestSucceeded(false);
    h.requestFailed(false, 0);
    h.requestFailed(false, 0);
    expect(h.breaker(0)).toBe('closed');
    h.requestFailed(false, 10);
    expect(h.breaker(10)).toBe('open');
    expect(h.ejections).toBe(1);
    expect(h.admits(500)).toBe(false);
  });

  it('rule 3: half-open after the ejection time, one probe at a time; its success closes', () => {
    const h = new BackendHealth(options);
    for (let i = 0; i < 3; i++) h.requestFailed(false, 0);
    expect(h.breaker(999)).toBe('open');
    expect(h.breaker(1_000)).toBe('half-open');
    expect(h.admits(1_000)).toBe(true);
    expect(h.requestStarted(1_000)).toBe(true); // the probe
    expect(h.admits(1_000)).toBe(false); // one at a time
    expect(h.requestStarted(1_000)).toBe(false);
    h.requestSucceeded(true);
    expect(h.breaker(1_000)).toBe('closed');
    expect(h.admits(1_000)).toBe(true);
  });

  it('rule 3: a failed probe re-opens with the ejection time doubled, capped; closing forgets it', () => {
    const h = new BackendHealth(options);
    for (let i = 0; i < 3; i++) h.requestFailed(false, 0);
    let now = 1_000;
    const waits: number[] = [];
    for (let k = 0; k < 4; k++) {
      expect(h.requestStarted(now)).toBe(true);
      h.requestFailed(true, now);
      waits.push(h.openUntil - now);
      now = h.openUntil;
    }
    expect(waits).toEqual([2_000, 4_000, 4_000, 4_000]);
    expect(h.requestStarted(now)).toBe(true);
    h.requestSucceeded(true);
    for (let i = 0; i < 3; i++) h.requestFailed(false, now);
    expect(h.openUntil - now).toBe(1_000);
  });

  it('rule 3: failures of requests sent before the ejection do not extend it', () => {
    const h = new BackendHealth(options);
    for (let i = 0; i < 3; i++) h.requestFailed(false, 0);
    h.requestFailed(false, 900);
    expect(h.openUntil).toBe(1_000);
    expect(h.ejections).toBe(1);
  });

  it('rule 4: checks bringing a backend back up close its breaker', () => {
    const h = new BackendHealth(options);
    for (let i = 0; i < 3; i++) h.checkResult(false);
    for (let i = 0; i < 3; i++) h.requestFailed(false, 0);
    expect(h.breaker(10)).toBe('open');
    h.checkResult(true);
    h.checkResult(true);
    expect(h.active).toBe('up');
    expect(h.breaker(10)).toBe('closed');
    expect(h.admits(10)).toBe(true);
  });

  it('rule 5: a neutral end frees the probe slot without deciding', () => {
    const h = new BackendHealth(options);
    for (let i = 0; i < 3; i++) h.requestFailed(false, 0);
    expect(h.requestStarted(1_000)).toBe(true);
    h.requestNeutral(true);
    expect(h.breaker(1_000)).toBe('half-open');
    expect(h.requestStarted(1_000)).toBe(true);
  });
});
