/**
 * Checks on JSON log lines that JSON.parse cannot make: a key written twice
 * in one object (parsers keep one of them, silently).
 *
 * ```ts
 * rawKeys('{"a":1,"node":"n1","node":"n2"}');   // ['a', 'node', 'node']
 * ```
 */

/** The keys of one JSON line in the order written, duplicates included (JSON.parse would hide them). */
export function rawKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === '"') {
      let j = i + 1;
      while (j < line.length && line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
      const s = line.slice(i + 1, j);
      i = j + 1;
      while (line[i] === ' ') i++;
      if (line[i] === ':' && depth === 1) keys.push(s);
      continue;
    }
    if (c === '{' || c === '[') depth++;
    if (c === '}' || c === ']') depth--;
    i++;
  }
  return keys;
}
