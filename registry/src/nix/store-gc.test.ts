// Collecting the registry's Nix store, the parts that need no real collection: the gate that keeps
// a collection out of a build's evaluate-then-root stretch, the roots directory of builds in
// flight, and reading Nix's summary. The real collection runs in e2e/registry/storage-quota.test.ts,
// in a mount namespace over a copy-on-write /nix (never on the machine's store).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { silentLogger } from '../log/logger.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { BuildRoots } from './gc-roots.ts';
import { StoreGate } from './store-gate.ts';
import { parseGcSummary } from './store-gc.ts';

const tempDir = tempDirs('nixery-store-gc-');

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('the store gate', () => {
  it('starts a collection only once the shared sections in progress ended, and holds new ones back until it ends', async () => {
    const gate = new StoreGate();
    const events: string[] = [];
    const evaluation = deferred();
    const first = gate.shared(async () => {
      events.push('evaluate+root start');
      await evaluation.promise;
      events.push('evaluate+root end');
    });
    const collection = deferred();
    const collecting = gate.exclusive(async () => {
      events.push('collect start');
      await collection.promise;
      events.push('collect end');
    });
    const later = gate.shared(async () => void events.push('later build'));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(events, ['evaluate+root start'], 'the collection waits; the later build waits behind it');
    evaluation.resolve();
    await first;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(events, ['evaluate+root start', 'evaluate+root end', 'collect start']);
    collection.resolve();
    await Promise.all([collecting, later]);
    assert.deepEqual(events, ['evaluate+root start', 'evaluate+root end', 'collect start', 'collect end', 'later build']);
  });

  it('runs collections one at a time, and lets shared sections run together', async () => {
    const gate = new StoreGate();
    let inside = 0;
    let most = 0;
    const section = async () => {
      most = Math.max(most, ++inside);
      await new Promise((r) => setImmediate(r));
      inside--;
    };
    await Promise.all([gate.exclusive(section), gate.exclusive(section)]);
    assert.equal(most, 1);
    most = 0;
    await Promise.all([gate.shared(section), gate.shared(section)]);
    assert.equal(most, 2);
    await assert.rejects(gate.exclusive(() => Promise.reject(new Error('nix failed'))), /nix failed/);
    await gate.shared(section); // a failed collection releases the gate
  });
});

describe('GC roots of builds in flight', () => {
  const a = '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-1.0';
  const drv = '/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-hello-1.0.drv';

  it('holds a symlink per store path in a directory per build, under the process directory, until released', async () => {
    const base = path.join(await tempDir(), 'gcroots', 'nixery');
    const roots = new BuildRoots({ base, log: silentLogger, pid: 4242 });
    const hold = await roots.hold([drv, a]);
    await hold.add([a]); // the same path twice is one root
    assert.equal(path.dirname(hold.dir), path.join(base, '4242'));
    assert.deepEqual((await fs.readdir(hold.dir)).sort(), [path.basename(a), path.basename(drv)]);
    assert.equal(await fs.readlink(path.join(hold.dir, path.basename(a))), a);
    const other = await roots.hold([a]);
    assert.notEqual(other.dir, hold.dir);
    await hold.release();
    await assert.rejects(fs.stat(hold.dir), { code: 'ENOENT' });
    assert.ok(await fs.stat(other.dir), "another build's roots stay");
  });

  it('refuses what is not a store path', async () => {
    const roots = new BuildRoots({ base: path.join(await tempDir(), 'nixery'), log: silentLogger });
    await assert.rejects(roots.hold(['/etc/passwd']), /not a store path/);
    await assert.rejects(roots.hold(['/nix/store/../../etc']), /not a store path/);
    await assert.rejects(roots.hold(['/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello']), /not a store path/);
  });

  it('at start, removes the directories of processes that are gone and its own pid\'s, and keeps those of running ones', async () => {
    const base = path.join(await tempDir(), 'nixery');
    const gone = 2 ** 22 + 17; // above Linux's pid_max: never a running process
    for (const pid of [gone, process.ppid, 4242]) await fs.mkdir(path.join(base, String(pid), '0'), { recursive: true });
    const removed = await new BuildRoots({ base, log: silentLogger, pid: 4242 }).removeStale();
    assert.deepEqual(removed.sort(), [String(gone), '4242'].sort());
    assert.deepEqual(await fs.readdir(base), [String(process.ppid)]);
  });
});

describe("reading Nix's collection summary", () => {
  it('reads paths and bytes in every unit Nix prints, and nothing from other lines', () => {
    assert.deepEqual(parseGcSummary('1 store paths deleted, 0.00 MiB freed'), { deletedPaths: 1, freedBytes: 0 });
    assert.deepEqual(parseGcSummary('finding garbage collector roots...\n42 store paths deleted, 12.50 MiB freed\n'), { deletedPaths: 42, freedBytes: 12.5 * 1024 * 1024 });
    assert.deepEqual(parseGcSummary('3 store paths deleted, 1.25 GiB freed'), { deletedPaths: 3, freedBytes: 1.25 * 1024 ** 3 });
    assert.equal(parseGcSummary("deleting '/nix/store/aaaa-hello'"), undefined);
  });
});
