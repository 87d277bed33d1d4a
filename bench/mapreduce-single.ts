/**
 * The single-process programs bench/mapreduce.ts compares cohort with: for
 * each job shape, the plainest fast Node program a careful developer would
 * write for the same output, on one thread. Each reads its input files
 * whole (latin1: the inputs are ASCII), scans them with indexOf/charCodeAt,
 * keeps its state in a `Map`, sorts the keys once, and writes one output
 * file of `key TAB value` lines (the engine's format, keys ascending by
 * JavaScript string order), then fsyncs it, as a reduce task does.
 *
 * ```ts
 * await single('csv', files, '/tmp/out/single.txt');
 * ```
 */
import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Shape } from './mapreduce-data.js';

/** Writes `lines` (strings ending in \n) to `path` in big writes, then fsyncs it. */
function writeLines(path: string, lines: Iterable<string>): void {
  const fd = openSync(path, 'w');
  try {
    let buf = '';
    for (const l of lines) {
      buf += l;
      if (buf.length >= 1 << 20) {
        writeSync(fd, buf);
        buf = '';
      }
    }
    if (buf.length > 0) writeSync(fd, buf);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function sortedKeys<K extends string>(m: Map<K, unknown>): K[] {
  return [...m.keys()].sort();
}

/** Calls `visit(text, start, end)` for every line of every file (without its \n). */
function eachLine(
  files: readonly string[],
  visit: (text: string, s: number, e: number, file: string) => void,
): void {
  for (const f of files) {
    const text = readFileSync(f).toString('latin1');
    let p = 0;
    const n = text.length;
    while (p < n) {
      let nl = text.indexOf('\n', p);
      if (nl < 0) nl = n;
      visit(text, p, nl, f);
      p = nl + 1;
    }
  }
}

function wordcount(files: readonly string[], out: string): void {
  const counts = new Map<string, number>();
  for (const f of files) {
    const text = readFileSync(f).toString('latin1');
    const n = text.length;
    let start = -1;
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i);
      if (((c | 32) - 97) >>> 0 < 26) {
        if (start < 0) start = i;
      } else if (start >= 0) {
        const w = text.slice(start, i);
        counts.set(w, (counts.get(w) ?? 0) + 1);
        start = -1;
      }
    }
    if (start >= 0) {
      const w = text.slice(start);
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  const keys = sortedKeys(counts);
  writeLines(
    out,
    (function* () {
      for (const k of keys) yield `${k}\t${counts.get(k)}\n`;
    })(),
  );
}

interface Stats {
  count: number;
  sum: number;
  min: number;
  max: number;
  sensors: Set<string>;
}

function csv(files: readonly string[], out: string): void {
  const stats = new Map<string, Stats>();
  eachLine(files, (text, s, e) => {
    const c1 = text.indexOf(',', s);
    const c2 = text.indexOf(',', c1 + 1);
    const c3 = text.indexOf(',', c2 + 1);
    const station = text.slice(s, c1);
    if (station === 'station') return;
    const t = Number(text.slice(c2 + 1, c3));
    const sensor = text.slice(c3 + 1, e);
    const st = stats.get(station);
    if (st === undefined) {
      stats.set(station, { count: 1, sum: t, min: t, max: t, sensors: new Set([sensor]) });
    } else {
      st.count++;
      st.sum += t;
      if (t < st.min) st.min = t;
      if (t > st.max) st.max = t;
      st.sensors.add(sensor);
    }
  });
  const keys = sortedKeys(stats);
  writeLines(
    out,
    (function* () {
      for (const k of keys) {
        const s = stats.get(k) as Stats;
        yield `${k}\t${s.count} ${s.sum} ${s.min} ${s.max} ${s.sensors.size}\n`;
      }
    })(),
  );
}

function postings(files: readonly string[], out: string): void {
  const index = new Map<string, number[]>();
  const seen = new Set<string>();
  eachLine(files, (text, s, e) => {
    const tab = text.indexOf('\t', s);
    const id = Number(text.slice(s, tab));
    seen.clear();
    let start = -1;
    for (let i = tab + 1; i <= e; i++) {
      const c = i < e ? text.charCodeAt(i) : 0;
      if (((c | 32) - 97) >>> 0 < 26) {
        if (start < 0) start = i;
      } else if (start >= 0) {
        const w = text.slice(start, i).toLowerCase();
        start = -1;
        if (!seen.has(w)) {
          seen.add(w);
          const ids = index.get(w);
          if (ids === undefined) index.set(w, [id]);
          else ids.push(id);
        }
      }
    }
  });
  const keys = sortedKeys(index);
  writeLines(
    out,
    (function* () {
      for (const k of keys) {
        const ids = index.get(k) as number[];
        // Ids arrive ascending (documents in input order), but sort as the job does.
        ids.sort((a, b) => a - b);
        yield `${k}\t${ids.length} ${ids.join(',')}\n`;
      }
    })(),
  );
}

function join(files: readonly string[], out: string): void {
  const users = new Map<string, string>(); // id -> "name,country"
  const orders = new Map<string, string[]>(); // user id -> "orderId", "amount" pairs
  eachLine(files, (text, s, e, f) => {
    const c1 = text.indexOf(',', s);
    const c2 = text.indexOf(',', c1 + 1);
    if (basename(f).startsWith('users')) {
      users.set(text.slice(s, c1), text.slice(c1 + 1, e));
    } else {
      const u = text.slice(c1 + 1, c2);
      const o = orders.get(u);
      if (o === undefined) orders.set(u, [text.slice(s, c1), text.slice(c2 + 1, e)]);
      else o.push(text.slice(s, c1), text.slice(c2 + 1, e));
    }
  });
  const keys = sortedKeys(orders);
  writeLines(
    out,
    (function* () {
      for (const k of keys) {
        const u = users.get(k);
        if (u === undefined) continue;
        const o = orders.get(k) as string[];
        for (let i = 0; i < o.length; i += 2) yield `${k}\t${o[i]},${u},${o[i + 1]}\n`;
      }
    })(),
  );
}

function sort(files: readonly string[], out: string): void {
  const records: string[] = [];
  eachLine(files, (text, s, e) => {
    records.push(text.slice(s, e));
  });
  records.sort();
  writeLines(
    out,
    (function* () {
      for (const r of records) yield `${r.slice(0, 10)}\t${r.slice(11)}\n`;
    })(),
  );
}

/** Runs the shape's single-process program over `files`, writing `out`. */
export function single(shape: Shape, files: readonly string[], out: string): void {
  ({ wordcount, csv, postings, join, sort })[shape](files, out);
}

// Run as a program (bench/mapreduce.ts starts it in a fresh process per run):
//   tsx bench/mapreduce-single.ts SHAPE OUT FILE...   → one JSON line { seconds, cpu }
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [shape, out, ...files] = process.argv.slice(2);
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  single(shape as Shape, files, out as string);
  const c = process.cpuUsage(c0);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(`${JSON.stringify({ seconds, cpu: (c.user + c.system) / 1e6 })}\n`);
}
