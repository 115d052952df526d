import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { renderIndex, type IndexEntry } from './image-index.ts';
import { MediaType } from './media-types.ts';

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const entries = (mediaType: string): IndexEntry[] => [
  { manifest: { mediaType, digest: digest('a'), size: 500 }, platform: { os: 'linux', architecture: 'amd64' } },
  { manifest: { mediaType, digest: digest('b'), size: 501 }, platform: { os: 'linux', architecture: 'arm64' } },
];

describe('image indexes', () => {
  it('render as the OCI image index: each entry a descriptor with its platform, in order', () => {
    assert.deepEqual(JSON.parse(renderIndex('oci', entries(MediaType.ociManifest)).toString()), {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        { mediaType: MediaType.ociManifest, digest: digest('a'), size: 500, platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: MediaType.ociManifest, digest: digest('b'), size: 501, platform: { architecture: 'arm64', os: 'linux' } },
      ],
    });
  });

  it('render as Docker\'s manifest list for clients of Docker\'s types', () => {
    const list = JSON.parse(renderIndex('docker', entries(MediaType.dockerManifest)).toString());
    assert.equal(list.schemaVersion, 2);
    assert.equal(list.mediaType, MediaType.dockerManifestList);
    assert.deepEqual(list.manifests.map((m: { mediaType: string }) => m.mediaType), [MediaType.dockerManifest, MediaType.dockerManifest]);
  });

  it('are byte-stable: the same entries give the same bytes, and another order other bytes', () => {
    const one = entries(MediaType.ociManifest);
    assert.deepEqual(renderIndex('oci', one), renderIndex('oci', structuredClone(one)));
    assert.notDeepEqual(renderIndex('oci', one), renderIndex('oci', [...one].reverse()));
  });
});
