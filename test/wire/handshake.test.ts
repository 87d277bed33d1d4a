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
    expect(checkHello(local, hello, known)).toEqual({ ok: true, peer: 'n2' });
    expect(checkWelcome(local, nodeId('n2'), welcome)).toEqual({ ok: true, peer: 'n2' });
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
});
