// Upload sessions abandoned by their clients: the idle rule of purgeIdle, on a fake clock.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { UploadNotFoundError, Uploads } from './uploads.ts';

const tempDir = tempDirs('nixery-uploads-');
const TTL = 60_000;

async function uploadsAt(clock: { now: number }): Promise<{ uploads: Uploads; dir: string }> {
  const dir = path.join(await tempDir(), 'uploads');
  const uploads = new Uploads(dir, { now: () => clock.now });
  await uploads.init();
  return { uploads, dir };
}

describe('upload sessions idle past the limit', () => {
  it('are dropped with their file; their id is then unknown', async () => {
    const clock = { now: 1_000_000 };
    const { uploads, dir } = await uploadsAt(clock);
    const session = await uploads.start('team/app');
    await uploads.append(session, Readable.from([Buffer.from('12345')]));
    uploads.close(session);
    assert.deepEqual(await fs.readdir(dir), [session.id]);

    clock.now += TTL + 1;
    assert.deepEqual(await uploads.purgeIdle(TTL), { sessions: 1, bytes: 5 });
    assert.deepEqual(await fs.readdir(dir), [], 'the session file is gone');
    assert.equal(uploads.size, 0);
    assert.throws(() => uploads.open(session.id, 'team/app'), UploadNotFoundError);
  });

  it('keep a session used within the limit: idle time counts from the end of its last request', async () => {
    const clock = { now: 1_000_000 };
    const { uploads, dir } = await uploadsAt(clock);
    const session = await uploads.start('team/app');
    uploads.close(session);
    clock.now += TTL - 1;
    const again = uploads.open(session.id, 'team/app');
    uploads.close(again);
    clock.now += TTL;
    assert.deepEqual(await uploads.purgeIdle(TTL), { sessions: 0, bytes: 0 }, 'exactly the limit is not past it');
    assert.equal(uploads.open(session.id, 'team/app'), session);
    assert.deepEqual(await fs.readdir(dir), [session.id]);
  });

  it('never drop a session with a request in flight, however long it has been', async () => {
    const clock = { now: 1_000_000 };
    const { uploads } = await uploadsAt(clock);
    const started = await uploads.start('team/app');
    // The POST that started it is still in flight.
    clock.now += 10 * TTL;
    assert.equal((await uploads.purgeIdle(TTL)).sessions, 0);
    uploads.close(started);

    const patching = uploads.open(started.id, 'team/app');
    clock.now += 10 * TTL;
    assert.equal((await uploads.purgeIdle(TTL)).sessions, 0, 'a PATCH in flight keeps it');
    uploads.close(patching);
    clock.now += TTL;
    assert.equal((await uploads.purgeIdle(TTL)).sessions, 0, 'its idle time started when the PATCH ended');
    clock.now += 1;
    assert.equal((await uploads.purgeIdle(TTL)).sessions, 1);
  });

  it('counts each request: two in flight, one ended, still in flight', async () => {
    const clock = { now: 1_000_000 };
    const { uploads } = await uploadsAt(clock);
    const session = await uploads.start('team/app');
    uploads.close(session);
    uploads.open(session.id, 'team/app');
    uploads.open(session.id, 'team/app');
    uploads.close(session);
    clock.now += 2 * TTL;
    assert.equal((await uploads.purgeIdle(TTL)).sessions, 0);
    uploads.close(session);
    clock.now += TTL + 1;
    assert.equal((await uploads.purgeIdle(TTL)).sessions, 1);
  });

  it('leave finished sessions alone and drop only the idle among several', async () => {
    const clock = { now: 1_000_000 };
    const { uploads, dir } = await uploadsAt(clock);
    const old = await uploads.start('a');
    uploads.close(old);
    const done = await uploads.start('b');
    uploads.close(done);
    await uploads.finish(done);
    uploads.close(done);
    clock.now += TTL + 1;
    const young = await uploads.start('c');
    uploads.close(young);
    assert.deepEqual(await uploads.purgeIdle(TTL), { sessions: 1, bytes: 0 });
    assert.deepEqual(await fs.readdir(dir), [young.id]);
    assert.equal(uploads.open(young.id, 'c'), young);
  });
});
