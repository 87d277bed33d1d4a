/**
 * The test suite's rules about time (vitest.config.ts, test/harness/wait.ts):
 * seeded simulations run with no wall-clock limit, and no other test carries a
 * limit that a loaded machine could reach (vitest's hang guard is the only one).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { globSync } from 'tinyglobby';
import { describe, expect, it } from 'vitest';
import config from '../../vitest.config.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));

interface Project {
  readonly test: {
    readonly name: string;
    readonly include: string[];
    readonly exclude?: string[];
    readonly testTimeout?: number;
  };
}

function project(name: string): Project['test'] {
  const projects = (config.test?.projects ?? []) as unknown as Project[];
  const p = projects.find((x) => x.test.name === name);
  if (p === undefined) throw new Error(`no vitest project ${name}`);
  return p.test;
}

/** The hang guard below which no test may set its own limit. */
const guardMs = config.test?.testTimeout ?? 0;

/** Test files matched by `include` minus `exclude`, repository-relative. */
function files(p: Project['test']): string[] {
  return globSync(p.include, { cwd: repo, ignore: p.exclude ?? [] }).sort();
}

describe('test timeouts', () => {
  it('runs every seeded simulation with no wall-clock limit', () => {
    const sim = project('sim');
    expect(sim.testTimeout).toBe(0);
    const simFiles = files(sim);
    for (const f of [
      'test/sim/raft/seeds-a.test.ts',
      'test/sim/kv/seeds-a.test.ts',
      'test/sim/raft/bugs.test.ts',
      'test/raft/storage/sim-durability.test.ts',
    ]) {
      expect(simFiles).toContain(f);
    }
    // Each test file runs in exactly one project.
    const main = files(project('main'));
    expect(main.filter((f) => simFiles.includes(f))).toEqual([]);
    const all = globSync(['test/**/*.test.ts', 'examples/**/*.test.ts'], {
      cwd: repo,
      ignore: ['**/node_modules/**'],
    });
    expect([...simFiles, ...main].sort()).toEqual(all.sort());
  });

  it('gives other tests only a hang guard, and no test a shorter limit of its own', () => {
    expect(guardMs).toBeGreaterThanOrEqual(600_000);
    expect(config.test?.hookTimeout).toBe(guardMs);
    expect(project('main').testTimeout).toBeUndefined();
    // A third argument to `it` (`}, 20_000);`, or on a line of its own as prettier
    // breaks a long call) or a `timeout` option of vi.waitFor or spawnSync: a limit a
    // busy machine can reach. Wait for conditions instead (test/harness/wait.ts).
    const limits = /^\s*\},\s*(\d[\d_]*),?\s*\);\s*$|\btimeout:\s*(\d[\d_]*)/gm;
    const found: string[] = [];
    for (const f of globSync(['test/**/*.ts', 'examples/**/*.ts'], { cwd: repo })) {
      const text = readFileSync(`${repo}${f}`, 'utf8');
      for (const m of text.matchAll(limits)) {
        const ms = Number((m[1] ?? m[2] ?? '').replaceAll('_', ''));
        // A condition wait's own bound (`until(what, () => {...}, 120_000)`) is the cure, not a limit.
        if (m[1] !== undefined && conditionWaits.has(callee(text, m.index))) continue;
        if (ms > 0 && ms < guardMs) found.push(`${f}: ${m[0].trim()}`);
      }
    }
    expect(found).toEqual([]);
  });

  it('gives every vi.waitFor and expect.poll a bound of its own (their default, 1 s, is one a busy machine reaches)', () => {
    const calls = /\bvi\s*\.\s*waitFor\s*\(|\bexpect\s*\.\s*poll\s*\(/g;
    const found: string[] = [];
    let seen = 0;
    for (const f of globSync(['test/**/*.ts', 'examples/**/*.ts'], { cwd: repo })) {
      const text = readFileSync(`${repo}${f}`, 'utf8');
      for (const m of text.matchAll(calls)) {
        seen++;
        const args = callArguments(text, m.index + m[0].length);
        if (!/\btimeout\s*:/.test(args)) found.push(`${f}: ${m[0].replace(/\s+/g, '')}${args}`);
      }
    }
    expect(seen).toBeGreaterThan(0); // the scan finds the calls (this file's patterns aside)
    expect(found).toEqual([]);
  });
});

/** Helpers that wait for a condition (test/harness/wait.ts and its wrappers). */
const conditionWaits = new Set(['until', 'waitUntil', 'waitFor']);

/** The name of the innermost call whose arguments contain `at` ('' if not a plain name). */
function callee(text: string, at: number): string {
  let depth = 0;
  for (let i = at - 1; i >= 0; i--) {
    if (text[i] === ')') depth++;
    else if (text[i] === '(' && depth-- === 0)
      return /([\w.]+)\s*$/.exec(text.slice(0, i))?.[1] ?? '';
  }
  return '';
}

/** The text of a call's arguments, from just after its `(` to its matching `)` (parentheses counted). */
function callArguments(text: string, from: number): string {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return text.slice(from, i);
  }
  return text.slice(from);
}
