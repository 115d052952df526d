// A built image as `nixery build` leaves it in storage, without Nix: a config, one layer, the
// manifest, and the SBOM with its referrer manifest; and the BuildResult naming them, which is
// what pushImage reads.
import { createHash, randomBytes } from 'node:crypto';
import type { BuildResult } from '../builder/result.ts';
import { MediaType } from '../oci/media-types.ts';
import { EMPTY_JSON, renderReferrer } from '../oci/referrer.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export async function storedTestImage(dir: string, layerBytes = 64 << 10): Promise<{ storage: FilesystemStorage; result: BuildResult }> {
  const storage = new FilesystemStorage(dir);
  await storage.init();
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomBytes(8).toString('hex') }));
  const layer = randomBytes(layerBytes);
  const sbomDocument = Buffer.from(JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.5', version: 1 }));
  for (const blob of [config, layer, sbomDocument, EMPTY_JSON]) await storage.putBlob(blob, { contentType: 'application/octet-stream' });
  const descriptor = (data: Buffer, mediaType: string) => ({ mediaType, digest: sha256(data), size: data.length });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: descriptor(config, 'application/vnd.oci.image.config.v1+json'),
      layers: [descriptor(layer, 'application/vnd.oci.image.layer.v1.tar+gzip')],
    }),
  );
  await storage.putBlob(manifest, { contentType: MediaType.ociManifest });
  const oci = descriptor(manifest, MediaType.ociManifest);
  const document = descriptor(sbomDocument, 'application/vnd.cyclonedx+json');
  const referrer = renderReferrer({ artifactType: document.mediaType, blob: document, subject: oci });
  await storage.putBlob(referrer, { contentType: MediaType.ociManifest });
  // Only the OCI rendering is stored: pushImage pushes the one the result names.
  const unused = { mediaType: MediaType.dockerManifest, digest: `sha256:${'0'.repeat(64)}`, size: 1 };
  const result = {
    name: 'test',
    tag: 'latest',
    digest: oci.digest,
    mediaType: MediaType.ociManifest,
    size: manifest.length,
    config: descriptor(config, 'application/vnd.oci.image.config.v1+json'),
    layers: [{ ...descriptor(layer, 'application/vnd.oci.image.layer.v1.tar+gzip'), diffId: sha256(layer), storePaths: [], kind: 'store-paths', cached: false }],
    manifests: { docker: unused, oci },
    sbomDigest: sha256(referrer),
    sbom: { document, referrers: { docker: unused, oci: descriptor(referrer, MediaType.ociManifest) } },
  } as unknown as BuildResult;
  return { storage, result };
}
