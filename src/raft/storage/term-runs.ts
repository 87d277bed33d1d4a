/**
 * The terms of a log compressed into runs, so durable storage can validate
 * writes (Raft §5.3 log matching, §7 snapshot rule) without keeping entry data
 * in memory.
 *
 * ```ts
 * const runs = new TermRuns(0);
 * runs.append(1, 1); runs.append(2, 1); runs.append(3, 2);
 * runs.termAt(2) === 1; runs.truncateFrom(3); runs.lastIndex === 2;
 * ```
 */
import { assert } from '../../lib/assert.js';

/** Terms of the entries (first - 1, lastIndex], as runs of equal term. */
export class TermRuns {
  private starts: number[] = [];
  private terms: number[] = [];
  private last: number;

  /** An empty log whose last index is `lastIndex` (the snapshot index). */
  constructor(lastIndex: number) {
    this.last = lastIndex;
  }

  /** Index of the last entry (or of the log's base when empty). */
  get lastIndex(): number {
    return this.last;
  }

  /** Index of the first entry held, or lastIndex + 1 if none. */
  get firstIndex(): number {
    return this.starts[0] ?? this.last + 1;
  }

  /** Appends entry `index` (must be lastIndex + 1) with `term`. */
  append(index: number, term: number): void {
    // The message is built only on failure: this runs once per appended entry.
    if (index !== this.last + 1) assert(false, `TermRuns.append(${index}) after ${this.last}`);
    if (this.terms[this.terms.length - 1] !== term) {
      this.starts.push(index);
      this.terms.push(term);
    }
    this.last = index;
  }

  /** Term of entry `index`, which must be held. */
  termAt(index: number): number {
    const n = this.terms.length;
    // The last entry's term (asked for every append) without the search.
    if (index === this.last && n > 0) return this.terms[n - 1] as number;
    if (index < this.firstIndex || index > this.last)
      assert(false, `termAt(${index}) outside the log`);
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.starts[mid] as number) <= index) lo = mid;
      else hi = mid - 1;
    }
    return this.terms[lo] as number;
  }

  /** Drops entries with index >= `from`. */
  truncateFrom(from: number): void {
    while (this.starts.length > 0 && (this.starts[this.starts.length - 1] as number) >= from) {
      this.starts.pop();
      this.terms.pop();
    }
    this.last = Math.min(this.last, from - 1);
  }

  /** Drops entries with index <= `index` (compaction behind a snapshot that keeps the rest). */
  dropThrough(index: number): void {
    let cut = 0;
    while (cut + 1 < this.starts.length && (this.starts[cut + 1] as number) <= index + 1) cut++;
    this.starts.splice(0, cut);
    this.terms.splice(0, cut);
    if (this.starts.length > 0 && (this.starts[0] as number) <= index) {
      if (index >= this.last) {
        this.starts = [];
        this.terms = [];
      } else {
        this.starts[0] = index + 1;
      }
    }
  }

  /** Drops everything; the log now ends at `lastIndex`. */
  reset(lastIndex: number): void {
    this.starts = [];
    this.terms = [];
    this.last = lastIndex;
  }
}
