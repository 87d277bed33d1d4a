/**
 * The health of one backend, pure: active checks with rise/fall thresholds
 * (HAProxy's `inter`/`rise`/`fall` model) and passive ejection by a circuit
 * breaker over consecutive request failures with half-open probes (the
 * breaker of Nygard, *Release It!*, as Envoy's outlier detection applies it
 * per host). Time comes in as `nowMs` arguments; nothing here reads a clock.
 *
 * ```ts
 * const h = new BackendHealth({ rise: 2, fall: 3, ejectFailures: 5, ejectMs: 1_000, ejectMsMax: 30_000 });
 * h.checkResult(false, now); h.checkResult(false, now); h.checkResult(false, now);
 * h.active;                   // 'down' after `fall` failed checks in a row
 * h.requestFailed(now) ×5;    // breaker 'open': no traffic for ejectMs
 * h.breaker(now + 1_000);     // 'half-open': one probe request may go
 * h.requestSucceeded(now);    // the probe answered: 'closed'
 * ```
 *
 * Rules (each has a unit test in test/gateway/core/health.test.ts):
 * 1. Active: a backend starts `up` (traffic flows before the first check
 *    answers); `fall` failed checks in a row take it `down`, `rise`
 *    successful checks in a row bring it back `up`. A success resets the
 *    failure run and a failure the success run.
 * 2. Passive: `ejectFailures` request failures in a row open the breaker
 *    (the backend is ejected); a success resets the run.
 * 3. An open breaker lets nothing through for its ejection time; then it is
 *    half-open: exactly one request (the probe) may go at a time. The probe's
 *    success closes the breaker; its failure opens it again with the
 *    ejection time doubled, up to `ejectMsMax` (repeat offenders stay out
 *    longer). A closed breaker forgets the doubling.
 * 4. An active check that brings a backend back `up` closes its breaker: the
 *    checks proved it answers, so it need not wait out its ejection.
 * 5. A probe that ends neither way (the client left, a request outside the
 *    backend's fault) frees the probe slot without deciding.
 */
import { assert } from '../../lib/assert.js';

/** Settings of {@link BackendHealth}. */
export interface HealthOptions {
  /** Successful checks in a row that bring a down backend up. */
  readonly rise: number;
  /** Failed checks in a row that take an up backend down. */
  readonly fall: number;
  /** Request failures in a row that open the breaker (eject the backend). */
  readonly ejectFailures: number;
  /** How long an opened breaker keeps the backend out, first time. */
  readonly ejectMs: number;
  /** Ceiling of the doubled ejection time. */
  readonly ejectMsMax: number;
}

/** What active checks say. */
export type ActiveState = 'up' | 'down';

/** The breaker's state. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** The health of one backend (see the file comment for the rules). */
export class BackendHealth {
  private activeState: ActiveState = 'up';
  private checkOkRun = 0;
  private checkFailRun = 0;
  private failRun = 0;
  private breakerState: 'closed' | 'open' = 'closed';
  private openUntilMs = 0;
  private currentEjectMs: number;
  private probing = false;
  /** Times the breaker opened (ejections), for status and metrics. */
  ejections = 0;
  /** Times active checks took the backend down. */
  downs = 0;

  constructor(private readonly options: HealthOptions) {
    assert(options.rise >= 1 && options.fall >= 1, 'rise and fall are at least 1');
    assert(options.ejectFailures >= 1, 'ejectFailures is at least 1');
    assert(
      options.ejectMs > 0 && options.ejectMs <= options.ejectMsMax,
      '0 < ejectMs <= ejectMsMax',
    );
    this.currentEjectMs = options.ejectMs;
  }

  /** What active checks say now (rule 1). */
  get active(): ActiveState {
    return this.activeState;
  }

  /** The breaker's state at `nowMs` (rule 3: an open breaker whose time is up is half-open). */
  breaker(nowMs: number): BreakerState {
    if (this.breakerState === 'closed') return 'closed';
    return nowMs >= this.openUntilMs ? 'half-open' : 'open';
  }

  /** When an open breaker turns half-open (meaningful only while open). */
  get openUntil(): number {
    return this.openUntilMs;
  }

  /** Whether a half-open probe is in flight. */
  get probeInFlight(): boolean {
    return this.probing;
  }

  /**
   * Whether a new request may go to this backend at `nowMs`: active up and
   * the breaker closed, or half-open with no probe in flight (rule 3).
   */
  admits(nowMs: number): boolean {
    if (this.activeState === 'down') return false;
    const b = this.breaker(nowMs);
    return b === 'closed' || (b === 'half-open' && !this.probing);
  }

  /**
   * A request is sent at `nowMs`; returns true if it is the half-open probe
   * (the caller reports its outcome like any other request).
   */
  requestStarted(nowMs: number): boolean {
    if (this.breaker(nowMs) === 'half-open' && !this.probing) {
      this.probing = true;
      return true;
    }
    return false;
  }

  /** A request answered (rule 2; a probe's success closes the breaker, rule 3). */
  requestSucceeded(wasProbe: boolean): void {
    this.failRun = 0;
    if (wasProbe) this.probing = false;
    if (this.breakerState === 'open' && wasProbe) this.close();
  }

  /** A request failed because of the backend (refused, reset, timed out, garbage, 5xx). */
  requestFailed(wasProbe: boolean, nowMs: number): void {
    if (wasProbe) {
      this.probing = false;
      // Rule 3: a failed probe re-opens with the ejection time doubled.
      this.currentEjectMs = Math.min(this.options.ejectMsMax, this.currentEjectMs * 2);
      this.open(nowMs);
      return;
    }
    if (this.breakerState === 'open') return; // already out; late failures of earlier requests
    this.failRun++;
    if (this.failRun >= this.options.ejectFailures) this.open(nowMs);
  }

  /** A request ended without saying anything about the backend (rule 5). */
  requestNeutral(wasProbe: boolean): void {
    if (wasProbe) this.probing = false;
  }

  /** One active check's result (rule 1; rule 4 when it brings the backend up). */
  checkResult(ok: boolean): void {
    if (ok) {
      this.checkFailRun = 0;
      this.checkOkRun++;
      if (this.activeState === 'down' && this.checkOkRun >= this.options.rise) {
        this.activeState = 'up';
        this.close();
      }
      return;
    }
    this.checkOkRun = 0;
    this.checkFailRun++;
    if (this.activeState === 'up' && this.checkFailRun >= this.options.fall) {
      this.activeState = 'down';
      this.downs++;
    }
  }

  private open(nowMs: number): void {
    this.breakerState = 'open';
    this.openUntilMs = nowMs + this.currentEjectMs;
    this.failRun = 0;
    this.ejections++;
  }

  private close(): void {
    this.breakerState = 'closed';
    this.failRun = 0;
    this.probing = false;
    this.currentEjectMs = this.options.ejectMs;
  }
}
