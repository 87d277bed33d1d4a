/**
 * The node logger: one JSON object per line, ISO timestamps, every key once
 * (a line's own `node` does not repeat the bound one), pretty lines on request.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { nodeLogger } from '../../src/node/logger.js';
import { rawKeys } from '../harness/json-lines.js';

function capture(format: 'json' | 'pretty'): {
  lines: string[];
  log: ReturnType<typeof nodeLogger>;
} {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer | string, _enc, done): void {
      lines.push(
        ...String(chunk)
          .split('\n')
          .filter((l) => l !== ''),
      );
      done();
    },
  });
  return { lines, log: nodeLogger({ level: 'info', format, destination }) };
}

describe('nodeLogger', () => {
  it('writes JSON lines with an ISO time and each key once', () => {
    const { lines, log } = capture('json');
    const n1 = log.child({ node: 'n1' }).child({ component: 'transport' });
    n1.warn({ node: 'n2', component: 'x', pid: 3, reason: 'slow' }, 'peer is slow');
    expect(lines).toHaveLength(1);
    const line = lines[0] ?? '';
    const keys = rawKeys(line);
    expect(keys.length).toBe(new Set(keys).size);
    const o = JSON.parse(line) as Record<string, unknown>;
    expect(o).toMatchObject({
      node: 'n1',
      component: 'transport',
      peerNode: 'n2',
      subcomponent: 'x',
      peerPid: 3,
      msg: 'peer is slow',
    });
    expect(o.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('pretty output is readable text, not JSON', () => {
    const { lines, log } = capture('pretty');
    log.child({ node: 'n1' }).info({ term: 3 }, 'node started');
    const all = lines.join('\n');
    expect(all).toMatch(/INFO.*node started/);
    expect(all).toMatch(/term: 3/);
    expect(all).not.toMatch(/^\{"level"/m);
  });
});
