// Images share layers, builds happen once, and a restarted registry serves what it built
// without running Nix again.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { metricValue } from '../support/metrics.ts';
import { nixeryBuild } from '../support/nixery-cli.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

interface Layer {
  digest: string;
  storePaths: string[];
}

const running: RegistryProcess[] = [];
const dirs: string[] = [];
after(async () => {
  for (const r of running) await r.stop();
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

async function registry(options: Parameters<typeof startRegistry>[0] = {}): Promise<RegistryProcess> {
  const r = await startRegistry(options);
  running.push(r);
  dirs.push(r.storagePath);
  return r;
}

async function manifest(r: RegistryProcess, name: string): Promise<{ digest: string; layers: { digest: string }[] }> {
  const response = await fetch(`${r.url}/v2/${name}/manifests/latest`);
  assert.equal(response.status, 200, `${name}: ${await response.clone().text()}`);
  const body = (await response.json()) as { layers: { digest: string }[] };
  return { digest: response.headers.get('docker-content-digest')!, layers: body.layers };
}

describe('layering and caching', () => {
  it('gives a popular shared dependency the same layer in two images, in the CLI and the server alike', async () => {
    const work = await tempDir('nixery-e2e-layers-');
    dirs.push(work);
    const popularity = path.join(work, 'popularity.json');
    await fs.writeFile(popularity, JSON.stringify({ 'libshared-1.0': 5000, 'busybox-1.35': 9000 }));
    const env = { STORAGE_PATH: path.join(work, 'storage'), NIX_POPULARITY_URL: `file://${popularity}` };

    const first = await nixeryBuild(['--packages', 'alpha,beta'], env);
    const second = await nixeryBuild(['--packages', 'beta,hello'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(second.code, 0, second.stderr);
    const layerWith = (result: Record<string, unknown>, name: string) =>
      (result.layers as Layer[]).find((l) => l.storePaths.some((p) => p.endsWith(`-${name}`)));
    for (const shared of ['libshared-1.0', 'busybox-1.35']) {
      const a = layerWith(first.json, shared);
      const b = layerWith(second.json, shared);
      assert.ok(a && b, shared);
      assert.equal(a.digest, b.digest, `${shared} is in the same layer in both images`);
      assert.equal(a.storePaths.length, 1, `${shared} is popular, so it has a layer of its own`);
    }

    const server = await registry({ storagePath: env.STORAGE_PATH, env: { NIX_POPULARITY_URL: env.NIX_POPULARITY_URL } });
    assert.equal((await manifest(server, 'alpha/beta')).digest, first.json.digest, 'the server serves what nixery build built');
  });

  it('never gives an image more layers than the budget', async () => {
    // manyDeps dominates its 120 dependencies; popularity makes each of them a group of its own,
    // so grouping has to merge down to the budget.
    const work = await tempDir('nixery-e2e-budget-');
    dirs.push(work);
    const popular = Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`tiny-${String(i + 1).padStart(3, '0')}`, 1000 + i]));
    await fs.writeFile(path.join(work, 'popularity.json'), JSON.stringify(popular));
    const server = await registry({ env: { NIXERY_LAYER_BUDGET: '10', NIX_POPULARITY_URL: `file://${work}/popularity.json` } });
    const { layers } = await manifest(server, 'manydeps');
    assert.equal(layers.length, 10);
    const small = await manifest(server, 'hello');
    assert.ok(small.layers.length < 10);
  });

  it('runs one build for ten concurrent pulls of an uncached image, then serves a restart from the cache without Nix', async () => {
    const first = await registry();
    const responses = await Promise.all(Array.from({ length: 10 }, () => fetch(`${first.url}/v2/coreutils/hello/manifests/latest`)));
    const digests = new Set(responses.map((r) => r.headers.get('docker-content-digest')));
    assert.deepEqual(responses.map((r) => r.status), Array(10).fill(200));
    assert.equal(digests.size, 1);
    assert.equal(await metricValue(first.url, 'nixery_builds_total', { result: 'success' }), 1);
    await first.stop();

    // No Nix on PATH: anything that needed Nix would fail.
    const second = await registry({ storagePath: first.storagePath, env: { PATH: '/nonexistent' } });
    const again = await manifest(second, 'coreutils/hello');
    assert.equal(again.digest, [...digests][0]);
    assert.equal(await metricValue(second.url, 'nixery_manifest_cache_total', { result: 'hit' }), 1);
    assert.equal(await metricValue(second.url, 'nixery_builds_total', { result: 'success' }), 0);
    const uncached = await fetch(`${second.url}/v2/git/manifests/latest`);
    assert.equal(uncached.status, 500, 'a new image does need Nix, which is not there');
  });
});
