// Upload sessions in the shared storage: the idle rule of purgeIdle on a fake clock, and two
// replicas (two Uploads on one storage directory) continuing, racing for and purging one session.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { eventually } from '@nixery/test-support';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { ACTIVITY_WRITE_INTERVAL_MS, UploadNotFoundError, UploadRangeError, Uploads, type UploadSession } from './uploads.ts';

const tempDir = tempDirs('nixery-uploads-');
const TTL = 60_000;

/** `count` replicas' upload sessions on one storage directory, on one fake clock. */
async function replicas(clock: { now: number }, count = 1): Promise<{ uploads: Uploads[]; dir: string }> {
  const root = await tempDir();
  const uploads: Uploads[] = [];
  for (let i = 0; i < count; i++) {
    const storage = new FilesystemStorage(root);
    await storage.init();
    uploads.push(new Uploads(storage.uploads, { now: () => clock.now }));
  }
  return { uploads, dir: path.join(root, 'uploads') };
}

/** One request's worth of use: open, optionally append, close. */
async function request(uploads: Uploads, session: UploadSession, chunk?: string, start?: number): Promise<UploadSession> {
  const opened = await uploads.open(session.id, session.name);
  try {
    if (chunk !== undefined) await uploads.append(opened, Readable.from([Buffer.from(chunk)]), start);
    return opened;
  } finally {
    await uploads.close(opened);
  }
}

describe('upload sessions idle past the limit', () => {
  it('are dropped with their bytes; their id is then unknown', async () => {
    const clock = { now: 1_000_000 };
    const { uploads: [uploads], dir } = await replicas(clock);
    const session = await uploads!.start('team/app');
    await uploads!.append(session, Readable.from([Buffer.from('12345')]));
    await uploads!.close(session);
    assert.deepEqual(await fs.readdir(dir), [session.id]);

    clock.now += TTL + 1;
    assert.deepEqual(await uploads!.purgeIdle(TTL), { sessions: 1, bytes: 5 });
    assert.deepEqual(await fs.readdir(dir), [], 'the session directory is gone');
    await assert.rejects(uploads!.open(session.id, 'team/app'), UploadNotFoundError);
  });

  it('keep a session used within the limit: idle time counts from the end of its last request', async () => {
    const clock = { now: 1_000_000 };
    const { uploads: [uploads] } = await replicas(clock);
    const session = await uploads!.start('team/app');
    await uploads!.close(session);
    clock.now += TTL - 1;
    await request(uploads!, session);
    clock.now += TTL;
    assert.deepEqual(await uploads!.purgeIdle(TTL), { sessions: 0, bytes: 0 }, 'exactly the limit is not past it');
    assert.deepEqual(await request(uploads!, session), session);
  });

  it('never drop a session with a request in flight here, however long it has been', async () => {
    const clock = { now: 1_000_000 };
    const { uploads: [uploads] } = await replicas(clock);
    const started = await uploads!.start('team/app');
    // The POST that started it is still in flight.
    clock.now += 10 * TTL;
    assert.equal((await uploads!.purgeIdle(TTL)).sessions, 0);
    await uploads!.close(started);

    const patching = await uploads!.open(started.id, 'team/app');
    clock.now += 10 * TTL;
    assert.equal((await uploads!.purgeIdle(TTL)).sessions, 0, 'a PATCH in flight keeps it');
    await uploads!.close(patching);
    clock.now += TTL;
    assert.equal((await uploads!.purgeIdle(TTL)).sessions, 0, 'its idle time started when the PATCH ended');
    clock.now += 1;
    assert.equal((await uploads!.purgeIdle(TTL)).sessions, 1);
  });

  it('counts each request: two in flight, one ended, still in flight', async () => {
    const clock = { now: 1_000_000 };
    const { uploads: [uploads] } = await replicas(clock);
    const session = await uploads!.start('team/app');
    await uploads!.close(session);
    await uploads!.open(session.id, 'team/app');
    await uploads!.open(session.id, 'team/app');
    await uploads!.close(session);
    clock.now += 2 * TTL;
    assert.equal((await uploads!.purgeIdle(TTL)).sessions, 0);
    await uploads!.close(session);
    clock.now += TTL + 1;
    assert.equal((await uploads!.purgeIdle(TTL)).sessions, 1);
  });

  it('leave finished sessions alone and drop only the idle among several', async () => {
    const clock = { now: 1_000_000 };
    const { uploads: [uploads], dir } = await replicas(clock);
    const old = await uploads!.start('a');
    await uploads!.close(old);
    const done = await uploads!.start('b');
    await uploads!.close(done);
    await uploads!.finish(done);
    await uploads!.close(done);
    clock.now += TTL + 1;
    const young = await uploads!.start('c');
    await uploads!.close(young);
    assert.deepEqual(await uploads!.purgeIdle(TTL), { sessions: 1, bytes: 0 });
    assert.deepEqual(await fs.readdir(dir), [young.id]);
    assert.deepEqual(await request(uploads!, young), young);
  });

  it('are unknown under another repository name', async () => {
    const { uploads: [uploads] } = await replicas({ now: 1_000_000 });
    const session = await uploads!.start('team/app');
    await uploads!.close(session);
    await assert.rejects(uploads!.open(session.id, 'team/other'), UploadNotFoundError);
    await assert.rejects(uploads!.open('../../etc', 'team/app'), UploadNotFoundError);
  });
});

describe('upload sessions shared by two replicas', () => {
  it('a session started on one continues and finishes on the other', async () => {
    const clock = { now: 1_000_000 };
    const { uploads: [a, b] } = await replicas(clock, 2);
    const session = await a!.start('team/app');
    await a!.append(session, Readable.from([Buffer.from('hello ')]), 0);
    await a!.close(session);
    await request(a!, session, 'shared ', 6);

    const onB = await request(b!, session, 'world', 13);
    assert.equal(onB.size, 'hello shared world'.length);
    const finishing = await b!.open(session.id, 'team/app');
    assert.equal(await text(b!.contents(finishing)), 'hello shared world');
    await b!.finish(finishing);
    await b!.close(finishing);
    await assert.rejects(a!.open(session.id, 'team/app'), UploadNotFoundError, 'finished for both');
  });

  it('a stale chunk replayed on the other replica is refused with the upload size, and changes nothing', async () => {
    const { uploads: [a, b] } = await replicas({ now: 1_000_000 }, 2);
    const session = await a!.start('team/app');
    await a!.close(session);
    await request(a!, session, 'first', 0);
    await request(b!, session, 'second', 5);
    await assert.rejects(request(a!, session, 'first', 0), (error: unknown) => {
      assert.ok(error instanceof UploadRangeError);
      assert.equal(error.size, 11);
      return true;
    });
    assert.equal(await text(a!.contents(session)), 'firstsecond');
  });

  it('of two chunks racing for one offset on two replicas, exactly one is kept; the other is refused', async () => {
    const { uploads: [a, b], dir } = await replicas({ now: 1_000_000 }, 2);
    const session = await a!.start('team/app');
    await a!.close(session);
    await request(a!, session, 'head-', 0);
    const bodyA = new PassThrough();
    const bodyB = new PassThrough();
    const onA = await a!.open(session.id, 'team/app');
    const onB = await b!.open(session.id, 'team/app');
    const appendA = a!.append(onA, bodyA, 5);
    const appendB = b!.append(onB, bodyB, 5);
    // Both have checked the offset and are receiving their chunk when either ends.
    const receiving = async () => (await fs.readdir(path.join(dir, session.id))).filter((f) => f.startsWith('partial-')).length;
    await eventually('both appends to receive their chunk', async () => ((await receiving()) === 2 ? true : undefined), 10_000, 10);
    bodyA.end('from-a');
    const resultA = await appendA.then(() => 'ok', (e: unknown) => e);
    bodyB.end('from-b!');
    const resultB = await appendB.then(() => 'ok', (e: unknown) => e);
    assert.equal(resultA, 'ok');
    assert.ok(resultB instanceof UploadRangeError, String(resultB));
    assert.equal(resultB.size, 'head-from-a'.length);
    assert.equal(await text(a!.contents(session)), 'head-from-a');
    await a!.close(onA);
    await b!.close(onB);
  });

  it('a session purged on one replica is unknown on the other; activity on either keeps it', async () => {
    const clock = { now: 1_000_000 };
    const { uploads: [a, b] } = await replicas(clock, 2);
    const session = await a!.start('team/app');
    await a!.close(session);
    clock.now += TTL - 1;
    await request(b!, session, 'kept by b');
    clock.now += TTL - 1;
    assert.equal((await a!.purgeIdle(TTL)).sessions, 0, 'B wrote its activity where A reads it');

    clock.now += 2;
    assert.deepEqual(await a!.purgeIdle(TTL), { sessions: 1, bytes: 'kept by b'.length });
    await assert.rejects(b!.open(session.id, 'team/app'), UploadNotFoundError);
  });
});

describe('the shared last activity', () => {
  it('is written at most once a second per session: back-to-back requests cost no write each', async () => {
    const clock = { now: 1_000_000 };
    const storage = new FilesystemStorage(await tempDir());
    await storage.init();
    const touches: number[] = [];
    const store = Object.create(storage.uploads) as typeof storage.uploads;
    store.touchUpload = (id, nowMs) => (touches.push(nowMs), storage.uploads.touchUpload(id, nowMs));
    const uploads = new Uploads(store, { now: () => clock.now });
    const session = await uploads.start('team/app');
    await uploads.close(session);
    for (let i = 0; i < 5; i++) {
      clock.now += ACTIVITY_WRITE_INTERVAL_MS / 5 - 1;
      await request(uploads, session, `chunk ${i};`);
    }
    assert.deepEqual(touches, [], 'the record written at the start is recent enough');
    clock.now += ACTIVITY_WRITE_INTERVAL_MS;
    await request(uploads, session);
    assert.deepEqual(touches, [clock.now], 'one write for the open; the close follows within the interval');
    assert.equal((await storage.uploads.uploadState(session.id))?.lastActivityMs, clock.now);
  });
});
