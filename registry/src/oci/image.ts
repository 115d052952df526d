// Image config and manifests. Rendering is pure and byte-stable: the same inputs always give
// the same bytes, hence the same digests, so caches and clients agree across restarts.
import { createHash } from 'node:crypto';
import type { LayerCompression } from '../pack/compress.ts';
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

/** What a declared image (a NixImage's spec.config) says about how it runs. */
export interface ImageConfigOverrides {
  entrypoint?: string[];
  cmd?: string[];
  env?: { name: string; value: string }[];
  workingDir?: string;
  user?: string;
  /** e.g. 8080/tcp; a bare port means tcp. */
  exposedPorts?: string[];
  labels?: Record<string, string>;
}

export interface ImageConfigInput {
  architecture: 'amd64' | 'arm64';
  layers: LayerBlob[];
  /** Default command; omitted from the config when undefined. */
  cmd?: string[];
  env: string[];
  overrides?: ImageConfigOverrides;
}

/** Every image gets a conventional PATH (the symlink forest lives in /bin) and Nixery's CA bundle location. */
export const DEFAULT_ENV = [
  'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt',
];

export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Whether a digest is sha256 in the canonical form: 64 lower-case hex digits. */
export function isSha256Digest(digest: string): boolean {
  return /^sha256:[a-f0-9]{64}$/.test(digest);
}

/** The image config blob. Docker and OCI share the same JSON shape; only the media type differs. */
export function renderConfig(input: ImageConfigInput): Buffer {
  const o = input.overrides ?? {};
  const config: Record<string, unknown> = { Env: mergeEnv(input.env, o.env ?? []) };
  if (o.entrypoint !== undefined) config.Entrypoint = o.entrypoint;
  const cmd = o.cmd ?? (o.entrypoint === undefined ? input.cmd : undefined);
  if (cmd !== undefined) config.Cmd = cmd;
  if (o.workingDir !== undefined) config.WorkingDir = o.workingDir;
  if (o.user !== undefined) config.User = o.user;
  if (o.exposedPorts?.length) {
    config.ExposedPorts = Object.fromEntries([...o.exposedPorts].sort().map((p) => [p.includes('/') ? p : `${p}/tcp`, {}]));
  }
  if (o.labels && Object.keys(o.labels).length) {
    config.Labels = Object.fromEntries(Object.entries(o.labels).sort(([a], [b]) => (a < b ? -1 : 1)));
  }
  return Buffer.from(
    JSON.stringify({
      architecture: input.architecture,
      os: 'linux',
      config,
      rootfs: { type: 'layers', diff_ids: input.layers.map((l) => l.diffId) },
    }),
  );
}

/** Declared variables replace defaults of the same name and keep their own order after them. */
function mergeEnv(defaults: string[], declared: { name: string; value: string }[]): string[] {
  const names = new Set(declared.map((e) => e.name));
  return [...defaults.filter((e) => !names.has(e.slice(0, e.indexOf('=')))), ...declared.map((e) => `${e.name}=${e.value}`)];
}

/**
 * An image manifest naming `layers`, compressed as `compression` (default gzip). Docker schema 2
 * has no zstd layer type: a zstd image has an OCI manifest only (RangeError for a Docker one).
 */
export function renderManifest(format: ManifestFormat, config: { digest: string; size: number }, layers: LayerBlob[], compression: LayerCompression = 'gzip'): Buffer {
  const oci = format === 'oci';
  if (!oci && compression !== 'gzip') throw new RangeError(`Docker schema 2 has no ${compression} layer media type`);
  const layerType = oci ? (compression === 'zstd' ? MediaType.ociLayerZstd : MediaType.ociLayer) : MediaType.dockerLayer;
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_MEDIA_TYPE[format],
      config: { mediaType: oci ? MediaType.ociConfig : MediaType.dockerConfig, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: layerType, digest: l.digest, size: l.size })),
    }),
  );
}

const SUPPORTED: Record<string, ManifestFormat> = {
  [MediaType.dockerManifest]: 'docker',
  [MediaType.ociManifest]: 'oci',
};

const SUPPORTED_INDEXES: Record<string, ManifestFormat> = {
  [MediaType.dockerManifestList]: 'docker',
  [MediaType.ociIndex]: 'oci',
};

/**
 * Picks the manifest format for a request's Accept header: the supported type with the highest
 * q-value, earlier entries winning ties (clients list their preference first). No Accept, only
 * wildcards or only unsupported types give Docker schema 2, the format every client reads.
 * With zstd layers, a client that accepts the OCI manifest at all (q > 0) gets it, wherever it
 * lists it (containerd lists Docker's type first): its layers are the ones the registry built,
 * while a Docker manifest means a gzip variant transcoded for clients that read nothing else.
 */
export function negotiateManifestFormat(accept: string | string[] | undefined, compression: LayerCompression = 'gzip'): ManifestFormat {
  if (compression === 'zstd') return preferred(accept, { [MediaType.ociManifest]: 'oci' }) ?? 'docker';
  return preferred(accept, SUPPORTED) ?? 'docker';
}

/**
 * Which image index a request's Accept header takes: the OCI image index (`oci`) or Docker's
 * manifest list (`docker`), the one with the higher q-value, the OCI index when they tie (skopeo
 * and containerd name both, the list first): Docker's list is for clients that read only Docker's
 * types. Undefined when it names neither (no Accept, wildcards only, image manifests only): such a
 * client reads no index.
 */
export function negotiateIndexFormat(accept: string | string[] | undefined): ManifestFormat | undefined {
  return preferred(accept, SUPPORTED_INDEXES, 'oci');
}

/** The supported type with the highest q-value; a tie goes to `favoured`, else to the earlier entry. */
function preferred(accept: string | string[] | undefined, supported: Record<string, ManifestFormat>, favoured?: ManifestFormat): ManifestFormat | undefined {
  const header = Array.isArray(accept) ? accept.join(',') : (accept ?? '');
  let best: { format: ManifestFormat; q: number } | undefined;
  for (const part of header.split(',')) {
    const [type, ...params] = part.split(';').map((s) => s.trim());
    const format = type === undefined ? undefined : supported[type.toLowerCase()];
    if (format === undefined) continue;
    let q = 1;
    for (const param of params) {
      const match = /^q\s*=\s*([0-9.]+)$/i.exec(param);
      if (match) q = Number(match[1]);
    }
    if (q > 0 && (best === undefined || q > best.q || (q === best.q && format === favoured))) best = { format, q };
  }
  return best?.format;
}
