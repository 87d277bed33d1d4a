/**
 * The txn language of `cohort kv txn`: compares (`--if`) and operations
 * (`--then`, `--else`), and the three-section form read from stdin like
 * `etcdctl txn -i`. A small tokenizer and a recursive-descent parser; a
 * syntax error names the column (and the line, for stdin) where it is.
 *
 * ```ts
 * parseCompare('value(a) >= "1 0"');   // { target: 'value', key: 'a', op: '>=', value: bytes("1 0") }
 * parseCompare("mod('x y')<9");        // { target: 'modRevision', key: 'x y', op: '<', value: 9 }
 * parseTxnOp('put "x y" "a b"');       // { type: 'put', key: 'x y', value: 'a b' }
 * parseTxnOp('get app/ --prefix');     // { type: 'range', key: 'app/', prefix: true }
 * parseTxnScript('value(a) = 1\n\nput a 2\n\nget a\n');  // { compare, success, failure }
 * ```
 *
 * Grammar (whitespace separates tokens and is otherwise ignored):
 *
 * ```text
 * compare  = target "(" string ")" op string
 * target   = "value" | "version" | "create" | "createRevision" | "mod" | "modRevision" | "lease"
 * op       = "=" | "==" | "!=" | "<" | ">" | "<=" | ">="
 * txnop    = "put" string string [ "--lease" ( "=" int | int ) ]
 *          | ("get" | "range") string { "--prefix" | "--keys-only" | "--count-only" }
 *          | ("del" | "delete") string { "--prefix" }
 * string   = word | '"' { char | escape } '"' | "'" { char } "'"
 * word     = one or more characters other than whitespace, ( ) " '
 * escape   = \" \\ \n \t \r \0 \xHH (a raw byte) \u{H...} (a code point)
 * ```
 *
 * A word right after ")" may begin with its operator (`value(a)==1`); any
 * other `=`, `<` or `>` in a word is part of the word (`put k a=b`). Values
 * of version, create, mod and lease compares are non-negative integers.
 * Strings are UTF-8 except for `\xHH`, which is one raw byte, so any key
 * or value can be written.
 */
import { CohortError } from '../lib/errors.js';
import type { KvCompare, KvTxn, KvTxnOp } from '../kv/client.js';
import type { CompareOp } from '../kv/core/types.js';

/** One token and the column (1-based) where it starts. */
interface Token {
  readonly kind: 'word' | 'quoted' | '(' | ')';
  /** The bytes of a word or a quoted string (its escapes resolved). */
  readonly bytes: Uint8Array;
  /** The source text of the token. */
  readonly text: string;
  readonly column: number;
}

const encoder = new TextEncoder();

/** Where a piece of txn text came from, for error messages (`--if "..."`, `stdin line 3`). */
export interface TxnSource {
  readonly what: string;
  /** Added to columns: 0 for a whole flag value. */
  readonly line?: number;
}

function syntaxError(source: TxnSource, column: number, message: string): CohortError {
  const where =
    source.line === undefined ? `column ${column}` : `line ${source.line}, column ${column}`;
  return new CohortError('INVALID_ARGUMENT', `${source.what}: ${where}: ${message}`, {
    details: { field: 'txn', column, ...(source.line === undefined ? {} : { line: source.line }) },
  });
}

/** Splits `text` into tokens (see the grammar in the file comment). */
export function tokenize(text: string, source: TxnSource): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const column = i + 1;
    if (c === '(' || c === ')') {
      tokens.push({ kind: c, bytes: new Uint8Array(0), text: c, column });
      i++;
      continue;
    }
    if (c === '"' || c === "'") {
      const parts: number[] = [];
      let j = i + 1;
      let closed = false;
      while (j < n) {
        const d = text[j] as string;
        if (d === c) {
          closed = true;
          j++;
          break;
        }
        if (d === '\\' && c === '"') {
          const e = text[j + 1];
          const at = j + 1;
          if (e === undefined) break;
          j += 2;
          switch (e) {
            case '"':
            case '\\':
            case "'":
              parts.push(e.charCodeAt(0));
              break;
            case 'n':
              parts.push(10);
              break;
            case 't':
              parts.push(9);
              break;
            case 'r':
              parts.push(13);
              break;
            case '0':
              parts.push(0);
              break;
            case 'x': {
              const hex = text.slice(j, j + 2);
              if (!/^[0-9a-fA-F]{2}$/.test(hex)) {
                throw syntaxError(source, at, '\\x needs two hex digits (a raw byte, e.g. \\xff)');
              }
              parts.push(parseInt(hex, 16));
              j += 2;
              break;
            }
            case 'u': {
              const m = /^\{([0-9a-fA-F]{1,6})\}/.exec(text.slice(j));
              const cp = m?.[1] === undefined ? NaN : parseInt(m[1], 16);
              if (m === null || !(cp <= 0x10ffff)) {
                throw syntaxError(source, at, '\\u needs a code point in braces, e.g. \\u{e9}');
              }
              parts.push(...encoder.encode(String.fromCodePoint(cp)));
              j += m[0].length;
              break;
            }
            default:
              throw syntaxError(
                source,
                at,
                `unknown escape \\${e} (use \\" \\\\ \\n \\t \\r \\0 \\xHH \\u{H})`,
              );
          }
          continue;
        }
        const cp = text.codePointAt(j) as number;
        const ch = String.fromCodePoint(cp);
        parts.push(...encoder.encode(ch));
        j += ch.length;
      }
      if (!closed) throw syntaxError(source, column, `unterminated string: add the closing ${c}`);
      tokens.push({
        kind: 'quoted',
        bytes: Uint8Array.from(parts),
        text: text.slice(i, j),
        column,
      });
      i = j;
      continue;
    }
    let j = i;
    while (j < n && !/[\s()"']/.test(text[j] as string)) j++;
    const word = text.slice(i, j);
    tokens.push({ kind: 'word', bytes: encoder.encode(word), text: word, column });
    i = j;
  }
  return tokens;
}

const targets: Record<string, KvCompare['target']> = {
  value: 'value',
  version: 'version',
  create: 'createRevision',
  createRevision: 'createRevision',
  mod: 'modRevision',
  modRevision: 'modRevision',
  lease: 'lease',
};

const operators: readonly (readonly [string, CompareOp])[] = [
  ['==', '='],
  ['!=', '!='],
  ['<=', '<='],
  ['>=', '>='],
  ['=', '='],
  ['<', '<'],
  ['>', '>'],
];

const opList = '=, ==, !=, <, >, <=, >=';

/** A cursor over tokens with the error helpers of one source. */
class Parser {
  private i = 0;

  constructor(
    private readonly tokens: Token[],
    private readonly source: TxnSource,
    private readonly endColumn: number,
  ) {}

  peek(): Token | undefined {
    return this.tokens[this.i];
  }

  take(): Token | undefined {
    return this.tokens[this.i++];
  }

  /** Replaces the current token (splitting an operator off a word). */
  replace(...tokens: Token[]): void {
    this.tokens.splice(this.i, 1, ...tokens);
  }

  fail(at: Token | undefined, message: string): CohortError {
    return syntaxError(this.source, at?.column ?? this.endColumn, message);
  }

  found(t: Token | undefined): string {
    return t === undefined ? 'the end' : JSON.stringify(t.text);
  }

  /** A word or quoted string. */
  string(what: string): Uint8Array {
    const t = this.take();
    if (t === undefined || (t.kind !== 'word' && t.kind !== 'quoted')) {
      throw this.fail(t, `expected ${what}, found ${this.found(t)}`);
    }
    return t.bytes;
  }

  expect(kind: '(' | ')', what: string): void {
    const t = this.take();
    if (t?.kind !== kind) throw this.fail(t, `expected ${what}, found ${this.found(t)}`);
  }

  end(what: string): void {
    const t = this.peek();
    if (t !== undefined) {
      throw this.fail(
        t,
        `unexpected ${this.found(t)} after ${what}${t.kind === 'word' ? ' (quote values with spaces)' : ''}`,
      );
    }
  }

  /** An operator, possibly the start of a word (`==1`). */
  op(): CompareOp {
    const t = this.peek();
    if (t?.kind === 'word') {
      for (const [text, op] of operators) {
        if (!t.text.startsWith(text)) continue;
        const rest = t.text.slice(text.length);
        if (/^[=<>!]/.test(rest)) {
          throw this.fail(
            t,
            `unknown operator ${JSON.stringify(t.text.match(/^[=<>!]+/)?.[0] ?? t.text)} (operators: ${opList}; quote a value that starts with one)`,
          );
        }
        this.take();
        if (rest !== '') {
          this.i--;
          this.replace({
            kind: 'word',
            bytes: encoder.encode(rest),
            text: rest,
            column: t.column + text.length,
          });
        }
        return op;
      }
    }
    throw this.fail(t, `expected an operator (${opList}), found ${this.found(t)}`);
  }
}

/** Parses one compare (see the grammar in the file comment). */
export function parseCompare(
  text: string,
  source: TxnSource = { what: `--if ${JSON.stringify(text)}` },
): KvCompare {
  const p = new Parser(tokenize(text, source), source, text.length + 1);
  const head = p.take();
  const target = head?.kind === 'word' ? targets[head.text] : undefined;
  if (target === undefined) {
    throw p.fail(
      head,
      `expected a compare target (value, version, create, mod, lease), found ${p.found(head)}`,
    );
  }
  p.expect('(', `"(" after ${head?.text ?? 'the target'}`);
  const key = p.string('a key');
  p.expect(')', '")" after the key (quote keys with spaces or parentheses)');
  const op = p.op();
  const operandToken = p.peek();
  const operand = p.string(target === 'value' ? 'a value' : 'an integer');
  p.end('the compare');
  if (target === 'value') return { target, key, op, value: operand };
  const digits = new TextDecoder().decode(operand);
  const n = Number(digits);
  if (!/^\d+$/.test(digits) || !Number.isSafeInteger(n)) {
    throw p.fail(
      operandToken,
      `${head?.text ?? target} compares with a non-negative integer, found ${p.found(operandToken)}`,
    );
  }
  return { target, key, op, value: n };
}

/** Parses one txn operation (see the grammar in the file comment). */
export function parseTxnOp(
  text: string,
  source: TxnSource = { what: JSON.stringify(text) },
): KvTxnOp {
  const p = new Parser(tokenize(text, source), source, text.length + 1);
  const verb = p.take();
  const name = verb?.kind === 'word' ? verb.text : '';
  switch (name) {
    case 'put': {
      const key = p.string('a key');
      const value = p.string('a value');
      let lease: number | undefined;
      const flag = p.peek();
      if (flag?.kind === 'word' && flag.text.startsWith('--lease')) {
        p.take();
        let raw = flag.text.slice('--lease'.length);
        let at = flag;
        if (raw === '') {
          const t = p.take();
          if (t === undefined) throw p.fail(t, 'expected a lease id after --lease');
          raw = t.text;
          at = t;
        } else if (raw.startsWith('=')) {
          raw = raw.slice(1);
        } else {
          throw p.fail(flag, `unknown option ${JSON.stringify(flag.text)} (put takes --lease)`);
        }
        lease = Number(raw);
        if (!/^\d+$/.test(raw) || !Number.isSafeInteger(lease)) {
          throw p.fail(at, `--lease takes a lease id (an integer), found ${JSON.stringify(raw)}`);
        }
      }
      p.end('put <key> <value>');
      return lease === undefined ? { type: 'put', key, value } : { type: 'put', key, value, lease };
    }
    case 'get':
    case 'range':
    case 'del':
    case 'delete': {
      const key = p.string('a key');
      const flags = new Set<string>();
      const allowed =
        name === 'del' || name === 'delete'
          ? ['--prefix']
          : ['--prefix', '--keys-only', '--count-only'];
      for (let t = p.peek(); t !== undefined; t = p.peek()) {
        if (t.kind !== 'word' || !allowed.includes(t.text)) {
          throw p.fail(
            t,
            `unexpected ${p.found(t)} after ${name} <key> (options: ${allowed.join(' ')}; quote keys with spaces)`,
          );
        }
        flags.add(t.text);
        p.take();
      }
      const prefix = flags.has('--prefix') ? { prefix: true } : {};
      if (name === 'del' || name === 'delete') return { type: 'delete', key, ...prefix };
      return {
        type: 'get',
        key,
        ...prefix,
        ...(flags.has('--keys-only') ? { keysOnly: true } : {}),
        ...(flags.has('--count-only') ? { countOnly: true } : {}),
      };
    }
    default:
      throw p.fail(
        verb,
        `expected an operation: put <key> <value>, get <key>, del <key>; found ${p.found(verb)}`,
      );
  }
}

/**
 * Parses the three-section form (like `etcdctl txn -i`): compares, then a
 * blank line, success operations, a blank line, failure operations. Lines
 * starting with `#` are comments. Errors name the line and column.
 */
export function parseTxnScript(text: string, what = 'stdin'): Required<KvTxn> {
  const sections: { line: number; text: string }[][] = [[]];
  let done = false;
  const lines = text.split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop(); // the newline ending the last line
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line.startsWith('#')) continue;
    if (line === '') {
      // A blank line ends the section (an empty one too, as in etcdctl).
      if (sections.length < 3) sections.push([]);
      else done = true;
      continue;
    }
    if (done) {
      throw syntaxError(
        { what, line: i + 1 },
        1,
        'a txn has three sections (compares, success ops, failure ops), each ended by a blank line',
      );
    }
    sections.at(-1)?.push({ line: i + 1, text: raw });
  }
  const [compares = [], success = [], failure = []] = sections;
  return {
    compare: compares.map((l) => parseCompare(l.text, { what, line: l.line })),
    success: success.map((l) => parseTxnOp(l.text, { what, line: l.line })),
    failure: failure.map((l) => parseTxnOp(l.text, { what, line: l.line })),
  };
}
