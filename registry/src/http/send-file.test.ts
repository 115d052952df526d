// How many buffers one response body holds: a lone download queues writes ahead of the kernel,
// downloads that share the server hold two each; every buffer comes back once the kernel has it.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { BufferPool } from './buffer-pool.ts';
import { openFileBody, sendFileBody } from './send-file.ts';

const tempDir = tempDirs('nixery-send-file-');
const CHUNK = 512 * 1024;

/** A pool that counts the buffers taken and not given back. */
class CountingPool extends BufferPool {
  out = 0;
  constructor() {
    super(CHUNK, 64);
  }
  override take(): Buffer {
    this.out += 1;
    return super.take();
  }
  override give(buffer: Buffer): void {
    this.out -= 1;
    super.give(buffer);
  }
}

async function settled(pool: CountingPool): Promise<number> {
  // Stalled: the count has not moved for 200 ms.
  let last = -1;
  for (let stable = 0; stable < 10; ) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    stable = pool.out === last ? stable + 1 : 0;
    last = pool.out;
  }
  return last;
}

describe('sending a file body', () => {
  // Larger than loopback socket buffers take, so a client that does not read stalls the sender.
  const data = randomBytes(40 << 20);
  const pools = new Map<string, CountingPool>();
  let server: http.Server;
  let url: string;
  let file: string;

  const ready = (async () => {
    file = path.join(await tempDir(), 'blob');
    await fs.writeFile(file, data);
    server = http.createServer((req, res) => {
      void (async () => {
        const pool = new CountingPool();
        pools.set(req.url!, pool);
        const handle = (await openFileBody(file))!;
        res.writeHead(200, { 'content-length': data.length });
        await sendFileBody(res, handle, file, 0, data.length, { pool });
      })();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  })();
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  /** Starts a download that does not read until `resume` is called; resolves to the body's digest. */
  function stalledDownload(name: string): { resume: () => void; digest: Promise<string> } {
    let response: http.IncomingMessage | undefined;
    let resumeRequested = false;
    const digest = new Promise<string>((resolve, reject) => {
      http
        .get(`${url}/${name}`, (res) => {
          response = res;
          res.pause();
          if (resumeRequested) res.resume();
          const hash = createHash('sha256');
          res.on('data', (chunk: Buffer) => hash.update(chunk));
          res.on('end', () => resolve(hash.digest('hex')));
          res.on('error', reject);
        })
        .on('error', reject);
    });
    return {
      resume: () => {
        resumeRequested = true;
        response?.resume();
      },
      digest,
    };
  }

  async function poolOf(name: string): Promise<CountingPool> {
    for (let i = 0; i < 250 && !pools.has(`/${name}`); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    return pools.get(`/${name}`)!;
  }

  it('holds four buffers for a lone download, two each once downloads share the server, and gives all back', async () => {
    await ready;
    const expected = createHash('sha256').update(data).digest('hex');
    const lone = stalledDownload('lone');
    const lonePool = await poolOf('lone');
    assert.equal(await settled(lonePool), 4, 'a lone download reads and queues 4 chunks ahead of a client that does not read');

    const second = stalledDownload('second');
    const secondPool = await poolOf('second');
    assert.equal(await settled(secondPool), 2, 'a download beside another holds 2');
    assert.equal(lonePool.out, 4, 'buffers already in writes stay there until the kernel takes them');

    lone.resume();
    second.resume();
    assert.equal(await lone.digest, expected);
    assert.equal(await second.digest, expected);
    assert.equal(await settled(lonePool), 0);
    assert.equal(await settled(secondPool), 0);
  });

  it('gets every buffer back from a client that goes away mid-body, those stuck in writes included', async () => {
    await ready;
    const request = http.get(`${url}/abandoned`, (res) => res.pause());
    request.on('error', () => {});
    const pool = await poolOf('abandoned');
    assert.equal(await settled(pool), 4, 'the body holds its buffers while the client reads nothing');
    request.destroy();
    assert.equal(await settled(pool), 0, 'all given back once the connection is gone');
  });
});
