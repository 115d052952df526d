import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sha256Digest } from './image.ts';
import { MediaType } from './media-types.ts';
import { EMPTY_DESCRIPTOR, EMPTY_JSON, renderReferrer } from './referrer.ts';

describe('artifact manifests referring to an image', () => {
  const subject = { mediaType: MediaType.dockerManifest, digest: `sha256:${'1'.repeat(64)}`, size: 527 };
  const blob = { mediaType: 'application/vnd.cyclonedx+json', digest: `sha256:${'2'.repeat(64)}`, size: 9000 };

  it('are OCI image manifests with the artifact type, the empty config, the artifact as their one layer and the subject', () => {
    const manifest = JSON.parse(renderReferrer({ artifactType: 'application/vnd.cyclonedx+json', blob, subject }).toString());
    assert.deepEqual(manifest, {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType: 'application/vnd.cyclonedx+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: EMPTY_DESCRIPTOR.digest, size: 2, data: 'e30=' },
      layers: [blob],
      subject,
    });
  });

  it('name the empty config by its real digest and size', () => {
    assert.equal(EMPTY_DESCRIPTOR.digest, sha256Digest(EMPTY_JSON));
    assert.equal(EMPTY_DESCRIPTOR.size, EMPTY_JSON.length);
  });

  it('are the same bytes for the same inputs, and differ by subject', () => {
    const a = renderReferrer({ artifactType: 'x/y', blob: { ...blob }, subject: { ...subject } });
    assert.ok(a.equals(renderReferrer({ artifactType: 'x/y', blob, subject })));
    assert.ok(!a.equals(renderReferrer({ artifactType: 'x/y', blob, subject: { ...subject, mediaType: MediaType.ociManifest, digest: `sha256:${'3'.repeat(64)}` } })));
  });
});
