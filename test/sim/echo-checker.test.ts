// Unit tests of the echo scenario's NetworkChecker: each promise it checks
// fails when broken (the scenario tests show it passes on a correct network).
import { describe, expect, it } from 'vitest';
import { nodeId } from '../../src/lib/ids.js';
import type { NodeId } from '../../src/lib/ids.js';
import { CheckFailure } from '../../src/sim/scenario.js';
import { echoChecksum, NetworkChecker } from '../../src/sim/scenarios/echo.js';
import type { EchoMessage } from '../../src/sim/scenarios/echo.js';

const [a, b, c] = ['a', 'b', 'c'].map(nodeId) as [NodeId, NodeId, NodeId];

/** A well-formed message a → b (valid checksum unless `sum` is overridden). */
function msg(seq: number, over: Partial<EchoMessage> = {}): EchoMessage {
  const base = {
    type: 'Ping' as const,
    from: a as string,
    to: b as string,
    inc: 1,
    seq,
    re: 0,
    body: new Uint8Array([seq & 0xff]),
    ...over,
  };
  return { ...base, sum: over.sum ?? echoChecksum(base) };
}

function checker(options: { fifo?: boolean; dup?: boolean } = {}): NetworkChecker {
  return new NetworkChecker([a, b, c], options.fifo ?? false, () => options.dup ?? false);
}

/** The CheckFailure message `fn` throws, or 'no failure'. */
function failure(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof CheckFailure) return err.message;
    throw err;
  }
  return 'no failure';
}

describe('NetworkChecker', () => {
  it('accepts a correct delivery', () => {
    const ch = checker();
    ch.noteSend(msg(1), 0);
    expect(failure(() => ch.noteDelivery(b, 1, a, msg(1), 5))).toBe('no failure');
    expect(ch.deliveries).toBe(1);
  });

  it('flags a message never sent, a changed one and a bad checksum', () => {
    expect(failure(() => checker().noteDelivery(b, 1, a, msg(1), 5))).toMatch(/never sent/);
    const changed = checker();
    changed.noteSend(msg(1), 0);
    const other = msg(1, { body: new Uint8Array([9]) });
    expect(failure(() => changed.noteDelivery(b, 1, a, other, 5))).toMatch(/differs/);
    const badSum = checker();
    badSum.noteSend(msg(1, { sum: 12345 }), 0);
    expect(failure(() => badSum.noteDelivery(b, 1, a, msg(1, { sum: 12345 }), 5))).toMatch(
      /bad checksum/,
    );
  });

  it('flags misrouting', () => {
    const ch = checker();
    ch.noteSend(msg(1), 0);
    expect(failure(() => ch.noteDelivery(c, 1, a, msg(1), 5))).toMatch(/misrouted/);
    expect(failure(() => ch.noteDelivery(b, 1, c, msg(1), 5))).toMatch(/misrouted/);
  });

  it('flags delivery to or from a down node and to a later incarnation', () => {
    const toDown = checker();
    toDown.noteSend(msg(1), 0);
    toDown.noteCrash(b);
    expect(failure(() => toDown.noteDelivery(b, 1, a, msg(1), 5))).toMatch(/to b while it is down/);
    const fromDown = checker();
    fromDown.noteSend(msg(1), 0);
    fromDown.noteCrash(a);
    expect(failure(() => fromDown.noteDelivery(b, 1, a, msg(1), 5))).toMatch(/from a while/);
    const restarted = checker();
    restarted.noteSend(msg(1), 0);
    restarted.noteCrash(b);
    restarted.noteRestart(b);
    expect(failure(() => restarted.noteDelivery(b, 2, a, msg(1), 5))).toMatch(/incarnation 2/);
  });

  it('flags delivery across a cut link, of a message sent while cut, and over a clogged link', () => {
    const cut = checker();
    cut.noteSend(msg(1), 0);
    cut.noteCut(a, b);
    expect(failure(() => cut.noteDelivery(b, 1, a, msg(1), 5))).toMatch(/across a cut link/);

    const sentCut = checker();
    sentCut.notePartition([[a]]);
    sentCut.noteSend(msg(1), 0);
    sentCut.noteHeal();
    expect(failure(() => sentCut.noteDelivery(b, 1, a, msg(1), 5))).toMatch(/sent while/);

    const clogged = checker();
    clogged.noteSend(msg(1), 0);
    clogged.noteClog(a, b, 50);
    expect(failure(() => clogged.noteDelivery(b, 1, a, msg(1), 49))).toMatch(/clogged until 50/);
    expect(failure(() => clogged.noteDelivery(b, 1, a, msg(1), 50))).toBe('no failure');
  });

  it('flags duplicates unless duplication was on when sent, and never allows three copies', () => {
    const off = checker();
    off.noteSend(msg(1), 0);
    off.noteDelivery(b, 1, a, msg(1), 5);
    expect(failure(() => off.noteDelivery(b, 1, a, msg(1), 6))).toMatch(/twice/);
    const on = checker({ dup: true });
    on.noteSend(msg(1), 0);
    on.noteDelivery(b, 1, a, msg(1), 5);
    on.noteDelivery(b, 1, a, msg(1), 6);
    expect(failure(() => on.noteDelivery(b, 1, a, msg(1), 7))).toMatch(/3 times/);
  });

  it('flags a FIFO violation only when FIFO is promised', () => {
    for (const fifo of [true, false]) {
      const ch = checker({ fifo });
      ch.noteSend(msg(1), 0);
      ch.noteSend(msg(2), 0);
      ch.noteDelivery(b, 1, a, msg(2), 5);
      const f = failure(() => ch.noteDelivery(b, 1, a, msg(1), 6));
      if (fifo) expect(f).toMatch(/FIFO/);
      else expect(f).toBe('no failure');
    }
  });

  it('flags a sender reusing a number', () => {
    const ch = checker();
    ch.noteSend(msg(1), 0);
    expect(failure(() => ch.noteSend(msg(1), 1))).toMatch(/reused/);
  });

  it('checks that everything sent after faults lifted was delivered', () => {
    const ch = checker();
    ch.noteSend(msg(1), 100);
    expect(failure(() => ch.checkAllDelivered((t) => t >= 100))).toMatch(/not delivered/);
    expect(ch.checkAllDelivered((t) => t < 100)).toBe(0);
  });
});
