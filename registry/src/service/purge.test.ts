// The purge of abandoned data while the registry runs: what a run removes, counts and logs; that
// runs never overlap; the timer, and that it stops with the server.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Readable } from 'node:stream';
import { createLogger, type Logger } from '../log/logger.ts';
import { createMetrics, type Metrics } from '../metrics/metrics.ts';
import { Uploads, type UploadsOptions } from '../push/uploads.ts';
import type { SweptStaging } from '../storage/backend.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { MAX_PURGE_INTERVAL_MS, MIN_PURGE_INTERVAL_MS, purgeIntervalMs, Purger, type PurgeOptions } from './purge.ts';

const tempDir = tempDirs('nixery-purge-');
const TTL = 60_000;

/** Upload sessions kept by a filesystem storage of their own. */
async function uploadsOnDisk(options: UploadsOptions = {}): Promise<Uploads> {
  const storage = new FilesystemStorage(await tempDir());
  await storage.init();
  return new Uploads(storage.uploads, options);
}

function capturingLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { log: createLogger({ write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }), lines };
}

async function value(metrics: Metrics, name: keyof Metrics, labels: Record<string, string> = {}): Promise<number> {
  const metric = await (metrics[name] as { get(): Promise<{ values: { value: number; labels: Record<string, unknown>; metricName?: string }[] }> }).get();
  const matching = metric.values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return matching.reduce((sum, v) => sum + v.value, 0);
}

async function purgeCount(metrics: Metrics): Promise<number> {
  const metric = await metrics.purgeDuration.get();
  return metric.values.find((v) => v.metricName === 'nixery_purge_duration_seconds_count')?.value ?? 0;
}

function fixedSweep(result: SweptStaging): PurgeOptions['storage'] & { calls: number } {
  const storage = {
    calls: 0,
    sweepStaging: async () => {
      storage.calls++;
      return result;
    },
  };
  return storage;
}

describe('a purge run', () => {
  it('drops idle upload sessions and stale staging objects, counts them and logs one line', async () => {
    const clock = { now: 1_000_000 };
    const uploads = await uploadsOnDisk({ now: () => clock.now });
    const idle = await uploads.start('team/app');
    await uploads.append(idle, Readable.from([Buffer.from('abandoned')]));
    await uploads.close(idle);
    clock.now += TTL + 1;
    const active = await uploads.start('team/app');
    await uploads.close(active);
    const metrics = createMetrics({ defaultMetrics: false });
    const { log, lines } = capturingLog();
    const purger = new Purger({ uploads, storage: fixedSweep({ objects: 2, bytes: 300 }), metrics, log, uploadSessionTtlMs: TTL, stagingTtlMs: TTL });

    const result = await purger.run();
    assert.deepEqual(result, { uploadSessions: 1, uploadBytes: 9, stagingObjects: 2, stagingBytes: 300, errors: [] });
    assert.ok(await uploads.open(active.id, 'team/app'), 'the active session stays');
    assert.equal(await value(metrics, 'purgeRuns', { result: 'ok' }), 1);
    assert.equal(await purgeCount(metrics), 1);
    assert.equal(await value(metrics, 'purgedObjects', { kind: 'upload_session' }), 1);
    assert.equal(await value(metrics, 'purgedBytes', { kind: 'upload_session' }), 9);
    assert.equal(await value(metrics, 'purgedObjects', { kind: 'staging' }), 2);
    assert.equal(await value(metrics, 'purgedBytes', { kind: 'staging' }), 300);
    assert.equal(lines.length, 1);
    assert.deepEqual(
      { ...lines[0], time: undefined, durationSeconds: undefined },
      { time: undefined, level: 'info', msg: 'purged abandoned upload sessions and staging objects', uploadSessions: 1, uploadBytes: 9, stagingObjects: 2, stagingBytes: 300, durationSeconds: undefined },
    );
    assert.equal(typeof lines[0]!.durationSeconds, 'number');
  });

  it('that removes nothing is counted but not logged', async () => {
    const uploads = await uploadsOnDisk();
    const metrics = createMetrics({ defaultMetrics: false });
    const { log, lines } = capturingLog();
    const purger = new Purger({ uploads, storage: fixedSweep({ objects: 0, bytes: 0 }), metrics, log, uploadSessionTtlMs: TTL, stagingTtlMs: TTL });
    await purger.run();
    await purger.run();
    assert.equal(await value(metrics, 'purgeRuns', { result: 'ok' }), 2);
    assert.equal(await value(metrics, 'purgedObjects'), 0);
    assert.deepEqual(lines, []);
  });

  it('still purges upload sessions when the staging sweep fails, and counts an error run', async () => {
    const clock = { now: 1_000_000 };
    const uploads = await uploadsOnDisk({ now: () => clock.now });
    await uploads.close(await uploads.start('a'));
    clock.now += TTL + 1;
    const metrics = createMetrics({ defaultMetrics: false });
    const { log, lines } = capturingLog();
    const storage = { sweepStaging: () => Promise.reject(new Error('bucket unreachable')) };
    const result = await new Purger({ uploads, storage, metrics, log, uploadSessionTtlMs: TTL, stagingTtlMs: TTL }).run();
    assert.deepEqual(result.errors, ['staging']);
    assert.equal(result.uploadSessions, 1);
    assert.equal(await value(metrics, 'purgeRuns', { result: 'error' }), 1);
    assert.equal(await value(metrics, 'purgeRuns', { result: 'ok' }), 0);
    assert.deepEqual(lines.map((l) => [l.level, l.msg]), [
      ['warn', 'sweeping stale staging objects failed'],
      ['info', 'purged abandoned upload sessions and staging objects'],
    ]);
  });

  it('never overlaps another: a run asked for during one is that one', async () => {
    const uploads = await uploadsOnDisk();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const storage = {
      sweepStaging: async () => {
        calls++;
        await gate;
        return { objects: 1, bytes: 1 };
      },
    };
    const metrics = createMetrics({ defaultMetrics: false });
    const purger = new Purger({ uploads, storage, metrics, log: capturingLog().log, uploadSessionTtlMs: TTL, stagingTtlMs: TTL });
    const first = purger.run();
    const second = purger.run();
    assert.equal(first, second);
    release();
    await first;
    assert.equal(calls, 1);
    assert.equal(await value(metrics, 'purgeRuns'), 1);
    await purger.run();
    assert.equal(calls, 2, 'the next run starts once the first ended');
  });
});

describe('the purge timer', () => {
  it('runs every quarter of the shorter TTL, within 30 s and 10 min', () => {
    assert.equal(purgeIntervalMs(3600_000, 3600_000), MAX_PURGE_INTERVAL_MS);
    assert.equal(purgeIntervalMs(1_200_000, 3600_000), 300_000);
    assert.equal(purgeIntervalMs(3600_000, 400_000), 100_000);
    assert.equal(purgeIntervalMs(1_000, 3600_000), MIN_PURGE_INTERVAL_MS);
  });

  it('runs on its interval until stopped, the next run set only after a run ended', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const storage = fixedSweep({ objects: 0, bytes: 0 });
    const uploads = { purgeIdle: async () => ({ sessions: 0, bytes: 0 }) };
    const purger = new Purger({ uploads, storage, metrics: createMetrics({ defaultMetrics: false }), log: capturingLog().log, uploadSessionTtlMs: TTL, stagingTtlMs: TTL, intervalMs: 1000 });
    purger.start();
    t.mock.timers.tick(999);
    await settle();
    assert.equal(storage.calls, 0);
    t.mock.timers.tick(1);
    await settle();
    assert.equal(storage.calls, 1);
    assert.ok(purger.scheduled, 'the next run is set once the run ended');
    t.mock.timers.tick(1000);
    await settle();
    assert.equal(storage.calls, 2);
    await purger.stop();
    assert.equal(purger.scheduled, false);
    t.mock.timers.tick(10_000);
    await settle();
    assert.equal(storage.calls, 2, 'nothing runs after stop');
  });

  it('stops when the server closes, without holding the close up', async () => {
    const storage = fixedSweep({ objects: 0, bytes: 0 });
    const uploads = { purgeIdle: async () => ({ sessions: 0, bytes: 0 }) };
    const server = http.createServer((_req, res) => res.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const purger = new Purger({ uploads, storage, metrics: createMetrics({ defaultMetrics: false }), log: capturingLog().log, uploadSessionTtlMs: TTL, stagingTtlMs: TTL })
      .start()
      .stopWith(server);
    assert.ok(purger.scheduled);
    await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    assert.equal(purger.scheduled, false);
    assert.equal(storage.calls, 0);
  });
});

/** Lets the promise callbacks of a run that the mocked clock started finish. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
