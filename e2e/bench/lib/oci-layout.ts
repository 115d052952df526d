// An OCI image layout of layers the pack worker wrote (`blobDir`): config, manifest and
// index.json beside them, and the layout as one tar for `ctr images import`.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { runOk } from './exec.ts';

export type Compression = 'gzip' | 'zstd';

const LAYER_MEDIA_TYPES: Record<Compression, string> = {
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
};

export interface LayoutLayer {
  digest: string;
  diffId: string;
  compressed: number;
}

export interface OciLayout {
  /** The layout as a tar archive. */
  tarFile: string;
  manifestDigest: string;
  /** The name index.json gives the image (`org.opencontainers.image.ref.name`). */
  ref: string;
}

/** `dir` holds `blobs/sha256/<hex>` of every layer already; writes the rest and tars it to `tarFile`. */
export async function writeOciLayout(dir: string, layers: LayoutLayer[], compression: Compression, ref: string, tarFile: string): Promise<OciLayout> {
  const blobs = path.join(dir, 'blobs/sha256');
  const put = (json: unknown) => {
    const bytes = Buffer.from(JSON.stringify(json));
    const hex = createHash('sha256').update(bytes).digest('hex');
    fs.writeFileSync(path.join(blobs, hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  for (const layer of layers) {
    const size = fs.statSync(path.join(blobs, layer.digest.slice('sha256:'.length))).size;
    if (size !== layer.compressed) throw new Error(`layer ${layer.digest}: ${size} bytes on disk, ${layer.compressed} reported`);
  }
  const config = put({
    architecture: 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  });
  const manifest = put({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: layers.map((l) => ({ mediaType: LAYER_MEDIA_TYPES[compression], digest: l.digest, size: l.compressed })),
  });
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': ref } }],
    }),
  );
  await runOk('tar', ['-cf', tarFile, '-C', dir, 'oci-layout', 'index.json', 'blobs']);
  return { tarFile, manifestDigest: manifest.digest, ref };
}
