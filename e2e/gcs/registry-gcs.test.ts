// The registry on Google Cloud Storage, end to end: `nixery serve` with NIXERY_STORAGE_BACKEND=gcs
// against the local emulator (STORAGE_EMULATOR_HOST), a service account key for signing, skopeo
// and umoci pulling through the registry's redirects to V4 signed URLs that the emulator verifies,
// and a second registry process on the same bucket serving from the manifest cache.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { metricValue } from '../support/metrics.ts';
import { pullAndUnpack, runInRoot } from '../support/oci-client.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';
import { startGcsEmulator, type GcsEmulator } from './emulator.ts';
import { writeServiceAccountKey } from './service-account.ts';

const BUCKET = 'nixery-e2e';

describe('registry on GCS (emulated)', () => {
  let emulator: GcsEmulator;
  let work: string;
  let env: Record<string, string>;
  const running: RegistryProcess[] = [];

  before(async () => {
    emulator = await startGcsEmulator({ buckets: [BUCKET] });
    work = await tempDir('nixery-e2e-gcs-');
    const key = await writeServiceAccountKey(work);
    emulator.registerServiceAccount(key.clientEmail, key.publicKey);
    env = {
      NIXERY_STORAGE_BACKEND: 'gcs',
      GCS_BUCKET: BUCKET,
      GOOGLE_APPLICATION_CREDENTIALS: key.file,
      STORAGE_EMULATOR_HOST: emulator.url,
    };
  });
  after(async () => {
    for (const r of running) await r.stop();
    await emulator?.close();
    await fs.rm(work, { recursive: true, force: true });
  });

  async function registry(extra: Record<string, string> = {}): Promise<RegistryProcess> {
    // STORAGE_PATH is not used with gcs; keep startRegistry's directory inside ours.
    const r = await startRegistry({ env: { ...env, ...extra }, storagePath: path.join(work, 'unused-storage') });
    running.push(r);
    return r;
  }

  it('builds shell/hello into the bucket; skopeo pulls the blobs through signed URL redirects; hello runs', async () => {
    const registryProcess = await registry();
    assert.match(registryProcess.logs(), /"storage":"gcs \(gs:\/\/nixery-e2e at http:\/\/127\.0\.0\.1:\d+, blobs V4 signed URL redirects\)"/);

    const rootfs = await pullAndUnpack(registryProcess.host, 'shell/hello:latest', path.join(work, 'first'));
    assert.equal((await runInRoot(rootfs, ['/bin/hello'])).trim(), 'Hello, world!');

    const manifest = (await (
      await fetch(`${registryProcess.url}/v2/shell/hello/manifests/latest`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } })
    ).json()) as { config: { digest: string }; layers: { digest: string }[] };
    const blobs = [manifest.config, ...manifest.layers].map((b) => b.digest.slice('sha256:'.length));
    for (const hex of blobs) assert.ok(emulator.object(BUCKET, `blobs/sha256/${hex}`), `blob ${hex} is in the bucket`);
    assert.ok(emulator.objectNames(BUCKET, 'documents/').length > 0, 'the manifest cache lives in the bucket');
    assert.deepEqual(emulator.objectNames(BUCKET, 'staging/'), []);

    const served = emulator.requests.filter((r) => r.operation === 'xml.download' && r.signed && r.status === 200).map((r) => r.object);
    for (const hex of blobs) assert.ok(served.includes(`blobs/sha256/${hex}`), `skopeo fetched ${hex} from a signed URL`);
    assert.deepEqual(
      emulator.requests.filter((r) => r.operation === 'xml.download' && r.status !== 200),
      [],
      'every signed URL the registry handed out verified',
    );
  });

  it('serves a restarted registry on the same bucket from the manifest cache, without Nix', async () => {
    const first = running[0]!;
    const before = await fetch(`${first.url}/v2/shell/hello/manifests/latest`);
    const digest = before.headers.get('docker-content-digest');
    await first.stop();

    // No Nix on PATH: anything that needed a build would fail.
    const second = await registry({ PATH: '/nonexistent' });
    const response = await fetch(`${second.url}/v2/shell/hello/manifests/latest`);
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get('docker-content-digest'), digest);
    assert.equal(await metricValue(second.url, 'nixery_manifest_cache_total', { result: 'hit' }), 1);
    assert.equal(await metricValue(second.url, 'nixery_builds_total', { result: 'success' }), 0);

    const layer = ((await response.json()) as { layers: { digest: string }[] }).layers[0]!.digest;
    const head = await fetch(`${second.url}/v2/shell/hello/blobs/${layer}`, { method: 'HEAD' });
    assert.equal(head.status, 200, 'HEAD answers from object metadata, without a redirect');
    assert.ok(Number(head.headers.get('content-length')) > 0);
    const redirect = await fetch(`${second.url}/v2/shell/hello/blobs/${layer}`, { redirect: 'manual' });
    assert.equal(redirect.status, 307);
    const location = new URL(redirect.headers.get('location')!);
    assert.equal(location.origin, emulator.url);
    assert.equal(location.searchParams.get('X-Goog-Algorithm'), 'GOOG4-RSA-SHA256');
    const bytes = Buffer.from(await (await fetch(location)).arrayBuffer());
    assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, layer);

    // No warnings from the client library (deprecations, listener counts) among the JSON lines.
    for (const r of running) assert.deepEqual(r.logs().split('\n').filter((line) => line.trim() !== '' && !line.startsWith('{')), []);
  });

  it('refuses to start on a bucket that does not exist', async () => {
    const missing = await startRegistry({ env: { ...env, GCS_BUCKET: 'no-such-bucket' }, storagePath: path.join(work, 'unused-storage') }).then(
      (r) => {
        running.push(r);
        return undefined;
      },
      (error: Error) => error,
    );
    assert.ok(missing, 'the registry must not start');
    assert.match(missing.message, /GCS_BUCKET: the bucket gs:\/\/no-such-bucket at http:\/\/127\.0\.0\.1:\d+ does not exist/);
  });
});
