import { describe, expect, it } from 'vitest';
import { pack } from 'msgpackr';
import { CheckFailure, runScenario } from '../../src/sim/scenario.js';
import type { Scenario } from '../../src/sim/scenario.js';
import { echoCodec, echoScenario } from '../../src/sim/scenarios/echo.js';
import type { EchoMessage } from '../../src/sim/scenarios/echo.js';
import type { NetworkBugs } from '../../src/sim/network.js';
import { main } from '../../src/sim/cli.js';
import { registerScenario } from '../../src/sim/scenarios.js';
import { CohortError } from '../../src/lib/errors.js';

describe('echo scenario', () => {
  it('the same seed gives a byte-identical trace (same hash), another seed a different one', async () => {
    const a = await runScenario(echoScenario(), { seed: 42 });
    const b = await runScenario(echoScenario(), { seed: 42 });
    const c = await runScenario(echoScenario(), { seed: 43 });
    expect(a.outcome).toBe('ok');
    expect(a.traceHash).toMatch(/^[0-9a-f]{64}$/);
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.counts).toEqual(a.counts);
    expect(c.traceHash).not.toBe(a.traceHash);
  });

  it('keeps every promise across many seeds, with faults actually happening', async () => {
    const totals: Record<string, number> = {};
    for (let seed = 1; seed <= 40; seed++) {
      const r = await runScenario(echoScenario(), { seed });
      expect(r.outcome, `${r.message ?? ''}\n${r.lastEvents.join('\n')}`).toBe('ok');
      for (const [k, v] of Object.entries(r.counts)) totals[k] = (totals[k] ?? 0) + v;
    }
    // The run is not vacuous: every fault kind occurred and deliveries were checked.
    for (const kind of [
      'crash',
      'restart',
      'partition',
      'isolate',
      'cut',
      'clog',
      'clogged',
      'duplicate',
      'drop',
    ]) {
      expect(totals[kind] ?? 0, kind).toBeGreaterThan(0);
    }
    expect(totals['deliveries checked']).toBeGreaterThan(10_000);
    expect(totals['checked delivered after faults lifted']).toBeGreaterThan(100);
  });

  const bugs: [string, NetworkBugs, RegExp][] = [
    ['delivers across partitions', { ignorePartitions: true }, /link was cut|across a cut link/],
    ['corrupts a byte', { corruptPayloads: true }, /differs from what was sent|bad checksum/],
    ['delivers to crashed nodes', { deliverToDownNodes: true }, /down|incarnation/],
    ['duplicates with duplication off', { duplicateAlways: true }, /twice with duplication off/],
  ];
  for (const [what, bug, pattern] of bugs) {
    it(`the checker catches a network that ${what}`, async () => {
      let caught = 0;
      for (let seed = 1; seed <= 10; seed++) {
        const r = await runScenario(echoScenario({ bugs: bug }), { seed });
        if (r.outcome === 'violation') {
          caught++;
          expect(r.message).toMatch(pattern);
        } else {
          expect(r.outcome).toBe('ok');
        }
      }
      expect(caught).toBeGreaterThanOrEqual(3);
    });
  }

  it('the checker catches a network that loses messages with every fault lifted', async () => {
    const r = await runScenario(echoScenario({ bugs: { loseEverything: true } }), { seed: 5 });
    expect(r.outcome).toBe('violation');
    expect(r.message).toMatch(/with every fault lifted, a message was not delivered/);
  });

  it('the codec refuses malformed messages with a CohortError', () => {
    const m: EchoMessage = {
      type: 'Ping',
      from: 'n1',
      to: 'n2',
      inc: 1,
      seq: 1,
      re: 0,
      body: new Uint8Array([1, 2]),
      sum: 3,
    };
    const back = echoCodec.decode(echoCodec.encode(m));
    expect({ ...back, body: new Uint8Array(back.body) }).toEqual(m);
    for (const bytes of [
      new Uint8Array([0xc1]),
      pack({ ...m, type: 'Nope' }),
      pack({ ...m, seq: -1 }),
      pack({ ...m, body: 'text' }),
    ]) {
      expect(() => echoCodec.decode(bytes)).toThrow(CohortError);
    }
  });
});

describe('sim CLI', () => {
  const capture = async (args: string[]): Promise<{ code: number; out: string }> => {
    const lines: string[] = [];
    const code = await main(args, (l) => lines.push(l));
    return { code, out: lines.join('\n') };
  };

  it('runs a seed and prints the seed, the parameters, counts and the trace hash', async () => {
    const a = await capture(['--scenario', 'echo', '--seed', '3']);
    expect(a.code).toBe(0);
    expect(a.out).toMatch(/scenario echo seed 3: ok/);
    expect(a.out).toMatch(/params: \{nodes:\d/);
    expect(a.out).toMatch(/counts: \{/);
    const hash = /trace hash: ([0-9a-f]{64})/.exec(a.out)?.[1];
    expect(hash).toBe((await runScenario(echoScenario(), { seed: 3 })).traceHash);
  });

  it('runs many seeds and counts outcomes', async () => {
    const r = await capture(['--scenario', 'echo', '--seed', '10', '--seeds', '5']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('seeds 10..14: {ok:5 violation:0 error:0}');
  });

  it('prints every trace line with --verbose', async () => {
    const r = await capture(['--scenario', 'echo', '--seed', '2', '--verbose']);
    expect(r.out).toMatch(/^\d+ deliver \{id:\d+/m);
  });

  it('reports a failure with the parameters, the last events and the replay command', async () => {
    const failing: Scenario = {
      name: 'always-fails-test',
      description: 'test scenario',
      run(ctx) {
        ctx.params.knob = 7;
        ctx.scheduler.after(5, 'x', () =>
          ctx.trace.record(ctx.scheduler.now(), 'something', { a: 1 }),
        );
        ctx.scheduler.run();
        throw new CheckFailure('promise broken');
      },
    };
    registerScenario(failing);
    const r = await capture(['--scenario', 'always-fails-test', '--seed', '9']);
    expect(r.code).toBe(1);
    expect(r.out).toContain(
      'FAILED always-fails-test seed 9: violation: CheckFailure: promise broken',
    );
    expect(r.out).toContain('params: {knob:7}');
    expect(r.out).toContain('5 something {a:1}');
    expect(r.out).toContain('replay: npm run sim -- --scenario always-fails-test --seed 9');
    const many = await capture(['--scenario', 'always-fails-test', '--seed', '1', '--seeds', '2']);
    expect(many.out).toContain('{ok:0 violation:2 error:0}');
  });

  it('runs the Raft simulator by default', async () => {
    const r = await capture(['--seed', '4']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/scenario raft seed 4: ok/);
  });

  it('rejects bad usage with exit code 2', async () => {
    expect((await capture(['--scenario', 'nope'])).code).toBe(2);
    expect((await capture(['--seed', 'x'])).code).toBe(2);
    expect((await capture(['--list'])).out).toContain('echo:');
  });
});
