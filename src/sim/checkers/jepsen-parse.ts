/**
 * Parsers for Jepsen-style history logs, used as known-answer fixtures for the
 * linearizability checker (test/sim/checkers/histories/README.md describes the files).
 * Time is the line number: each log is written in real-time order.
 *
 * ```ts
 * const h = parseJepsenRegisterLog(readFileSync('etcd_000.log', 'utf8'));
 * checkLinearizability(h, registerModel<number>());
 * const kv = parseJepsenKvLog(readFileSync('c10-ok.txt', 'utf8'));
 * checkLinearizability(kv, kvModel({ initialValue: '' }));
 * ```
 */
import { CohortError } from '../../lib/errors.js';
import type { Operation } from './history.js';
import type { KvInput, KvOutput, RegisterInput, RegisterOutput } from './models.js';

/** An invocation waiting for its completion line. */
interface Pending<I> {
  readonly id: number;
  readonly process: number;
  readonly input: I;
  readonly invokeTime: number;
}

function bad(line: number, message: string): CohortError {
  return new CohortError('INVALID_ARGUMENT', `line ${line}: ${message}`, { details: { line } });
}

/** Options for {@link parseJepsenRegisterLog}. */
export interface JepsenRegisterOptions {
  /**
   * How to read `:fail :cas`: `'compare-failed'` (default; the CAS happened and
   * found another value, etcd's meaning) or `'did-not-happen'` (dropped, the
   * weaker Knossos reading).
   */
  readonly failedCas?: 'compare-failed' | 'did-not-happen';
}

const registerLine =
  /jepsen\.util - (\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(\S.*?)\s*$/;

function registerValue(text: string, line: number): number | null {
  if (text === 'nil') return null;
  if (!/^-?\d+$/.test(text))
    throw bad(line, `expected an integer or nil, got ${JSON.stringify(text)}`);
  return Number(text);
}

function casPair(text: string, line: number): [number | null, number] {
  const m = /^\[(\S+) (\S+)\]$/.exec(text);
  if (m === null) throw bad(line, `expected [expected new], got ${JSON.stringify(text)}`);
  const to = registerValue(m[2] as string, line);
  if (to === null) throw bad(line, 'a CAS cannot write nil');
  return [registerValue(m[1] as string, line), to];
}

/**
 * Parses a Jepsen etcd register log (`INFO  jepsen.util - P :type :f value`
 * lines; other lines are noise). `:info`, a `:fail` read (timed out) and an
 * invocation without completion are unknown outcomes. Throws a CohortError
 * `INVALID_ARGUMENT` naming the line for a malformed event.
 */
export function parseJepsenRegisterLog(
  text: string,
  options: JepsenRegisterOptions = {},
): Operation<RegisterInput<number>, RegisterOutput<number>>[] {
  const failedCas = options.failedCas ?? 'compare-failed';
  const ops: Operation<RegisterInput<number>, RegisterOutput<number>>[] = [];
  const pending = new Map<number, Pending<RegisterInput<number>>>();
  let nextId = 0;
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = index + 1;
    const m = registerLine.exec(raw);
    if (m === null) return;
    const process = Number(m[1]);
    const type = m[2] as 'invoke' | 'ok' | 'fail' | 'info';
    const f = m[3] as 'read' | 'write' | 'cas';
    const value = m[4] as string;
    if (type === 'invoke') {
      if (pending.has(process))
        throw bad(line, `process ${process} invokes while an operation is pending`);
      let input: RegisterInput<number>;
      if (f === 'read') input = { f };
      else if (f === 'write') {
        const v = registerValue(value, line);
        if (v === null) throw bad(line, 'a write cannot write nil');
        input = { f, value: v };
      } else {
        const [expected, to] = casPair(value, line);
        input = { f, expected, value: to };
      }
      pending.set(process, { id: nextId++, process, input, invokeTime: line });
      return;
    }
    const p = pending.get(process);
    if (p === undefined)
      throw bad(line, `process ${process} completes an operation it never invoked`);
    if (p.input.f !== f)
      throw bad(line, `process ${process} invoked ${p.input.f} but completes ${f}`);
    pending.delete(process);
    if (type === 'info' || (type === 'fail' && f === 'read')) {
      ops.push({ ...p, outcome: 'unknown', completeTime: line });
    } else if (type === 'fail') {
      if (f === 'cas' && failedCas === 'compare-failed') {
        ops.push({ ...p, outcome: 'ok', completeTime: line, output: { f: 'cas', ok: false } });
      } else {
        ops.push({ ...p, outcome: 'fail', completeTime: line });
      }
    } else if (f === 'read') {
      ops.push({
        ...p,
        outcome: 'ok',
        completeTime: line,
        output: { f, value: registerValue(value, line) },
      });
    } else if (f === 'write') {
      ops.push({ ...p, outcome: 'ok', completeTime: line, output: { f } });
    } else {
      ops.push({ ...p, outcome: 'ok', completeTime: line, output: { f, ok: true } });
    }
  });
  for (const p of pending.values()) ops.push({ ...p, outcome: 'unknown' });
  return ops.sort((a, b) => a.id - b.id);
}

const kvLine =
  /^\{:process (\d+), :type :(invoke|ok|fail|info), :f :(get|put|append), :key ("(?:[^"\\]|\\.)*"), :value (nil|"(?:[^"\\]|\\.)*")\}\s*$/;

function ednString(text: string, line: number): string {
  try {
    return JSON.parse(text) as string;
  } catch (err) {
    throw new CohortError('INVALID_ARGUMENT', `line ${line}: bad string ${text}`, {
      cause: err,
      details: { line },
    });
  }
}

/**
 * Parses a Jepsen kv log (`{:process P, :type :T, :f :F, :key "K", :value V}`
 * per line; blank lines skipped). Throws a CohortError `INVALID_ARGUMENT`
 * naming the line for anything else.
 */
export function parseJepsenKvLog(text: string): Operation<KvInput, KvOutput>[] {
  const ops: Operation<KvInput, KvOutput>[] = [];
  const pending = new Map<number, Pending<KvInput>>();
  let nextId = 0;
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === '') return;
    const m = kvLine.exec(raw);
    if (m === null) throw bad(line, `not a kv event: ${JSON.stringify(raw.slice(0, 80))}`);
    const process = Number(m[1]);
    const type = m[2] as 'invoke' | 'ok' | 'fail' | 'info';
    const f = m[3] as 'get' | 'put' | 'append';
    const key = ednString(m[4] as string, line);
    const value = m[5] === 'nil' ? null : ednString(m[5] as string, line);
    if (type === 'invoke') {
      if (pending.has(process))
        throw bad(line, `process ${process} invokes while an operation is pending`);
      let input: KvInput;
      if (f === 'get') input = { f, key };
      else {
        if (value === null) throw bad(line, `${f} needs a value`);
        input = { f, key, value };
      }
      pending.set(process, { id: nextId++, process, input, invokeTime: line });
      return;
    }
    const p = pending.get(process);
    if (p === undefined)
      throw bad(line, `process ${process} completes an operation it never invoked`);
    if (p.input.f !== f || p.input.key !== key) {
      throw bad(
        line,
        `process ${process} completes ${f} ${key}, not the pending ${p.input.f} ${p.input.key}`,
      );
    }
    pending.delete(process);
    if (type === 'info') ops.push({ ...p, outcome: 'unknown', completeTime: line });
    else if (type === 'fail') ops.push({ ...p, outcome: 'fail', completeTime: line });
    else if (f === 'get')
      ops.push({ ...p, outcome: 'ok', completeTime: line, output: { f, value } });
    else ops.push({ ...p, outcome: 'ok', completeTime: line, output: { f } });
  });
  for (const p of pending.values()) ops.push({ ...p, outcome: 'unknown' });
  return ops.sort((a, b) => a.id - b.id);
}

/**
 * Parses VERDICTS.txt: `<file> true|false` per line, `#` comments. Throws a
 * CohortError `INVALID_ARGUMENT` for another line shape.
 */
export function parseVerdicts(text: string): Map<string, boolean> {
  const verdicts = new Map<string, boolean>();
  text.split('\n').forEach((raw, index) => {
    const t = raw.trim();
    if (t === '' || t.startsWith('#')) return;
    const m = /^(\S+)\s+(true|false)$/.exec(t);
    if (m === null) throw bad(index + 1, `expected "<file> true|false", got ${JSON.stringify(t)}`);
    verdicts.set(m[1] as string, m[2] === 'true');
  });
  return verdicts;
}
