// A pull never writes to storage (issue 18, part 3). The tags pulls served are noted in memory and
// written in bounded batches (registry/src/service/tags.ts), so:
// - 20,000 HEADs of distinct tags of a built image cost a few kilobytes of storage writes, not one
//   rewrite of a growing document each, and leave the tag index at its bound;
// - with the storage remounted read-only, built images are still served, new builds fail with
//   503 UNAVAILABLE saying why, the listing still answers, and the tags pulled meanwhile are
//   written once the storage takes writes again;
// - the tags pulled since the last flush are written when the registry is stopped.
// Requests go to 127.0.0.1 only, a few at a time.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { eventually, run, runOk } from '@nixery/test-support';
import { metricValue } from '../support/metrics.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

/** A cold build of a bundled package; a registry that has not answered after this will not. */
const BUILD_MS = 240_000;
const HEADS = 20_000;
const CONCURRENCY = 16;
/** The 20,000 HEADs; they take a few seconds on two cores. */
const HEADS_BOUND_MS = 45_000;
/** The registry's defaults (NIXERY_MAX_RECORDED_TAGS, and the 16 shards of service/tags.ts). */
const MAX_RECORDED_TAGS = 10_000;
const SHARD_CAPACITY = Math.ceil(MAX_RECORDED_TAGS / 16);
/** Tags are flushed every second here (NIXERY_TAG_FLUSH_INTERVAL), ±20 %. */
const FLUSH_ENV = { NIXERY_TAG_FLUSH_INTERVAL: '1' };
const FLUSH_WAIT_MS = 10_000;
/** A flush (1.2 s at most) and the one after it, which reads back what the first wrote. */
const SETTLE_MS = 3_000;
/** Longer than the builder's manifest memo (MANIFEST_MEMO_TTL_MS, 5 s): later pulls read storage again. */
const MEMO_EXPIRY_MS = 5_500;

/** Bytes the process has caused to be written to storage devices (page cache included), from /proc. */
async function writeBytes(pid: number): Promise<number> {
  const io = await fs.readFile(`/proc/${pid}/io`, 'utf8');
  return Number(/^write_bytes: (\d+)$/m.exec(io)![1]);
}

/** Every pulled-tags document on disk: its file, size and repositories. */
async function pulledTagDocuments(storagePath: string): Promise<{ file: string; bytes: number; repositories: Record<string, string[]> }[]> {
  const dir = path.join(storagePath, 'documents', 'pulled-tags');
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  return Promise.all(
    names.map(async (name) => {
      const text = await fs.readFile(path.join(dir, name), 'utf8');
      return { file: name, bytes: Buffer.byteLength(text), repositories: (JSON.parse(text) as { repositories: Record<string, string[]> }).repositories };
    }),
  );
}

async function storedPulledTags(storagePath: string, name: string): Promise<string[]> {
  return (await pulledTagDocuments(storagePath)).flatMap((d) => d.repositories[name] ?? []);
}

/** Files and bytes under a directory. */
async function usage(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    files++;
    bytes += (await fs.stat(path.join(entry.parentPath, entry.name))).size;
  }
  return { files, bytes };
}

/**
 * HEADs of `paths`, CONCURRENCY at a time over keep-alive connections; the statuses by count. None
 * starts after `boundMs`, and then the HEADs fail.
 */
async function heads(registry: RegistryProcess, paths: string[], boundMs: number): Promise<Map<number, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const statuses = new Map<number, number>();
  const deadline = performance.now() + boundMs;
  let next = 0;
  const worker = async () => {
    while (next < paths.length && performance.now() < deadline) {
      const requestPath = paths[next++]!;
      const status = await new Promise<number>((resolve, reject) => {
        const request = http.request({ host: '127.0.0.1', port: registry.port, method: 'HEAD', path: requestPath, agent, timeout: 30_000 }, (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode!));
        });
        request.on('timeout', () => request.destroy(new Error(`HEAD ${requestPath} timed out`)));
        request.on('error', reject);
        request.end();
      });
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  } finally {
    agent.destroy();
  }
  if (next < paths.length) throw new Error(`only ${next} of ${paths.length} HEADs were sent within ${boundMs} ms`);
  return statuses;
}

function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
}

async function pull(registry: RegistryProcess, image: string, tag: string): Promise<Response> {
  return fetch(`${registry.url}/v2/${image}/manifests/${tag}`, { signal: AbortSignal.timeout(BUILD_MS) });
}

async function listTags(registry: RegistryProcess, name: string): Promise<string[]> {
  const response = await fetch(`${registry.url}/v2/${name}/tags/list`, { signal: AbortSignal.timeout(30_000) });
  assert.equal(response.status, 200);
  return ((await response.json()) as { tags: string[] }).tags;
}

describe('registry: pulls never write', () => {
  const registries: RegistryProcess[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const registry of registries) await registry.stop();
    for (const dir of dirs) await fs.rm(dir, { recursive: true, force: true });
  });

  it('20,000 HEADs of distinct tags of a built image write a few kilobytes, and the tag index stays at its bound', async (t) => {
    const registry = await startRegistry({ env: FLUSH_ENV });
    registries.push(registry);
    dirs.push(registry.storagePath);
    assert.equal((await pull(registry, 'hello', 'latest')).status, 200);
    await settle();
    const documentsBefore = await usage(path.join(registry.storagePath, 'documents'));
    const written = await writeBytes(registry.child.pid!);

    const started = performance.now();
    const paths = Array.from({ length: HEADS }, (_, i) => `/v2/hello/manifests/pull-${String(i).padStart(5, '0')}`);
    const statuses = await heads(registry, paths, HEADS_BOUND_MS);
    const seconds = (performance.now() - started) / 1000;
    assert.deepEqual([...statuses], [[200, HEADS]], 'every HEAD of a built image is 200');

    // The flush after the flood fills the shard; the one after it reads back and writes nothing.
    await settle();
    const bytesWritten = (await writeBytes(registry.child.pid!)) - written;
    t.diagnostic(`${HEADS} HEADs in ${seconds.toFixed(1)} s; storage writes meanwhile: ${bytesWritten} bytes`);
    assert.ok(
      bytesWritten < 256 * 1024,
      `${HEADS} HEADs in ${seconds.toFixed(1)} s caused ${bytesWritten} bytes of storage writes; bounded batches write a few documents`,
    );
    const documentsAfter = await usage(path.join(registry.storagePath, 'documents'));
    const documents = await pulledTagDocuments(registry.storagePath);
    const stored = await storedPulledTags(registry.storagePath, 'hello');
    assert.equal(stored.length, SHARD_CAPACITY, `the repository's shard holds its share of NIXERY_MAX_RECORDED_TAGS, no more`);
    assert.ok(stored.includes('latest'));
    assert.ok(documents.length <= 16, `${documents.length} pulled-tags documents`);
    assert.equal(documentsAfter.files - documentsBefore.files, 0, 'no document is added: the shard existed');
    assert.ok(documentsAfter.bytes - documentsBefore.bytes < 64 * 1024, `documents grew by ${documentsAfter.bytes - documentsBefore.bytes} bytes`);

    const listed = await listTags(registry, 'hello');
    assert.equal(listed.length, SHARD_CAPACITY, 'the listing shows what the index holds');
    assert.ok(listed.includes('latest'));
    const dropped = await metricValue(registry.url, 'nixery_tag_index_dropped_total', { reason: 'index_full' });
    assert.ok(dropped >= HEADS - SHARD_CAPACITY, `${dropped} pulled tags counted as not recorded`);
  });

  it('with the storage read-only, built images are still served, new builds are 503, and pulled tags are written once it is writable again', async () => {
    const storagePath = await tempDir('nixery-e2e-readonly-');
    dirs.push(storagePath);
    // The registry runs in a mount namespace of its own, its storage a bind mount of itself there;
    // remounting that read-only affects the registry alone (this test still writes to the directory).
    const registry = await startRegistry({
      storagePath,
      env: FLUSH_ENV,
      prefix: ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount --bind "$STORAGE_PATH" "$STORAGE_PATH" && exec "$0" "$@"'],
    });
    registries.push(registry);
    const inRegistryNamespace = (command: string[]) => ['--target', String(registry.child.pid), '--mount', '--', ...command];
    const remount = (mode: 'ro' | 'rw') => runOk('nsenter', inRegistryNamespace(['mount', '-o', `remount,bind,${mode}`, storagePath]));

    const built = await pull(registry, 'hello', 'latest');
    assert.equal(built.status, 200);
    const manifest = (await built.json()) as { config: { digest: string } };
    const digest = built.headers.get('docker-content-digest');
    await settle();

    await remount('ro');
    const probe = await run('nsenter', inRegistryNamespace(['touch', path.join(storagePath, 'probe')]));
    assert.notEqual(probe.code, 0, 'the registry cannot write its storage');
    assert.match(probe.stderr, /Read-only file system/);
    await new Promise((resolve) => setTimeout(resolve, MEMO_EXPIRY_MS));

    const again = await pull(registry, 'hello', 'latest');
    assert.equal(again.status, 200, 'a built image is served from read-only storage');
    assert.equal(again.headers.get('docker-content-digest'), digest);
    const readOnlyTags = Array.from({ length: 50 }, (_, i) => `read-only-${i}`);
    const statuses = await heads(registry, readOnlyTags.map((t) => `/v2/hello/manifests/${t}`), 30_000);
    assert.deepEqual([...statuses], [[200, readOnlyTags.length]], 'new tags of a built image are served: a pull writes nothing');
    const blob = await fetch(`${registry.url}/v2/hello/blobs/${manifest.config.digest}`, { signal: AbortSignal.timeout(30_000) });
    assert.equal(blob.status, 200);
    await blob.arrayBuffer();

    const refused = await pull(registry, 'htop', 'latest');
    assert.equal(refused.status, 503, 'a new build cannot be stored');
    const error = ((await refused.json()) as { errors: { code: string; message: string; detail?: { storage?: string } }[] }).errors[0]!;
    assert.equal(error.code, 'UNAVAILABLE');
    assert.match(error.message, /storage is read-only/);
    assert.equal(error.detail?.storage, 'EROFS');

    const listed = await listTags(registry, 'hello');
    for (const tag of ['latest', ...readOnlyTags]) assert.ok(listed.includes(tag), `${tag} is listed while the storage is read-only`);
    await eventually('a logged failed flush', () => (/"level":"warn","msg":"writing pulled tags failed[^\n]*EROFS/.test(registry.logs()) ? true : undefined), FLUSH_WAIT_MS, 100);

    await remount('rw');
    await eventually(
      'the tags pulled while read-only to be written',
      async () => {
        const stored = await storedPulledTags(storagePath, 'hello');
        return readOnlyTags.every((t) => stored.includes(t)) ? true : undefined;
      },
      FLUSH_WAIT_MS,
      100,
    );
    assert.equal((await pull(registry, 'htop', 'latest')).status, 200, 'and builds work again');
    for (const line of registry.logs().split('\n').filter(Boolean)) assert.doesNotThrow(() => JSON.parse(line), `a log line that is no JSON: ${line}`);
  });

  it('writes the tags pulled since the last flush when it is stopped', async () => {
    // An hour between flushes: only the shutdown writes them.
    const registry = await startRegistry({ env: { NIXERY_TAG_FLUSH_INTERVAL: '3600' } });
    registries.push(registry);
    dirs.push(registry.storagePath);
    assert.equal((await pull(registry, 'hello', 'latest')).status, 200);
    assert.equal((await heads(registry, ['/v2/hello/manifests/before-shutdown'], 30_000)).get(200), 1);
    assert.deepEqual(await storedPulledTags(registry.storagePath, 'hello'), [], 'nothing written yet');
    await registry.stop('SIGTERM');
    assert.equal(registry.child.exitCode, 0);
    assert.deepEqual((await storedPulledTags(registry.storagePath, 'hello')).sort(), ['before-shutdown', 'latest']);
  });
});
