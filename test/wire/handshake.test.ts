import { describe, expect, it } from 'vitest';
import { pack } from 'msgpackr';
import { clusterId, nodeId } from '../../src/lib/ids.js';
import { checkHello, checkWelcome, handshakeCodec } from '../../src/wire/handshake.js';
import type { HelloMessage, WelcomeMessage } from '../../src/wire/handshake.js';

const local = { protocolVersion: 1, clusterId: clusterId('c1'), self: nodeId('n1') };
const known = (id: string): boolean => id === 'n2';
const hello: HelloMessage = {
  type: 'Hello',
  protocolVersion: 1,
  clusterId: 'c1',
  nodeId: 'n2',
  to: 'n1',
};
const welcome: WelcomeMessage = {
  type: 'Welcome',
  protocolVersion: 1,
  clusterId: 'c1',
  nodeId: 'n2',
};

describe('handshake', () => {
  it('accepts a matching Hello and names the peer', () => {
    expect(checkHello(local, hello, known)).toEqual({ ok: true, peer: 'n2', version: 1 });
    expect(checkWelcome(local, nodeId('n2'), welcome)).toEqual({
      ok: true,
      peer: 'n2',
      version: 1,
    });
  });

  it('refuses another protocol version, with both versions in the reason', () => {
    const v = checkHello(local, { ...hello, protocolVersion: 2 }, known);
    expect(v).toMatchObject({ ok: false, code: 'version' });
    expect(!v.ok && v.reason).toMatch(/speaks 2, this node 1/);
    expect(checkWelcome(local, nodeId('n2'), { ...welcome, protocolVersion: 0 })).toMatchObject({
      ok: false,
      code: 'version',
    });
  });

  it('refuses another cluster', () => {
    const v = checkHello(local, { ...hello, clusterId: 'other' }, known);
    expect(v).toMatchObject({ ok: false, code: 'cluster' });
    expect(!v.ok && v.reason).toMatch(/"other"/);
  });

  it('refuses an unknown node, a Hello meant for another node, and our own id', () => {
    expect(checkHello(local, { ...hello, nodeId: 'n3' }, known)).toMatchObject({
      ok: false,
      code: 'node',
    });
    const wrongTo = checkHello(local, { ...hello, to: 'n9' }, known);
    expect(!wrongTo.ok && wrongTo.reason).toMatch(/wrong address/);
    expect(checkHello(local, { ...hello, nodeId: 'n1' }, () => true)).toMatchObject({
      ok: false,
      code: 'node',
    });
    expect(checkHello(local, { ...hello, nodeId: 'bad id!' }, () => true)).toMatchObject({
      ok: false,
      code: 'node',
    });
  });

  it('refuses a Welcome from a node other than the one dialed', () => {
    const v = checkWelcome(local, nodeId('n3'), welcome);
    expect(v).toMatchObject({ ok: false, code: 'node' });
  });

  it('reads a Hello with extra fields, so a later version still gets a clear version mismatch', () => {
    const future = handshakeCodec.decode(pack({ ...hello, protocolVersion: 7, features: ['x'] }));
    expect(future.type).toBe('Hello');
    expect(checkHello(local, future as HelloMessage, known)).toMatchObject({ code: 'version' });
  });

  it('agrees on the newest version both sides speak, and an older peer keeps the shared one', () => {
    const newer = { ...local, protocolVersionMax: 3 };
    // Both new: the Hello offers 3, the acceptor agrees on 3.
    expect(checkHello(newer, { ...hello, protocolVersionMax: 3 }, known)).toMatchObject({
      ok: true,
      version: 3,
    });
    // A dialer offering more than the acceptor knows gets the acceptor's newest.
    expect(checkHello(newer, { ...hello, protocolVersionMax: 9 }, known)).toMatchObject({
      version: 3,
    });
    // An older dialer (no protocolVersionMax) or an older acceptor (local without it).
    expect(checkHello(newer, hello, known)).toMatchObject({ ok: true, version: 1 });
    expect(checkHello(local, { ...hello, protocolVersionMax: 3 }, known)).toMatchObject({
      ok: true,
      version: 1,
    });
    // The dialer takes what the acceptor agreed, within what it offered.
    expect(
      checkWelcome(newer, nodeId('n2'), { ...welcome, protocolVersionAgreed: 3 }),
    ).toMatchObject({ ok: true, version: 3 });
    expect(checkWelcome(newer, nodeId('n2'), welcome)).toMatchObject({ ok: true, version: 1 });
    expect(
      checkWelcome(newer, nodeId('n2'), { ...welcome, protocolVersionAgreed: 4 }),
    ).toMatchObject({ ok: false, code: 'version' });
    expect(
      checkWelcome(newer, nodeId('n2'), { ...welcome, protocolVersionAgreed: 0 }),
    ).toMatchObject({ ok: false, code: 'version' });
    expect(
      checkWelcome(local, nodeId('n2'), { ...welcome, protocolVersionAgreed: 3 }),
    ).toMatchObject({ ok: false, code: 'version' });
    // An empty range is refused.
    expect(checkHello(newer, { ...hello, protocolVersionMax: 0 }, known)).toMatchObject({
      ok: false,
      code: 'version',
    });
  });

  it('reads the version fields of a newer Hello, and an older Hello without them', () => {
    const v3 = handshakeCodec.decode(pack({ ...hello, protocolVersionMax: 3 }));
    expect(v3).toMatchObject({ type: 'Hello', protocolVersionMax: 3 });
    const old = handshakeCodec.decode(pack(hello));
    expect(old).not.toHaveProperty('protocolVersionMax');
  });
});
