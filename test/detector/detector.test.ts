/**
 * The detector's shell over real sockets: four members, each a Detector over
 * its own TcpTransport with mutual TLS (node certificates of one cluster CA,
 * as nodes use them) and real timers. Stopping one member's transport
 * (a crash: nothing more goes out or comes in) makes every other member
 * report it `failed`; a member that closes normally is reported `left`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Detector, swimCodec } from '../../src/detector/detector.js';
import type { MemberEvent } from '../../src/detector/core/swim.js';
import type { SwimMessage } from '../../src/detector/core/messages.js';
import { nodeId } from '../../src/lib/ids.js';
import { CertDir } from '../../src/trust/index.js';
import type { CredentialFiles } from '../../src/trust/index.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import type { TcpTlsOptions } from '../../src/transport/tcp-transport.js';
import { tempDir } from '../harness/tmp.js';
import { waitUntil } from '../harness/wait.js';
import { freePort, testCluster } from '../transport/tcp-harness.js';

const ids = ['a', 'b', 'c', 'd'];
const creds = new Map<string, TcpTlsOptions>();
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function load(files: CredentialFiles): TcpTlsOptions {
  return {
    ca: readFileSync(files.ca, 'utf8'),
    cert: readFileSync(files.cert, 'utf8'),
    key: readFileSync(files.key, 'utf8'),
  };
}

beforeAll(async () => {
  const certs = new CertDir(join(tempDir('cohort-swim-tls-'), 'certs'));
  await certs.init(testCluster);
  for (const id of ids) creds.set(id, load(await certs.issue({ kind: 'node', id })));
});

interface Member {
  readonly id: string;
  readonly transport: TcpTransport<SwimMessage>;
  readonly detector: Detector;
  readonly events: MemberEvent[];
}

async function group(): Promise<Member[]> {
  const ports = new Map<string, number>();
  for (const id of ids) ports.set(id, await freePort());
  const book = ids.map((id) => ({ id, address: `127.0.0.1:${ports.get(id)}` }));
  const out: Member[] = [];
  for (const id of ids) {
    const transport = await TcpTransport.start({
      self: nodeId(id),
      clusterId: testCluster,
      codec: swimCodec(),
      listen: { host: '127.0.0.1', port: ports.get(id)! },
      peers: {},
      acceptUnknownPeers: true,
      tls: creds.get(id)!,
    });
    const events: MemberEvent[] = [];
    const detector = Detector.overTransport(transport, {
      self: id,
      address: `127.0.0.1:${ports.get(id)}`,
      members: book,
      periodMs: 200,
      pingTimeoutMs: 80,
    });
    for (const t of ['joined', 'suspect', 'alive', 'failed', 'left'] as const) {
      detector.on(t, (e) => events.push(e));
    }
    cleanups.push(async () => {
      detector.close({ leave: false });
      await transport.close();
    });
    out.push({ id, transport, detector, events });
  }
  return out;
}

describe('Detector over TCP with TLS', () => {
  it('a crashed member is declared failed by every other member', async () => {
    const members = await group();
    // Everyone probes everyone before the crash (links are up).
    await waitUntil('a few probe rounds', () =>
      members.every((m) => m.detector.status().probes >= 6),
    );
    const victim = members[3]!;
    victim.detector.close({ leave: false });
    await victim.transport.close();
    for (const m of members.slice(0, 3)) {
      await waitUntil(`${m.id} sees d failed`, () => m.detector.member('d')?.state === 'failed');
      expect(m.events.filter((e) => e.type === 'failed').map((e) => e.member)).toEqual(['d']);
    }
    // Nobody alive was declared failed.
    for (const m of members.slice(0, 3)) {
      for (const other of members.slice(0, 3)) {
        if (other !== m) expect(m.detector.member(other.id)?.state).toBe('alive');
      }
    }
  });

  it('a member that closes normally is seen as left, not failed', async () => {
    const members = await group();
    await waitUntil('a few probe rounds', () =>
      members.every((m) => m.detector.status().probes >= 3),
    );
    members[0]!.detector.close(); // leave: gossips `left`
    for (const m of members.slice(1)) {
      await waitUntil(`${m.id} sees a left`, () => m.detector.member('a')?.state === 'left');
      expect(m.events.some((e) => e.type === 'failed' && e.member === 'a')).toBe(false);
    }
  });
});
