// The S3 backend against a real S3 server, Ceph's RADOS Gateway (radosgw.ts): the shared storage
// contract, then what is particular to S3: layout and verification, multipart uploads of blobs
// above the part size, retries of throttled requests without corruption, presigned URLs the
// server accepts (and refuses once tampered with), the stale-staging sweep of objects and of
// unfinished multipart uploads, and start-up checks. Faults radosgw does not make on demand come
// from a proxy in front of it (fault-proxy.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { CopyObjectCommand, CreateMultipartUploadCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { silentLogger } from '../../registry/src/log/logger.ts';
import { StorageUnavailableError } from '../../registry/src/storage/backend.ts';
import { failingStream, sha256, storageContract, uploadStoreContract } from '../../registry/src/storage/test-support.ts';
import { UploadOffsetError } from '../../registry/src/storage/upload-store.ts';
import { S3Storage, type S3StorageOptions, MIN_PART_SIZE_BYTES } from '../../registry/src/storage/s3.ts';
import { unquoteEtag } from '../../registry/src/storage/s3-etag.ts';
import { startFaultProxy, type FaultProxy } from './fault-proxy.ts';
import { startRadosGateway, type RadosGateway } from './radosgw.ts';

const MiB = 1024 * 1024;
let rgw: RadosGateway;
let proxy: FaultProxy;
let buckets = 0;

before(async () => {
  rgw = await startRadosGateway();
  proxy = await startFaultProxy(rgw.endpoint);
});
after(async () => {
  await proxy?.close();
  await rgw?.stop();
});

async function newBucket(): Promise<string> {
  const name = `nixery-test-${process.pid}-${++buckets}`;
  await rgw.createBucket(name);
  return name;
}

/** A backend on a fresh bucket, through the fault proxy, with the test gateway's keys in the SDK's chain. */
async function backend(options: Partial<S3StorageOptions> = {}, init = true): Promise<S3Storage> {
  process.env.AWS_ACCESS_KEY_ID = rgw.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = rgw.secretAccessKey;
  process.env.AWS_REGION = rgw.region;
  const storage = new S3Storage({
    bucket: options.bucket ?? (await newBucket()),
    endpoint: proxy.url,
    forcePathStyle: true,
    log: silentLogger,
    resumeDelayMs: 10,
    ...options,
  });
  if (init) await storage.init();
  return storage;
}

function chunked(data: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts);
}

async function bytes(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function seen(bucket: string, operation: string) {
  return proxy.requests.filter((r) => r.path.startsWith(`/${bucket}/`) && r.operation === operation);
}

async function keys(storage: S3Storage, prefix = ''): Promise<string[]> {
  const client = rgw.client();
  const page = await client.send(new ListObjectsV2Command({ Bucket: storage.bucket, Prefix: prefix }));
  client.destroy();
  return (page.Contents ?? []).map((o) => o.Key!).sort();
}

describe('storage contract on radosgw', () => {
  storageContract('s3 on radosgw, blobs redirected to presigned URLs', () => backend({ redirect: 'presigned' }));
  storageContract('s3 on radosgw, blobs streamed through the registry', () => backend({ redirect: 'stream' }));
  uploadStoreContract('s3 on radosgw', () => backend({ redirect: 'stream' }));
});

describe('s3 storage: leases and upload sessions', () => {
  it('keeps a lease as leases/<name>.json and a session as a record and one object per chunk, a large chunk staged then copied over its claim', async () => {
    const storage = await backend({ prefix: 'reg', partSizeBytes: MIN_PART_SIZE_BYTES });
    assert.ok(await storage.swapLease('build/abc', null, { holder: 'a', expiresMs: 1 }));
    const id = randomUUID();
    await storage.uploads.createUpload(id, 'team/app', 1_000);
    await storage.uploads.appendUpload(id, 0, Readable.from([Buffer.from('small')]));
    const large = randomBytes(MIN_PART_SIZE_BYTES + 4321);
    assert.equal(await storage.uploads.appendUpload(id, 5, chunked(large, 256 * 1024)), 5 + large.length);
    assert.deepEqual(await keys(storage), ['reg/leases/build/abc.json', `reg/uploads/${id}/chunks/0000000000000000`, `reg/uploads/${id}/chunks/0000000000000005`, `reg/uploads/${id}/session`]);
    // Above the part size the chunk went to staging as a multipart upload first.
    assert.ok(seen(storage.bucket, 'UploadPart').some((r) => r.path.includes('/staging/')));
    assert.ok((await bytes(storage.uploads.readUpload(id))).equals(Buffer.concat([Buffer.from('small'), large])));
    assert.equal(await storage.uploads.deleteUpload(id), 5 + large.length);
    assert.deepEqual(await keys(storage, 'reg/uploads/'), []);
  });

  /** Two appends of chunks above the part size race for offset 0. */
  async function raceLargeAppends(options: Partial<S3StorageOptions>): Promise<string> {
    const storage = await backend({ partSizeBytes: MIN_PART_SIZE_BYTES, redirect: 'stream', ...options });
    const id = randomUUID();
    await storage.uploads.createUpload(id, 'team/app', Date.now());
    const one = randomBytes(MIN_PART_SIZE_BYTES + 1);
    const two = randomBytes(MIN_PART_SIZE_BYTES + 2);
    const results = await Promise.allSettled([storage.uploads.appendUpload(id, 0, chunked(one, 64 * 1024)), storage.uploads.appendUpload(id, 0, chunked(two, 64 * 1024))]);
    const won = results.findIndex((r) => r.status === 'fulfilled');
    const lost = results.find((r) => r.status === 'rejected');
    assert.ok(won >= 0 && lost, JSON.stringify(results.map((r) => r.status)));
    const winner = [one, two][won]!;
    assert.ok(lost.reason instanceof UploadOffsetError, String(lost.reason));
    // The size when it was refused: the winner's end, or still 0 while the winner's copy over
    // its claim was in flight (a claim is empty, so the chain does not count it yet).
    assert.ok([0, winner.length].includes(lost.reason.size), String(lost.reason.size));
    assert.equal((await storage.uploads.uploadState(id))?.size, winner.length);
    assert.ok((await bytes(storage.uploads.readUpload(id))).equals(winner));
    assert.deepEqual(await keys(storage, 'staging/'), []);
    const client = rgw.client();
    const unfinished = await client.send(new ListMultipartUploadsCommand({ Bucket: storage.bucket }));
    client.destroy();
    assert.deepEqual(unfinished.Uploads ?? [], []);
    return storage.bucket;
  }

  it('of two large appends racing for one offset, exactly one creates the chunk and the other is refused with the size', async () => {
    const bucket = await raceLargeAppends({});
    assert.equal(seen(bucket, 'CopyObject').filter((r) => r.path.includes('/uploads/')).length, 1, 'one copy over a claim');
  });

  it('the same with chunks above the single-copy limit, copied range by range over the claim', async () => {
    const bucket = await raceLargeAppends({ maxCopyObjectBytes: MIN_PART_SIZE_BYTES, copyPartSizeBytes: MIN_PART_SIZE_BYTES });
    assert.equal(seen(bucket, 'CopyObject').filter((r) => r.path.includes('/uploads/')).length, 0);
    assert.equal(seen(bucket, 'UploadPart').filter((r) => r.path.includes('/uploads/')).length, 2, 'two ranges copied into the chunk');
  });

  it('counts a retried write whose first attempt succeeded unseen as its own: lease create and replace, session record, chunk', async () => {
    const storage = await backend({ redirect: 'stream' });
    const bucket = storage.bucket;
    const loseNextPut = () => proxy.inject({ when: (r) => r.path.startsWith(`/${bucket}/`) && r.operation === 'PutObject', times: 1, action: { type: 'lose-answer', status: 500, code: 'InternalError' } });
    loseNextPut();
    const v1 = await storage.swapLease('gc', null, { holder: 'a', expiresMs: 1 });
    assert.ok(v1);
    assert.equal((await storage.readLease('gc'))?.version, v1);
    loseNextPut();
    const v2 = await storage.swapLease('gc', v1, { holder: 'a', expiresMs: 2 });
    assert.ok(v2 && v2 !== v1);
    assert.deepEqual(await storage.readLease('gc'), { version: v2, record: { holder: 'a', expiresMs: 2 } });
    const id = randomUUID();
    loseNextPut();
    await storage.uploads.createUpload(id, 'team/app', 1_000);
    loseNextPut();
    assert.equal(await storage.uploads.appendUpload(id, 0, Readable.from([Buffer.from('chunk')])), 5);
    assert.deepEqual(await storage.uploads.uploadState(id), { id, name: 'team/app', size: 5, lastActivityMs: 1_000 });
    const retried = proxy.requests.filter((r) => r.path.startsWith(`/${bucket}/`) && r.injected);
    assert.equal(retried.length, 4, 'each write was answered with an error once, after the server had carried it out');
  });

  it('a released lease is a record, not a deleted object, and its version never comes back', async () => {
    const storage = await backend();
    const v1 = await storage.swapLease('gc', null, { holder: 'a', expiresMs: 1 });
    const released = await storage.swapLease('gc', v1, null);
    assert.ok(released);
    assert.deepEqual(await storage.readLease('gc'), { version: released, record: null });
    const v2 = await storage.swapLease('gc', released, { holder: 'a', expiresMs: 1 });
    assert.ok(v2 && v2 !== v1, 'the same record written again has a new version');
    assert.equal(await storage.swapLease('gc', v1, null), null);
  });

  it('the staging sweep and the document listing leave leases and upload sessions alone, however old', async () => {
    let now = Date.now();
    const storage = await backend({ stagingTtlMs: 60_000, now: () => now });
    await storage.swapLease('gc', null, { holder: 'a', expiresMs: 1 });
    const id = randomUUID();
    await storage.uploads.createUpload(id, 'team/app', 1_000);
    await storage.uploads.appendUpload(id, 0, Readable.from([Buffer.from('chunk')]));
    await storage.putDocument('tags/x', { v: 1 });
    now += 24 * 3600_000;
    assert.deepEqual(await storage.sweepStaging(), { objects: 0, bytes: 0 });
    assert.deepEqual(await keys(storage), ['documents/tags/x.json', 'leases/gc.json', `uploads/${id}/chunks/0000000000000000`, `uploads/${id}/session`]);
    const documents: string[] = [];
    for await (const document of storage.listDocuments()) documents.push(document.key);
    assert.deepEqual(documents, ['tags/x']);
  });
});

describe('s3 storage: layout and verification', () => {
  it('keeps blobs under <prefix>/blobs/sha256/<hex> with their content type, documents as JSON, and no staging left', async () => {
    const storage = await backend({ prefix: '/team/registry/' });
    const { digest } = await storage.putBlob(Buffer.from('{"architecture":"amd64"}'), { contentType: 'application/vnd.oci.image.config.v1+json' });
    await storage.putDocument('cache/manifests/x', { v: 1 });
    const hex = digest.slice('sha256:'.length);
    assert.deepEqual(await keys(storage), [`team/registry/blobs/sha256/${hex}`, 'team/registry/documents/cache/manifests/x.json']);
    const client = rgw.client();
    const head = await client.send(new HeadObjectCommand({ Bucket: storage.bucket, Key: `team/registry/blobs/sha256/${hex}` }));
    client.destroy();
    assert.equal(head.ContentType, 'application/vnd.oci.image.config.v1+json');
    assert.match(storage.description, /^s3 \(s3:\/\/nixery-test-\d+-\d+\/team\/registry\/ at http:\/\/127\.0\.0\.1:\d+, blobs presigned URL redirects\)$/);
  });

  it('uploads a blob above the part size as a multipart upload, bounded to whole parts, and stores it intact', async () => {
    const storage = await backend({ partSizeBytes: MIN_PART_SIZE_BYTES, redirect: 'stream' });
    const layer = randomBytes(12 * MiB + 123);
    const result = await storage.putBlob(chunked(layer, 64 * 1024), { contentType: 'application/vnd.oci.image.layer.v1.tar', expectedDigest: sha256(layer) });
    assert.deepEqual(result, { digest: sha256(layer), size: layer.length, created: true });
    assert.equal(seen(storage.bucket, 'CreateMultipartUpload').length, 1);
    const parts = seen(storage.bucket, 'UploadPart');
    assert.deepEqual(parts.map((p) => Number(p.query.get('partNumber'))).sort(), [1, 2, 3]);
    assert.equal(seen(storage.bucket, 'CompleteMultipartUpload').length, 1);
    assert.equal(seen(storage.bucket, 'PutObject').filter((r) => r.path.includes('/staging/') && !r.path.includes('probe')).length, 0);
    const delivery = await storage.deliverBlob(result.digest);
    assert.ok(delivery?.kind === 'stream');
    assert.ok((await bytes(delivery.open())).equals(layer));
    assert.deepEqual((await keys(storage, 'staging/')), []);
  });

  it('publishes a blob above the single-copy limit range by range, visible only once complete', async () => {
    const storage = await backend({ partSizeBytes: MIN_PART_SIZE_BYTES, maxCopyObjectBytes: MIN_PART_SIZE_BYTES, copyPartSizeBytes: MIN_PART_SIZE_BYTES, redirect: 'stream' });
    const layer = randomBytes(12 * MiB + 7);
    const { digest, created } = await storage.putBlob(chunked(layer, 1 * MiB), { contentType: 'application/vnd.oci.image.layer.v1.tar' });
    assert.equal(created, true);
    const hex = digest.slice('sha256:'.length);
    const copies = proxy.requests.filter((r) => r.path === `/${storage.bucket}/blobs/sha256/${hex}` && r.operation === 'UploadPart');
    assert.deepEqual(copies.map((r) => Number(r.query.get('partNumber'))), [1, 2, 3]);
    assert.equal(seen(storage.bucket, 'CopyObject').length, 0);
    assert.equal((await storage.statBlob(digest))?.contentType, 'application/vnd.oci.image.layer.v1.tar');
    assert.ok((await storage.readBlob(digest)).equals(layer));
    const client = rgw.client();
    assert.deepEqual((await client.send(new ListMultipartUploadsCommand({ Bucket: storage.bucket }))).Uploads ?? [], []);
    client.destroy();
    assert.equal((await storage.putBlob(layer, { contentType: 'x/y' })).created, false);
  });

  it('uploads a blob of exactly one part in a single PutObject', async () => {
    const storage = await backend({ partSizeBytes: MIN_PART_SIZE_BYTES });
    const blob = randomBytes(MIN_PART_SIZE_BYTES);
    const result = await storage.putBlob(chunked(blob, 100_000), { contentType: 'x/y' });
    assert.equal(result.size, MIN_PART_SIZE_BYTES);
    assert.equal(seen(storage.bucket, 'CreateMultipartUpload').length, 0);
    assert.ok((await storage.readBlob(result.digest)).equals(blob));
  });

  it('aborts the multipart upload of a stream that fails mid-way and leaves nothing', async () => {
    const storage = await backend({ partSizeBytes: MIN_PART_SIZE_BYTES });
    const part = randomBytes(3 * MiB).toString('latin1');
    await assert.rejects(storage.putBlob(failingStream([part, part, part]), { contentType: 'x/y' }), /connection reset/);
    assert.equal(seen(storage.bucket, 'AbortMultipartUpload').length, 1);
    const client = rgw.client();
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: storage.bucket }));
    client.destroy();
    assert.deepEqual(uploads.Uploads ?? [], []);
    assert.deepEqual(await keys(storage), []);
  });

  it('reports an existing digest as not created and leaves the first copy in place', async () => {
    const storage = await backend();
    const first = await storage.putBlob(Buffer.from('same bytes'), { contentType: 'x/first' });
    const copies = seen(storage.bucket, 'CopyObject').length;
    const second = await storage.putBlob(Buffer.from('same bytes'), { contentType: 'x/second' });
    assert.equal(second.created, false);
    assert.equal(seen(storage.bucket, 'CopyObject').length, copies, 'no second copy');
    assert.equal((await storage.statBlob(first.digest))?.contentType, 'x/first');
  });
});

describe('s3 storage: transient failures', () => {
  it('retries 503 SlowDown on every step of a multipart upload and stores the blob uncorrupted', async () => {
    const storage = await backend({ partSizeBytes: MIN_PART_SIZE_BYTES, redirect: 'stream' });
    const bucket = storage.bucket;
    const slowDown = { type: 'error', status: 503, code: 'SlowDown' } as const;
    for (const operation of ['CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload', 'HeadObject', 'CopyObject'] as const) {
      proxy.inject({ when: (r) => r.path.startsWith(`/${bucket}/`) && r.operation === operation, times: 2, action: slowDown });
    }
    const layer = randomBytes(11 * MiB);
    const result = await storage.putBlob(chunked(layer, 256 * 1024), { contentType: 'x/y', expectedDigest: sha256(layer) });
    assert.equal(result.digest, sha256(layer));
    const injected = proxy.requests.filter((r) => r.path.startsWith(`/${bucket}/`) && r.injected);
    assert.deepEqual([...new Set(injected.map((r) => r.operation))].sort(), ['CompleteMultipartUpload', 'CopyObject', 'CreateMultipartUpload', 'HeadObject', 'UploadPart']);
    assert.ok((await storage.readBlob(result.digest)).equals(layer));
    assert.deepEqual(await keys(storage, 'staging/'), []);
  });

  it('retries throttled document writes and reads, and resumes a throttled blob download', async () => {
    const storage = await backend({ redirect: 'stream' });
    const bucket = storage.bucket;
    const { digest } = await storage.putBlob(Buffer.from('0123456789'), { contentType: 'x/y' });
    proxy.inject({ when: (r) => r.path.startsWith(`/${bucket}/`) && (r.operation === 'PutObject' || r.operation === 'GetObject'), times: 3, action: { type: 'error', status: 503, code: 'SlowDown' } });
    await storage.putDocument('tags/x', { digest });
    assert.deepEqual(await storage.getDocument('tags/x'), { digest });
    proxy.inject({ when: (r) => r.path.startsWith(`/${bucket}/`) && r.operation === 'GetObject', times: 8, action: { type: 'error', status: 500, code: 'InternalError' } });
    const delivery = await storage.deliverBlob(digest);
    assert.ok(delivery?.kind === 'stream');
    assert.equal((await bytes(delivery.open({ start: 2, end: 5 }))).toString(), '2345');
  });

  it('gives up with a typed error naming the operation when the server keeps refusing', async () => {
    const storage = await backend({ maxAttempts: 2 });
    const bucket = storage.bucket;
    proxy.inject({ when: (r) => r.path.startsWith(`/${bucket}/`) && r.operation === 'PutObject', times: 2, action: { type: 'error', status: 503, code: 'SlowDown' } });
    await assert.rejects(storage.putDocument('a', {}), (error: Error & { status?: number; s3Code?: string; operation?: string }) => {
      assert.equal(error.name, 'S3StorageError');
      assert.equal(error.status, 503);
      assert.equal(error.s3Code, 'SlowDown');
      assert.equal(error.operation, 'write');
      return true;
    });
  });
});

describe('s3 storage: presigned URLs', () => {
  it('redirects to a SigV4 presigned GET the server honours, and refuses once tampered with or for another key', async () => {
    const storage = await backend({ presignedUrlExpirySeconds: 120 });
    const content = randomBytes(4096);
    const { digest } = await storage.putBlob(content, { contentType: 'x/y' });
    const delivery = await storage.deliverBlob(digest);
    assert.ok(delivery?.kind === 'redirect');
    const url = new URL(delivery.url);
    assert.equal(url.searchParams.get('X-Amz-Algorithm'), 'AWS4-HMAC-SHA256');
    assert.equal(url.searchParams.get('X-Amz-Expires'), '120');
    const ok = await fetch(url);
    assert.equal(ok.status, 200);
    assert.equal(createHash('sha256').update(Buffer.from(await ok.arrayBuffer())).digest('hex'), digest.slice('sha256:'.length));

    const tampered = new URL(url);
    tampered.searchParams.set('X-Amz-Expires', '604800');
    const refused = await fetch(tampered);
    assert.equal(refused.status, 403);
    assert.match(await refused.text(), /SignatureDoesNotMatch|AccessDenied/);

    const other = await storage.putBlob(Buffer.from('another blob'), { contentType: 'x/y' });
    const elsewhere = new URL(url);
    elsewhere.pathname = url.pathname.replace(digest.slice('sha256:'.length), other.digest.slice('sha256:'.length));
    const refusedElsewhere = await fetch(elsewhere);
    assert.equal(refusedElsewhere.status, 403);
    await refusedElsewhere.body?.cancel();
  });
});

describe('s3 storage: stale staging', () => {
  it('sweeps staging objects and unfinished multipart uploads (staging and copies) older than the TTL, never its own writes nor other keys', async () => {
    let now = Date.now();
    const storage = await backend({ stagingTtlMs: 60_000, now: () => now });
    const client = rgw.client();
    await client.send(new PutObjectCommand({ Bucket: storage.bucket, Key: 'staging/crashed-writer', Body: randomBytes(1000) }));
    const upload = await client.send(new CreateMultipartUploadCommand({ Bucket: storage.bucket, Key: 'staging/crashed-multipart' }));
    await client.send(new UploadPartCommand({ Bucket: storage.bucket, Key: 'staging/crashed-multipart', UploadId: upload.UploadId, PartNumber: 1, Body: randomBytes(MIN_PART_SIZE_BYTES) }));
    // A multipart copy of a large blob whose writer died: parts under the digest, no object.
    await client.send(new CreateMultipartUploadCommand({ Bucket: storage.bucket, Key: `blobs/sha256/${'a'.repeat(64)}` }));
    // Someone else's upload in the same bucket, outside the registry's keys, is not ours to abort.
    await client.send(new CreateMultipartUploadCommand({ Bucket: storage.bucket, Key: 'other-app/upload' }));
    assert.deepEqual(await storage.sweepStaging(), { objects: 0, bytes: 0 }, 'young leftovers stay');

    // A write of this process, its staging object uploaded and its check held at the server,
    // while the clock passes the TTL.
    const bucket = storage.bucket;
    proxy.inject({ when: (r) => r.path.startsWith(`/${bucket}/staging/`) && r.operation === 'HeadObject' && !r.path.includes('crashed'), times: 1, action: { type: 'hold' } });
    const held = proxy.held();
    const writing = storage.putBlob(Buffer.from('in flight'), { contentType: 'x/y' });
    const ownStaging = (await held).path.slice(`/${bucket}/`.length);
    now += 120_000;
    const swept = await storage.sweepStaging();
    assert.deepEqual(swept, { objects: 3, bytes: 1000 + MIN_PART_SIZE_BYTES });
    assert.deepEqual(await keys(storage, 'staging/'), [ownStaging]);
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: storage.bucket }));
    assert.deepEqual((uploads.Uploads ?? []).map((u) => u.Key), ['other-app/upload']);
    client.destroy();
    proxy.releaseHeld();
    assert.deepEqual(await writing, { digest: sha256('in flight'), size: 9, created: true });
    assert.deepEqual(await keys(storage, 'staging/'), []);
  });
});

describe('what radosgw 16 does with conditional writes (why publishing a blob HEADs its digest first, and leases send bare ETags)', () => {
  const status = (request: Promise<unknown>) => request.then(() => 200, (error: { $metadata?: { httpStatusCode?: number } }) => error.$metadata?.httpStatusCode);

  it('honours If-None-Match: * and If-Match (with the bare ETag only) on PutObject, and ignores If-None-Match on CopyObject', async () => {
    const bucket = await newBucket();
    const client = rgw.client();
    const put = (key: string, body: string, extra: object = {}) => client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ...extra }));
    const read = async (key: string) => (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();
    const { ETag: etag } = await put('a', 'one');
    assert.equal(await status(put('a', 'two', { IfNoneMatch: '*' })), 412);
    assert.equal(await status(put('b', 'two', { IfNoneMatch: '*' })), 200);
    assert.equal(await status(put('a', 'three', { IfMatch: '00000000000000000000000000000000' })), 412);
    assert.equal(await status(put('missing', 'three', { IfMatch: unquoteEtag(etag)! })), 412);
    // If-Match is compared with the bare ETag: the quoted form, as the server sends it, never matches.
    assert.equal(await status(put('a', 'three', { IfMatch: etag })), 412);
    assert.equal(await read('a'), 'one');
    assert.equal(await status(put('a', 'four', { IfMatch: unquoteEtag(etag)! })), 200);
    assert.equal(await read('a'), 'four');
    assert.equal(await status(client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'b', CopySource: `${bucket}/a`, IfNoneMatch: '*' }))), 200);
    assert.equal(await read('b'), 'four', 'the copy replaced an existing object despite If-None-Match: *');
    client.destroy();
  });
});

describe('s3 storage: start-up checks', () => {
  it('refuses a bucket that does not exist, naming S3_BUCKET', async () => {
    const storage = await backend({ bucket: 'no-such-bucket' }, false);
    await assert.rejects(storage.init(), (error: Error) => {
      assert.ok(error instanceof StorageUnavailableError);
      assert.match(error.message, /^S3_BUCKET: the bucket s3:\/\/no-such-bucket at http:\/\/127\.0\.0\.1:\d+ does not exist/);
      return true;
    });
  });

  it('refuses credentials the server does not know, naming the SDK chain', async () => {
    const bucket = await newBucket();
    const storage = await backend({ bucket }, false);
    process.env.AWS_SECRET_ACCESS_KEY = 'not-the-secret';
    try {
      const wrong = new S3Storage({ bucket, endpoint: proxy.url, forcePathStyle: true, log: silentLogger });
      await assert.rejects(wrong.init(), /the AWS credentials \(from the SDK's default chain.*\) may not access s3:\/\/nixery-test-\d+-\d+ at .* \(HTTP 403/);
    } finally {
      process.env.AWS_SECRET_ACCESS_KEY = rgw.secretAccessKey;
    }
    await storage.init();
  });

  it('reads objects written by another writer: a document put through the SDK directly', async () => {
    const storage = await backend();
    const client = rgw.client();
    await client.send(new PutObjectCommand({ Bucket: storage.bucket, Key: 'documents/shared.json', Body: '{"from":"elsewhere"}' }));
    const got = await client.send(new GetObjectCommand({ Bucket: storage.bucket, Key: 'documents/shared.json' }));
    await got.Body?.transformToString();
    client.destroy();
    assert.deepEqual(await storage.getDocument('shared'), { from: 'elsewhere' });
  });
});
