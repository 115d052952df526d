// The registry on S3, end to end: `nixery serve` with NIXERY_STORAGE_BACKEND=s3 against a real
// S3 server (Ceph radosgw, radosgw.ts) behind the fault proxy (fault-proxy.ts); skopeo and umoci
// pull an image built into the bucket through redirects to presigned URLs that radosgw verifies;
// and a registry killed in the middle of a multipart upload leaves nothing under the digest, its
// unfinished upload aborted by the next registry's start-up sweep.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { pullAndUnpack, runInRoot } from '../support/oci-client.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';
import { startFaultProxy, type FaultProxy } from './fault-proxy.ts';
import { startRadosGateway, type RadosGateway } from './radosgw.ts';

const TOKEN = 'e2e-s3-push-token-0123456789';
const MiB = 1024 * 1024;
const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

describe('registry on S3 (Ceph radosgw)', () => {
  let rgw: RadosGateway;
  let proxy: FaultProxy;
  let s3: S3Client;
  let work: string;
  const running: RegistryProcess[] = [];

  before(async () => {
    rgw = await startRadosGateway();
    proxy = await startFaultProxy(rgw.endpoint);
    s3 = rgw.client();
    work = await tempDir('nixery-e2e-s3-');
  });
  after(async () => {
    for (const r of running) await r.stop('SIGKILL');
    s3?.destroy();
    await proxy?.close();
    await rgw?.stop();
    await fs.rm(work, { recursive: true, force: true });
  });

  async function registry(bucket: string, extra: Record<string, string> = {}): Promise<RegistryProcess> {
    // STORAGE_PATH is not used with s3; keep startRegistry's directory inside ours.
    const r = await startRegistry({ env: { ...rgw.env(bucket), S3_ENDPOINT: proxy.url, ...extra }, storagePath: path.join(work, 'unused-storage') });
    running.push(r);
    return r;
  }

  async function keys(bucket: string, prefix: string): Promise<string[]> {
    return ((await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents ?? []).map((o) => o.Key!);
  }

  it('builds shell/hello into the bucket; skopeo pulls its blobs through presigned redirects radosgw verifies; hello runs', async () => {
    const bucket = 'nixery-e2e-pull';
    await rgw.createBucket(bucket);
    const r = await registry(bucket, { S3_PREFIX: 'registry' });
    assert.match(r.logs(), /"storage":"s3 \(s3:\/\/nixery-e2e-pull\/registry\/ at http:\/\/127\.0\.0\.1:\d+, blobs presigned URL redirects\)"/);

    const rootfs = await pullAndUnpack(r.host, 'shell/hello:latest', path.join(work, 'pull'));
    assert.equal((await runInRoot(rootfs, ['/bin/hello'])).trim(), 'Hello, world!');

    const manifest = (await (
      await fetch(`${r.url}/v2/shell/hello/manifests/latest`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } })
    ).json()) as { config: { digest: string }; layers: { digest: string }[] };
    const blobs = [manifest.config, ...manifest.layers].map((b) => b.digest.slice('sha256:'.length));
    for (const hex of blobs) await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `registry/blobs/sha256/${hex}` }));
    assert.ok((await keys(bucket, 'registry/documents/')).length > 0, 'the manifest cache lives in the bucket');
    assert.deepEqual(await keys(bucket, 'registry/staging/'), []);

    // skopeo fetched every blob from radosgw with a presigned GET, and every one verified.
    const presigned = proxy.requests.filter((q) => q.operation === 'GetObject' && q.query.has('X-Amz-Signature'));
    for (const hex of blobs) assert.ok(presigned.some((q) => q.path === `/${bucket}/registry/blobs/sha256/${hex}` && q.status === 200), `skopeo fetched ${hex} from a presigned URL`);
    assert.deepEqual(presigned.filter((q) => q.status !== 200 && q.status !== 206), [], 'every presigned URL the registry handed out verified');

    const layer = manifest.layers[0]!.digest;
    const redirect = await fetch(`${r.url}/v2/shell/hello/blobs/${layer}`, { redirect: 'manual' });
    assert.equal(redirect.status, 307);
    const location = new URL(redirect.headers.get('location')!);
    assert.equal(location.origin, proxy.url);
    assert.equal(location.searchParams.get('X-Amz-Algorithm'), 'AWS4-HMAC-SHA256');
    assert.equal(location.searchParams.get('X-Amz-Expires'), '300');
    assert.equal(sha256(Buffer.from(await (await fetch(location)).arrayBuffer())), layer);
    const tampered = new URL(location);
    const signature = tampered.searchParams.get('X-Amz-Signature')!;
    tampered.searchParams.set('X-Amz-Signature', `${signature.slice(0, -1)}${signature.endsWith('0') ? '1' : '0'}`);
    const refused = await fetch(tampered);
    assert.equal(refused.status, 403);
    assert.match(await refused.text(), /SignatureDoesNotMatch/);

    // No warnings from the SDK among the JSON lines.
    assert.deepEqual(r.logs().split('\n').filter((line) => line.trim() !== '' && !line.startsWith('{')), []);
  });

  it('streams blobs through the registry with NIXERY_S3_REDIRECT=stream', async () => {
    const r = await registry('nixery-e2e-pull', { S3_PREFIX: 'registry', NIXERY_S3_REDIRECT: 'stream', PATH: '/nonexistent' });
    const manifest = (await (await fetch(`${r.url}/v2/shell/hello/manifests/latest`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } })).json()) as {
      layers: { digest: string }[];
    };
    const layer = manifest.layers[0]!.digest;
    const response = await fetch(`${r.url}/v2/shell/hello/blobs/${layer}`, { redirect: 'manual' });
    assert.equal(response.status, 200);
    assert.equal(sha256(Buffer.from(await response.arrayBuffer())), layer);
  });

  it('leaves nothing under the digest when killed mid-way through a multipart upload; the next start-up aborts the leftover upload', async () => {
    const bucket = 'nixery-e2e-crash';
    await rgw.createBucket(bucket);
    // A short receive timeout lets the staging TTL, which must exceed it, be short too.
    const settings = { NIXERY_PUSH_TOKEN: TOKEN, NIXERY_S3_PART_SIZE: '5Mi', NIXERY_HEADERS_TIMEOUT: '5', NIXERY_RECEIVE_TIMEOUT: '10', NIXERY_STAGING_TTL: '11' };
    const first = await registry(bucket, settings);
    const blob = randomBytes(13 * MiB);
    const digest = sha256(blob);
    proxy.inject({ when: (q) => q.path.startsWith(`/${bucket}/staging/`) && q.operation === 'UploadPart' && q.query.get('partNumber') === '2', times: 1, action: { type: 'hold' } });
    const held = proxy.held();
    const push = fetch(`${first.url}/v2/big/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` }, body: blob }).catch((error: unknown) => error);
    await held;
    await first.stop('SIGKILL');
    assert.ok((await push) instanceof Error, 'the push never got an answer');
    proxy.releaseHeld();

    const visible = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `blobs/sha256/${digest.slice('sha256:'.length)}` })).then(
      () => true,
      (error: { $metadata?: { httpStatusCode?: number } }) => (error.$metadata?.httpStatusCode === 404 ? false : Promise.reject(error)),
    );
    assert.equal(visible, false, 'nothing under the digest');
    assert.deepEqual(await keys(bucket, 'blobs/'), []);
    const leftover = (await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];
    assert.equal(leftover.length, 1, 'the dead writer left its unfinished multipart upload');
    assert.match(leftover[0]!.Key!, /^staging\//);

    // Once the leftover is older than the staging TTL, the next registry's start-up aborts it.
    const age = Date.now() - leftover[0]!.Initiated!.getTime();
    await sleep(Math.max(0, 12_000 - age));
    const second = await registry(bucket, settings);
    assert.match(second.logs(), /"msg":"removed stale S3 staging objects".*"removed":1/);
    assert.deepEqual((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [], []);

    // The client's retry against the new registry stores the blob whole.
    const retried = await fetch(`${second.url}/v2/big/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` }, body: blob });
    assert.equal(retried.status, 201, await retried.clone().text());
    const served = await fetch(`${second.url}/v2/big/blobs/${digest}`);
    assert.equal(sha256(Buffer.from(await served.arrayBuffer())), digest);
    assert.deepEqual(await keys(bucket, 'staging/'), []);
  });

  it('refuses to start on a bucket that does not exist', async () => {
    const error = await registry('no-such-bucket').then(
      () => undefined,
      (e: Error) => e,
    );
    assert.ok(error, 'the registry must not start');
    assert.match(error.message, /S3_BUCKET: the bucket s3:\/\/no-such-bucket at http:\/\/127\.0\.0\.1:\d+ does not exist/);
  });
});
