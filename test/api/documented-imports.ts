/**
 * What the docs promise about the public API, and what the package exports:
 * the two sides of test/api/api-report.test.ts (checked against the sources
 * the build compiles) and test/api/package.test.ts (checked against the
 * packed, installed tarball).
 *
 * ```ts
 * const docs = documentedImports(repoDir);        // every `import { … } from 'cohort…'` in the docs
 * const api = sourceApi(repoDir);                  // package.json `exports` → the names each entry exports
 * checkDocumentedImports(docs, api);               // [] when every documented name is exported
 * ```
 *
 * The docs are README.md, docs/**\/*.md, the Markdown files under src/ and
 * examples/, the doc comments of src/**\/*.ts, and examples/**\/*.ts (code
 * and comments: the examples are written against the public API). A
 * documented import is any `import … from 'cohort'` or `'cohort/…'`,
 * including `import type` and `import * as`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import ts from 'typescript';

/** One import statement found in the docs. */
export interface DocumentedImport {
  /** Where: `README.md:103`. */
  readonly where: string;
  /** `cohort` or `cohort/<subpath>`. */
  readonly specifier: string;
  /** The imported names (`default` for a default import); empty for `import * as`. */
  readonly names: readonly string[];
}

/** A documented import of the sources by path (`'../../src/…'`), not through the package. */
export interface SourcePathImport {
  readonly where: string;
  readonly specifier: string;
}

/** What the docs contain. */
export interface DocumentedImports {
  readonly imports: readonly DocumentedImport[];
  /** Imports that reach into src/ by path: a reader cannot copy them into a program. */
  readonly sourcePaths: readonly SourcePathImport[];
  /** The files scanned, relative to the repository. */
  readonly files: readonly string[];
}

/** One entry of package.json `exports`. */
export interface ApiEntry {
  /** `cohort` or `cohort/<subpath>`. */
  readonly specifier: string;
  /** Its `types` file, relative to the package (`./dist/kv/index.d.ts`). */
  readonly types: string;
  /** Its `default` (JavaScript) file (`./dist/kv/index.js`). */
  readonly js: string;
  /** The source file the build compiles to both (`src/kv/index.ts`). */
  readonly source: string;
}

/** The exported names (types and values) of each entry, by specifier. */
export type ApiNames = ReadonlyMap<
  string,
  { readonly all: ReadonlySet<string>; values: ReadonlySet<string> }
>;

const IMPORT_RE =
  /\bimport\s+(type\s+)?(?:([A-Za-z_$][\w$]*)\s*,?\s*)?(\{[^}]*\}|\*\s*as\s+[A-Za-z_$][\w$]*)?\s*from\s*(['"])([^'"\n]+)\4/g;

function walk(dir: string, keep: (path: string) => boolean, out: string[]): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'testdata' || e.name.startsWith('.')) continue;
    const full = join(dir, e.name);
    if (e.isDirectory()) walk(full, keep, out);
    else if (keep(full)) out.push(full);
  }
}

/** The doc files of the repository at `root`, relative paths with `/`, sorted. */
export function docFiles(root: string): string[] {
  const out: string[] = [];
  if (existsSync(join(root, 'README.md'))) out.push(join(root, 'README.md'));
  walk(join(root, 'docs'), (f) => f.endsWith('.md'), out);
  for (const d of ['src', 'examples']) {
    walk(
      join(root, d),
      (f) => f.endsWith('.md') || (f.endsWith('.ts') && !f.endsWith('.test.ts')),
      out,
    );
  }
  return out.map((f) => relative(root, f).split(sep).join('/')).sort();
}

/**
 * The text of a file as a reader sees its examples: a TypeScript file's
 * comment prefixes (` * `, `// `) are removed, so an import written inside a
 * doc comment reads like code. Lines stay where they were.
 */
function readable(path: string, text: string): string {
  if (!path.endsWith('.ts')) return text;
  return text
    .split('\n')
    .map((l) => l.replace(/^\s*(\/\*\*|\*\/|\*|\/\/)\s?/, ''))
    .join('\n');
}

/** The names inside `{ … }` of an import (`type X`, `X as Y` → `X`). */
function braceNames(braces: string): string[] {
  return braces
    .slice(1, -1)
    .split('\n')
    .map((l) => l.replace(/\/\/.*$/, ''))
    .join(' ')
    .split(',')
    .map((n) =>
      n
        .trim()
        .replace(/^type\s+/, '')
        .split(/\s+as\s+/)[0]!
        .trim(),
    )
    .filter((n) => n !== '');
}

/** Finds the imports of `text` (a doc file's contents); `path` names it in `where`. */
export function importsIn(
  path: string,
  text: string,
): { imports: DocumentedImport[]; sourcePaths: SourcePathImport[] } {
  const body = readable(path, text);
  const imports: DocumentedImport[] = [];
  const sourcePaths: SourcePathImport[] = [];
  for (const m of body.matchAll(IMPORT_RE)) {
    const specifier = m[5]!;
    const where = `${path}:${body.slice(0, m.index).split('\n').length}`;
    if (specifier === 'cohort' || specifier.startsWith('cohort/')) {
      const names: string[] = [];
      if (m[2] !== undefined) names.push('default');
      if (m[3]?.startsWith('{') === true) names.push(...braceNames(m[3]));
      imports.push({ where, specifier, names });
    } else if (/^(\.\.?\/)+src\//.test(specifier)) {
      sourcePaths.push({ where, specifier });
    }
  }
  return { imports, sourcePaths };
}

/** Every documented import of the repository at `root` (see the file comment). */
export function documentedImports(root: string): DocumentedImports {
  const files = docFiles(root);
  const imports: DocumentedImport[] = [];
  const sourcePaths: SourcePathImport[] = [];
  for (const f of files) {
    const found = importsIn(f, readFileSync(join(root, f), 'utf8'));
    imports.push(...found.imports);
    // Examples' code is checked by their own build (rootDir examples/); a
    // source path in a Markdown file or a src/ doc comment is what a reader copies.
    if (!(f.startsWith('examples/') && f.endsWith('.ts'))) sourcePaths.push(...found.sourcePaths);
  }
  return { imports, sourcePaths, files };
}

/** The package name and `exports` of the package.json at `root`, as entries. */
export function apiEntries(root: string): { name: string; entries: ApiEntry[] } {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    name: string;
    exports: Record<string, string | { types?: string; default?: string }>;
  };
  const entries: ApiEntry[] = [];
  for (const [key, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue; // ./package.json
    const types = target.types ?? '';
    const js = target.default ?? '';
    entries.push({
      specifier: key === '.' ? pkg.name : `${pkg.name}/${key.replace(/^\.\//, '')}`,
      types,
      js,
      source: types.replace(/^\.\/dist\//, 'src/').replace(/\.d\.ts$/, '.ts'),
    });
  }
  return { name: pkg.name, entries };
}

/**
 * The names each entry's module exports, read with the TypeScript checker
 * from `files` (specifier → a .ts or .d.ts file): every export, type or value.
 */
export function exportedNames(
  files: ReadonlyMap<string, string>,
  options: ts.CompilerOptions,
): ApiNames {
  const program = ts.createProgram([...files.values()], { ...options, noEmit: true });
  const checker = program.getTypeChecker();
  const out = new Map<string, { all: Set<string>; values: Set<string> }>();
  for (const [specifier, file] of files) {
    const sf = program.getSourceFile(file);
    const symbol = sf === undefined ? undefined : checker.getSymbolAtLocation(sf);
    const all = new Set<string>();
    const values = new Set<string>();
    for (const e of symbol === undefined ? [] : checker.getExportsOfModule(symbol)) {
      all.add(e.name);
      if (isValueExport(checker, e)) values.add(e.name);
    }
    out.set(specifier, { all, values });
  }
  return out;
}

/**
 * True if `e` is a value at run time: it names a value, and no re-export on
 * the way to it is `export type` (a class exported with `export type { C }`
 * is a type only).
 */
function isValueExport(checker: ts.TypeChecker, e: ts.Symbol): boolean {
  let s: ts.Symbol | undefined = e;
  while (s !== undefined && s.flags & ts.SymbolFlags.Alias) {
    if ((s.declarations ?? []).some((d) => ts.isTypeOnlyImportOrExportDeclaration(d))) return false;
    s = checker.getImmediateAliasedSymbol(s);
  }
  return s !== undefined && (s.flags & ts.SymbolFlags.Value) !== 0;
}

/** The compiler options of the repository's tsconfig.json. */
export function repoCompilerOptions(root: string): ts.CompilerOptions {
  const path = join(root, 'tsconfig.json');
  const read = ts.readConfigFile(path, (p) => ts.sys.readFile(p));
  return ts.parseJsonConfigFileContent(read.config, ts.sys, root).options;
}

/** The names the sources of each package.json entry export (what the build compiles). */
export function sourceApi(root: string): ApiNames {
  const { entries } = apiEntries(root);
  return exportedNames(
    new Map(entries.map((e) => [e.specifier, join(root, e.source)])),
    repoCompilerOptions(root),
  );
}

/** One line per documented import that the API does not have; empty when the docs keep to it. */
export function checkDocumentedImports(
  docs: Pick<DocumentedImports, 'imports' | 'sourcePaths'>,
  api: ApiNames,
): string[] {
  const out: string[] = [];
  for (const imp of docs.imports) {
    const names = api.get(imp.specifier);
    if (names === undefined) {
      out.push(
        `${imp.where}: '${imp.specifier}' is not an entry of package.json exports (${[...api.keys()].join(', ')})`,
      );
      continue;
    }
    for (const n of imp.names) {
      if (!names.all.has(n)) out.push(`${imp.where}: '${imp.specifier}' does not export ${n}`);
    }
  }
  for (const p of docs.sourcePaths) {
    out.push(`${p.where}: imports '${p.specifier}' by path; import it from cohort instead`);
  }
  return out;
}

/** Every name the docs import from each specifier, sorted. */
export function namesBySpecifier(docs: DocumentedImports): Map<string, string[]> {
  const out = new Map<string, Set<string>>();
  for (const imp of docs.imports) {
    let s = out.get(imp.specifier);
    if (s === undefined) out.set(imp.specifier, (s = new Set()));
    for (const n of imp.names) s.add(n);
  }
  return new Map([...out].map(([k, v]) => [k, [...v].sort()]));
}

/** A GitHub-style anchor of a Markdown heading (`## Use cohort from a program` → `use-cohort-from-a-program`). */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, '')
    .replace(/ /g, '-');
}

/**
 * One line per relative link of the Markdown files (of {@link docFiles})
 * that does not resolve to a file of the repository, or to a heading of the
 * file it names. `allowed` lists `file: target` pairs to leave alone.
 */
export function brokenLinks(root: string, allowed: readonly string[] = []): string[] {
  const out: string[] = [];
  const anchors = (file: string): Set<string> =>
    new Set(
      [...readFileSync(file, 'utf8').matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => anchorOf(m[1]!)),
    );
  for (const f of docFiles(root).filter((p) => p.endsWith('.md'))) {
    const text = readFileSync(join(root, f), 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const m of text.matchAll(/\[[^\]]*\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/i.test(target) || allowed.includes(`${f}: ${target}`)) continue;
      const [path = '', anchor] = target.split('#');
      const file = path === '' ? join(root, f) : join(root, dirname(f), path);
      const rel = relative(root, file);
      if (rel.startsWith('..') || !existsSync(file)) {
        out.push(`${f}: ${target} is not a file of the repository`);
      } else if (anchor !== undefined && file.endsWith('.md') && !anchors(file).has(anchor)) {
        out.push(`${f}: ${target} names no heading of ${rel}`);
      }
    }
  }
  return out;
}
