// Upload sessions through the HTTP app: one the purge dropped is BLOB_UPLOAD_UNKNOWN like any
// unknown upload, one with a PATCH still arriving is never dropped, and chunks out of order are
// 416 RANGE_INVALID with the upload's Range.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { eventually } from '@nixery/test-support';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { startAuthServer, TEST_ADMIN_TOKEN, type AuthServer } from './test-support.ts';

const tempDir = tempDirs('nixery-http-uploads-');
const ADMIN = `Basic ${Buffer.from(`admin:${TEST_ADMIN_TOKEN}`).toString('base64')}`;
const TTL = 60_000;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request; the body, when a stream, is sent as it is written. */
function request(url: string, method: string, body?: Buffer | PassThrough, headers: http.OutgoingHttpHeaders = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { authorization: ADMIN, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body instanceof PassThrough) body.pipe(req);
    else req.end(body);
  });
}

describe('upload sessions purged while the registry runs', () => {
  const clock = { now: 1_000_000 };
  let served: AuthServer;
  let dir: string;
  before(async () => {
    dir = await tempDir();
    served = await startAuthServer({ dir, users: [], uploadsNow: () => clock.now });
  });
  after(() => served.close());

  async function startUpload(): Promise<string> {
    const started = await request(`${served.url}/v2/team/app/blobs/uploads/`, 'POST');
    assert.equal(started.status, 202, started.body);
    return served.url + started.headers.location!;
  }

  it('a session idle past the limit is gone: PATCH, PUT and GET answer 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const location = await startUpload();
    const patched = await request(location, 'PATCH', Buffer.from('first chunk'), { 'content-type': 'application/octet-stream' });
    assert.equal(patched.status, 202);

    clock.now += TTL + 1;
    assert.deepEqual(await served.uploads.purgeIdle(TTL), { sessions: 1, bytes: 11 });

    for (const [method, suffix] of [['PATCH', ''], ['PUT', '?digest=sha256:' + '0'.repeat(64)], ['GET', '']] as const) {
      const answer = await request(location + suffix, method, method === 'GET' ? undefined : Buffer.from('more'));
      assert.equal(answer.status, 404, `${method}: ${answer.body}`);
      assert.equal((JSON.parse(answer.body) as { errors: { code: string }[] }).errors[0]!.code, 'BLOB_UPLOAD_UNKNOWN');
    }
  });

  it('a session used within the limit stays and finishes', async () => {
    const location = await startUpload();
    clock.now += TTL - 1;
    assert.equal((await request(location, 'GET')).status, 204, 'a status request counts as use');
    clock.now += TTL - 1;
    assert.equal((await served.uploads.purgeIdle(TTL)).sessions, 0);
    const patched = await request(location, 'PATCH', Buffer.from('abc'));
    assert.equal(patched.status, 202);
    assert.equal(patched.headers.range, '0-2');
  });

  it('a session with a PATCH in flight is not purged, however long past the limit', async () => {
    // The earlier tests' sessions go first, so the counts below are this session's.
    clock.now += TTL + 1;
    await served.uploads.purgeIdle(TTL);
    const location = await startUpload();
    const body = new PassThrough();
    const patch = request(location, 'PATCH', body, { 'transfer-encoding': 'chunked' });
    body.write('part one, ');
    // The PATCH has reached the session once its first bytes are in the chunk it is receiving.
    const sessionDir = path.join(dir, 'storage', 'uploads', location.split('/').pop()!);
    const received = async () => {
      const partial = (await fs.readdir(sessionDir)).find((f) => f.startsWith('partial-'));
      return partial === undefined ? 0 : (await fs.stat(path.join(sessionDir, partial))).size;
    };
    await eventually('the PATCH to write its first bytes', async () => ((await received()) === 'part one, '.length ? true : undefined), 10_000, 10);

    clock.now += 10 * TTL;
    assert.equal((await served.uploads.purgeIdle(TTL)).sessions, 0, 'the session the PATCH is writing stays');
    body.end('part two');
    const answer = await patch;
    assert.equal(answer.status, 202, answer.body);
    assert.equal(answer.headers.range, `0-${'part one, part two'.length - 1}`);

    clock.now += TTL + 1;
    assert.equal((await served.uploads.purgeIdle(TTL)).sessions, 1, 'idle once the PATCH ended');
  });
});

describe('a chunked push across two registry apps on one storage directory', () => {
  let a: AuthServer;
  let b: AuthServer;
  before(async () => {
    const dir = await tempDir();
    a = await startAuthServer({ dir, users: [] });
    b = await startAuthServer({ dir, users: [] });
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  it('POST and PATCH on one, PATCH and PUT on the other: the blob is stored and served by both', async () => {
    const started = await request(`${a.url}/v2/team/app/blobs/uploads/`, 'POST');
    assert.equal(started.status, 202, started.body);
    const location = started.headers.location!;
    const first = await request(a.url + location, 'PATCH', Buffer.from('chunk one, '), { 'content-range': '0-10' });
    assert.equal(first.status, 202, first.body);
    const second = await request(b.url + location, 'PATCH', Buffer.from('chunk two'), { 'content-range': '11-19' });
    assert.equal(second.status, 202, second.body);
    assert.equal(second.headers.range, '0-19');
    assert.equal(second.headers.location, location);
    const status = await request(a.url + location, 'GET');
    assert.equal(status.status, 204);
    assert.equal(status.headers.range, '0-19', 'either replica reports the same progress');

    const digest = `sha256:${createHash('sha256').update('chunk one, chunk two').digest('hex')}`;
    const put = await request(`${b.url}${location}?digest=${digest}`, 'PUT');
    assert.equal(put.status, 201, put.body);
    assert.equal(put.headers['docker-content-digest'], digest);
    for (const served of [a, b]) {
      const blob = await request(`${served.url}/v2/team/app/blobs/${digest}`, 'GET');
      assert.equal(blob.status, 200);
      assert.equal(blob.body, 'chunk one, chunk two');
    }
    const after = await request(a.url + location, 'GET');
    assert.equal(after.status, 404, 'the session ended for both');
  });

  it('a stale chunk replayed on the other is 416 RANGE_INVALID with the upload\'s Range', async () => {
    const started = await request(`${a.url}/v2/team/app/blobs/uploads/`, 'POST');
    const location = started.headers.location!;
    assert.equal((await request(a.url + location, 'PATCH', Buffer.from('01234'), { 'content-range': '0-4' })).status, 202);
    assert.equal((await request(b.url + location, 'PATCH', Buffer.from('56789'), { 'content-range': '5-9' })).status, 202);
    const replayed = await request(a.url + location, 'PATCH', Buffer.from('01234'), { 'content-range': '0-4' });
    assert.equal(replayed.status, 416, replayed.body);
    assert.equal(replayed.headers.range, '0-9');
    assert.equal((JSON.parse(replayed.body) as { errors: { code: string }[] }).errors[0]!.code, 'RANGE_INVALID');
  });
});
