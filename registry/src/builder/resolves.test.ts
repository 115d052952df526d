// ImageBuilder.resolves: whether a name list resolves, asked by the registry's authorization (is a
// repository name an on-demand name?) — from the remembered evaluation, never building.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { imageFromName } from '../image/name.ts';
import { silentLogger } from '../log/logger.ts';
import { createMetrics } from '../metrics/metrics.ts';
import { PackagesNotFoundError, type ImageRequest } from '../nix/index.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { ImageBuilder } from './builder.ts';

const tempDir = tempDirs('nixery-builder-resolves-');

async function builderWith(packages: string[], evaluate?: (request: ImageRequest) => Promise<void>) {
  const sourceDir = await tempDir();
  await fs.writeFile(path.join(sourceDir, 'default.nix'), '{ ... }: { }');
  const storage = new FilesystemStorage(await tempDir());
  await storage.init();
  const evaluations: ImageRequest[] = [];
  const builder = new ImageBuilder({
    storage,
    source: { type: 'path', path: sourceDir },
    nixTimeoutSeconds: 5,
    layerBudget: 94,
    maxConcurrentBuilds: 1,
    popularity: new Map(),
    log: silentLogger,
    metrics: createMetrics({ defaultMetrics: false }),
    evaluate: async (request) => {
      evaluations.push(request);
      await evaluate?.(request);
      await new Promise((r) => setTimeout(r, 5));
      const missing = request.packages.filter((p) => !packages.includes(p));
      if (missing.length) throw new PackagesNotFoundError(missing);
      return { packages: request.packages.map((name) => ({ name, attrPath: [name], drvPath: `/nix/store/x-${name}.drv`, outputs: { out: `/nix/store/x-${name}` } })), evaluateMs: 5 };
    },
    realise: () => Promise.reject(new Error('resolves() must not build')),
  });
  return { builder, evaluations };
}

describe('whether a name resolves', () => {
  it('answers from one evaluation, remembered, concurrent asks sharing it', async () => {
    const { builder, evaluations } = await builderWith(['hello', 'cacert', 'iana-etc']);
    const hello = imageFromName('hello', 'latest');
    assert.deepEqual(await Promise.all([builder.resolves(hello), builder.resolves(hello)]), [true, true]);
    assert.equal(await builder.resolves(hello), true);
    assert.equal(evaluations.length, 1);
    assert.equal(await builder.resolves(imageFromName('team-a/tool', 'latest')), false);
    assert.equal(await builder.resolves(imageFromName('team-a/tool', 'latest')), false, 'missing names are remembered too');
    assert.equal(evaluations.length, 2);
  });

  it('passes on a failure that says nothing about the names', async () => {
    const { builder } = await builderWith(['hello'], async () => {
      throw new Error('nix-instantiate was killed');
    });
    await assert.rejects(builder.resolves(imageFromName('hello', 'latest')), /killed/);
  });
});
