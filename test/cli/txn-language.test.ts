/**
 * The txn language of `cohort kv txn`: every operator on every target,
 * quoting and escapes, errors that name the column (and line), and the
 * three-section stdin form.
 */
import { describe, expect, it } from 'vitest';
import { parseCompare, parseTxnOp, parseTxnScript } from '../../src/cli/txn-language.js';
import { kvText } from '../../src/kv/core/bytes.js';
import type { KvCompare, KvTxnOp } from '../../src/kv/client.js';

const text = (b: unknown): string => kvText(b as Uint8Array);

function compare(s: string): { target: string; key: string; op: string; value: string | number } {
  const c: KvCompare = parseCompare(s);
  return {
    target: c.target,
    key: text(c.key),
    op: c.op,
    value: typeof c.value === 'number' ? c.value : text(c.value),
  };
}

describe('compares', () => {
  it.each([
    ['=', '='],
    ['==', '='],
    ['!=', '!='],
    ['<', '<'],
    ['>', '>'],
    ['<=', '<='],
    ['>=', '>='],
  ])('value(a) %s 1 compares with op %s and the value "1"', (written, op) => {
    expect(compare(`value(a) ${written} 1`)).toEqual({ target: 'value', key: 'a', op, value: '1' });
    // Without spaces too: the operator is split off the word after ")".
    expect(compare(`value(a)${written}1`)).toEqual({ target: 'value', key: 'a', op, value: '1' });
  });

  it.each([
    ['version', 'version'],
    ['create', 'createRevision'],
    ['createRevision', 'createRevision'],
    ['mod', 'modRevision'],
    ['modRevision', 'modRevision'],
    ['lease', 'lease'],
  ])('%s compares with an integer', (written, target) => {
    expect(compare(`${written}(k) >= 7`)).toEqual({ target, key: 'k', op: '>=', value: 7 });
  });

  it('quotes keys and values, with escapes; a raw byte with \\x', () => {
    expect(compare(`value("a b") == "x y"`)).toMatchObject({ key: 'a b', value: 'x y' });
    expect(compare(`value("it's") = 'a "b"'`)).toMatchObject({ key: "it's", value: 'a "b"' });
    expect(compare(`value("q\\"(x)") = "\\u{e9}\\n"`)).toMatchObject({
      key: 'q"(x)',
      value: 'é\n',
    });
    const c = parseCompare('value(b) = "\\xff\\x00"');
    expect([...(c.value as Uint8Array)]).toEqual([0xff, 0]);
    expect(compare('value(k) = "=1"')).toMatchObject({ op: '=', value: '=1' });
  });

  it.each([
    ['color(t) = 1', 'column 1: expected a compare target'],
    ['value a) = 1', 'column 7: expected "(" after value'],
    ['value(a = 1', 'column 9: expected ")" after the key'],
    ['value(a) 1', 'column 10: expected an operator'],
    ['value(a) >> 2', 'column 10: unknown operator ">>"'],
    ['value(a) =', 'column 11: expected a value, found the end'],
    ['value(a) = 1 2', 'column 14: unexpected "2" after the compare'],
    ['version(a) > x', 'column 14: version compares with a non-negative integer'],
    ['value("a) = 1', 'column 7: unterminated string'],
    ['value("\\q") = 1', 'column 8: unknown escape \\q'],
  ])('%j is refused: %s', (s, message) => {
    expect(() => parseCompare(s)).toThrow(message);
    try {
      parseCompare(s);
    } catch (e) {
      expect((e as { code?: string }).code).toBe('INVALID_ARGUMENT');
    }
  });
});

describe('operations', () => {
  const op = (s: string): KvTxnOp => parseTxnOp(s);

  it('put, get and del with quoting, --lease and --prefix', () => {
    const put = op('put "x y" "a b" --lease=7');
    expect(put.type).toBe('put');
    expect(put.type === 'put' ? [text(put.key), text(put.value), put.lease] : []).toEqual([
      'x y',
      'a b',
      7,
    ]);
    expect(op('put k a=b')).toMatchObject({ type: 'put' });
    expect(op('put k v --lease 9')).toMatchObject({ lease: 9 });
    expect(op('get app/ --prefix --keys-only')).toMatchObject({
      type: 'get',
      prefix: true,
      keysOnly: true,
    });
    expect(op('del app/ --prefix')).toMatchObject({ type: 'delete', prefix: true });
    expect(op('delete k')).toMatchObject({ type: 'delete' });
  });

  it.each([
    ['put k', 'column 6: expected a value, found the end'],
    [
      'put k hello world',
      'column 13: unexpected "world" after put <key> <value> (quote values with spaces)',
    ],
    ['get a --limit', 'column 7: unexpected "--limit" after get <key>'],
    ['del', 'column 4: expected a key'],
    ['set a 1', 'column 1: expected an operation'],
    ['put k v --lease x', 'column 17: --lease takes a lease id'],
  ])('%j is refused: %s', (s, message) => {
    expect(() => op(s)).toThrow(message);
  });
});

describe('the three-section form (stdin, etcdctl txn -i)', () => {
  it('reads compares, success ops and failure ops separated by blank lines', () => {
    const t = parseTxnScript(
      ['# a comment', 'value(a) = "1"', 'mod(b) < 9', '', 'put a 2', 'get b', '', 'get a', ''].join(
        '\n',
      ),
    );
    expect(t.compare.map((c) => c.op)).toEqual(['=', '<']);
    expect(t.success.map((o) => o.type)).toEqual(['put', 'get']);
    expect(t.failure.map((o) => o.type)).toEqual(['get']);
  });

  it('an empty section is allowed; an error names the line and column', () => {
    const t = parseTxnScript('\nput a 1\n');
    expect(t.compare).toEqual([]);
    expect(t.success).toHaveLength(1);
    expect(() => parseTxnScript('value(a) = 1\n\nput a\n')).toThrow(
      'stdin: line 3, column 6: expected a value',
    );
    expect(() => parseTxnScript('\n\n\n\nget a\n')).toThrow(
      'line 5, column 1: a txn has three sections',
    );
  });
});
