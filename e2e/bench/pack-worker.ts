// Packs layers with the registry's own pipeline (registry/src/pack: deterministic tar → gzip or zstd →
// SHA-256) in a process of its own, so its time and peak RSS are the packer's alone. It loads the
// compiled modules (registry/dist, which run.ts rebuilds first), as the registry runs them: from
// the TypeScript sources the tar thread would also load Node's type stripper (~30 MB).
//   node e2e/bench/pack-worker.ts '{"root":...,"layers":[[...paths]],"concurrency":2,"sink":"discard"}'
// prints one JSON line: wall time of the packing, bytes in and out per layer, peak RSS.
import { createHash } from 'node:crypto';
import { createWriteStream, renameSync } from 'node:fs';
import path from 'node:path';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { mapLimited } from '../../registry/dist/cache/single-flight.js';
import { compressLayer, storePathsTar } from '../../registry/dist/pack/index.js';
import { FilesystemStorage } from '../../registry/dist/storage/filesystem.js';

export interface PackJob {
  /** /nix/store/x is read at <root>/nix/store/x */
  root: string;
  layers: string[][];
  concurrency: number;
  /** discard: hash the gzip stream and drop it; storage: write it to the filesystem backend as the registry does. */
  sink: 'discard' | 'storage';
  storageDir?: string;
  /** Where `discard` writes instead of dropping (for checking the output). */
  outFile?: string;
  /** Where `discard` writes each layer instead, as `<blobDir>/<hex of its digest>` (an OCI layout's blobs/sha256). */
  blobDir?: string;
  /** Default gzip. */
  compression?: 'gzip' | 'zstd';
}

export interface PackReport {
  ms: number;
  layers: { uncompressed: number; compressed: number; digest: string; diffId: string }[];
  maxRssKiB: number;
  userMs: number;
  systemMs: number;
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '{}') as PackJob;
  let storage: FilesystemStorage | undefined;
  if (job.sink === 'storage') {
    storage = new FilesystemStorage(job.storageDir!);
    await storage.init();
  }
  const started = performance.now();
  const layers = await mapLimited(job.layers, job.concurrency, async (paths, index) => {
    const compressed = compressLayer(storePathsTar(paths, { root: job.root }), { compression: job.compression ?? 'gzip' });
    let digest: string;
    let size: number;
    if (storage) {
      const stored = await storage.putBlob(compressed.stream, { contentType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' });
      digest = stored.digest;
      size = stored.size;
    } else {
      const hash = createHash('sha256');
      size = 0;
      const hashing = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          size += chunk.length;
          cb(null, chunk);
        },
      });
      const partFile = job.blobDir ? path.join(job.blobDir, `part-${index}`) : job.outFile;
      await pipeline(compressed.stream, hashing, partFile ? createWriteStream(partFile) : new Writable({ write: (_chunk, _enc, cb) => cb() }));
      const hex = hash.digest('hex');
      if (job.blobDir) renameSync(partFile!, path.join(job.blobDir, hex));
      digest = `sha256:${hex}`;
    }
    return { uncompressed: await compressed.uncompressedSize, compressed: size, digest, diffId: await compressed.diffId };
  });
  const ms = performance.now() - started;
  const usage = process.resourceUsage();
  const report: PackReport = { ms, layers, maxRssKiB: usage.maxRSS, userMs: usage.userCPUTime / 1000, systemMs: usage.systemCPUTime / 1000 };
  process.stdout.write(JSON.stringify(report) + '\n');
}

await main();
