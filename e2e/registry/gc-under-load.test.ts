// Garbage collection under load, with several replicas on one storage (#21): three `nixery serve`
// processes share a directory (and, in the second suite, a bucket of the GCS emulator), each
// collecting every second with a grace delay of 3 s, while clients push garbage and pull 50 pushed
// images 200 times through all three. Every pull gets every blob it names with the right digest,
// collections really delete meanwhile, and once the garbage stops only referenced blobs remain.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { eventually, within } from '@nixery/test-support';
import { startGcsEmulator, type GcsEmulator } from '../gcs/emulator.ts';
import { writeServiceAccountKey } from '../gcs/service-account.ts';
import { metricValue } from '../support/metrics.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const TOKEN = 'gc-under-load-token';
const IMAGES = 50;
const PULLS = 200;
/** Pulls at once, and the least time the pulls are spread over: several grace delays. */
const PULL_CONCURRENCY = 8;
const LOAD_MS = 12_000;
const GRACE_SECONDS = 3;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

const digestOf = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const auth = { Authorization: `Bearer ${TOKEN}` };

async function pushBlob(registry: RegistryProcess, name: string, bytes: Buffer, mediaType: string): Promise<Descriptor> {
  const digest = digestOf(bytes);
  const response = await fetch(`${registry.url}/v2/${name}/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/octet-stream' }, body: bytes });
  assert.equal(response.status, 201, `push of ${digest}: ${response.status} ${await response.text()}`);
  return { mediaType, digest, size: bytes.length };
}

/** Image i: a shared base layer, a layer of its own, a config; pushed through replica i mod 3. */
async function pushImage(registry: RegistryProcess, i: number, base: Buffer): Promise<Descriptor[]> {
  const name = `load/img${i}`;
  const layers = [await pushBlob(registry, name, base, LAYER), await pushBlob(registry, name, randomBytes(1024 + ((i * 997) % 30_000)), LAYER)];
  const config = await pushBlob(registry, name, Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, image: i })), OCI_CONFIG);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers }));
  const put = await fetch(`${registry.url}/v2/${name}/manifests/latest`, { method: 'PUT', headers: { ...auth, 'Content-Type': OCI_MANIFEST }, body: manifest });
  assert.equal(put.status, 201, `manifest of ${name}: ${put.status} ${await put.text()}`);
  return [{ mediaType: OCI_MANIFEST, digest: digestOf(manifest), size: manifest.length }, config, ...layers];
}

/** One pull: the manifest by tag, then every blob it names, each checked against its digest. */
async function pull(registry: RegistryProcess, i: number): Promise<void> {
  const name = `load/img${i}`;
  const response = await fetch(`${registry.url}/v2/${name}/manifests/latest`, { headers: { Accept: OCI_MANIFEST } });
  if (response.status !== 200) throw new Error(`${registry.host} ${name} manifest: ${response.status} ${await response.text()}`);
  const manifest = (await response.json()) as { config: Descriptor; layers: Descriptor[] };
  for (const d of [manifest.config, ...manifest.layers]) {
    const blob = await fetch(`${registry.url}/v2/${name}/blobs/${d.digest}`);
    const bytes = Buffer.from(await blob.arrayBuffer());
    if (blob.status !== 200) throw new Error(`${registry.host} ${name} blob ${d.digest}: ${blob.status} ${bytes.toString('utf8').slice(0, 200)}`);
    if (digestOf(bytes) !== d.digest) throw new Error(`${registry.host} ${name} blob ${d.digest}: other content (${bytes.length} bytes)`);
  }
}

interface Backend {
  name: string;
  /** Environment for a replica, and where it keeps its files when it has any. */
  env(): Record<string, string>;
  storagePath(): string;
  /** Every blob digest stored. */
  storedBlobs(): Promise<string[]>;
  close(): Promise<void>;
}

async function filesystemBackend(): Promise<Backend> {
  const dir = await tempDir('nixery-e2e-gc-load-');
  const storage = path.join(dir, 'shared');
  return {
    name: 'a shared directory',
    env: () => ({}),
    storagePath: () => storage,
    storedBlobs: async () => (await fs.readdir(path.join(storage, 'blobs', 'sha256')).catch(() => [])).map((hex) => `sha256:${hex}`),
    close: () => fs.rm(dir, { recursive: true, force: true }),
  };
}

async function gcsBackend(): Promise<Backend> {
  const bucket = 'nixery-gc-load';
  const emulator: GcsEmulator = await startGcsEmulator({ buckets: [bucket] });
  const dir = await tempDir('nixery-e2e-gc-load-gcs-');
  const key = await writeServiceAccountKey(dir);
  emulator.registerServiceAccount(key.clientEmail, key.publicKey);
  return {
    name: 'a GCS bucket (the emulator)',
    env: () => ({ NIXERY_STORAGE_BACKEND: 'gcs', GCS_BUCKET: bucket, GOOGLE_APPLICATION_CREDENTIALS: key.file, STORAGE_EMULATOR_HOST: emulator.url }),
    storagePath: () => path.join(dir, 'unused-storage'),
    storedBlobs: async () => emulator.objectNames(bucket, 'blobs/sha256/').map((n) => `sha256:${n.slice('blobs/sha256/'.length)}`),
    close: async () => {
      await emulator.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

for (const open of [filesystemBackend, gcsBackend]) {
  describe(`garbage collection under load, three replicas on ${open === filesystemBackend ? 'a shared directory' : 'a GCS bucket'}`, { timeout: 300_000 }, () => {
    let backend: Backend;
    const replicas: RegistryProcess[] = [];
    before(async () => {
      backend = await open();
      for (let r = 0; r < 3; r++) {
        replicas.push(
          await startRegistry({
            storagePath: backend.storagePath(),
            env: {
              ...backend.env(),
              NIXERY_PUSH_TOKEN: TOKEN,
              // The grace delay must be at least 3 × NIX_TIMEOUT; nothing here builds.
              NIX_TIMEOUT: '1',
              NIXERY_GC_GRACE: String(GRACE_SECONDS),
              NIXERY_GC_INTERVAL: '1',
            },
          }),
        );
      }
    });
    after(async () => {
      for (const r of replicas) await r.stop();
      await backend?.close();
    });

    it('serves 200 pulls of 50 images without a failure or a missing blob while every replica collects, then keeps only what is referenced', async () => {
      const base = randomBytes(64 * 1024);
      const referenced = new Set<string>();
      for (let i = 0; i < IMAGES; i++) for (const d of await pushImage(replicas[i % 3]!, i, base)) referenced.add(d.digest);
      const sweptBefore = await swept(replicas);

      // Garbage: blobs no manifest names, pushed through every replica while the pulls run.
      let making = true;
      const garbage: string[] = [];
      const maker = (async () => {
        for (let n = 0; making; n++) {
          garbage.push((await pushBlob(replicas[n % 3]!, 'load/garbage', randomBytes(2048), LAYER)).digest);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();

      const failures: string[] = [];
      const started = performance.now();
      let next = 0;
      const worker = async () => {
        for (let n = next++; n < PULLS; n = next++) {
          // Spread over LOAD_MS: pull n starts no earlier than its share of the time.
          const due = started + (n * LOAD_MS) / PULLS;
          if (due > performance.now()) await new Promise((resolve) => setTimeout(resolve, due - performance.now()));
          await pull(replicas[n % 3]!, (n * 7) % IMAGES).catch((error: Error) => failures.push(error.message));
        }
      };
      await within(LOAD_MS + 60_000, 'the pulls', Promise.all(Array.from({ length: PULL_CONCURRENCY }, worker)));
      making = false;
      await maker;

      assert.deepEqual(failures, [], `${failures.length} of ${PULLS} pulls failed`);
      assert.ok((await swept(replicas)) > sweptBefore, 'the collections deleted garbage while the pulls ran');
      assert.ok(garbage.length > 20, `garbage was made throughout (${garbage.length} blobs)`);

      // Once the garbage stops, a few grace delays later only the images' blobs are stored — all of them.
      const leftover = await eventually(
        'only referenced blobs to remain',
        async () => {
          const stored = await backend.storedBlobs();
          return stored.every((d) => referenced.has(d)) ? stored : undefined;
        },
        60_000,
        500,
      );
      assert.deepEqual(new Set(leftover), referenced, 'every blob an image names is still stored');
      for (let i = 0; i < IMAGES; i++) await pull(replicas[i % 3]!, i);
    });
  });
}

/** Blobs the replicas' collections deleted so far. */
async function swept(replicas: RegistryProcess[]): Promise<number> {
  let n = 0;
  for (const r of replicas) n += await metricValue(r.url, 'nixery_gc_swept_objects_total', { kind: 'blob' });
  return n;
}
