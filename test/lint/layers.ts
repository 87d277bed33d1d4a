/**
 * The layer rule of src/ (DESIGN.md, Layers), as data plus a checker that
 * test/lint/design-rules.test.ts runs on the real tree and on probes.
 *
 * ```ts
 * const violations = checkLayers(readSourceTree('src'));   // [] when the tree keeps the rule
 * checkLayers([...tree, { path: 'lib/probe.ts', text: "import '../node/node.js';\n" }]);
 * // ['upward import: lib/probe.ts imports node/node.ts (lib may import only: version.ts)']
 * ```
 *
 * A *unit* is a top folder of src/ (`kv`, `raft`, ...), a file at the top of
 * src/ (`index.ts`, `version.ts`), or a `core/` folder, which is a unit of its
 * own (`kv/core` is not part of `kv`): the host imports `kv/core` while `kv`
 * imports the host. Every import, `import type` and `import()` counts, since
 * a type import ties two units together as much as a value import. The rule:
 *
 * 1. every unit has a layer in {@link layerOrder}; a unit imports only units of
 *    lower layers, so imports run one way and no two units import each other;
 * 2. a core imports only lib/ and its own files, and of npm packages only
 *    those on {@link coreNpmAllowed};
 * 3. no cycle between units, and no cycle between files;
 * 4. src/ imports nothing outside src/ but npm packages and node: modules.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import ts from 'typescript';

/**
 * The layers, lowest first; a unit may import the units of lower layers only.
 * `*\/core` stands for every core/ folder (rule 2 narrows what they import).
 */
export const layerOrder: readonly (readonly string[])[] = [
  // assert, ids, limits, errors, random, clock interface; the version string.
  ['lib', 'version.ts'],
  // Pure protocol cores (only lib/, see coreImportsAllowed); logical clocks.
  ['*/core', 'clock'],
  // The wire format; trust: identities in certificates, making and loading them.
  ['wire', 'trust'],
  ['transport'],
  ['rpc'],
  // The Raft shell (raft-node.ts), storage, and the message codec; the SWIM
  // failure detector's shell (detector/), over a transport beside Raft's.
  ['raft', 'detector'],
  // The state-machine host: the node's replicated state machine (KV store +
  // node modules) and the module API that kv/ and mapreduce/ build on.
  ['host'],
  // The KV store, MapReduce, the load-balancing gateway (DESIGN.md: beside
  // kv/mapreduce, below node), and auth: users, roles and permissions (a node
  // module beside MapReduce; the node composes it with kv, whose KvServer
  // takes the checks as an interface).
  ['kv', 'mapreduce', 'gateway', 'auth'],
  // Naming: the service registry in the KV store, resolvers, name-based RPC
  // clients (above kv, whose client it uses, and rpc, whose stubs it builds;
  // the gateway's backend sources take a resolver through an interface).
  ['naming'],
  // The node process: composes transport, Raft, host, KV and the default modules.
  ['node'],
  // The `cohort` command (and the embedded one-node cluster of `cohort mr run`).
  ['cli'],
  // The public API (package.json `exports`: `cohort`; the subpaths are the
  // index.ts files of rpc/, kv/ and mapreduce/). Above cli/ for `runJob`.
  ['index.ts'],
  // The simulator may import anything; nothing imports it.
  ['sim'],
];

/** The units a core may import besides its own files. */
export const coreImportsAllowed: readonly string[] = ['lib'];

/**
 * npm packages a core may import: pure code (no I/O, time, randomness or
 * global state that outlives a call), so a core stays deterministic.
 */
export const coreNpmAllowed: Readonly<Record<string, string>> = {
  // kv/core/codec.ts, kv/core/snapshot-codec.ts, mapreduce/core/state-machine.ts:
  // MessagePack encoding of commands and snapshots, a pure function of its input.
  msgpackr: 'deterministic MessagePack encoding of commands and snapshots',
  // kv/core/mvcc.ts: the ordered key index of the MVCC store, an in-memory B+ tree.
  'sorted-btree': 'the in-memory ordered index of the MVCC store',
};

/** One source file, its path relative to src/ with `/` separators. */
export interface SourceFile {
  readonly path: string;
  readonly text: string;
}

/** Every .ts file under `dir` (src/), with its text. */
export function readSourceTree(dir: string): SourceFile[] {
  const out: SourceFile[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.name.endsWith('.ts')) {
        out.push({
          path: relative(dir, full).split(sep).join('/'),
          text: readFileSync(full, 'utf8'),
        });
      }
    }
  };
  if (existsSync(dir)) walk(dir);
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The unit of a file (see the file comment). */
export function unitOf(path: string): string {
  const parts = path.split('/');
  if (parts.length === 1) return path;
  const core = parts.indexOf('core');
  if (core > 0 && core < parts.length - 1) return parts.slice(0, core + 1).join('/');
  return parts[0] ?? path;
}

function layerKey(unit: string): string {
  return unit.endsWith('/core') ? '*/core' : unit;
}

function isCore(unit: string): boolean {
  return unit.endsWith('/core');
}

/** The npm package a bare specifier names (`@scope/name/sub` → `@scope/name`). */
function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? spec);
}

/** What one file imports: src/-relative paths of local files, and bare specifiers. */
function importsOf(file: SourceFile): { local: string[]; outside: string[]; bare: string[] } {
  const info = ts.preProcessFile(file.text, true, true);
  const local: string[] = [];
  const outside: string[] = [];
  const bare: string[] = [];
  for (const { fileName: spec } of info.importedFiles) {
    if (!spec.startsWith('.')) {
      bare.push(spec);
      continue;
    }
    const target = posix.normalize(posix.join(posix.dirname(file.path), spec));
    if (target.startsWith('../') || target === '..') outside.push(spec);
    else local.push(target.replace(/\.js$/, '.ts'));
  }
  return { local, outside, bare };
}

/** Strongly connected components of more than one node (Tarjan). */
function cycles(graph: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop();
        if (w === undefined) break;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) out.push(component.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

function addEdge(graph: Map<string, Set<string>>, from: string, to: string): void {
  let s = graph.get(from);
  if (s === undefined) graph.set(from, (s = new Set()));
  s.add(to);
}

/**
 * Checks `files` (a whole src/ tree) against the rule; returns one line per
 * violation, empty when the tree keeps it.
 */
export function checkLayers(
  files: readonly SourceFile[],
  order: readonly (readonly string[])[] = layerOrder,
): string[] {
  const rank = new Map<string, number>();
  order.forEach((layer, i) => {
    for (const u of layer) rank.set(u, i);
  });
  const allowedBy = (unit: string): string => {
    if (isCore(unit)) return [...coreImportsAllowed].join(', ');
    const r = rank.get(layerKey(unit)) ?? -1;
    return order.slice(0, Math.max(r, 0)).flat().join(', ') || 'nothing';
  };
  const violations: string[] = [];
  const unitGraph = new Map<string, Set<string>>();
  const fileGraph = new Map<string, Set<string>>();
  const unplaced = new Set<string>();
  for (const file of files) {
    const from = unitOf(file.path);
    const fromRank = rank.get(layerKey(from));
    if (fromRank === undefined && !unplaced.has(from)) {
      unplaced.add(from);
      violations.push(
        `no layer: src/${from} is not in layerOrder (test/lint/layers.ts); give it one`,
      );
    }
    const { local, outside, bare } = importsOf(file);
    for (const spec of outside) {
      violations.push(`outside src/: ${file.path} imports ${spec}`);
    }
    if (isCore(from)) {
      for (const spec of bare) {
        const pkg = packageName(spec);
        if (!(pkg in coreNpmAllowed)) {
          violations.push(
            `core package: ${file.path} imports ${spec}, not on coreNpmAllowed (${Object.keys(coreNpmAllowed).join(', ')})`,
          );
        }
      }
    }
    for (const target of new Set(local)) {
      addEdge(fileGraph, file.path, target);
      const to = unitOf(target);
      if (to === from) continue;
      addEdge(unitGraph, from, to);
      const toRank = rank.get(layerKey(to));
      const ok = isCore(from)
        ? coreImportsAllowed.includes(to)
        : fromRank !== undefined && toRank !== undefined && toRank < fromRank;
      if (!ok) {
        const kind = isCore(from)
          ? 'core import'
          : toRank !== undefined && toRank === fromRank
            ? 'sideways import'
            : 'upward import';
        violations.push(
          `${kind}: ${file.path} imports ${target} (${from} may import only: ${allowedBy(from)})`,
        );
      }
    }
  }
  for (const c of cycles(unitGraph)) violations.push(`folder cycle: ${c.join(' ⇄ ')}`);
  for (const c of cycles(fileGraph)) violations.push(`file cycle: ${c.join(' ⇄ ')}`);
  return violations;
}
