import { describe, expect, it } from 'vitest';
import { nodeId } from '../../src/lib/ids.js';
import { seededRandom } from '../../src/lib/random.js';
import { Scheduler } from '../../src/sim/scheduler.js';
import { SimNetwork } from '../../src/sim/network.js';
import type { Codec } from '../../src/sim/network.js';
import { Nemesis } from '../../src/sim/nemesis.js';
import type { NemesisAction, NemesisOptions } from '../../src/sim/nemesis.js';
import { describe as render } from '../../src/lib/describe.js';

const codec: Codec<number> = {
  encode: (n) => new Uint8Array([n]),
  decode: (b) => b[0] ?? 0,
};

function world(
  seed: number,
  options: Partial<NemesisOptions> = {},
): {
  sched: Scheduler;
  net: SimNetwork<number>;
  nemesis: Nemesis;
  actions: NemesisAction[];
  maxDownSeen: () => number;
} {
  const sched = new Scheduler();
  const net = new SimNetwork<number>({ scheduler: sched, random: seededRandom(seed), codec });
  const ids = ['a', 'b', 'c', 'd', 'e'].map(nodeId);
  for (const id of ids) net.addNode(id, { onMessage: () => {} });
  const actions: NemesisAction[] = [];
  let maxDown = 0;
  const nemesis = new Nemesis(net, sched, {
    random: seededRandom(seed).fork('nemesis'),
    everyMs: 10,
    untilMs: 5_000,
    ...options,
    onAction: (a) => {
      actions.push(a);
      maxDown = Math.max(maxDown, ids.filter((id) => !net.isUp(id)).length);
    },
  });
  return { sched, net, nemesis, actions, maxDownSeen: () => maxDown };
}

describe('Nemesis', () => {
  it('draws the same schedule from the same seed, a different one from another', () => {
    const run = (seed: number): string => {
      const w = world(seed);
      w.nemesis.start();
      w.sched.run();
      return render(w.actions);
    };
    expect(run(1)).toBe(run(1));
    expect(run(1)).not.toBe(run(2));
  });

  it('applies every kind of action, and stops at untilMs', () => {
    const w = world(3);
    w.nemesis.start();
    w.sched.run();
    expect(Object.keys(w.nemesis.applied())).toEqual([
      'clog',
      'crash',
      'cut',
      'heal',
      'isolate',
      'partition',
      'restart',
    ]);
    expect(w.sched.now()).toBeLessThanOrEqual(5_000);
  });

  it('keeps at most maxDown nodes down, and honours zero weights', () => {
    const w = world(4, { maxDown: 2, weights: { partition: 0, clog: 0 } });
    w.nemesis.start();
    w.sched.run();
    expect(w.maxDownSeen()).toBe(2);
    expect(w.actions.some((a) => a.kind === 'partition' || a.kind === 'clog')).toBe(false);
  });

  it('liftAll heals every link and restarts every node', () => {
    const w = world(5);
    const [a, b] = [nodeId('a'), nodeId('b')];
    w.nemesis.apply({ kind: 'crash', node: a });
    w.nemesis.apply({ kind: 'partition', groups: [[a, b]] });
    expect(w.net.isUp(a)).toBe(false);
    expect(w.net.isCut(b, nodeId('c'))).toBe(true);
    w.nemesis.liftAll();
    expect(w.net.isUp(a)).toBe(true);
    expect(w.net.isCut(b, nodeId('c'))).toBe(false);
  });
});
