// The pull recorder (service/pulls.ts), specification style: a pull touches no storage, a hot
// image is written at most once per granularity, flushes are bounded, failures are retried.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../log/logger.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { countingStorage as countingStorageIn } from '../test-support/counting-storage.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { PULL_RECORD_GRANULARITY_MS, PullRecorder, pulledKey, type PulledRecord } from './pulls.ts';

const tempDir = tempDirs('nixery-pulls-');
const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

const countingStorage = async () => countingStorageIn(await tempDir());

/** A recorder that never flushes on its own (each test flushes when it says so), on a fake clock. */
function recorder(storage: FilesystemStorage, clock: { now: number }, options: { maxPending?: number; maxPerFlush?: number; lines?: string[] } = {}) {
  return new PullRecorder(storage, {
    flushIntervalMs: 3_600_000,
    now: () => clock.now,
    log: createLogger({ write: (line) => options.lines?.push(line) }),
    ...(options.maxPending ? { maxPending: options.maxPending } : {}),
    ...(options.maxPerFlush ? { maxPerFlush: options.maxPerFlush } : {}),
  });
}

describe('pull records', () => {
  it('a pull touches no storage; the flush writes pulled/<hex> with the time and the name', async () => {
    const { storage, counting, calls } = await countingStorage();
    const clock = { now: 1_700_000_000_000 };
    const pulls = recorder(counting, clock);
    pulls.recordPulled('shell/hello', digest(1));
    assert.deepEqual(calls, { reads: 0, writes: 0, failWrites: false });
    await pulls.flush();
    assert.equal(calls.writes, 1);
    assert.deepEqual(await storage.getDocument<PulledRecord>(pulledKey(digest(1))!), { lastPulled: clock.now, name: 'shell/hello' });
    assert.equal(pulledKey('sha512:' + 'a'.repeat(128)), undefined);
  });

  it('1000 pulls of one image over a day, flushed every 30 s, write its record at most once an hour', async () => {
    const { storage, counting, calls } = await countingStorage();
    const clock = { now: 1_700_000_000_000 };
    const start = clock.now;
    const pulls = recorder(counting, clock);
    for (let i = 0; i < 1000; i++) {
      pulls.recordPulled('shell/hello', digest(7));
      clock.now += 86.4 * 1000; // 1000 pulls spread over 24 hours
      if (i % 3 === 0) await pulls.flush();
    }
    await pulls.flush();
    assert.ok(calls.writes <= 25, `${calls.writes} writes in a day`);
    assert.ok(calls.writes >= 24, 'still refreshed about hourly');
    const stored = await storage.getDocument<PulledRecord>(pulledKey(digest(7))!);
    assert.ok(clock.now - stored!.lastPulled <= PULL_RECORD_GRANULARITY_MS + 86_400, 'the record is at most an hour old');
    assert.ok(stored!.lastPulled > start);
  });

  it('1000 pulls of one image within a minute cost one write', async () => {
    const { counting, calls } = await countingStorage();
    const clock = { now: 1_700_000_000_000 };
    const pulls = recorder(counting, clock);
    for (let i = 0; i < 1000; i++) {
      pulls.recordPulled('shell/hello', digest(9));
      clock.now += 60;
      if (i % 100 === 0) await pulls.flush();
    }
    await pulls.flush();
    assert.equal(calls.writes, 1);
  });

  it('bounds what waits in memory and what one flush writes', async () => {
    const { counting, calls } = await countingStorage();
    const clock = { now: 1_700_000_000_000 };
    const lines: string[] = [];
    const pulls = recorder(counting, clock, { maxPending: 50, maxPerFlush: 20, lines });
    for (let i = 0; i < 80; i++) pulls.recordPulled('shell/x', digest(100 + i));
    assert.equal(pulls.pendingCount, 50);
    assert.equal(pulls.dropped, 30);
    await pulls.flush();
    assert.equal(calls.writes, 20, 'one flush writes at most maxPerFlush');
    assert.equal(pulls.pendingCount, 30);
    assert.ok(lines.some((l) => /not recorded/.test(l)), 'drops are logged');
    await pulls.close();
    assert.equal(calls.writes, 50, 'close writes the rest, flush after flush');
    assert.equal(pulls.pendingCount, 0);
  });

  it('a failed write is tried again at the next flush', async () => {
    const { storage, counting, calls } = await countingStorage();
    const clock = { now: 1_700_000_000_000 };
    const lines: string[] = [];
    const pulls = recorder(counting, clock, { lines });
    pulls.recordPulled('shell/hello', digest(3));
    calls.failWrites = true;
    await pulls.flush();
    assert.equal(await storage.getDocument(pulledKey(digest(3))!), null);
    assert.ok(lines.some((l) => /tried again/.test(l)));
    assert.equal(pulls.pendingCount, 1);
    calls.failWrites = false;
    await pulls.flush();
    assert.equal((await storage.getDocument<PulledRecord>(pulledKey(digest(3))!))?.lastPulled, clock.now);
  });
});
