// DELETE of blobs at the service: a pushed blob goes, for every repository; what the registry
// built (its build cache) and manifests (deleted through the manifests endpoint) are refused.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { MediaType } from '../oci/media-types.ts';
import { Uploads } from '../push/uploads.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { sha256 } from '../storage/test-support.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { Blobs } from './blobs.ts';

const tempDir = tempDirs('nixery-blobs-');

async function setup() {
  const storage = new FilesystemStorage(await tempDir());
  await storage.init();
  return { storage, blobs: new Blobs(storage, new Uploads(storage.uploads)) };
}

describe('blob deletion', () => {
  it('deletes a pushed blob: afterwards it is unknown, and deleting it again says so', async () => {
    const { storage, blobs } = await setup();
    const digest = await blobs.put(Readable.from([Buffer.from('pushed layer')]), sha256('pushed layer'));
    assert.deepEqual(await blobs.delete(digest), { kind: 'deleted' });
    assert.equal(await storage.statBlob(digest), null);
    assert.equal(await blobs.deliver(digest), null);
    assert.deepEqual(await blobs.delete(digest), { kind: 'unknown' });
    assert.deepEqual(await blobs.delete('sha512:00'), { kind: 'unknown' });
  });

  it('refuses to delete a layer or config the registry built, and a manifest, keeping them', async () => {
    const { storage, blobs } = await setup();
    const cases = [
      [MediaType.dockerLayer, 'built'],
      [MediaType.ociConfig, 'built'],
      [MediaType.ociManifest, 'manifest'],
      [MediaType.dockerManifestList, 'manifest'],
    ] as const;
    for (const [contentType, reason] of cases) {
      const { digest } = await storage.putBlob(Buffer.from(`a ${contentType}`), { contentType });
      assert.deepEqual(await blobs.delete(digest), { kind: 'refused', reason }, contentType);
      assert.ok(await storage.statBlob(digest), `${contentType} is still stored`);
    }
  });
});
