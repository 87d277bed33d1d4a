/** Node configuration: precedence flags > env > file, and a clear error naming the field for each bad input. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KindGuard } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { isCohortError } from '../../src/lib/errors.js';
import type { ClusterId, NodeId } from '../../src/lib/ids.js';
import { nodeConfigFileSchema, nodeOptions, resolveNodeConfig } from '../../src/node/config.js';
import { envOf, flagOf } from '../../src/node/options.js';
import type { ConfigField, ConfigSources, NodeConfig } from '../../src/node/config.js';
import type { PeerAddress } from '../../src/transport/tcp-transport.js';
import { tempDir } from '../harness/tmp.js';

const base = {
  id: 'n1',
  dataDir: 'data/n1',
  listen: '127.0.0.1:7101',
  rpc: '127.0.0.1:7201',
  peers: 'n2=127.0.0.1:7102,n3=127.0.0.1:7103',
  insecure: true,
};

function refusal(
  sources: ConfigSources,
  resolveWith: (s: ConfigSources) => unknown = resolveNodeConfig,
): { field: unknown; message: string } {
  try {
    resolveWith(sources);
  } catch (e) {
    if (!isCohortError(e)) throw e;
    expect(e.code).toBe('INVALID_ARGUMENT');
    return { field: e.details.field, message: e.message };
  }
  throw new Error('the configuration was accepted');
}

function tempFile(content: string): string {
  const path = join(tempDir('cohort-config-'), 'node.json');
  writeFileSync(path, content);
  return path;
}

describe('node config', () => {
  it('parses flags and fills in defaults', () => {
    const c = resolveNodeConfig({ flags: base, env: {}, cwd: '/srv' });
    expect(c.id).toBe('n1');
    expect(c.dataDir).toBe('/srv/data/n1');
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 7101 });
    expect([...c.peers]).toEqual([
      ['n2', { host: '127.0.0.1', port: 7102 }],
      ['n3', { host: '127.0.0.1', port: 7103 }],
    ]);
    expect([c.clusterId, c.tickMs, c.electionTicks, c.logLevel, c.walSync]).toEqual([
      'cohort-local',
      20,
      10,
      'info',
      'auto',
    ]);
  });

  it('takes the WAL sync mode from the flag or COHORT_WAL_SYNC', () => {
    expect(resolveNodeConfig({ flags: { ...base, walSync: 'inline' }, env: {} }).walSync).toBe(
      'inline',
    );
    expect(resolveNodeConfig({ flags: base, env: { COHORT_WAL_SYNC: 'inline' } }).walSync).toBe(
      'inline',
    );
    expect(resolveNodeConfig({ flags: base, env: { COHORT_WAL_SYNC: 'thread' } }).walSync).toBe(
      'thread',
    );
  });

  it('takes repair from --repair or COHORT_REPAIR (default off), refusing other values', () => {
    expect(resolveNodeConfig({ flags: base, env: {} }).repair).toBe(false);
    expect(resolveNodeConfig({ flags: { ...base, repair: true }, env: {} }).repair).toBe(true);
    expect(resolveNodeConfig({ flags: base, env: { COHORT_REPAIR: '1' } }).repair).toBe(true);
    expect(resolveNodeConfig({ flags: base, env: { COHORT_REPAIR: 'false' } }).repair).toBe(false);
    expect(refusal({ flags: base, env: { COHORT_REPAIR: 'yes please' } })).toMatchObject({
      field: 'repair',
      message: expect.stringContaining('repair (COHORT_REPAIR): expected true or false') as unknown,
    });
  });

  it('reads optional peer RPC addresses after a slash (a port on the same host, or host:port)', () => {
    const c = resolveNodeConfig({
      flags: { ...base, peers: 'n2=127.0.0.1:7102/7202,n3=10.0.0.3:7103/10.0.0.9:7203,n4=h:1' },
      env: {},
    });
    expect(c.peers.get('n3' as never)).toEqual({ host: '10.0.0.3', port: 7103 });
    expect([...c.peerRpc]).toEqual([
      ['n2', { host: '127.0.0.1', port: 7202 }],
      ['n3', { host: '10.0.0.9', port: 7203 }],
    ]);
    expect(resolveNodeConfig({ flags: base, env: {} }).peerRpc.size).toBe(0);
  });

  it('takes flags over COHORT_* env over the config file', () => {
    const file = tempFile(
      JSON.stringify({ clusterId: 'from-file', tickMs: 50, electionTicks: 7, logLevel: 'warn' }),
    );
    const c = resolveNodeConfig({
      flags: { ...base, tickMs: '30', config: file },
      env: { COHORT_TICK_MS: '40', COHORT_ELECTION_TICKS: '12' },
    });
    expect([c.tickMs, c.electionTicks, c.clusterId, c.logLevel]).toEqual([
      30,
      12,
      'from-file',
      'warn',
    ]);
  });

  it('reads everything from env and a file named by COHORT_CONFIG', () => {
    const file = tempFile(
      JSON.stringify({ peers: { n2: '127.0.0.1:7102' }, rpc: '127.0.0.1:7201', tickMs: 25 }),
    );
    const c = resolveNodeConfig({
      flags: {},
      env: {
        COHORT_ID: 'n1',
        COHORT_DATA_DIR: '/d',
        COHORT_LISTEN: '127.0.0.1:7101',
        COHORT_CONFIG: file,
        COHORT_TLS_CA: '/certs/ca.crt',
        COHORT_TLS_CERT: '/certs/node-n1.crt',
        COHORT_TLS_KEY: '/certs/node-n1.key',
      },
    });
    expect([c.id, c.dataDir, c.tickMs, [...c.peers.keys()]]).toEqual(['n1', '/d', 25, ['n2']]);
    expect([c.insecure, c.tlsCa, c.tlsCert, c.tlsKey]).toEqual([
      false,
      '/certs/ca.crt',
      '/certs/node-n1.crt',
      '/certs/node-n1.key',
    ]);
  });

  it('runs over TLS unless told --insecure, and not both', () => {
    const { insecure: _, ...secure } = base;
    const missing = refusal({ flags: { ...secure, tlsCa: 'ca.crt' }, env: {} });
    expect(missing.field).toBe('tlsCert');
    expect(missing.message).toMatch(
      /a node runs over mutual TLS: give --tls-ca, --tls-cert and --tls-key/,
    );
    expect(missing.message).toMatch(/or --insecure/);
    const both = refusal({ flags: { ...base, tlsCa: 'ca.crt' }, env: {} });
    expect(both.field).toBe('insecure');
    const ok = resolveNodeConfig({
      flags: { ...secure, tlsCa: 'ca.crt', tlsCert: 'n1.crt', tlsKey: 'n1.key' },
      env: {},
      cwd: '/srv',
    });
    expect([ok.insecure, ok.tlsCa, ok.tlsKey]).toEqual([false, '/srv/ca.crt', '/srv/n1.key']);
  });

  it.each([
    ['listen', { listen: '127.0.0.1:99999' }, /listen \(--listen\): port must be an integer/],
    ['listen', { listen: '127.0.0.1' }, /expected host:port/],
    ['rpc', { rpc: 'localhost:http' }, /rpc \(--rpc\)/],
    ['rpc', { rpc: '127.0.0.1:7101' }, /must differ from listen/],
    ['peers', { peers: 'n2:127.0.0.1:7102' }, /expected id=host:port/],
    ['peers.n2', { peers: 'n2=127.0.0.1:0' }, /peers\.n2/],
    ['peers', { peers: 'n2=127.0.0.1:7102,n2=127.0.0.1:7103' }, /listed twice/],
    ['peers', { peers: 'n1=127.0.0.1:7102' }, /must not list the node itself/],
    ['peers', { peers: 'bad id=127.0.0.1:7102' }, /bad node id/],
    ['peers.n2.rpc', { peers: 'n2=127.0.0.1:7102/0' }, /peers\.n2\.rpc/],
    ['peers.n2.rpc', { peers: 'n2=127.0.0.1:7102/host' }, /peers\.n2\.rpc/],
    ['id', { id: 'no spaces' }, /id \(--id\)/],
    ['tickMs', { tickMs: 'fast' }, /expected an integer/],
    ['logLevel', { logLevel: 'loud' }, /expected one of/],
    ['walSync', { walSync: 'async' }, /expected auto, thread or inline/],
  ])('refuses a bad %s', (field, override, message) => {
    const r = refusal({ flags: { ...base, ...override }, env: {} });
    expect(r.field).toBe(field);
    expect(r.message).toMatch(message);
  });

  it('names a missing required field and how to set it', () => {
    const { dataDir: _omit, ...rest } = base;
    const r = refusal({ flags: rest, env: {} });
    expect(r.field).toBe('dataDir');
    expect(r.message).toMatch(/--data-dir.*COHORT_DATA_DIR/);
  });

  it('names the source of a bad env value', () => {
    const r = refusal({ flags: { ...base, listen: undefined }, env: { COHORT_LISTEN: 'x:1:y' } });
    expect(r.message).toMatch(/listen \(COHORT_LISTEN\)/);
  });

  it('refuses an unknown field in the config file, naming it', () => {
    const file = tempFile(JSON.stringify({ tickMs: 20, electionTimeout: 300 }));
    const r = refusal({ flags: { ...base, config: file }, env: {} });
    expect(r.field).toBe('electionTimeout');
    expect(r.message).toMatch(/unknown field/);
  });

  it('refuses a config file that is not JSON or cannot be read', () => {
    expect(refusal({ flags: { ...base, config: tempFile('{ nope') }, env: {} }).message).toMatch(
      /not valid JSON/,
    );
    expect(
      refusal({ flags: { ...base, config: '/nonexistent/cohort.json' }, env: {} }).message,
    ).toMatch(/cannot read/);
  });

  it('refuses heartbeats no more frequent than the election timeout, naming where the value came from', () => {
    const r = refusal({ flags: { ...base, heartbeatTicks: '10' }, env: {} });
    expect(r.field).toBe('heartbeatTicks');
    expect(r.message).toMatch(/below electionTicks \(10\)/);
    const e = refusal({ flags: base, env: { COHORT_ELECTION_TICKS: '2' } });
    expect(e.field).toBe('heartbeatTicks');
    const ok = resolveNodeConfig({ flags: { ...base, heartbeatTicks: '9' }, env: {} });
    expect([ok.heartbeatTicks, ok.electionTicks]).toEqual([9, 10]);
  });

  it('refuses a wrongly typed value from the config file', () => {
    const file = tempFile(JSON.stringify({ electionTicks: 1.5 }));
    const r = refusal({ flags: { ...base, config: file }, env: {} });
    expect(r.field).toBe('electionTicks');
    expect(r.message).toMatch(/config file/);
  });
});

describe('node options (one table: flag, env, file field, default, schema)', () => {
  const fields = Object.keys(nodeOptions) as ConfigField[];

  it("gives `cohort node` exactly the table's flags, each landing on its field", () => {
    const node = buildProgram().commands.find((c) => c.name() === 'node');
    if (node === undefined) throw new Error('no node command');
    const flags = node.options.map((o) => [o.long, o.attributeName()]);
    expect(flags).toEqual([...fields.map((f) => [flagOf(f), f]), ['--config', 'config']]);
    const help = node.helpInformation();
    for (const f of fields) expect(help).toContain(envOf(f));
    expect(help).toMatch(
      /--tick-ms <n>\s+milliseconds per Raft tick \(COHORT_TICK_MS; default\s+20\)/,
    );
  });

  it("names each integer option's source when its value is bad: flag, env or file", () => {
    const ints = fields.filter((f) => KindGuard.IsInteger(nodeOptions[f].schema));
    expect(ints.length).toBeGreaterThan(4);
    for (const field of ints) {
      const viaFlag = refusal({ flags: { ...base, [field]: 'x' }, env: {} });
      expect([viaFlag.field, viaFlag.message]).toEqual([
        field,
        expect.stringMatching(`^${field} \\(${flagOf(field)}\\): expected an integer`),
      ]);
      const viaEnv = refusal({ flags: base, env: { [envOf(field)]: '1.5' } });
      expect(viaEnv.message).toMatch(`${field} (${envOf(field)}): expected an integer`);
      const file = tempFile(JSON.stringify({ [field]: -7 }));
      const viaFile = refusal({ flags: { ...base, config: file }, env: {} });
      expect(viaFile.message).toBe(
        `${field} (config file ${file}): expected an integer ${String(nodeOptions[field].schema.minimum)}..${String(nodeOptions[field].schema.maximum)}, got -7`,
      );
    }
  });

  it('types the config from the table', () => {
    expectTypeOf<NodeConfig['id']>().toEqualTypeOf<NodeId>();
    expectTypeOf<NodeConfig['clusterId']>().toEqualTypeOf<ClusterId>();
    expectTypeOf<NodeConfig['tickMs']>().toEqualTypeOf<number>();
    expectTypeOf<NodeConfig['walSync']>().toEqualTypeOf<'auto' | 'thread' | 'inline'>();
    expectTypeOf<NodeConfig['listen']>().toEqualTypeOf<PeerAddress>();
    expectTypeOf<NodeConfig['peerRpc']>().toEqualTypeOf<ReadonlyMap<NodeId, PeerAddress>>();
  });

  it('describes the config file as a JSON Schema with every field and no others', () => {
    expect(Object.keys(nodeConfigFileSchema.properties)).toEqual(fields);
    expect(Value.Check(nodeConfigFileSchema, { tickMs: 20, walSync: 'inline' })).toBe(true);
    expect(Value.Check(nodeConfigFileSchema, { walSync: 'async' })).toBe(false);
    expect(Value.Check(nodeConfigFileSchema, { electionTimeout: 300 })).toBe(false);
  });
});
