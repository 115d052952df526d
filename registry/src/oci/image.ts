// Image config and manifests. Rendering is pure and byte-stable: the same inputs always give
// the same bytes, hence the same digests, so caches and clients agree across restarts.
import { createHash } from 'node:crypto';
import { MediaType, MANIFEST_MEDIA_TYPE, type ManifestFormat } from './media-types.ts';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface LayerBlob {
  /** sha256 of the compressed blob. */
  digest: string;
  /** sha256 of the uncompressed tar. */
  diffId: string;
  size: number;
}

export interface ImageConfigInput {
  architecture: 'amd64' | 'arm64';
  layers: LayerBlob[];
  /** Default command; omitted from the config when undefined. */
  cmd?: string[];
  env: string[];
}

/** Every image gets a conventional PATH (the symlink forest lives in /bin) and Nixery's CA bundle location. */
export const DEFAULT_ENV = [
  'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt',
];

export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The image config blob. Docker and OCI share the same JSON shape; only the media type differs. */
export function renderConfig(input: ImageConfigInput): Buffer {
  const config: Record<string, unknown> = { Env: input.env };
  if (input.cmd !== undefined) config.Cmd = input.cmd;
  return Buffer.from(
    JSON.stringify({
      architecture: input.architecture,
      os: 'linux',
      config,
      rootfs: { type: 'layers', diff_ids: input.layers.map((l) => l.diffId) },
    }),
  );
}

export function renderManifest(format: ManifestFormat, config: { digest: string; size: number }, layers: LayerBlob[]): Buffer {
  const oci = format === 'oci';
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_MEDIA_TYPE[format],
      config: { mediaType: oci ? MediaType.ociConfig : MediaType.dockerConfig, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: oci ? MediaType.ociLayer : MediaType.dockerLayer, digest: l.digest, size: l.size })),
    }),
  );
}

const SUPPORTED: Record<string, ManifestFormat> = {
  [MediaType.dockerManifest]: 'docker',
  [MediaType.ociManifest]: 'oci',
};

/**
 * Picks the manifest format for a request's Accept header: the supported type with the highest
 * q-value, earlier entries winning ties (clients list their preference first). No Accept, only
 * wildcards or only unsupported types give Docker schema 2, the format every client reads.
 */
export function negotiateManifestFormat(accept: string | string[] | undefined): ManifestFormat {
  const header = Array.isArray(accept) ? accept.join(',') : (accept ?? '');
  let best: { format: ManifestFormat; q: number } | undefined;
  for (const part of header.split(',')) {
    const [type, ...params] = part.split(';').map((s) => s.trim());
    const format = type === undefined ? undefined : SUPPORTED[type.toLowerCase()];
    if (format === undefined) continue;
    let q = 1;
    for (const param of params) {
      const match = /^q\s*=\s*([0-9.]+)$/i.exec(param);
      if (match) q = Number(match[1]);
    }
    if (q > 0 && (best === undefined || q > best.q)) best = { format, q };
  }
  return best?.format ?? 'docker';
}
