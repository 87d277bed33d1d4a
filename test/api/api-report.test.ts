/**
 * The API report: every name the docs import from `cohort` or a subpath is
 * exported by that entry of package.json `exports` (checked here against the
 * sources the build compiles; test/api/package.test.ts checks the packed
 * tarball), every entry has a types file and a JavaScript file in dist/ made
 * from one source, and tsconfig.json's `paths` (which let the examples and
 * tests import the package's own name) name the same sources. And the docs'
 * relative links lead to files of the repository.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../harness/tmp.js';
import {
  apiEntries,
  brokenLinks,
  checkDocumentedImports,
  documentedImports,
  importsIn,
  repoCompilerOptions,
  sourceApi,
} from './documented-imports.js';
import type { ApiNames } from './documented-imports.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('the public API', () => {
  let api: ApiNames;
  beforeAll(() => {
    api = sourceApi(root);
  });

  it('exports every name the docs import, from the entry they import it from', () => {
    const docs = documentedImports(root);
    // The scan finds the docs' imports (a scanner that finds nothing proves nothing).
    expect(docs.files).toContain('README.md');
    expect(docs.files).toContain('src/mapreduce/job.ts');
    const specifiers = new Set(docs.imports.map((i) => i.specifier));
    for (const s of ['cohort', 'cohort/mapreduce', 'cohort/rpc', 'cohort/kv']) {
      expect(specifiers).toContain(s);
    }
    expect(checkDocumentedImports(docs, api)).toEqual([]);
  });

  it('reports a name an entry does not export, an unknown subpath and a source path', () => {
    const fake = importsIn(
      'docs/fake.md',
      [
        '```ts',
        "import { defineJob, runJbo } from 'cohort/mapreduce';",
        "import type { KvClient } from 'cohort/client';",
        "import { Lock } from '../../src/kv/recipes/lock.js';",
        '```',
      ].join('\n'),
    );
    expect(checkDocumentedImports(fake, api)).toEqual([
      "docs/fake.md:2: 'cohort/mapreduce' does not export runJbo",
      "docs/fake.md:3: 'cohort/client' is not an entry of package.json exports (cohort, cohort/kv, cohort/rpc, cohort/mapreduce, cohort/gateway, cohort/naming)",
      "docs/fake.md:4: imports '../../src/kv/recipes/lock.js' by path; import it from cohort instead",
    ]);
  });

  it('reads imports in doc comments, with type imports, renames and multi-line braces', () => {
    const found = importsIn(
      'src/x.ts',
      [
        '/**',
        ' * ```ts',
        ' * import {',
        ' *   KvClient, // the client',
        ' *   type KvEndpoint,',
        ' *   Lock as Mutex,',
        " * } from 'cohort';",
        " * import * as mr from 'cohort/mapreduce';",
        ' * ```',
        ' */',
        "import { x } from './y.js';",
      ].join('\n'),
    );
    expect(found.imports).toEqual([
      { where: 'src/x.ts:3', specifier: 'cohort', names: ['KvClient', 'KvEndpoint', 'Lock'] },
      { where: 'src/x.ts:8', specifier: 'cohort/mapreduce', names: [] },
    ]);
  });

  it('gives what a user needs from the main entry and the subpaths', () => {
    const need: Record<string, string[]> = {
      cohort: [
        'KvClient',
        'Lock',
        'Election',
        'clusterStatus',
        'findLeader',
        'defineService',
        'unary',
        'startTcpServer',
        'defineJob',
        'MapReduceClient',
        'prepareJob',
        'JobStatus',
        'runJob',
        'CohortError',
      ],
      'cohort/kv': ['KvClient', 'KvClientOptions', 'Lock', 'Election', 'kvText'],
      'cohort/rpc': ['defineService', 'unary', 'serverStream', 'Type', 'Static', 'HttpGateway'],
      'cohort/mapreduce': ['defineJob', 'JobSpec', 'Emit', 'runSequential'],
    };
    for (const [specifier, names] of Object.entries(need)) {
      const exported = api.get(specifier)?.all ?? new Set();
      expect(
        names.filter((n) => !exported.has(n)),
        specifier,
      ).toEqual([]);
    }
    // Values are what exists at run time: a class exported with `export type` is a type only.
    const kv = api.get('cohort/kv')!;
    expect(kv.values.has('KvClient')).toBe(true);
    expect(kv.all.has('OptimisticTxn') && !kv.values.has('OptimisticTxn')).toBe(true);
    expect(kv.values.has('KvClientOptions')).toBe(false);
    // A subpath is a part of the main entry: the same names, the same things.
    const main = api.get('cohort')!.all;
    for (const [specifier, names] of api) {
      expect(
        [...names.all].filter((n) => !main.has(n)),
        specifier,
      ).toEqual([]);
    }
  });

  it('keeps cohort/mapreduce, which every worker thread loads with the job, off the RPC stack', () => {
    // The files the entry loads, following relative imports (type-only ones too: a bound above).
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const { fileName } of ts.preProcessFile(readFileSync(file, 'utf8'), true, true)
        .importedFiles) {
        if (fileName.startsWith('.')) visit(join(dirname(file), fileName).replace(/\.js$/, '.ts'));
      }
    };
    visit(join(root, 'src/mapreduce/index.ts'));
    const loaded = [...seen].map((f) => relative(join(root, 'src'), f));
    expect(loaded).toContain('mapreduce/job.ts');
    expect(loaded.filter((f) => /^(rpc|transport|raft|host|kv|node|cli)\//.test(f))).toEqual([]);
  });

  it('maps each export to a types file and a script built from one source, as tsconfig paths do', () => {
    const { entries } = apiEntries(root);
    const paths = repoCompilerOptions(root).paths ?? {};
    for (const e of entries) {
      expect(e.types, e.specifier).toMatch(/^\.\/dist\/.+\.d\.ts$/);
      expect(e.js, e.specifier).toBe(e.types.replace(/\.d\.ts$/, '.js'));
      expect(existsSync(join(root, e.source)), e.source).toBe(true);
      const mapped = paths[e.specifier]?.map((p) => join(root, p));
      expect(mapped, `tsconfig.json paths['${e.specifier}']`).toEqual([join(root, e.source)]);
    }
    expect(Object.keys(paths).sort()).toEqual(entries.map((e) => e.specifier).sort());
    // bin/cohort.js runs the compiled CLI, and the package ships it.
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      files: string[];
      bin: Record<string, string>;
    };
    expect(pkg.files).toEqual(expect.arrayContaining(['dist', 'bin']));
    expect(dirname(pkg.bin['cohort'] ?? '')).toBe('./bin');
  });

  it('has docs whose relative links resolve inside the repository', () => {
    expect(brokenLinks(root, [])).toEqual([]);

    const probe = tempDir('cohort-links-');
    mkdirSync(join(probe, 'docs'));
    writeFileSync(join(probe, 'docs', 'a.md'), '# A\n\n## Use it\n');
    writeFileSync(
      join(probe, 'README.md'),
      [
        '# Probe',
        '[ok](docs/a.md) [ok](docs/a.md#use-it) [ok](#probe) [web](https://example.com)',
        '[gone](docs/b.md) [out](../x.md) [anchor](docs/a.md#nope)',
        '```md',
        '[in a code block](nowhere.md)',
        '```',
      ].join('\n'),
    );
    expect(brokenLinks(probe)).toEqual([
      'README.md: docs/b.md is not a file of the repository',
      'README.md: ../x.md is not a file of the repository',
      'README.md: docs/a.md#nope names no heading of docs/a.md',
    ]);
  });
});
