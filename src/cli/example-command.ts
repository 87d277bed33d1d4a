/**
 * `cohort example ...`: the classic RPC examples, runnable from a checkout.
 *
 * ```sh
 * cohort example tictactoe serve [--port 7400] [--http 8080] [--id ttt-1 --kv n1=127.0.0.1:7201,...]
 * cohort example tictactoe play X [--game default] [--server 127.0.0.1:7400] [--server-id gateway]
 * cohort example list-max serve [--port 7401] [--http 8080] [--register --id lm-1 (cluster flags)]
 * cohort example list-max call 3 9 4 [--server 127.0.0.1:7401 | --by-name (cluster flags)] [--repeat n]
 * ```
 *
 * The examples live in `examples/` and are written against the public API
 * (`cohort/rpc`, ...). `npm run build` compiles them into `dist/examples/`,
 * which the package ships: the compiled CLI (`bin/cohort.js`, an installed
 * `cohort`) loads them from there with a plain `import()`, no TypeScript
 * loader needed. Run from the sources (tests, `tsx src/cli/main.ts`), the CLI
 * loads `examples/*.ts` through tsx, which then runs it anyway.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { Readable, Writable } from 'node:stream';
import type { KvClientOptions } from '../kv/client.js';
import { exitCodes } from './exit-codes.js';
import { runAction } from './run.js';
import { addTargetOptions, kvClientOptions, resolveTarget } from './target.js';
import type { TargetFlags } from './target.js';

interface Closable {
  close(): Promise<void>;
}

interface TicTacToeCli {
  serve(o: {
    host: string;
    port: number;
    http?: number;
    id?: string;
    kv?: string[];
    kvClusterId?: string;
  }): Promise<Closable>;
  play(
    o: { player: 'X' | 'O'; game: string; host: string; port: number; server?: string },
    input?: Readable,
    out?: Writable,
  ): Promise<string>;
}

interface ListMaxCli {
  serve(o: {
    host: string;
    port: number;
    http?: number;
    id?: string;
    register?: KvClientOptions;
    ttlMs?: number;
  }): Promise<Closable>;
  call(o: {
    host: string;
    port: number;
    values: number[];
    byName?: KvClientOptions;
    repeat?: number;
    intervalMs?: number;
    signal?: AbortSignal;
  }): Promise<unknown>;
}

/** Loads `examples/<path>` (no extension), compiled or from the sources (see the file comment). */
async function load<T>(path: string): Promise<T> {
  if (!import.meta.url.endsWith('.ts')) {
    // dist/cli/example-command.js: the compiled examples are in dist/examples/.
    return (await import(new URL(`../examples/${path}.js`, import.meta.url).href)) as T;
  }
  // src/cli/example-command.ts: the repository root is two levels up.
  const { tsImport } = await import('tsx/esm/api');
  const url = new URL(`../../examples/${path}.ts`, import.meta.url).href;
  return (await tsImport(url, import.meta.url)) as T;
}

function port(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new InvalidArgumentError('a port is an integer 0..65535');
  }
  return n;
}

function hostPort(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  if (i <= 0) throw new InvalidArgumentError('expected host:port, e.g. 127.0.0.1:7400');
  return { host: text.slice(0, i), port: port(text.slice(i + 1)) };
}

function positiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected an integer >= 1');
  return n;
}

function nonNegativeInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected an integer >= 0');
  return n;
}

function stayUp(server: Closable): void {
  const stop = (): void => {
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/** Adds `cohort example tictactoe|list-max ...` to `program`. */
export function registerExampleCommands(program: Command): void {
  const example = program
    .command('example')
    .description('run the classic RPC examples (tic-tac-toe, list-max)');

  const ttt = example.command('tictactoe').description('tic-tac-toe: the server keeps the board');
  ttt
    .command('serve')
    .description('start the tic-tac-toe server')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'TCP port for cohort RPC', port, 7400)
    .option('--http <port>', 'also serve the HTTP/JSON gateway on this port', port)
    .option('--id <id>', 'node id of this server (replicas behind a gateway each need one)')
    .option('--kv <endpoints>', 'keep the games in the KV store at n1=host:port,...', (v: string) =>
      v.split(',').filter((e) => e !== ''),
    )
    .option('--kv-cluster-id <id>', 'cluster id of the KV store (default cohort-local)')
    .action(
      async (o: {
        host: string;
        port: number;
        http?: number;
        id?: string;
        kv?: string[];
        kvClusterId?: string;
      }) => {
        const m = await load<TicTacToeCli>('tic-tac-toe/cli');
        stayUp(await m.serve(o));
      },
    );
  ttt
    .command('play')
    .description('play one game in this terminal')
    .argument('<player>', 'X or O', (v: string) => {
      const p = v.toUpperCase();
      if (p !== 'X' && p !== 'O') throw new InvalidArgumentError('the player is X or O');
      return p;
    })
    .option('--game <name>', 'which game to join', 'default')
    .option('--server <host:port>', 'the server', hostPort, { host: '127.0.0.1', port: 7400 })
    .option('--server-id <id>', "the server's node id (a gateway's: gateway)")
    .action(
      async (
        player: 'X' | 'O',
        o: { game: string; server: { host: string; port: number }; serverId?: string },
      ) => {
        await runAction({}, async () => {
          const m = await load<TicTacToeCli>('tic-tac-toe/cli');
          const result = await m.play({
            player,
            game: o.game,
            ...o.server,
            ...(o.serverId === undefined ? {} : { server: o.serverId }),
          });
          process.stdout.write(`${result}\n`);
          return result === 'won' || result === 'draw' || result === 'lost'
            ? exitCodes.done
            : exitCodes.failed;
        });
      },
    );

  const lm = example.command('list-max').description('list-max: the classic first RPC');
  addTargetOptions(
    lm
      .command('serve')
      .description('start the list-max server (--register: as an instance of ListMax, by name)')
      .option('--host <host>', 'address to listen on', '127.0.0.1')
      .option('--port <port>', 'TCP port for cohort RPC (0: any free port)', port, 7401)
      .option('--http <port>', 'also serve the HTTP/JSON gateway on this port', port)
      .option('--id <id>', "this instance's id (its RPC node id and registry name)")
      .option('--register', "register in the cluster's naming registry (the cluster flags below)")
      .option('--ttl-ms <ms>', 'registration lease TTL', positiveInt),
  ).action(
    async (
      o: TargetFlags & {
        host: string;
        port: number;
        http?: number;
        id?: string;
        register?: boolean;
        ttlMs?: number;
      },
    ) => {
      await runAction({}, async (ctx) => {
        const m = await load<ListMaxCli>('list-max/cli');
        let register: KvClientOptions | undefined;
        if (o.register === true) {
          const target = resolveTarget(o);
          ctx.report.source = target.source;
          register = kvClientOptions(target);
        }
        const server = await m.serve({
          host: o.host,
          port: o.port,
          ...(o.http === undefined ? {} : { http: o.http }),
          ...(o.id === undefined ? {} : { id: o.id }),
          ...(register === undefined ? {} : { register }),
          ...(o.ttlMs === undefined ? {} : { ttlMs: o.ttlMs }),
        });
        stayUp(server);
      });
    },
  );
  addTargetOptions(
    lm
      .command('call')
      .description('call listMax on the server (--by-name: on the instances registered as ListMax)')
      .argument('<values...>', 'numbers', (v: string, prev: number[] | undefined) => {
        const n = Number(v);
        if (!Number.isFinite(n)) throw new InvalidArgumentError(`${v} is not a number`);
        return [...(prev ?? []), n];
      })
      .option('--server <host:port>', 'the server', hostPort, { host: '127.0.0.1', port: 7401 })
      .option('--by-name', "find the instances in the cluster's registry (the cluster flags below)")
      .option('--repeat <n>', 'calls to make', positiveInt, 1)
      .option('--interval-ms <ms>', 'pause between calls', nonNegativeInt, 0),
  ).action(
    async (
      values: number[],
      o: TargetFlags & {
        server: { host: string; port: number };
        byName?: boolean;
        repeat: number;
        intervalMs: number;
      },
    ) => {
      await runAction({ readOnly: true }, async (ctx) => {
        const m = await load<ListMaxCli>('list-max/cli');
        let byName: KvClientOptions | undefined;
        if (o.byName === true) {
          const target = resolveTarget(o);
          ctx.report.source = target.source;
          byName = kvClientOptions(target);
        }
        await m.call({
          values,
          ...o.server,
          repeat: o.repeat,
          intervalMs: o.intervalMs,
          signal: ctx.signal,
          ...(byName === undefined ? {} : { byName }),
        });
      });
    },
  );
}
