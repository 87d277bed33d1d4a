import { describe, expect, it } from 'vitest';
import { CohortError } from '../../../src/lib/errors.js';
import {
  parseJepsenKvLog,
  parseJepsenRegisterLog,
  parseVerdicts,
} from '../../../src/sim/checkers/jepsen-parse.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof CohortError ? `${err.code}: ${err.message}` : String(err);
  }
  return undefined;
}

describe('parseJepsenRegisterLog', () => {
  const log = [
    'INFO  jepsen.core - some noise',
    'INFO  jepsen.util - 0\t:invoke\t:read\tnil',
    'INFO  jepsen.util - 1   :invoke :write  3',
    'INFO  jepsen.util - 2\t:invoke\t:cas\t[3 4]',
    'INFO  jepsen.util - 0\t:ok\t:read\tnil',
    'INFO  jepsen.util - 1   :ok     :write  3',
    'INFO  jepsen.util - 2\t:fail\t:cas\t[3 4]',
    'INFO  jepsen.util - 3\t:invoke\t:write\t1',
    'INFO  jepsen.util - 3\t:info\t:write\t:timed-out',
    'INFO  jepsen.util - 4\t:invoke\t:read\tnil',
    'INFO  jepsen.util - 4\t:fail\t:read\t:timed-out',
    'INFO  jepsen.util - 5\t:invoke\t:cas\t[nil 2]',
    '',
  ].join('\n');

  it('parses every event kind, with line numbers as times', () => {
    const h = parseJepsenRegisterLog(log);
    expect(h).toEqual([
      {
        id: 0,
        process: 0,
        input: { f: 'read' },
        invokeTime: 2,
        outcome: 'ok',
        completeTime: 5,
        output: { f: 'read', value: null },
      },
      {
        id: 1,
        process: 1,
        input: { f: 'write', value: 3 },
        invokeTime: 3,
        outcome: 'ok',
        completeTime: 6,
        output: { f: 'write' },
      },
      {
        id: 2,
        process: 2,
        input: { f: 'cas', expected: 3, value: 4 },
        invokeTime: 4,
        outcome: 'ok',
        completeTime: 7,
        output: { f: 'cas', ok: false },
      },
      {
        id: 3,
        process: 3,
        input: { f: 'write', value: 1 },
        invokeTime: 8,
        outcome: 'unknown',
        completeTime: 9,
      },
      {
        id: 4,
        process: 4,
        input: { f: 'read' },
        invokeTime: 10,
        outcome: 'unknown',
        completeTime: 11,
      },
      {
        id: 5,
        process: 5,
        input: { f: 'cas', expected: null, value: 2 },
        invokeTime: 12,
        outcome: 'unknown',
      },
    ]);
  });

  it('reads a failed CAS as not happened when asked', () => {
    const h = parseJepsenRegisterLog(log, { failedCas: 'did-not-happen' });
    expect(h[2]).toMatchObject({ outcome: 'fail', completeTime: 7 });
  });

  it('refuses malformed events with INVALID_ARGUMENT naming the line', () => {
    expect(codeOf(() => parseJepsenRegisterLog('INFO  jepsen.util - 0\t:ok\t:read\t1'))).toMatch(
      /^INVALID_ARGUMENT: line 1: process 0 completes an operation it never invoked/,
    );
    expect(
      codeOf(() =>
        parseJepsenRegisterLog(
          'INFO  jepsen.util - 0 :invoke :read nil\nINFO  jepsen.util - 0 :invoke :read nil',
        ),
      ),
    ).toMatch(/^INVALID_ARGUMENT: line 2: .*pending/);
    expect(codeOf(() => parseJepsenRegisterLog('INFO  jepsen.util - 0 :invoke :write x'))).toMatch(
      /line 1: expected an integer/,
    );
    expect(codeOf(() => parseJepsenRegisterLog('INFO  jepsen.util - 0 :invoke :cas [1]'))).toMatch(
      /line 1: expected \[expected new\]/,
    );
    expect(
      codeOf(() =>
        parseJepsenRegisterLog(
          'INFO  jepsen.util - 0 :invoke :read nil\nINFO  jepsen.util - 0 :ok :write 1',
        ),
      ),
    ).toMatch(/line 2: process 0 invoked read but completes write/);
  });
});

describe('parseJepsenKvLog', () => {
  it('parses get / put / append with their outcomes', () => {
    const h = parseJepsenKvLog(
      [
        '{:process 0, :type :invoke, :f :append, :key "4", :value "x 0 1 y"}',
        '{:process 1, :type :invoke, :f :get, :key "4", :value nil}',
        '{:process 0, :type :ok, :f :append, :key "4", :value "x 0 1 y"}',
        '{:process 1, :type :ok, :f :get, :key "4", :value "x 0 1 y"}',
        '{:process 2, :type :invoke, :f :put, :key "q\\"", :value "v"}',
        '{:process 2, :type :info, :f :put, :key "q\\"", :value "v"}',
        '',
        '{:process 3, :type :invoke, :f :put, :key "z", :value "w"}',
        '{:process 3, :type :fail, :f :put, :key "z", :value "w"}',
      ].join('\n'),
    );
    expect(
      h.map((op) => [op.input, op.outcome, op.outcome === 'ok' ? op.output : undefined]),
    ).toEqual([
      [{ f: 'append', key: '4', value: 'x 0 1 y' }, 'ok', { f: 'append' }],
      [{ f: 'get', key: '4' }, 'ok', { f: 'get', value: 'x 0 1 y' }],
      [{ f: 'put', key: 'q"', value: 'v' }, 'unknown', undefined],
      [{ f: 'put', key: 'z', value: 'w' }, 'fail', undefined],
    ]);
  });

  it('refuses malformed lines and mismatched completions', () => {
    expect(codeOf(() => parseJepsenKvLog('{:process 0, :type :invoke}'))).toMatch(
      /^INVALID_ARGUMENT: line 1: not a kv event/,
    );
    expect(
      codeOf(() =>
        parseJepsenKvLog(
          '{:process 0, :type :invoke, :f :get, :key "a", :value nil}\n{:process 0, :type :ok, :f :get, :key "b", :value nil}',
        ),
      ),
    ).toMatch(/line 2: process 0 completes get b, not the pending get a/);
    expect(
      codeOf(() => parseJepsenKvLog('{:process 0, :type :invoke, :f :put, :key "a", :value nil}')),
    ).toMatch(/line 1: put needs a value/);
  });
});

describe('parseVerdicts', () => {
  it('reads file verdicts and skips comments', () => {
    expect([...parseVerdicts('# file linearizable\na.log true\nb.log false\n')]).toEqual([
      ['a.log', true],
      ['b.log', false],
    ]);
    expect(codeOf(() => parseVerdicts('a.log maybe'))).toMatch(/^INVALID_ARGUMENT: line 1/);
  });
});
