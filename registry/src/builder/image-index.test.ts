import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MediaType } from '../oci/media-types.ts';
import { sha256Digest } from '../oci/image.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { BuildStorageError } from './errors.ts';
import { builtIndexKey, ImageIndexes, renderPlatformIndex, type BuiltIndexDocument } from './image-index.ts';
import type { PlatformBuildResult } from './result.ts';

const tempDir = tempDirs('nixery-image-index-');

const descriptor = (mediaType: string, content: string) => ({ mediaType, digest: sha256Digest(content), size: content.length });
const image = (platform: PlatformBuildResult['platform']) =>
  ({
    platform,
    ...descriptor(MediaType.dockerManifest, `docker ${platform}`),
    manifests: { docker: descriptor(MediaType.dockerManifest, `docker ${platform}`), oci: descriptor(MediaType.ociManifest, `oci ${platform}`) },
    sbomDigest: sha256Digest(`sbom of docker ${platform}`),
    sbom: { referrers: { docker: descriptor(MediaType.ociManifest, `sbom of docker ${platform}`), oci: descriptor(MediaType.ociManifest, `sbom of oci ${platform}`) } },
  }) as unknown as PlatformBuildResult;
const images = [image('linux/amd64'), image('linux/arm64')];

/** The storage, counting what is asked of it. */
async function countedStorage() {
  const storage = new FilesystemStorage(await tempDir());
  await storage.init();
  const calls = { stat: 0, put: 0 };
  const counted = Object.create(storage) as StorageBackend;
  counted.statBlob = (digest) => (calls.stat++, storage.statBlob(digest));
  counted.putBlob = (source, options) => (calls.put++, storage.putBlob(source, options));
  return { storage, counted, calls };
}

describe('the image index of a multi-platform build', () => {
  it('names each platform\'s manifest of the rendering it is in', () => {
    const oci = JSON.parse(renderPlatformIndex('oci', images).toString());
    assert.deepEqual(oci.manifests.map((m: { digest: string; platform: unknown }) => [m.digest, m.platform]), [
      [images[0]!.manifests.oci.digest, { architecture: 'amd64', os: 'linux' }],
      [images[1]!.manifests.oci.digest, { architecture: 'arm64', os: 'linux' }],
    ]);
    const docker = JSON.parse(renderPlatformIndex('docker', images).toString());
    assert.deepEqual(docker.manifests.map((m: { digest: string }) => m.digest), images.map((i) => i.manifests.docker!.digest));
  });

  it('is stored in both renderings under their digests, with their media types, once', async () => {
    const { storage, counted, calls } = await countedStorage();
    const indexes = new ImageIndexes(counted);
    const built = await indexes.store('shell/hello', 'latest', images);
    assert.equal(built.digest, built.manifests.oci.digest);
    assert.equal(built.mediaType, MediaType.ociIndex);
    // Each platform as the index names it: its OCI manifest, and that one's SBOM.
    assert.deepEqual(
      built.platforms.map((p) => [p.platform, p.digest, p.mediaType, p.sbomDigest]),
      images.map((i) => [i.platform, i.manifests.oci.digest, MediaType.ociManifest, i.sbom.referrers.oci.digest]),
    );
    for (const format of ['docker', 'oci'] as const) {
      const stored = await storage.readBlob(built.manifests[format]!.digest);
      assert.deepEqual(stored, renderPlatformIndex(format, images));
      assert.equal((await storage.statBlob(built.manifests[format]!.digest))?.contentType, built.manifests[format]!.mediaType);
    }
    assert.deepEqual(calls, { stat: 2, put: 2 });
    await indexes.store('hello', 'v2', images);
    assert.deepEqual(calls, { stat: 2, put: 2 }, 'known to be stored: no storage call');
    await new ImageIndexes(counted).store('hello', 'latest', images);
    assert.deepEqual(calls, { stat: 4, put: 2 }, 'another process looks, and writes nothing');
  });

  it('records the index in a document garbage collection keeps it by (a client may pull it by digest much later), once', async () => {
    const { storage, counted } = await countedStorage();
    let puts = 0;
    counted.putDocument = (key, value) => (puts++, storage.putDocument(key, value));
    const built = await new ImageIndexes(counted).store('shell/hello', 'latest', images);
    const doc = await storage.getDocument<BuiltIndexDocument>(builtIndexKey(built.manifests.oci.digest));
    assert.deepEqual(doc, { manifests: { docker: built.manifests.docker, oci: built.manifests.oci }, name: 'shell/hello' }, 'with the name it was built by, for the per-name limit');
    await new ImageIndexes(counted).store('shell/hello', 'latest', images);
    assert.equal(puts, 1, 'another process finds it and writes nothing');
  });

  it('fails as a storage failure when the index cannot be stored', async () => {
    const { counted } = await countedStorage();
    counted.putBlob = () => Promise.reject(Object.assign(new Error('read-only file system'), { code: 'EROFS' }));
    await assert.rejects(new ImageIndexes(counted).store('hello', 'latest', images), (error: unknown) => error instanceof BuildStorageError && /read-only/.test(error.message));
  });
});
