// Blob GET and HEAD through the whole HTTP app on filesystem storage: exact bytes, headers, Range
// at chunk and file boundaries, errors in the spec's JSON, and no file descriptor left behind by a
// client that goes away mid-body.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { eventually } from '@nixery/test-support';
import type { ImageBuilder } from '../builder/builder.ts';
import { createLogger } from '../log/logger.ts';
import { createMetrics, type Metrics } from '../metrics/metrics.ts';
import { Uploads } from '../push/uploads.ts';
import type { BlobDelivery, StorageBackend } from '../storage/backend.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { createApp } from './app.ts';

const tempDir = tempDirs('nixery-blob-serving-');
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
/** The sender's chunk size; ranges are checked on both sides of its boundaries. */
const CHUNK = 1024 * 1024;

interface Served {
  url: string;
  metrics: Metrics;
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

async function serve(storage: StorageBackend): Promise<Served> {
  const metrics = createMetrics({ defaultMetrics: false });
  const logs: Record<string, unknown>[] = [];
  const uploads = new Uploads(storage.uploads);
  const app = createApp({
    storage,
    builder: {} as ImageBuilder,
    metrics,
    log: createLogger({ write: (line) => logs.push(JSON.parse(line) as Record<string, unknown>) }),
    source: { type: 'path', path: '/nonexistent' },
    sourceIsDefault: false,
    uploads,
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    metrics,
    logs,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

async function servedBlobBytes(metrics: Metrics): Promise<number> {
  const metric = await metrics.bytesServed.get();
  return metric.values.find((v) => v.labels.kind === 'blob')?.value ?? 0;
}

/** Paths of this process's open file descriptors. */
async function openFiles(): Promise<string[]> {
  const fds = await fs.readdir('/proc/self/fd');
  const targets = await Promise.all(fds.map((fd) => fs.readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets;
}

describe('blob serving from filesystem storage', () => {
  let storage: FilesystemStorage;
  let served: Served;
  // Several chunks and a ragged end, so every chunk boundary and the last short read are crossed.
  const big = randomBytes(5 * CHUNK + 12_345);
  let bigDigest: string;
  const small = Buffer.from('{"architecture":"amd64"}');
  let smallDigest: string;

  before(async () => {
    storage = new FilesystemStorage(await tempDir());
    await storage.init();
    bigDigest = (await storage.putBlob(big, { contentType: LAYER })).digest;
    smallDigest = (await storage.putBlob(small, { contentType: 'application/vnd.oci.image.config.v1+json' })).digest;
    served = await serve(storage);
  });
  after(() => served.close());

  const blobUrl = (digest: string) => `${served.url}/v2/some/image/blobs/${digest}`;

  it('serves a multi-chunk blob byte for byte, with its type, length, digest and ETag', async () => {
    const before = await servedBlobBytes(served.metrics);
    const response = await fetch(blobUrl(bigDigest));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), LAYER);
    assert.equal(response.headers.get('content-length'), String(big.length));
    assert.equal(response.headers.get('docker-content-digest'), bigDigest);
    assert.equal(response.headers.get('etag'), `"${bigDigest}"`);
    assert.equal(response.headers.get('accept-ranges'), 'bytes');
    const body = Buffer.from(await response.arrayBuffer());
    assert.equal(body.length, big.length);
    assert.ok(body.equals(big), 'the body is the blob');
    assert.equal((await servedBlobBytes(served.metrics)) - before, big.length);
    const line = served.logs.findLast((l) => l.msg === 'request' && l.path === `/v2/some/image/blobs/${bigDigest}`);
    assert.equal(line?.status, '200');
    assert.equal(line?.bytes, big.length);
  });

  it('serves a blob smaller than one chunk, with the type from its xattr', async () => {
    const response = await fetch(blobUrl(smallDigest));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/vnd.oci.image.config.v1+json');
    assert.equal(await response.text(), small.toString());
  });

  it('keeps every body intact when slow downloads share the buffer pool', async () => {
    // Clients that stall now and then leave the server's writes pending while other responses
    // read into pool buffers: a buffer handed back before its write completed would show here.
    const large = randomBytes(24 << 20);
    const { digest } = await storage.putBlob(large, { contentType: LAYER });
    const download = (url: string) =>
      new Promise<string>((resolve, reject) => {
        http
          .get(url, (response) => {
            const hash = createHash('sha256');
            let sinceStall = 0;
            response.on('data', (chunk: Buffer) => {
              hash.update(chunk);
              sinceStall += chunk.length;
              if (sinceStall > 4 << 20) {
                sinceStall = 0;
                response.pause();
                setTimeout(() => response.resume(), 30);
              }
            });
            response.on('end', () => resolve(`sha256:${hash.digest('hex')}`));
            response.on('error', reject);
          })
          .on('error', reject);
      });
    const digests = await Promise.all(Array.from({ length: 6 }, (_, i) => download(blobUrl(i % 3 === 2 ? bigDigest : digest))));
    assert.deepEqual(digests, Array.from({ length: 6 }, (_, i) => (i % 3 === 2 ? bigDigest : digest)));
  });

  it('answers HEAD with the same headers and no body', async () => {
    const before = await servedBlobBytes(served.metrics);
    const response = await fetch(blobUrl(bigDigest), { method: 'HEAD' });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-length'), String(big.length));
    assert.equal(response.headers.get('content-type'), LAYER);
    assert.equal(response.headers.get('docker-content-digest'), bigDigest);
    assert.equal(response.headers.get('etag'), `"${bigDigest}"`);
    assert.equal((await response.arrayBuffer()).byteLength, 0);
    assert.equal(await servedBlobBytes(served.metrics), before);
  });

  const size = big.length;
  const satisfiable: [header: string, start: number, end: number][] = [
    ['bytes=0-0', 0, 0],
    [`bytes=${size - 1}-`, size - 1, size - 1],
    ['bytes=-1', size - 1, size - 1],
    [`bytes=-${size + 10}`, 0, size - 1],
    ['bytes=0-', 0, size - 1],
    [`bytes=${CHUNK - 1}-${CHUNK}`, CHUNK - 1, CHUNK],
    [`bytes=${CHUNK}-${3 * CHUNK - 1}`, CHUNK, 3 * CHUNK - 1],
    [`bytes=${CHUNK + 7}-${4 * CHUNK + 3}`, CHUNK + 7, 4 * CHUNK + 3],
    [`bytes=10-${size + 1000}`, 10, size - 1],
  ];
  for (const [header, start, end] of satisfiable) {
    it(`answers Range: ${header} with 206 and bytes ${start}-${end}`, async () => {
      const response = await fetch(blobUrl(bigDigest), { headers: { Range: header } });
      assert.equal(response.status, 206);
      assert.equal(response.headers.get('content-range'), `bytes ${start}-${end}/${size}`);
      assert.equal(response.headers.get('content-length'), String(end - start + 1));
      assert.equal(response.headers.get('docker-content-digest'), bigDigest);
      const body = Buffer.from(await response.arrayBuffer());
      assert.ok(body.equals(big.subarray(start, end + 1)), `bytes ${start}-${end} of the blob`);
    });
  }

  for (const header of [`bytes=${size}-`, `bytes=${size + 5}-${size + 10}`, 'bytes=-0']) {
    it(`answers the unsatisfiable Range: ${header} with 416, Content-Range */size and a spec error`, async () => {
      const response = await fetch(blobUrl(bigDigest), { headers: { Range: header } });
      assert.equal(response.status, 416);
      assert.equal(response.headers.get('content-range'), `bytes */${size}`);
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
      const body = (await response.json()) as { errors: { code: string }[] };
      assert.equal(body.errors[0]?.code, 'RANGE_INVALID');
    });
  }

  for (const header of ['bytes=abc', 'pages=1-2', 'bytes=0-1,5-6']) {
    it(`answers Range: ${header} (malformed, another unit, several ranges) with the whole blob`, async () => {
      const response = await fetch(blobUrl(bigDigest), { headers: { Range: header } });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-range'), null);
      assert.ok(Buffer.from(await response.arrayBuffer()).equals(big));
    });
  }

  it('answers an unknown blob with BLOB_UNKNOWN in the spec JSON', async () => {
    const digest = sha256(Buffer.from('never stored'));
    const response = await fetch(blobUrl(digest));
    assert.equal(response.status, 404);
    const body = (await response.json()) as { errors: { code: string; detail: unknown }[] };
    assert.equal(body.errors[0]?.code, 'BLOB_UNKNOWN');
    assert.deepEqual(body.errors[0]?.detail, { digest });
  });

  it('releases the file when the client goes away mid-body, and logs the abort with the bytes sent', async () => {
    // Bigger than loopback socket buffers take at once, so the server is still sending when the client leaves.
    // Node closes a FileHandle nobody closed when it is garbage-collected, with a warning: that
    // would also empty /proc/self/fd, so the warning counts as a leak too.
    const gcCloses: Error[] = [];
    const onWarning = (warning: Error) => {
      if (/on garbage collection/.test(warning.message)) gcCloses.push(warning);
    };
    process.on('warning', onWarning);
    after(() => process.off('warning', onWarning));
    const huge = randomBytes(48 << 20);
    const { digest } = await storage.putBlob(huge, { contentType: LAYER });
    const file = storage.blobPath(digest);
    const received = await new Promise<number>((resolve, reject) => {
      const request = http.get(blobUrl(digest), (response) => {
        let got = 0;
        response.on('data', (chunk: Buffer) => {
          got += chunk.length;
          if (got >= CHUNK) {
            response.destroy();
            request.destroy();
            resolve(got);
          }
        });
        response.on('error', () => {});
      });
      request.on('error', (error) => {
        if (!request.destroyed) reject(error);
      });
    });
    assert.ok(received < huge.length);
    // While sending, the server holds the blob open; afterwards nothing may point at it.
    await eventually(`no descriptor of ${file} to be open`, async () => !(await openFiles()).includes(file) || undefined, 5000, 20);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(gcCloses, [], 'the descriptor was closed by the server, not by the garbage collector');
    await eventually('the request to be logged', () => served.logs.some((l) => l.msg === 'request' && l.path === `/v2/some/image/blobs/${digest}`) || undefined, 5000, 20);
    const line = served.logs.find((l) => l.msg === 'request' && l.path === `/v2/some/image/blobs/${digest}`)!;
    assert.equal(line.status, 'aborted');
    assert.ok((line.bytes as number) < huge.length, `logged ${String(line.bytes)} bytes, fewer than the blob's ${huge.length}`);
  });
});

describe('blob serving: storage oddities', () => {
  /** A backend whose deliverBlob answers with the given delivery, to reach the paths real storage rarely takes. */
  function fakeStorage(delivery: BlobDelivery): StorageBackend {
    return { description: 'fake', deliverBlob: async () => delivery } as unknown as StorageBackend;
  }
  const digest = sha256(Buffer.from('anything'));
  const info = { digest, size: 8, contentType: LAYER };
  const notOpened = () => assert.fail('the HTTP layer opens local files itself');

  it('answers 404 when the file vanished between lookup and open (garbage collected)', async () => {
    const served = await serve(fakeStorage({ kind: 'stream', info, path: path.join(await tempDir(), 'gone'), open: notOpened }));
    try {
      const response = await fetch(`${served.url}/v2/x/blobs/${digest}`);
      assert.equal(response.status, 404);
      assert.equal(response.headers.get('cache-control'), null, 'a 404 is not cached for a year like a blob');
      assert.equal(((await response.json()) as { errors: { code: string }[] }).errors[0]?.code, 'BLOB_UNKNOWN');
    } finally {
      await served.close();
    }
  });

  it('cuts the connection, logs the error and closes the file when the file is shorter than its size', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'short');
    const content = randomBytes(3 * CHUNK);
    await fs.writeFile(file, content);
    const served = await serve(fakeStorage({ kind: 'stream', info: { ...info, size: content.length + CHUNK }, path: file, open: notOpened }));
    try {
      const response = await fetch(`${served.url}/v2/x/blobs/${digest}`);
      assert.equal(response.status, 200, 'the headers went out before the short read');
      await assert.rejects(response.arrayBuffer(), 'the body ends early with an error, never silently short');
      await eventually('the file to be closed', async () => !(await openFiles()).includes(file) || undefined, 5000, 20);
      const failure = served.logs.find((l) => l.msg === 'request failed');
      assert.ok(failure, 'the failure is logged');
      assert.match(JSON.stringify(failure.error), /FileBodyError/);
    } finally {
      await served.close();
    }
  });

  it('still redirects when the backend hands out a URL (GCS), and answers HEAD itself', async () => {
    const served = await serve(fakeStorage({ kind: 'redirect', info, url: 'https://storage.example/blob?sig=1' }));
    try {
      const response = await fetch(`${served.url}/v2/x/blobs/${digest}`, { redirect: 'manual' });
      assert.equal(response.status, 307);
      assert.equal(response.headers.get('location'), 'https://storage.example/blob?sig=1');
      assert.equal(response.headers.get('docker-content-digest'), digest);
      const head = await fetch(`${served.url}/v2/x/blobs/${digest}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), '8');
      assert.equal(head.headers.get('content-type'), LAYER);
    } finally {
      await served.close();
    }
  });
});
