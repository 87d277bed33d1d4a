import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/lib/random.js';
import { SimDisk } from '../../src/sim/disk.js';

const bytes = (...xs: number[]): Uint8Array => Uint8Array.from(xs);

function fresh(seed: number, options = {}): SimDisk {
  const disk = new SimDisk(seededRandom(seed), options);
  disk.fs.mkdirp('/d');
  disk.fs.syncDir('/');
  return disk;
}

/** Creates /d/f with `content`, synced and with its name durable. */
function durableFile(disk: SimDisk, content: Uint8Array): number {
  const fd = disk.fs.open('/d/f', 'create');
  disk.fs.write(fd, content, 0);
  disk.fs.fdatasync(fd);
  disk.fs.syncDir('/d');
  return fd;
}

describe('SimDisk', () => {
  it('reads back what was written, before any sync', () => {
    const disk = fresh(1);
    const fd = disk.fs.open('/d/f', 'create');
    disk.fs.write(fd, bytes(1, 2, 3), 0);
    disk.fs.write(fd, bytes(9), 5);
    expect([...disk.fs.read(fd, 0, 10)]).toEqual([1, 2, 3, 0, 0, 9]);
    expect(disk.fs.size(fd)).toBe(6);
    disk.fs.truncate(fd, 2);
    expect([...disk.fs.read(fd, 0, 10)]).toEqual([1, 2]);
    expect(disk.fs.readdir('/d')).toEqual(['f']);
  });

  it('keeps synced data and names across every crash', () => {
    for (let seed = 0; seed < 200; seed++) {
      const disk = fresh(seed);
      durableFile(disk, bytes(1, 2, 3, 4));
      disk.crash();
      expect([...disk.readFile('/d/f')], `seed ${seed}`).toEqual([1, 2, 3, 4]);
    }
  });

  it('loses, keeps or tears unsynced appends, always as a prefix on top of the synced data', () => {
    const outcomes = new Set<string>();
    for (let seed = 0; seed < 300; seed++) {
      const disk = fresh(seed, { zeroFillProbability: 0 });
      const fd = durableFile(disk, bytes(1, 2));
      disk.fs.write(fd, bytes(3, 4, 5, 6), 2);
      disk.fs.write(fd, bytes(7, 8), 6);
      disk.crash();
      const got = [...disk.readFile('/d/f')];
      expect(got.slice(0, 2), `seed ${seed}`).toEqual([1, 2]);
      expect(got, `seed ${seed}`).toEqual([1, 2, 3, 4, 5, 6, 7, 8].slice(0, got.length));
      outcomes.add(
        got.length === 2 ? 'lost' : got.length === 8 ? 'kept' : got.length === 6 ? 'first' : 'torn',
      );
    }
    expect([...outcomes].sort()).toEqual(['first', 'kept', 'lost', 'torn']);
  });

  it('keeps what an unsynced write wrote, even if the caller reuses its Buffer before the crash', () => {
    for (let seed = 0; seed < 50; seed++) {
      const disk = fresh(seed, { tearProbability: 0 });
      const fd = durableFile(disk, bytes(1, 2));
      const buf = Buffer.from([3, 4, 5, 6]);
      disk.fs.write(fd, buf.subarray(1, 3), 2);
      buf.fill(9);
      disk.crash();
      const got = [...disk.readFile('/d/f')];
      expect(got, `seed ${seed}`).toEqual(got.length === 2 ? [1, 2] : [1, 2, 4, 5]);
    }
  });

  it('can leave zeros after a torn write (size reached the disk, data did not)', () => {
    let zeroFilled = 0;
    for (let seed = 0; seed < 200; seed++) {
      const disk = fresh(seed, { tearProbability: 1, zeroFillProbability: 1 });
      const fd = durableFile(disk, bytes(1));
      disk.fs.write(fd, bytes(5, 5, 5, 5), 1);
      const report = disk.crash();
      const got = [...disk.readFile('/d/f')];
      if (report.tornWrites === 1) {
        expect(got.length).toBe(5);
        const cut = got.indexOf(0, 1);
        if (cut > 0) {
          zeroFilled++;
          expect(got.slice(cut).every((b) => b === 0)).toBe(true);
        }
      }
    }
    expect(zeroFilled).toBeGreaterThan(0);
  });

  it('makes a created, renamed or removed name durable only after the directory is synced', () => {
    const seen = new Set<string>();
    for (let seed = 0; seed < 100; seed++) {
      const disk = fresh(seed);
      const fd = disk.fs.open('/d/new', 'create');
      disk.fs.write(fd, bytes(1), 0);
      disk.fs.fsync(fd); // data durable, name not yet
      disk.crash();
      seen.add(disk.fs.readdir('/d').join(','));
    }
    expect([...seen].sort()).toEqual(['', 'new']);

    const disk = fresh(7);
    const fd = disk.fs.open('/d/tmp', 'create');
    disk.fs.write(fd, bytes(4, 2), 0);
    disk.fs.fsync(fd);
    disk.fs.rename('/d/tmp', '/d/final');
    disk.fs.syncDir('/d');
    disk.crash();
    expect(disk.fs.readdir('/d')).toEqual(['final']);
    expect([...disk.readFile('/d/final')]).toEqual([4, 2]);

    const renamed = new Set<string>();
    for (let seed = 0; seed < 100; seed++) {
      const d = fresh(seed);
      durableFile(d, bytes(1));
      d.fs.rename('/d/f', '/d/g');
      d.fs.unlink('/d/g');
      d.crash();
      renamed.add(d.fs.readdir('/d').join(','));
    }
    // In order: nothing, the rename, or the rename and the unlink; never the unlink alone.
    expect([...renamed].sort()).toEqual(['', 'f', 'g']);
  });

  it('may lose a new directory, with the synced files in it, until its parent is synced', () => {
    const seen = new Set<string>();
    for (let seed = 0; seed < 100; seed++) {
      const disk = new SimDisk(seededRandom(seed));
      expect(disk.fs.mkdirp('/a/b/c')).toEqual(['/a', '/a/b', '/a/b/c']);
      expect(disk.fs.mkdirp('/a/b')).toEqual([]);
      const fd = disk.fs.open('/a/b/c/f', 'create');
      disk.fs.write(fd, bytes(1, 2), 0);
      disk.fs.fsync(fd);
      disk.fs.syncDir('/a/b/c'); // the file and its name are durable; /a/b/c's own name is not
      disk.fs.syncDir('/');
      disk.crash();
      expect(disk.fs.readdir('/'), `seed ${seed}`).toEqual(['a']); // '/' was synced
      const files = disk.allFiles();
      seen.add(files.join(','));
      if (files.length > 0) expect([...disk.readFile('/a/b/c/f')]).toEqual([1, 2]);
    }
    expect([...seen].sort()).toEqual(['', '/a/b/c/f']);

    const disk = new SimDisk(seededRandom(1));
    const created = disk.fs.mkdirp('/a/b/c');
    const fd = disk.fs.open('/a/b/c/f', 'create');
    disk.fs.write(fd, bytes(1, 2), 0);
    disk.fs.fsync(fd);
    disk.fs.syncDir('/a/b/c');
    for (const d of created) disk.fs.syncDir(d.slice(0, d.lastIndexOf('/')) || '/');
    disk.crash();
    expect([...disk.readFile('/a/b/c/f')]).toEqual([1, 2]);
    expect(disk.allFiles()).toEqual(['/a/b/c/f']);
    expect(() => disk.fs.open('/a/b', 'read')).toThrow(/EISDIR/);
  });

  it('invalidates open handles on a crash', () => {
    const disk = fresh(3);
    const fd = durableFile(disk, bytes(1));
    disk.crash();
    expect(() => disk.fs.write(fd, bytes(2), 1)).toThrow(/EBADF/);
    expect(() => disk.fs.open('/d/missing', 'read')).toThrow(/ENOENT/);
    expect(() => disk.fs.open('/d/f', 'create')).toThrow(/EEXIST/);
  });

  it('flips stored bits (bit rot) and injects I/O errors', () => {
    const disk = fresh(4);
    const fd = durableFile(disk, bytes(0, 0, 0));
    disk.flipBit('/d/f', 1, 3);
    expect([...disk.readFile('/d/f')]).toEqual([0, 8, 0]);
    disk.crash();
    expect([...disk.readFile('/d/f')]).toEqual([0, 8, 0]);
    const where = disk.rot(5);
    expect(where).toHaveLength(5);
    disk.failWhen = (op) => op === 'fdatasync';
    const fd2 = disk.fs.open('/d/f', 'readwrite');
    expect(() => disk.fs.fdatasync(fd2)).toThrow(/EIO/);
    expect(() => disk.fs.fdatasync(fd)).toThrow(/EBADF/);
  });

  it('replays the same crash from the same seed', () => {
    const run = (seed: number): number[] => {
      const disk = fresh(seed);
      const fd = durableFile(disk, bytes(1));
      for (let i = 0; i < 20; i++) disk.fs.write(fd, bytes(i, i, i), 1 + i * 3);
      disk.crash();
      return [...disk.readFile('/d/f')];
    };
    expect(run(11)).toEqual(run(11));
    const lengths = new Set(Array.from({ length: 20 }, (_, s) => run(s).length));
    expect(lengths.size).toBeGreaterThan(3);
  });
});
