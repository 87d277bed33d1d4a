import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/lib/clock.js';
import { limits } from '../../src/lib/limits.js';
import { LogLimiter } from '../../src/lib/log-limiter.js';
import type { LevelLogger, LogLevel } from '../../src/lib/log-limiter.js';

interface Line {
  readonly level: LogLevel;
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

function recorder(): { logger: LevelLogger; lines: Line[] } {
  const lines: Line[] = [];
  const at =
    (level: LogLevel) =>
    (fields: object, message: string): void => {
      lines.push({ level, fields: fields as Record<string, unknown>, message });
    };
  return {
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
    lines,
  };
}

describe('LogLimiter', () => {
  it('logs the first lines of a window and one summary for the rest of a flood', () => {
    const clock = new VirtualClock();
    const { logger, lines } = recorder();
    const limited = new LogLimiter(logger, { clock, windowMs: 10_000, burst: 3 });
    for (let i = 0; i < 30_000; i++) {
      limited.warn({ remote: `10.0.0.1:${i}` }, 'refused a connection');
      if (i % 2 === 0) clock.advance(0.5); // 30k lines in 7.5 s
    }
    expect(lines).toHaveLength(3);
    expect(limited.pending).toBe(29_997);
    clock.advance(10_000);
    expect(lines).toHaveLength(4);
    expect(lines[3]).toMatchObject({
      level: 'warn',
      message: '29997 more like this suppressed in the last 10 s: refused a connection',
      fields: { suppressed: 29_997, windowMs: 10_000, remote: '10.0.0.1:29999' },
    });
    // A new window lets lines through again.
    limited.warn({}, 'refused a connection');
    expect(lines).toHaveLength(5);
    expect(limited.pending).toBe(0);
  });

  it('limits each key separately and writes no summary when nothing was suppressed', () => {
    const clock = new VirtualClock();
    const { logger, lines } = recorder();
    const limited = new LogLimiter(logger, { clock, windowMs: 1_000, burst: 1 });
    limited.warn({}, 'a');
    limited.warn({}, 'a');
    limited.info({}, 'b');
    limited.info({ n: 1 }, 'b with another text', 'b');
    expect(lines.map((l) => l.message)).toEqual(['a', 'b']);
    clock.advance(1_000);
    expect(lines.map((l) => l.message)).toEqual([
      'a',
      'b',
      '1 more like this suppressed in the last 1 s: a',
      '1 more like this suppressed in the last 1 s: b with another text',
    ]);
    clock.advance(5_000);
    expect(lines).toHaveLength(4);
    expect(clock.pendingCount).toBe(0);
  });

  it('writes pending summaries at close and logs everything after it', () => {
    const clock = new VirtualClock();
    const { logger, lines } = recorder();
    const limited = new LogLimiter(logger, { clock, burst: 1 });
    limited.error({}, 'x');
    limited.error({}, 'x');
    limited.close();
    expect(lines.map((l) => l.message)).toEqual([
      'x',
      `1 more like this suppressed in the last 1 s: x`,
    ]);
    expect(clock.pendingCount).toBe(0);
    limited.error({}, 'x');
    limited.error({}, 'x');
    expect(lines).toHaveLength(4);
  });

  it('ignores lines of a level the logger does not write (no counting, no timers)', () => {
    const clock = new VirtualClock();
    const { logger, lines } = recorder();
    const quiet = { ...logger, isLevelEnabled: (level: string) => level !== 'debug' };
    const limited = new LogLimiter(quiet, { clock, burst: 1 });
    for (let i = 0; i < 10; i++) limited.debug({}, 'chatter');
    expect(limited.pending).toBe(0);
    expect(clock.pendingCount).toBe(0);
    limited.warn({}, 'w');
    expect(lines.map((l) => l.message)).toEqual(['w']);
  });

  it('bounds the keys it tracks', () => {
    const clock = new VirtualClock();
    const { logger, lines } = recorder();
    const limited = new LogLimiter(logger, { clock, burst: 1 });
    for (let i = 0; i < limits.logRepeatKeysMax * 4; i++) limited.warn({}, `line ${i}`);
    // One line per tracked key, plus one for the shared overflow bucket.
    expect(lines).toHaveLength(limits.logRepeatKeysMax + 1);
    expect(limited.pending).toBe(limits.logRepeatKeysMax * 3 - 1);
  });
});
