/**
 * Rate-limited log lines: a flood of the same event (a refused connection per
 * millisecond, a bad request per call) logs the first few lines of each
 * window and then one summary, instead of one line per event.
 *
 * ```ts
 * const limited = new LogLimiter(logger, { clock });
 * limited.warn({ remote }, 'refused a connection');   // logged (the first few per window)
 * // ...thousands more within the window are counted, not logged; when the
 * // window ends one line says "4995 more like this suppressed in the last 10 s: refused a connection"
 * limited.close();                                     // logs what is still pending, stops its timers
 * ```
 *
 * Lines are grouped by a key: the message text unless one is given, so use
 * a fixed message and put the variable parts (peer, reason) in the fields.
 * The summary carries the fields of the last suppressed line plus
 * `suppressed` (the count) and `windowMs`.
 */
import type { Clock, TimerHandle } from './clock.js';
import { limits } from './limits.js';

/** One log method in pino's shape: structured fields, then the message. */
export type LogFn = (fields: object, message: string) => void;

/** The levels a {@link LogLimiter} writes to; a pino `Logger` is one. */
export interface LevelLogger {
  readonly debug: LogFn;
  readonly info: LogFn;
  readonly warn: LogFn;
  readonly error: LogFn;
  /** pino's: lines of a disabled level are neither counted nor timed (no timers for a silent logger). */
  readonly isLevelEnabled?: (level: string) => boolean;
}

/** A level of {@link LevelLogger}. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Options of a {@link LogLimiter}. */
export interface LogLimiterOptions {
  /** Time source for the windows and the summary timers. */
  readonly clock: Clock;
  /** Length of a window (default `limits.logRepeatWindowMs`). */
  readonly windowMs?: number;
  /** Lines of one key logged per window before the rest are counted (default `limits.logRepeatBurstMax`). */
  readonly burst?: number;
}

interface Bucket {
  readonly start: number;
  passed: number;
  suppressed: number;
  level: LogLevel;
  fields: object;
  message: string;
  timer: TimerHandle | undefined;
}

/** Key that lines share once `limits.logRepeatKeysMax` distinct keys are live. */
const OVERFLOW_KEY = '\u0000other';

/** Logs the first lines of each key per window and summarises the rest; see the file comment. */
export class LogLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly clock: Clock;
  private readonly windowMs: number;
  private readonly burst: number;
  private closed = false;

  constructor(
    private readonly logger: LevelLogger,
    options: LogLimiterOptions,
  ) {
    this.clock = options.clock;
    this.windowMs = options.windowMs ?? limits.logRepeatWindowMs;
    this.burst = options.burst ?? limits.logRepeatBurstMax;
  }

  /** Lines suppressed so far in the current windows (for tests and metrics). */
  get pending(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.suppressed;
    return n;
  }

  debug(fields: object, message: string, key?: string): void {
    this.log('debug', fields, message, key);
  }

  info(fields: object, message: string, key?: string): void {
    this.log('info', fields, message, key);
  }

  warn(fields: object, message: string, key?: string): void {
    this.log('warn', fields, message, key);
  }

  error(fields: object, message: string, key?: string): void {
    this.log('error', fields, message, key);
  }

  /** Logs `message` at `level` unless its key already used its burst in this window. */
  log(level: LogLevel, fields: object, message: string, key: string = message): void {
    if (this.logger.isLevelEnabled?.(level) === false) return;
    if (this.closed) {
      this.logger[level](fields, message);
      return;
    }
    const now = this.clock.now();
    let k = key;
    let bucket = this.buckets.get(k);
    if (bucket === undefined && this.buckets.size >= limits.logRepeatKeysMax) {
      k = OVERFLOW_KEY;
      bucket = this.buckets.get(k);
    }
    if (bucket !== undefined && now - bucket.start >= this.windowMs) {
      this.summarise(k, bucket);
      bucket = undefined;
    }
    if (bucket === undefined) {
      bucket = { start: now, passed: 0, suppressed: 0, level, fields, message, timer: undefined };
      this.buckets.set(k, bucket);
    }
    if (bucket.passed < this.burst) {
      bucket.passed++;
      this.logger[level](fields, message);
      return;
    }
    bucket.suppressed++;
    bucket.level = level;
    bucket.fields = fields;
    bucket.message = message;
    if (bucket.timer === undefined) {
      const b = bucket;
      b.timer = this.clock.setTimer(Math.max(0, b.start + this.windowMs - now), () => {
        b.timer = undefined;
        if (this.buckets.get(k) === b) this.summarise(k, b);
      });
    }
  }

  /** Logs every pending summary now and stops the timers; later lines are logged unlimited. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [k, b] of [...this.buckets]) this.summarise(k, b);
  }

  /** Ends a bucket's window: one summary line if anything was suppressed. */
  private summarise(key: string, b: Bucket): void {
    this.buckets.delete(key);
    if (b.timer !== undefined) this.clock.clearTimer(b.timer);
    b.timer = undefined;
    if (b.suppressed === 0) return;
    const seconds = Math.max(1, Math.round((this.clock.now() - b.start) / 1000));
    this.logger[b.level](
      { ...b.fields, suppressed: b.suppressed, windowMs: this.windowMs },
      `${b.suppressed} more like this suppressed in the last ${seconds} s: ${b.message}`,
    );
  }
}
