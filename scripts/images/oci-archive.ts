// Writes an OCI image archive — an OCI image layout in one tar, what `skopeo copy
// oci-archive:FILE …` reads — from uncompressed layer tars. Every byte follows from the inputs
// (the layers, the config, the creation time): gzip without a name or time, JSON with a fixed key
// order, archive entries sorted and dated at the creation time. So the same inputs give the same
// digests on every machine with the same zlib.
//
//   node scripts/images/oci-archive.ts --out FILE --ref TAG --created EPOCH --config CONFIG.json LAYER.tar…
//
// CONFIG.json is the image config's `config` object (User, Entrypoint, Cmd, Env, WorkingDir,
// ExposedPorts, Labels). It prints the manifest digest.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';
import tar from 'tar-stream';

export const MEDIA_TYPES = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export interface ImageConfig {
  User?: string;
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  WorkingDir?: string;
  ExposedPorts?: Record<string, object>;
  Labels?: Record<string, string>;
}

export interface ArchiveSpec {
  out: string;
  /** recorded as org.opencontainers.image.ref.name, so `oci-archive:FILE:REF` names it */
  ref: string;
  /** seconds since the epoch (SOURCE_DATE_EPOCH) */
  created: number;
  config: ImageConfig;
  /** uncompressed layer tars, lowest first */
  layers: string[];
}

interface Blob {
  digest: string;
  size: number;
  /** a file holding the blob, or its bytes */
  file?: string;
  bytes?: Buffer;
}

export interface ArchiveResult {
  manifestDigest: string;
  configDigest: string;
  layers: { digest: string; diffId: string; size: number }[];
}

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** `created` as the RFC 3339 text an image config carries. */
export function rfc3339(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/** Gzips one layer into `target`, hashing the tar (diff ID) and the gzip (digest) on the way. */
async function compressLayer(layer: string, target: string): Promise<{ digest: string; diffId: string; size: number }> {
  const tarHash = createHash('sha256');
  const gzHash = createHash('sha256');
  let size = 0;
  await pipeline(
    createReadStream(layer),
    new Transform({
      transform(chunk: Buffer, _enc, done) {
        tarHash.update(chunk);
        done(null, chunk);
      },
    }),
    // zlib's gzip header has no name and a zero time: the same tar gives the same bytes.
    zlib.createGzip({ level: 6 }),
    new Transform({
      transform(chunk: Buffer, _enc, done) {
        gzHash.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    }),
    createWriteStream(target),
  );
  return { digest: `sha256:${gzHash.digest('hex')}`, diffId: `sha256:${tarHash.digest('hex')}`, size };
}

function architecture(): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };
  const arch = map[process.arch];
  if (!arch) throw new Error(`no OCI architecture name for ${process.arch}`);
  return arch;
}

export async function writeArchive(spec: ArchiveSpec): Promise<ArchiveResult> {
  if (spec.layers.length === 0) throw new Error('an image needs at least one layer');
  if (!Number.isInteger(spec.created) || spec.created < 0) throw new Error(`--created must be seconds since the epoch, got ${spec.created}`);
  const work = await fs.mkdtemp(path.join(path.dirname(path.resolve(spec.out)), '.oci-archive-'));
  try {
    const layers = [];
    for (const [i, layer] of spec.layers.entries()) {
      const file = path.join(work, `layer-${i}`);
      layers.push({ ...(await compressLayer(layer, file)), file });
    }
    const created = rfc3339(spec.created);
    const config = Buffer.from(
      JSON.stringify({
        created,
        architecture: architecture(),
        os: 'linux',
        config: spec.config,
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
        history: spec.layers.map((layer) => ({ created, created_by: `scripts/build-images.sh: ${path.basename(layer)}` })),
      }),
    );
    const configBlob: Blob = { digest: sha256(config), size: config.length, bytes: config };
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.manifest,
        config: { mediaType: MEDIA_TYPES.config, digest: configBlob.digest, size: configBlob.size },
        layers: layers.map((l) => ({ mediaType: MEDIA_TYPES.layer, digest: l.digest, size: l.size })),
      }),
    );
    const manifestBlob: Blob = { digest: sha256(manifest), size: manifest.length, bytes: manifest };
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.index,
        manifests: [
          { mediaType: MEDIA_TYPES.manifest, digest: manifestBlob.digest, size: manifestBlob.size, annotations: { 'org.opencontainers.image.ref.name': spec.ref } },
        ],
      }),
    );
    const blobs = new Map<string, Blob>();
    for (const blob of [...layers, configBlob, manifestBlob]) blobs.set(blob.digest, blob);
    await writeLayoutTar(spec.out, spec.created, [...blobs.values()], index);
    return { manifestDigest: manifestBlob.digest, configDigest: configBlob.digest, layers: layers.map(({ digest, diffId, size }) => ({ digest, diffId, size })) };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** The layout as one tar, entries sorted and all dated `mtime`, written next to `out` and renamed into place. */
async function writeLayoutTar(out: string, mtime: number, blobs: Blob[], index: Buffer): Promise<void> {
  const pack = tar.pack();
  const partial = `${out}.partial`;
  const written = pipeline(pack, createWriteStream(partial));
  const header = (name: string, extra: { type?: 'directory'; mode: number; size?: number }): tar.Header => ({
    name,
    type: extra.type ?? 'file',
    mode: extra.mode,
    size: extra.size ?? 0,
    mtime: new Date(mtime * 1000),
    uid: 0,
    gid: 0,
    uname: '',
    gname: '',
    linkname: '',
    devmajor: 0,
    devminor: 0,
  });
  const add = (h: tar.Header, body: Buffer = Buffer.alloc(0)) =>
    new Promise<void>((resolve, reject) => {
      pack.entry(h, body, (err) => (err ? reject(err) : resolve()));
    });
  await add(header('blobs/', { type: 'directory', mode: 0o755 }));
  await add(header('blobs/sha256/', { type: 'directory', mode: 0o755 }));
  for (const blob of [...blobs].sort((a, b) => a.digest.localeCompare(b.digest))) {
    const name = `blobs/sha256/${blob.digest.slice('sha256:'.length)}`;
    if (blob.bytes) {
      await add(header(name, { mode: 0o644, size: blob.size }), blob.bytes);
    } else {
      await new Promise<void>((resolve, reject) => {
        const entry = pack.entry(header(name, { mode: 0o644, size: blob.size }), (err) => (err ? reject(err) : resolve()));
        pipeline(createReadStream(blob.file!), entry).catch(reject);
      });
    }
  }
  await add(header('index.json', { mode: 0o644, size: index.length }), index);
  const layout = Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await add(header('oci-layout', { mode: 0o644, size: layout.length }), layout);
  pack.finalize();
  await written;
  await fs.rename(partial, out);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { out: { type: 'string' }, ref: { type: 'string' }, created: { type: 'string' }, config: { type: 'string' } },
  });
  const missing = ['out', 'ref', 'created', 'config'].filter((k) => !values[k as keyof typeof values]);
  if (missing.length) throw new Error(`missing ${missing.map((k) => `--${k}`).join(', ')}; usage: oci-archive.ts --out FILE --ref TAG --created EPOCH --config CONFIG.json LAYER.tar…`);
  const config = JSON.parse(await fs.readFile(values.config!, 'utf8')) as ImageConfig;
  const result = await writeArchive({ out: values.out!, ref: values.ref!, created: Number(values.created), config, layers: positionals });
  process.stdout.write(`${result.manifestDigest}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  main().catch((err: unknown) => {
    process.stderr.write(`oci-archive: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
