// The pack suite's zstd figures: the whole image packed as zstd against `tar | zstd -T2 -3`, its
// bytes against our gzip image's, the packer's peak RSS doing it, and how long containerd takes
// to unpack the same image in either format.
import fs from 'node:fs';
import path from 'node:path';
import type { Corpus } from '../lib/corpus.ts';
import { MB, type Context } from '../lib/context.ts';
import { startBenchContainerd } from '../lib/containerd.ts';
import { bash, mkdirp } from '../lib/exec.ts';
import { median, type Figures } from '../lib/figures.ts';
import { writeOciLayout, type Compression, type OciLayout } from '../lib/oci-layout.ts';
import { packWorker, TAR, throughputs } from '../lib/pack.ts';

export async function packZstdFigures(ctx: Context, figures: Figures, corpus: Corpus, gzipImageBytes: number): Promise<void> {
  const layers = corpus.packages.map((p) => [p.storePath]);
  const names = corpus.packages.map((p) => p.storePath.slice(1));
  const zstdScript = `cd ${corpus.root} && ${TAR} ${names.join(' ')} | zstd -q -T2 -3 > /dev/null`;

  const samples = { ours: [] as number[], zstd: [] as number[], rss: [] as number[] };
  let oursBytes = 0;
  for (let i = 0; i < ctx.sizes.iterations; i++) {
    const steps = [
      async () => {
        const r = await packWorker({ root: corpus.root, layers, concurrency: 2, sink: 'discard', compression: 'zstd' });
        samples.ours.push(r.ms);
        samples.rss.push(r.maxRssKiB);
        oursBytes = r.layers.reduce((s, l) => s + l.compressed, 0);
      },
      async () => void samples.zstd.push((await bash(zstdScript)).ms),
    ];
    for (const step of i % 2 === 0 ? steps : steps.reverse()) await step();
    ctx.log(`pack: zstd iteration ${i + 1}: ours/image ${samples.ours.at(-1)!.toFixed(0)} ms, tar | zstd -T2 -3 ${samples.zstd.at(-1)!.toFixed(0)} ms`);
  }
  const zstdBytes = Number((await bash(`cd ${corpus.root} && ${TAR} ${names.join(' ')} | zstd -q -T2 -3 | wc -c`)).stdout.trim());
  figures.add({
    id: 'pack.zstd_image_throughput',
    label: 'packing throughput as zstd, whole image (layers 2 at a time)',
    unit: 'MB/s',
    better: 'higher',
    ...throughputs(corpus.bytes, samples.ours, samples.zstd),
    baselineLabel: 'tar | zstd -T2 -3, one archive',
    target: { kind: 'ratio-min', value: 1.0 },
    note: 'each layer is cut into 4 MiB blocks, each one independent zstd frame (level 3) compressed on libuv\'s threads; the tar thread writes and hashes the blocks as for gzip.',
  });
  figures.add({
    id: 'pack.zstd_compressed_size',
    label: 'compressed size of the image as zstd',
    unit: 'MB',
    better: 'lower',
    ours: oursBytes / MB,
    baseline: gzipImageBytes / MB,
    baselineLabel: 'our gzip image',
    note: `tar | zstd -T2 -3 of the same paths, one stream: ${(zstdBytes / MB).toFixed(1)} MB (ours ${((oursBytes / zstdBytes - 1) * 100).toFixed(1)} % more: no match crosses a layer or a 4 MiB frame)`,
  });
  figures.add({
    id: 'pack.zstd_rss',
    label: 'peak RSS packing the whole image as zstd (2 layers at a time)',
    unit: 'MB',
    better: 'lower',
    ours: median(samples.rss) / 1024,
    baselineLabel: 'absolute',
  });

  await containerdUnpack(ctx, figures, corpus, layers);
}

/** containerd's unpack of the bench image, gzip against zstd, each from an empty containerd. */
async function containerdUnpack(ctx: Context, figures: Figures, corpus: Corpus, layers: string[][]): Promise<void> {
  const work = mkdirp(path.join(ctx.workDir, 'containerd-unpack'));
  const images = {} as Record<Compression, OciLayout>;
  for (const compression of ['gzip', 'zstd'] as const) {
    const dir = mkdirp(path.join(work, `layout-${compression}`));
    const blobDir = mkdirp(path.join(dir, 'blobs/sha256'));
    const packed = await packWorker({ root: corpus.root, layers, concurrency: 2, sink: 'discard', compression, blobDir });
    images[compression] = await writeOciLayout(dir, packed.layers, compression, `bench.local/unpack:${compression}`, path.join(work, `${compression}.tar`));
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const samples: Record<Compression, number[]> = { gzip: [], zstd: [] };
  const unpackOnce = async (compression: Compression) => {
    const image = images[compression];
    const containerd = await startBenchContainerd(path.join(work, `containerd-${compression}`));
    try {
      await containerd.ctr(['images', 'import', '--no-unpack', image.tarFile]);
      const { stdout } = await containerd.ctr(['images', 'ls', '-q']);
      if (!stdout.split('\n').includes(image.ref)) throw new Error(`ctr images import did not name the image ${image.ref}: ${stdout}`);
      samples[compression].push((await containerd.ctr(['snapshots', 'unpack', image.manifestDigest])).ms);
      // Every layer became a committed snapshot: the unpack was real.
      const snapshots = (await containerd.ctr(['snapshots', 'ls'])).stdout.trim().split('\n').length - 1;
      if (snapshots !== layers.length) throw new Error(`${compression}: ${snapshots} snapshots after unpacking ${layers.length} layers`);
    } finally {
      await containerd.stop();
    }
  };
  for (let i = 0; i < ctx.sizes.iterations; i++) {
    const order: Compression[] = i % 2 === 0 ? ['gzip', 'zstd'] : ['zstd', 'gzip'];
    for (const compression of order) await unpackOnce(compression);
    ctx.log(`pack: containerd unpack iteration ${i + 1}: gzip ${samples.gzip.at(-1)!.toFixed(0)} ms, zstd ${samples.zstd.at(-1)!.toFixed(0)} ms`);
  }
  const unpigz = (await bash('command -v unpigz || true')).stdout.trim();
  figures.add({
    id: 'pack.containerd_unpack',
    label: `containerd unpack of the image (${layers.length} layers), zstd vs gzip`,
    unit: 's',
    better: 'lower',
    ours: median(samples.zstd) / 1000,
    baseline: median(samples.gzip) / 1000,
    baselineLabel: 'the same image with gzip layers',
    samples: { ours: samples.zstd.map((m) => m / 1000), baseline: samples.gzip.map((m) => m / 1000) },
    note: `ctr snapshots unpack of the image imported with --no-unpack into an empty containerd each time (overlayfs snapshotter in a tmpfs of its own, removed between runs); containerd decompresses gzip ${unpigz ? `with ${unpigz} (on PATH)` : 'in Go (no unpigz on PATH)'}, zstd in Go.`,
  });
}
