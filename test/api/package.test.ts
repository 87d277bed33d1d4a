/**
 * The package as a user gets it: `npm pack` (which builds it, through the
 * `prepare` script), then `npm install <tarball>` into an empty folder with
 * no dev dependencies (no tsx, no TypeScript), and there:
 *
 * - every name the docs import (test/api/documented-imports.ts) resolves
 *   through the installed package's `exports` and types, and every value
 *   each entry's types declare exists at run time under plain `node`;
 * - the installed `cohort` runs the word-count example shipped in the
 *   package, and a user's JavaScript job module, with `npx cohort mr run`
 *   (a one-node cluster in the command), and refuses a TypeScript job with a
 *   message saying to install tsx or compile the job;
 * - `cohort example list-max serve` / `call` run the shipped, compiled example.
 *
 * Slow (a TypeScript build and an npm install): one file, generous timeouts,
 * no timing assertions. The build runs in a copy of the package's sources in
 * a temp dir, so it never rewrites the dist/ that other tests may be running.
 * `npm install --prefer-offline` uses the npm cache that `npm ci` filled and
 * the registry for anything missing. Everything lives in one temp dir,
 * removed after the file (test/harness/tmp.ts).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../harness/tmp.js';
import {
  apiEntries,
  checkDocumentedImports,
  documentedImports,
  exportedNames,
  namesBySpecifier,
} from './documented-imports.js';
import type { ApiNames } from './documented-imports.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const MINUTE = 60_000;

/** What the build needs besides node_modules (npm pack adds package.json and README.md). */
const BUILD_INPUTS = [
  'package.json',
  'README.md',
  'tsconfig.json',
  'tsconfig.build.json',
  'tsconfig.examples.json',
  'bin',
  'src',
  'examples',
];

/** This process's environment without what npm and vitest set for themselves. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_(lifecycle|package|command)|VITEST|TSX_)/.test(k)) continue;
    if (k === 'NODE_OPTIONS' || k === 'INIT_CWD' || k === 'NODE_ENV') continue;
    env[k] = v;
  }
  return env;
}

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function collect(child: ChildProcess): Promise<Run> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs `command args` in `cwd` to its end. */
function run(command: string, args: readonly string[], cwd: string): Promise<Run> {
  return collect(spawn(command, args, { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
}

function show(r: Run): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** Words of `text` as the word-count example counts them: runs of ASCII letters. */
function countWords(texts: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const t of texts) {
    for (const w of t.match(/[A-Za-z]+/g) ?? []) counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  return counts;
}

/** The `key TAB value` lines of a job's part files, as a map. */
function readOutput(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of readdirSync(dir).filter((n) => n.startsWith('part-r-'))) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (line === '') continue;
      const [k, v] = line.split('\t');
      out.set(k ?? '', v ?? '');
    }
  }
  return out;
}

describe('the packed package, installed into an empty folder', () => {
  const dir = tempDir('cohort-pack-');
  const pkg = join(dir, 'pkg');
  const app = join(dir, 'app');
  const installed = join(app, 'node_modules', 'cohort');
  const texts = [
    'the quick brown fox\njumps over the lazy dog\n',
    'The dog sleeps; the fox runs!\r\nno newline at the end',
    'fox fox fox\n\n',
  ];
  let api: ApiNames;

  beforeAll(async () => {
    // A copy of the sources, built by `npm pack` (prepare → npm run build).
    mkdirSync(pkg);
    for (const f of BUILD_INPUTS) cpSync(join(root, f), join(pkg, f), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(pkg, 'node_modules'), 'dir');
    const packed = await run('npm', ['pack', '--pack-destination', dir], pkg);
    expect(packed.code, show(packed)).toBe(0);
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    expect(tarball, show(packed)).toBeDefined();

    // An empty project: the tarball and its runtime dependencies, nothing else.
    mkdirSync(app);
    const own = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      overrides?: Record<string, string>;
    };
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({
        name: 'cohort-user',
        private: true,
        type: 'module',
        overrides: own.overrides,
      }),
    );
    const install = await run(
      'npm',
      ['install', join(dir, tarball!), '--prefer-offline', '--no-audit', '--no-fund'],
      app,
    );
    expect(install.code, show(install)).toBe(0);

    mkdirSync(join(app, 'input'));
    texts.forEach((t, i) => writeFileSync(join(app, 'input', `doc-${i}.txt`), t));

    const { entries } = apiEntries(installed);
    api = exportedNames(new Map(entries.map((e) => [e.specifier, join(installed, e.types)])), {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      skipLibCheck: true,
      types: [],
    });
  }, 20 * MINUTE);

  it(
    'has every name the docs import, in the installed types and at run time',
    async () => {
      const docs = documentedImports(root);
      expect(checkDocumentedImports({ imports: docs.imports, sourcePaths: [] }, api)).toEqual([]);

      // A user's TypeScript file importing each name the docs use resolves through `exports`.
      const wanted = namesBySpecifier(docs);
      expect([...wanted.keys()]).toEqual(expect.arrayContaining(['cohort', 'cohort/mapreduce']));
      const check = join(app, 'check-types.ts');
      writeFileSync(
        check,
        [...wanted]
          .map(([spec, names], i) => {
            const named = names.filter((n) => n !== 'default');
            return named.length === 0
              ? `import type * as m${i} from '${spec}';`
              : `import type { ${named.map((n) => `${n} as m${i}_${n}`).join(', ')} } from '${spec}';`;
          })
          .join('\n'),
      );
      const program = ts.createProgram([check], {
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        target: ts.ScriptTarget.ES2022,
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: [],
      });
      const diagnostics = ts
        .getPreEmitDiagnostics(program, program.getSourceFile(check))
        .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      expect(diagnostics).toEqual([]);
      const fromPackage = program
        .getSourceFiles()
        .map((f) => f.fileName)
        .filter((f) => f.startsWith(installed));
      expect(fromPackage).toContain(join(installed, 'dist/mapreduce/index.d.ts'));

      // Under plain node: every value each entry's types declare is there, and tsx is not.
      const values = Object.fromEntries([...api].map(([spec, n]) => [spec, [...n.values].sort()]));
      writeFileSync(
        join(app, 'check-runtime.mjs'),
        [
          'const want = JSON.parse(process.argv[2]);',
          'const missing = [];',
          'for (const [spec, names] of Object.entries(want)) {',
          '  const m = await import(spec);',
          '  for (const n of names) if (m[n] === undefined) missing.push(`${spec}: ${n}`);',
          '}',
          "const tsx = await import('tsx').then(() => 'installed', () => 'absent');",
          'console.log(JSON.stringify({ missing, tsx }));',
        ].join('\n'),
      );
      const r = await run(process.execPath, ['check-runtime.mjs', JSON.stringify(values)], app);
      expect(r.code, show(r)).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ missing: [], tsx: 'absent' });
      expect(values['cohort/mapreduce']).toContain('defineJob');
    },
    5 * MINUTE,
  );

  it(
    'runs the shipped word-count example with `npx cohort mr run`',
    async () => {
      const job = 'node_modules/cohort/dist/examples/mapreduce/wordcount.js';
      const args = ['--input', 'input/*.txt', '--output', 'out-wc', '--embedded', '--workers', '1'];
      const r = await run('npx', ['--no', '--', 'cohort', 'mr', 'run', job, ...args], app);
      expect(r.code, show(r)).toBe(0);
      const expected = new Map([...countWords(texts)].map(([w, n]) => [w, String(n)]));
      expect(readOutput(join(app, 'out-wc'))).toEqual(expected);
      expect(expected.get('fox')).toBe('5');
    },
    5 * MINUTE,
  );

  it(
    "runs a user's JavaScript job module that imports cohort/mapreduce",
    async () => {
      writeFileSync(
        join(app, 'lengths.mjs'),
        [
          "import { defineJob } from 'cohort/mapreduce';",
          '// How many words of each length.',
          'export default defineJob({',
          '  map(_offset, line, emit) {',
          '    for (const w of line.match(/[A-Za-z]+/g) ?? []) emit(String(w.length), 1);',
          '  },',
          '  fold: (a, b) => a + b,',
          '  reduce: (len, counts, emit) => emit(len, counts.reduce((a, b) => a + b, 0)),',
          '});',
        ].join('\n'),
      );
      const args = [
        '--input',
        'input/*.txt',
        '--output',
        'out-len',
        '--embedded',
        '--workers',
        '1',
      ];
      const r = await run(
        'npx',
        ['--no', '--', 'cohort', 'mr', 'run', 'lengths.mjs', ...args],
        app,
      );
      expect(r.code, show(r)).toBe(0);
      const expected = new Map<string, string>();
      for (const [w, n] of countWords(texts)) {
        const k = String(w.length);
        expected.set(k, String(Number(expected.get(k) ?? 0) + n));
      }
      expect(readOutput(join(app, 'out-len'))).toEqual(expected);
    },
    5 * MINUTE,
  );

  it(
    'refuses a TypeScript job without tsx, saying what to install',
    async () => {
      writeFileSync(
        join(app, 'job.ts'),
        "import { defineJob } from 'cohort/mapreduce';\n" +
          'export default defineJob<number, number>({ map: (_o, l, e) => e(l, 1), reduce: (k, v, e) => e(k, v.length) });\n',
      );
      const args = ['--input', 'input/*.txt', '--output', 'out-ts', '--embedded'];
      const r = await run('npx', ['--no', '--', 'cohort', 'mr', 'run', 'job.ts', ...args], app);
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toContain('npm install --save-dev tsx');
      expect(r.stderr).toContain('compile the job to .js');
      expect(existsSync(join(app, 'out-ts'))).toBe(false);
    },
    5 * MINUTE,
  );

  it(
    'runs `cohort example list-max` from the compiled examples in the package',
    async () => {
      const bin = join(app, 'node_modules', '.bin', 'cohort');
      const server = spawn(process.execPath, [bin, 'example', 'list-max', 'serve', '--port', '0'], {
        cwd: app,
        env: cleanEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const ended = collect(server);
      try {
        let out = '';
        const port = await new Promise<number>((resolve, reject) => {
          server.stdout.on('data', (d: Buffer) => {
            out += d.toString();
            const m = /list-max server on [\d.]+:(\d+)/.exec(out);
            if (m !== null) resolve(Number(m[1]));
          });
          void ended.then((r) => reject(new Error(`the server ended first\n${show(r)}`)));
        });
        const r = await run(
          process.execPath,
          [bin, 'example', 'list-max', 'call', '3', '9', '4', '--server', `127.0.0.1:${port}`],
          app,
        );
        expect(r.code, show(r)).toBe(0);
        expect(r.stdout).toContain('max 9 at index 1');
      } finally {
        server.kill('SIGTERM');
      }
      expect((await ended).code).toBe(0);
    },
    5 * MINUTE,
  );
});
