// Killing the registry in the middle of a build must never leave a partial blob visible under a
// digest, and the next server on the same storage must build and serve the image.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startRegistry, tempDir } from '../support/registry.ts';

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every blob visible in the store must hash to the name it is stored under. */
async function assertEveryBlobComplete(storagePath: string): Promise<number> {
  const dir = path.join(storagePath, 'blobs', 'sha256');
  const names = await fs.readdir(dir);
  for (const name of names) assert.equal(await sha256File(path.join(dir, name)), name, `blob ${name} is partial or corrupt`);
  return names.length;
}

async function waitForStagingBytes(storagePath: string, minBytes: number, timeoutMs: number): Promise<void> {
  const staging = path.join(storagePath, 'staging');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const name of await fs.readdir(staging).catch(() => [] as string[])) {
      const stat = await fs.stat(path.join(staging, name)).catch(() => null);
      if (stat && stat.size >= minBytes) return;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no staging file reached ${minBytes} bytes within ${timeoutMs} ms`);
}

/** Building `bigdata` takes a while; a server that has not answered after this will not. */
const ANSWER_MS = 240_000;

describe('registry: crash safety', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await fs.rm(dir, { recursive: true, force: true });
  });

  it('a server killed mid-build leaves no partial blob, and the next one serves the image', async () => {
    const storagePath = await tempDir('nixery-e2e-crash-');
    dirs.push(storagePath);
    const first = await startRegistry({ storagePath });
    // `bigdata` holds tens of MB of incompressible bytes, so packing its layer takes a while.
    const pending = fetch(`${first.url}/v2/bigdata/hello/manifests/latest`, { signal: AbortSignal.timeout(ANSWER_MS) }).catch((error: unknown) => error);
    await waitForStagingBytes(storagePath, 1024 * 1024, ANSWER_MS);
    await first.stop('SIGKILL');
    assert.ok((await pending) instanceof Error, 'the client sees the connection drop, not a manifest');
    await assertEveryBlobComplete(storagePath);

    const second = await startRegistry({ storagePath });
    try {
      const response = await fetch(`${second.url}/v2/bigdata/hello/manifests/latest`, { signal: AbortSignal.timeout(ANSWER_MS) });
      assert.equal(response.status, 200);
      const manifest = (await response.json()) as { layers: { digest: string; size: number }[] };
      for (const layer of manifest.layers) {
        const blob = await fetch(`${second.url}/v2/bigdata/hello/blobs/${layer.digest}`, { signal: AbortSignal.timeout(ANSWER_MS) });
        const body = Buffer.from(await blob.arrayBuffer());
        assert.equal(body.length, layer.size);
        assert.equal(`sha256:${createHash('sha256').update(body).digest('hex')}`, layer.digest);
      }
      assert.ok((await assertEveryBlobComplete(storagePath)) >= manifest.layers.length);
    } finally {
      await second.stop();
    }
  });
});
