/**
 * Golden interaction scripts (DESIGN.md, tests): each testdata/*.txt file is a
 * scenario of coordinator commands, one per `>` line, each followed by what the
 * state machine answered, and `?` lines that print a job's state. The answers
 * are regenerated with `UPDATE_GOLDEN=1 npx vitest run test/mapreduce/core/golden.test.ts`
 * and reviewed as diffs.
 *
 * Command lines: `> type key=value ...` where a value is JSON if it parses
 * (else a string); `maps=N` on submitJob stands for N splits of 100 bytes of
 * /in/fN; `output=...` on completeTask may be `map:B` (B bytes per partition)
 * or `reduce:B`; counters default to 1 record and B bytes in and out.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { MrApplied } from '../../../src/mapreduce/core/index.js';
import { MapReduceStateMachine } from '../../../src/mapreduce/core/index.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const UPDATE = process.env['UPDATE_GOLDEN'] === '1';

function parseValue(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function commandOf(line: string): Record<string, unknown> {
  const [type, ...pairs] = line.trim().split(/\s+/);
  const cmd: Record<string, unknown> = { type };
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    cmd[pair.slice(0, eq)] = parseValue(pair.slice(eq + 1));
  }
  if (type === 'submitJob') {
    const maps = Number(cmd['maps'] ?? 0);
    delete cmd['maps'];
    cmd['module'] ??= '/jobs/job.js';
    cmd['output'] ??= `/out/${String(cmd['jobId'])}`;
    cmd['splits'] ??= Array.from({ length: maps }, (_, i) => ({
      file: `/in/f${i}`,
      start: 0,
      end: 100,
    }));
    cmd['now'] ??= 0;
  }
  if (type === 'completeTask' && typeof cmd['output'] === 'string') {
    const [kind, b] = cmd['output'].split(':');
    const bytes = Number(b);
    cmd['output'] =
      kind === 'map'
        ? {
            kind,
            partitionBytes: Array.from({ length: Number(cmd['reducers'] ?? 1) }, () => bytes),
          }
        : { kind, bytes };
    delete cmd['reducers'];
    cmd['counters'] ??= {
      inputRecords: 1,
      inputBytes: bytes,
      outputRecords: 1,
      outputBytes: bytes,
    };
  }
  return cmd;
}

function describeApplied(out: MrApplied): string {
  if (!out.ok) return `refused ${out.error.code}: ${out.error.message}`;
  const r = out.result;
  if (r.type === 'assignTask') {
    const a = r.assignment;
    if (a === null) return `no task (${r.reason})`;
    const head = `${a.kind} ${a.jobId}/${a.index} attempt=${a.attempt} id=${a.attemptId} lease=${a.leaseDeadline}${a.backup ? ' backup' : ''}`;
    if (a.kind === 'map')
      return a.skipOffsets.length > 0 ? `${head} skip=${a.skipOffsets.join(',')}` : head;
    return `${head} from=${a.mapOutputs.map((l) => `${l.node}#${l.attemptId}`).join(',')}`;
  }
  const { type: _type, ...rest } = r;
  return JSON.stringify(rest);
}

function describeJob(sm: MapReduceStateMachine, jobId: string): string {
  const j = sm.job(jobId);
  if (j === undefined) return `${jobId}: unknown`;
  const p = j.progress;
  const c = j.counters;
  const parts = [
    `${jobId}: ${j.status}${j.error === undefined ? '' : ` (${j.error})`}`,
    `maps ${p.mapsDone}/${p.maps} (${p.mapsRunning} running)`,
    `reduces ${p.reducesDone}/${p.reduces} (${p.reducesRunning} running)`,
    `attempts ${c.mapAttempts}+${c.reduceAttempts}`,
    `reexec ${c.reExecutions} backup ${c.backupAttempts} failed ${c.failedAttempts} expired ${c.expiredAttempts} lost ${c.lostAttempts}`,
    `records in ${c.mapInputRecords} out ${c.reduceOutputRecords} skipped ${c.skippedRecords}`,
  ];
  return parts.join(' | ');
}

/** Runs a script's `>` and `?` lines and returns the file text with fresh answers. */
function run(text: string): string {
  const sm = new MapReduceStateMachine();
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('  ')) continue; // an old answer
    out.push(line);
    if (line.startsWith('> ')) out.push(`  ${describeApplied(sm.apply(commandOf(line.slice(2))))}`);
    else if (line.startsWith('? ')) out.push(`  ${describeJob(sm, line.slice(2).trim())}`);
  }
  return out.join('\n');
}

describe('golden coordinator scripts', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.txt'));
  it('has scripts', () => expect(files.length).toBeGreaterThan(0));
  it.each(files)('%s', (file) => {
    const path = join(DIR, file);
    const text = readFileSync(path, 'utf8');
    const fresh = run(text);
    if (UPDATE) writeFileSync(path, fresh);
    else expect(fresh).toBe(text);
  });
});
