// The GCS backend against the local emulator: the shared storage contract, then what is
// particular to GCS (object layout and metadata, upload modes, recovery from faults, start-up
// checks, signed and public URLs). STORAGE_EMULATOR_HOST is the library's own switch; it is read
// when a client is constructed, so it is set before any backend exists.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createVerify, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createLogger, silentLogger } from '../../registry/src/log/logger.ts';
import { StorageUnavailableError } from '../../registry/src/storage/backend.ts';
import { failingStream, sha256, storageContract, uploadStoreContract } from '../../registry/src/storage/test-support.ts';
import { GcsIntegrityError, GcsStorage, GcsStorageError, type GcsStorageOptions } from '../../registry/src/storage/gcs.ts';
import { publicObjectUrl, signedGetUrl } from '../../registry/src/storage/gcs-signer.ts';
import { crc32cBase64 } from './crc32c.ts';
import { startGcsEmulator } from './emulator.ts';
import { writeServiceAccountKey } from './service-account.ts';

const emulator = await startGcsEmulator();
process.env.STORAGE_EMULATOR_HOST = emulator.url;
const work = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-gcs-storage-'));
const key = await writeServiceAccountKey(work);
emulator.registerServiceAccount(key.clientEmail, key.publicKey);
process.env.GOOGLE_APPLICATION_CREDENTIALS = key.file;
after(async () => {
  await emulator.close();
  await fs.rm(work, { recursive: true, force: true });
});

const KiB = 1024;
const warnings: Error[] = [];
process.on('warning', (warning) => warnings.push(warning));
let buckets = 0;
function newBucket(): string {
  const name = `nixery-test-${++buckets}`;
  emulator.createBucket(name);
  return name;
}

/** Fast failure handling for tests: one-second back-off (the library's minimum), short stalls. */
async function backend(options: Partial<GcsStorageOptions> = {}, init = true): Promise<GcsStorage> {
  const storage = new GcsStorage({
    bucket: options.bucket ?? newBucket(),
    stallTimeoutMs: 300,
    log: silentLogger,
    ...options,
    retry: { maxRetryDelaySeconds: 1, resumeDelayMs: 10, ...options.retry },
  });
  if (init) await storage.init();
  return storage;
}

async function text(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function chunked(data: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts);
}

function opsFor(bucket: string, operation: string) {
  return emulator.requests.filter((r) => r.bucket === bucket && r.operation === operation);
}

storageContract('gcs on the emulator, blobs streamed through the registry', () => backend({ redirect: 'stream' }));
storageContract('gcs on the emulator, blobs redirected to signed URLs', () => backend({ credentialsFile: key.file }));
uploadStoreContract('gcs on the emulator', () => backend({ redirect: 'stream' }));

describe('gcs storage: upload sessions', () => {
  it('keeps a session as a record and one object per chunk, named by its offset, and leaves no staging behind', async () => {
    const storage = await backend({ resumableThresholdBytes: 64 * KiB, chunkSizeBytes: 256 * KiB });
    const id = randomUUID();
    await storage.uploads.createUpload(id, 'team/app', 1_000);
    const large = randomBytes(300 * KiB);
    await storage.uploads.appendUpload(id, 0, Readable.from([Buffer.from('small')]));
    // Above the resumable threshold: the chunk goes through a resumable upload to staging first.
    await storage.uploads.appendUpload(id, 5, chunked(large, 16 * KiB));
    assert.deepEqual(emulator.objectNames(storage.bucketName, `uploads/${id}/`), [
      `uploads/${id}/chunks/0000000000000000`,
      `uploads/${id}/chunks/0000000000000005`,
      `uploads/${id}/session`,
    ]);
    assert.deepEqual(emulator.object(storage.bucketName, `uploads/${id}/session`)?.metadata, { name: 'team/app', lastActivityMs: '1000' });
    assert.deepEqual(emulator.objectNames(storage.bucketName, 'staging/'), []);
    assert.ok((await text(storage.uploads.readUpload(id))).equals(Buffer.concat([Buffer.from('small'), large])));

    await storage.uploads.deleteUpload(id);
    assert.deepEqual(emulator.objectNames(storage.bucketName, `uploads/${id}/`), []);
  });

  it('finishes into a blob by streaming the chunks through putBlob, which checks the digest', async () => {
    const storage = await backend();
    const id = randomUUID();
    await storage.uploads.createUpload(id, 'team/app', Date.now());
    await storage.uploads.appendUpload(id, 0, Readable.from([Buffer.from('chunk one, ')]));
    await storage.uploads.appendUpload(id, 11, Readable.from([Buffer.from('chunk two')]));
    await assert.rejects(
      storage.putBlob(storage.uploads.readUpload(id), { contentType: 'application/octet-stream', expectedDigest: sha256('something else') }),
      { code: 'DIGEST_INVALID' },
    );
    const stored = await storage.putBlob(storage.uploads.readUpload(id), { contentType: 'application/octet-stream', expectedDigest: sha256('chunk one, chunk two') });
    assert.equal(stored.size, 20);
  });
});

describe('gcs storage: layout and metadata', () => {
  it('keeps blobs under blobs/sha256/<hex> with their content type in the object metadata', async () => {
    const storage = await backend();
    const config = Buffer.from('{"architecture":"amd64"}');
    const { digest } = await storage.putBlob(config, { contentType: 'application/vnd.oci.image.config.v1+json' });
    const object = emulator.object(storage.bucketName, `blobs/sha256/${digest.slice('sha256:'.length)}`);
    assert.ok(object);
    assert.equal(object.contentType, 'application/vnd.oci.image.config.v1+json');
    assert.equal(object.crc32c, crc32cBase64(config));
    assert.equal(object.md5Hash, createHash('md5').update(config).digest('base64'));
    assert.deepEqual(emulator.objectNames(storage.bucketName, 'staging/'), [], 'staging objects are removed once copied');
  });

  it('keeps documents under documents/<key>.json as JSON', async () => {
    const storage = await backend();
    await storage.putDocument('cache/manifests/abc', { digest: 'sha256:1' });
    const object = emulator.object(storage.bucketName, 'documents/cache/manifests/abc.json');
    assert.ok(object);
    assert.equal(object.contentType, 'application/json');
    assert.deepEqual(JSON.parse(object.data.toString()), { digest: 'sha256:1' });
  });

  it('uploads blobs up to the threshold in one request, larger ones through a resumable session in chunks', async () => {
    const storage = await backend({ resumableThresholdBytes: 300 * KiB, chunkSizeBytes: 256 * KiB });
    const small = randomBytes(200 * KiB);
    const large = randomBytes(700 * KiB);
    await storage.putBlob(chunked(small, 16 * KiB), { contentType: 'x/y' });
    assert.equal(opsFor(storage.bucketName, 'objects.insert').length, 1 + 1, 'the start-up probe and the small blob');
    assert.equal(opsFor(storage.bucketName, 'uploads.start').length, 0);
    const { digest } = await storage.putBlob(chunked(large, 16 * KiB), { contentType: 'x/y' });
    assert.equal(opsFor(storage.bucketName, 'uploads.start').length, 1);
    assert.equal(opsFor(storage.bucketName, 'uploads.chunk').length, 3, '256 KiB + 256 KiB + the last 188 KiB');
    assert.equal(digest, sha256(large));
    assert.deepEqual(await storage.readBlob(digest), large);
  });

  it('writes a blob that already exists as a no-op: the first copy stays', async () => {
    const storage = await backend();
    const first = await storage.putBlob(Buffer.from('same'), { contentType: 'first/type' });
    const generation = emulator.object(storage.bucketName, `blobs/sha256/${first.digest.slice(7)}`)!.generation;
    const second = await storage.putBlob(Buffer.from('same'), { contentType: 'second/type' });
    assert.equal(second.created, false);
    const object = emulator.object(storage.bucketName, `blobs/sha256/${first.digest.slice(7)}`)!;
    assert.equal(object.generation, generation);
    assert.equal(object.contentType, 'first/type');
  });
});

describe('gcs storage: transient failures never leave a corrupt or partial blob', () => {
  const large = randomBytes(700 * KiB);
  const resumable = { resumableThresholdBytes: 64 * KiB, chunkSizeBytes: 256 * KiB };

  it('retries a 503 in the middle of a resumable upload; the blob ends complete and verified', async () => {
    const storage = await backend(resumable);
    const fault = emulator.inject({ operation: 'uploads.chunk', when: (r) => (r.chunkStart ?? 0) > 0, action: { type: 'status', status: 503 } });
    const { digest, size } = await storage.putBlob(chunked(large, 32 * KiB), { contentType: 'x/y' });
    assert.equal(fault.hits, 1);
    assert.equal(digest, sha256(large));
    assert.equal(size, large.length);
    assert.deepEqual(emulator.object(storage.bucketName, `blobs/sha256/${digest.slice(7)}`)!.data, large);
  });

  it('resumes a resumable upload whose connection dropped mid-chunk from what the service persisted', async () => {
    const storage = await backend(resumable);
    // The cut comes 100 KiB into the second chunk; GCS keeps whole 256 KiB units, so the session
    // has only the first chunk, and the client must ask how much it has and resend.
    const fault = emulator.inject({ operation: 'uploads.chunk', when: (r) => (r.chunkStart ?? 0) > 0, action: { type: 'drop', afterBytes: 100 * KiB } });
    const { digest } = await storage.putBlob(chunked(large, 32 * KiB), { contentType: 'x/y' });
    assert.equal(fault.hits, 1);
    assert.ok(opsFor(storage.bucketName, 'uploads.status').length >= 1, 'the client asked how much was persisted');
    assert.deepEqual(await storage.readBlob(digest), large);
  });

  it('retries a single-request upload whose connection dropped mid-body', async () => {
    const storage = await backend();
    const fault = emulator.inject({ operation: 'objects.insert', action: { type: 'drop', afterBytes: 10 } });
    const body = Buffer.from('a small config blob, sent in one request');
    const { digest } = await storage.putBlob(body, { contentType: 'x/y' });
    assert.equal(fault.hits, 1);
    assert.deepEqual(await storage.readBlob(digest), body);
  });

  it('retries 429 answers (rate limiting) on metadata reads and copies', async () => {
    const storage = await backend();
    const copyFault = emulator.inject({ operation: 'objects.rewrite', action: { type: 'status', status: 429 } });
    const { digest } = await storage.putBlob(Buffer.from('rate limited'), { contentType: 'x/y' });
    const statFault = emulator.inject({ operation: 'objects.get', action: { type: 'status', status: 429 } });
    assert.equal((await storage.statBlob(digest))?.size, 12);
    assert.equal(copyFault.hits, 1);
    assert.equal(statFault.hits, 1);
  });

  it('reports a blob whose copy succeeded but whose answer was lost', async () => {
    const storage = await backend();
    emulator.inject({ operation: 'objects.rewrite', action: { type: 'drop' } });
    const { digest } = await storage.putBlob(Buffer.from('copied unseen'), { contentType: 'x/y' });
    assert.equal((await storage.readBlob(digest)).toString(), 'copied unseen');
  });

  it('fails cleanly, with nothing visible, when the service keeps failing', async () => {
    const storage = await backend({ ...resumable, retry: { maxRetries: 1 } });
    const fault = emulator.inject({ operation: 'uploads.chunk', when: (r) => (r.chunkStart ?? 0) > 0, action: { type: 'status', status: 503 }, times: 10 });
    await assert.rejects(storage.putBlob(chunked(large, 32 * KiB), { contentType: 'x/y' }), (error: unknown) => {
      assert.ok(error instanceof GcsStorageError, String(error));
      assert.equal(error.operation, 'upload');
      return true;
    });
    fault.remove();
    assert.equal(await storage.statBlob(sha256(large)), null);
    assert.deepEqual(emulator.objectNames(storage.bucketName, 'blobs/'), []);
  });

  it('sends the hashes of single-request uploads along, so the service refuses damaged bytes; the old document stays', async () => {
    const storage = await backend();
    emulator.inject({ operation: 'objects.insert', action: { type: 'corrupt' } });
    const body = Buffer.from('flipped on the wire');
    await assert.rejects(storage.putBlob(body, { contentType: 'x/y' }), (error: unknown) => {
      assert.ok(error instanceof GcsStorageError);
      assert.equal(error.status, 400);
      assert.match(error.message, /doesn't match calculated/);
      return true;
    });
    assert.equal(await storage.statBlob(sha256(body)), null);
    await storage.putDocument('cache/doc', { version: 1 });
    emulator.inject({ operation: 'objects.insert', action: { type: 'corrupt' } });
    await assert.rejects(storage.putDocument('cache/doc', { version: 2 }), GcsStorageError);
    assert.deepEqual(await storage.getDocument('cache/doc'), { version: 1 });
  });

  it('checks resumable uploads against the CRC32C and MD5 the service computed, and keeps nothing that differs', async () => {
    const storage = await backend(resumable);
    emulator.inject({ operation: 'uploads.chunk', action: { type: 'corrupt' } });
    await assert.rejects(storage.putBlob(chunked(large, 32 * KiB), { contentType: 'x/y' }), (error: unknown) => {
      assert.ok(error instanceof GcsIntegrityError, String(error));
      assert.match(error.message, /the CRC32C the service computed is .*, expected /);
      return true;
    });
    assert.equal(await storage.statBlob(sha256(large)), null);
    assert.deepEqual(emulator.objectNames(storage.bucketName, 'staging/'), []);
  });

  it('passes the source stream’s own error through, with nothing visible', async () => {
    const storage = await backend(resumable);
    const source = Readable.from(
      (async function* () {
        yield large.subarray(0, 300 * KiB);
        throw new Error('client went away');
      })(),
    );
    await assert.rejects(storage.putBlob(source, { contentType: 'x/y' }), /client went away/);
    await assert.rejects(storage.putBlob(failingStream(['a', 'b']), { contentType: 'x/y' }), /connection reset/);
    assert.deepEqual(emulator.objectNames(storage.bucketName, 'blobs/'), []);
  });
});

describe('gcs storage: streaming blobs through the registry', () => {
  const blob = randomBytes(300 * KiB);

  it('resumes a download cut mid-body with a Range request for the rest; the bytes are right', async () => {
    const logs: string[] = [];
    const storage = await backend({ redirect: 'stream', log: createLogger({ write: (line) => logs.push(line) }) });
    const { digest } = await storage.putBlob(blob, { contentType: 'x/y' });
    emulator.inject({ operation: 'objects.download', action: { type: 'drop', afterBytes: 100 * KiB } });
    const delivery = await storage.deliverBlob(digest);
    assert.equal(delivery?.kind, 'stream');
    if (delivery?.kind !== 'stream') return;
    assert.deepEqual(await text(delivery.open()), blob);
    const downloads = opsFor(storage.bucketName, 'objects.download');
    assert.equal(downloads.length, 2);
    const resumedAt = Number(/^bytes=(\d+)-/.exec(downloads[1]!.range ?? '')?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= 100 * KiB, `resumed at ${downloads[1]!.range}`);
    const resumed = logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'resuming a GCS download with a Range request');
    assert.equal(resumed?.level, 'warn');
    assert.equal(resumed?.offset, resumedAt);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      warnings.filter((w) => w.name === 'MaxListenersExceededWarning'),
      [],
      'downloads print no listener warnings (googleapis/google-cloud-node#9185)',
    );
  });

  it('gives up on a response that stops sending or closes early, and resumes', async () => {
    const storage = await backend({ redirect: 'stream', stallTimeoutMs: 200 });
    const { digest } = await storage.putBlob(blob, { contentType: 'x/y' });
    emulator.inject({ operation: 'objects.download', action: { type: 'stall', afterBytes: 50 * KiB } });
    emulator.inject({ operation: 'objects.download', action: { type: 'truncate', afterBytes: 20 * KiB } });
    const delivery = await storage.deliverBlob(digest);
    if (delivery?.kind !== 'stream') return assert.fail('expected a streamed delivery');
    assert.deepEqual(await text(delivery.open()), blob);
    assert.deepEqual(await text(delivery.open({ start: 1000, end: 250 * KiB })), blob.subarray(1000, 250 * KiB + 1));
  });

  it('checks a whole blob against its digest and withholds the end of a body that does not match', async () => {
    const storage = await backend({ redirect: 'stream' });
    const { digest } = await storage.putBlob(blob, { contentType: 'x/y' });
    const tampered = Buffer.from(blob);
    tampered[0] = tampered[0]! ^ 0xff;
    emulator.putObject(storage.bucketName, `blobs/sha256/${digest.slice(7)}`, tampered, 'x/y');
    const delivery = await storage.deliverBlob(digest);
    if (delivery?.kind !== 'stream') return assert.fail('expected a streamed delivery');
    let received = 0;
    await assert.rejects(
      (async () => {
        for await (const chunk of delivery.open()) received += (chunk as Buffer).length;
      })(),
      GcsIntegrityError,
    );
    assert.ok(received < blob.length, 'the reader never got the whole body');
    await assert.rejects(storage.readBlob(digest), GcsIntegrityError);
  });
});

describe('gcs storage: start-up checks', () => {
  it('refuses a bucket that does not exist, naming it', async () => {
    const storage = await backend({ bucket: 'no-such-bucket' }, false);
    await assert.rejects(storage.init(), (error: unknown) => {
      assert.ok(error instanceof StorageUnavailableError);
      assert.match(error.message, /GCS_BUCKET: the bucket gs:\/\/no-such-bucket at http:\/\/127\.0\.0\.1:\d+ does not exist/);
      return true;
    });
  });

  it('refuses credentials the service rejects, for reading or for writing', async () => {
    emulator.inject({ operation: 'objects.list', action: { type: 'status', status: 403, message: 'caller does not have storage.objects.list access' } });
    await assert.rejects((await backend({ credentialsFile: key.file }, false)).init(), (error: unknown) => {
      assert.ok(error instanceof StorageUnavailableError);
      assert.match(error.message, /GOOGLE_APPLICATION_CREDENTIALS .* may not list objects in gs:\/\/nixery-test-\d+ .*HTTP 403/);
      return true;
    });
    emulator.inject({ operation: 'objects.insert', action: { type: 'status', status: 401, message: 'Invalid Credentials' } });
    await assert.rejects((await backend({}, false)).init(), /may not create and delete objects in .*HTTP 401: Invalid Credentials/);
  });

  it('refuses a key file it cannot use', async () => {
    const notJson = path.join(work, 'not-json.json');
    await fs.writeFile(notJson, 'not json');
    const badKey = path.join(work, 'bad-key.json');
    await fs.writeFile(badKey, JSON.stringify({ type: 'service_account', client_email: 'a@b.c', private_key: 'nope' }));
    const cases: [string, RegExp][] = [
      [path.join(work, 'missing.json'), /cannot read the key file/],
      [notJson, /is not a JSON credentials file/],
      [badKey, /private_key is not a usable PEM key/],
    ];
    for (const [file, message] of cases) {
      await assert.rejects((await backend({ credentialsFile: file }, false)).init(), (error: unknown) => {
        assert.ok(error instanceof StorageUnavailableError);
        assert.match(error.message, new RegExp(`^GOOGLE_APPLICATION_CREDENTIALS \\(${file.replace(/[.]/g, '\\.')}\\): `));
        assert.match(error.message, message);
        return true;
      });
    }
  });

  it('refuses signed redirects without a key that can sign; chooses them by default when the key can', async () => {
    await assert.rejects((await backend({ redirect: 'signed' }, false)).init(), /NIXERY_GCS_REDIRECT=signed: signing URLs needs a service account key/);
    assert.equal((await backend({ credentialsFile: key.file })).redirectMode, 'signed');
    assert.equal((await backend({})).redirectMode, 'stream');
    assert.equal((await backend({ credentialsFile: key.file, redirect: 'public' })).redirectMode, 'public');
  });

  it('serves what an earlier instance stored on the same bucket, and sweeps stale staging objects', async () => {
    const first = await backend();
    const { digest } = await first.putBlob(Buffer.from('persisted'), { contentType: 'x/y' });
    await first.putDocument('cache/k', { v: 1 });
    emulator.putObject(first.bucketName, 'staging/crashed-writer', Buffer.from('partial'));
    emulator.object(first.bucketName, 'staging/crashed-writer')!.updated = new Date(Date.now() - 2 * 3600_000).toISOString();
    emulator.putObject(first.bucketName, 'staging/writing-now', Buffer.from('partial'));
    const second = await backend({ bucket: first.bucketName });
    assert.equal((await second.readBlob(digest)).toString(), 'persisted');
    assert.deepEqual(await second.getDocument('cache/k'), { v: 1 });
    assert.deepEqual(emulator.objectNames(first.bucketName, 'staging/'), ['staging/writing-now']);
  });
});

describe('gcs storage: redirects', () => {
  it('redirects to a V4 signed URL that the emulator serves and the key’s public key verifies', async () => {
    const storage = await backend({ credentialsFile: key.file, signedUrlExpirySeconds: 120 });
    const { digest } = await storage.putBlob(Buffer.from('signed content'), { contentType: 'x/y' });
    const delivery = await storage.deliverBlob(digest);
    assert.equal(delivery?.kind, 'redirect');
    if (delivery?.kind !== 'redirect') return;
    const url = new URL(delivery.url);
    assert.equal(url.origin, emulator.url);
    assert.equal(url.pathname, `/${storage.bucketName}/blobs/sha256/${digest.slice(7)}`);
    assert.equal(url.searchParams.get('X-Goog-Expires'), '120');
    assert.equal(url.searchParams.get('X-Goog-Algorithm'), 'GOOG4-RSA-SHA256');

    assert.ok(verifyV4Signature(url, key.publicKey), 'the signature verifies with the public key of the generated key');

    const response = await fetch(delivery.url);
    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'signed content');
    const ranged = await fetch(delivery.url, { headers: { Range: 'bytes=7-' } });
    assert.equal(ranged.status, 206);
    assert.equal(await ranged.text(), 'content');
  });

  it('produces URLs that GCS rules reject when expired or tampered with', async () => {
    const storage = await backend({ credentialsFile: key.file });
    const a = await storage.putBlob(Buffer.from('object a'), { contentType: 'x/y' });
    const b = await storage.putBlob(Buffer.from('object b'), { contentType: 'x/y' });
    const privateKey = (await import('node:crypto')).createPrivateKey(key.privateKeyPem);
    const sign = (object: string, now: Date, expiresSeconds = 60) =>
      signedGetUrl({ key: { clientEmail: key.clientEmail, privateKey }, endpoint: emulator.url, bucket: storage.bucketName, object, expiresSeconds, now });
    const objectA = `blobs/sha256/${a.digest.slice(7)}`;

    const expired = await fetch(sign(objectA, new Date(Date.now() - 120_000)));
    assert.equal(expired.status, 400);
    assert.match(await expired.text(), /<Code>ExpiredToken<\/Code>/);

    const valid = sign(objectA, new Date());
    assert.equal((await fetch(valid)).status, 200);
    const otherObject = valid.replace(a.digest.slice(7), b.digest.slice(7));
    const longer = valid.replace('X-Goog-Expires=60', 'X-Goog-Expires=600');
    for (const tampered of [otherObject, longer]) {
      const response = await fetch(tampered);
      assert.equal(response.status, 403);
      assert.match(await response.text(), /<Code>SignatureDoesNotMatch<\/Code>/);
    }
  });

  it('redirects to the public URL, as Nixery does for public buckets', async () => {
    assert.equal(
      publicObjectUrl('https://storage.googleapis.com', 'my-bucket', 'blobs/sha256/abc'),
      'https://storage.googleapis.com/my-bucket/blobs/sha256/abc',
    );
    const bucket = `nixery-public-${++buckets}`;
    emulator.createBucket(bucket, { public: true });
    const storage = await backend({ bucket, redirect: 'public' });
    const { digest } = await storage.putBlob(Buffer.from('public content'), { contentType: 'x/y' });
    const delivery = await storage.deliverBlob(digest);
    if (delivery?.kind !== 'redirect') return assert.fail('expected a redirect');
    assert.equal(delivery.url, `${emulator.url}/${bucket}/blobs/sha256/${digest.slice(7)}`);
    assert.equal(await (await fetch(delivery.url)).text(), 'public content');
    const privateBucket = await backend({ redirect: 'public' });
    const hidden = await privateBucket.putBlob(Buffer.from('private'), { contentType: 'x/y' });
    const hiddenDelivery = await privateBucket.deliverBlob(hidden.digest);
    assert.equal((await fetch((hiddenDelivery as { url: string }).url)).status, 403, 'a private bucket refuses anonymous reads');
  });
});

/** An independent V4 check: canonical request → string to sign → RSA-SHA256 verify. */
function verifyV4Signature(url: URL, publicKey: import('node:crypto').KeyObject): boolean {
  const params = [...url.searchParams].filter(([k]) => k !== 'X-Goog-Signature');
  const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const query = params
    .map(([k, v]) => `${enc(k)}=${enc(v)}`)
    .sort()
    .join('&');
  const canonicalRequest = ['GET', url.pathname, query, `host:${url.host}\n`, 'host', 'UNSIGNED-PAYLOAD'].join('\n');
  const credential = url.searchParams.get('X-Goog-Credential')!;
  const scope = credential.slice(credential.indexOf('/') + 1);
  const stringToSign = ['GOOG4-RSA-SHA256', url.searchParams.get('X-Goog-Date'), scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
  return createVerify('RSA-SHA256').update(stringToSign).verify(publicKey, Buffer.from(url.searchParams.get('X-Goog-Signature')!, 'hex'));
}
