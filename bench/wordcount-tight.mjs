// The "tight loop" of bench/wordcount.ts, written for it: file -> latin1 string ->
// charCodeAt scan -> Map<string, number>; words are maximal [A-Za-z] runs.
// Imported by the bench for 1 thread; run as a worker thread for N threads
// (files pulled from a shared counter, the Map posted back for the main thread to merge).
import { readFileSync } from 'node:fs';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';

function countInto(s, m) {
  const n = s.length;
  let start = -1;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (((c | 32) - 97) >>> 0 < 26) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      const w = s.slice(start, i);
      m.set(w, (m.get(w) || 0) + 1);
      start = -1;
    }
  }
  if (start >= 0) {
    const w = s.slice(start);
    m.set(w, (m.get(w) || 0) + 1);
  }
}

/** Counts the words of files[next[0]++] until none are left. */
export function countFiles(files, next) {
  const m = new Map();
  for (;;) {
    const i = Atomics.add(next, 0, 1);
    if (i >= files.length) break;
    const b = readFileSync(files[i]);
    countInto(b.latin1Slice(0, b.length), m);
  }
  return m;
}

if (!isMainThread && workerData && workerData.tight) {
  parentPort.postMessage(countFiles(workerData.files, new Int32Array(workerData.shared)));
}
