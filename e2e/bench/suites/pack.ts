// Layer packing throughput against tar | gzip -6 (per layer, one core) and tar | pigz -p 2 (the
// whole image, both cores), the same as zstd (pack-zstd.ts, with containerd's unpack of both),
// and the packer's peak RSS on a 1 GiB layer.
import path from 'node:path';
import { ensureBigPath, ensureBigTree, ensureCorpus } from '../lib/corpus.ts';
import { MB, type Context } from '../lib/context.ts';
import { bash, mkdirp } from '../lib/exec.ts';
import { median, type Figures } from '../lib/figures.ts';
import { packWorker, TAR, throughputs } from '../lib/pack.ts';
import { packZstdFigures } from './pack-zstd.ts';

export async function packSuite(ctx: Context, figures: Figures): Promise<void> {
  const corpus = ensureCorpus(ctx.sizes.corpusBytes, ctx.cacheDir);
  ctx.log(`pack: corpus of ${(corpus.bytes / MB).toFixed(0)} MB in ${corpus.packages.length} store paths, ${corpus.files} files (mix ${JSON.stringify(corpus.mix)})`);
  const layers = corpus.packages.map((p) => [p.storePath]);
  const names = corpus.packages.map((p) => p.storePath.slice(1));
  const perLayerScript = `cd ${corpus.root} && for p in ${names.join(' ')}; do ${TAR} "$p" | gzip -6 > /dev/null; done`;
  const imageScript = `cd ${corpus.root} && ${TAR} ${names.join(' ')} | pigz -p 2 -6 > /dev/null`;

  const samples = { oursLayer: [] as number[], gzip: [] as number[], oursImage: [] as number[], pigz: [] as number[], rssImage: [] as number[] };
  let compressedOurs = 0;
  for (let i = 0; i < ctx.sizes.iterations; i++) {
    // Alternate who goes first, so neither always gets the warmer machine.
    const steps: (() => Promise<void>)[] = [
      async () => {
        const r = await packWorker({ root: corpus.root, layers, concurrency: 1, sink: 'discard' });
        samples.oursLayer.push(r.ms);
        compressedOurs = r.layers.reduce((s, l) => s + l.compressed, 0);
      },
      async () => void samples.gzip.push((await bash(perLayerScript)).ms),
      async () => {
        const r = await packWorker({ root: corpus.root, layers, concurrency: 2, sink: 'discard' });
        samples.oursImage.push(r.ms);
        samples.rssImage.push(r.maxRssKiB);
      },
      async () => void samples.pigz.push((await bash(imageScript)).ms),
    ];
    const order = i % 2 === 0 ? [0, 1, 2, 3] : [1, 0, 3, 2];
    for (const s of order) await steps[s]!();
    ctx.log(`pack: iteration ${i + 1}: ours/layer ${samples.oursLayer.at(-1)!.toFixed(0)} ms, gzip ${samples.gzip.at(-1)!.toFixed(0)} ms, ours/image ${samples.oursImage.at(-1)!.toFixed(0)} ms, pigz ${samples.pigz.at(-1)!.toFixed(0)} ms`);
  }
  const gzipSize = Number((await bash(`cd ${corpus.root} && ${TAR} ${names.join(' ')} | gzip -6 | wc -c`)).stdout.trim());
  figures.add({
    id: 'pack.layer_throughput',
    label: `packing throughput, one layer at a time (${layers.length} layers, ${(corpus.bytes / MB).toFixed(0)} MB)`,
    unit: 'MB/s',
    better: 'higher',
    ...throughputs(corpus.bytes, samples.oursLayer, samples.gzip),
    baselineLabel: 'tar | gzip -6 per layer',
    target: { kind: 'ratio-min', value: 1.0 },
  });
  figures.add({
    id: 'pack.image_throughput',
    label: `packing throughput, whole image (layers 2 at a time)`,
    unit: 'MB/s',
    better: 'higher',
    ...throughputs(corpus.bytes, samples.oursImage, samples.pigz),
    baselineLabel: 'tar | pigz -p 2, one archive',
    target: { kind: 'ratio-min', value: 0.8 },
    note: 'each layer is gzipped in 128 KiB blocks on libuv\'s threads (pigz-style); the tar of every layer is written by one tar thread (a worker) straight into those blocks, in shared memory, and hashed there; the event loop only hands the blocks to zlib and passes the output on.',
  });
  figures.add({
    id: 'pack.compressed_size',
    label: 'compressed size of the image',
    unit: 'MB',
    better: 'lower',
    ours: compressedOurs / MB,
    baseline: gzipSize / MB,
    baselineLabel: 'tar | gzip -6',
  });
  figures.add({
    id: 'pack.image_rss',
    label: 'peak RSS packing the whole image (2 layers at a time)',
    unit: 'MB',
    better: 'lower',
    ours: median(samples.rssImage) / 1024,
    baselineLabel: 'absolute',
    target: { kind: 'abs-max', value: 200 },
  });

  await packZstdFigures(ctx, figures, corpus, compressedOurs);

  const big = ensureBigTree(corpus, ctx.sizes.bigLayerBytes, ctx.cacheDir);
  const storageDir = mkdirp(path.join(ctx.workDir, 'pack-storage'));
  const bigRun = await packWorker({ root: big.root, layers: [big.storePaths], concurrency: 1, sink: 'storage', storageDir });
  ctx.log(`pack: ${(big.bytes / MB).toFixed(0)} MB layer packed into storage in ${bigRun.ms.toFixed(0)} ms, peak RSS ${(bigRun.maxRssKiB / 1024).toFixed(0)} MB`);
  figures.add({
    id: 'pack.big_layer_rss',
    label: `peak RSS packing one ${(big.bytes / 2 ** 30).toFixed(2)} GiB layer into filesystem storage`,
    unit: 'MB',
    better: 'lower',
    ours: bigRun.maxRssKiB / 1024,
    baselineLabel: 'absolute',
    target: { kind: 'abs-max', value: 200 },
  });

  await bigPathCase(ctx, figures);
}

/** One store path of many small files and some big ones, as one layer: no layer-level parallelism to hide behind. */
async function bigPathCase(ctx: Context, figures: Figures): Promise<void> {
  const big = ensureBigPath(ctx.sizes.bigPathBytes, ctx.cacheDir);
  ctx.log(`pack: one store path of ${(big.bytes / MB).toFixed(0)} MB, ${big.files} files (${(big.textBytes / MB).toFixed(0)} MB of Python's library tree, ${big.libraries} shared libraries of ${(big.libraryBytes / MB).toFixed(0)} MB)`);
  const script = `cd ${big.root} && ${TAR} ${big.storePath.slice(1)} | pigz -p 2 -6 > /dev/null`;
  const samples = { ours: [] as number[], pigz: [] as number[], rss: [] as number[] };
  for (let i = 0; i < ctx.sizes.iterations; i++) {
    const steps: (() => Promise<void>)[] = [
      async () => {
        const r = await packWorker({ root: big.root, layers: [[big.storePath]], concurrency: 1, sink: 'discard' });
        samples.ours.push(r.ms);
        samples.rss.push(r.maxRssKiB);
      },
      async () => void samples.pigz.push((await bash(script)).ms),
    ];
    for (const s of i % 2 === 0 ? [0, 1] : [1, 0]) await steps[s]!();
    ctx.log(`pack: big path iteration ${i + 1}: ours ${samples.ours.at(-1)!.toFixed(0)} ms (peak RSS ${(samples.rss.at(-1)! / 1024).toFixed(0)} MB), pigz ${samples.pigz.at(-1)!.toFixed(0)} ms`);
  }
  figures.add({
    id: 'pack.big_path_throughput',
    label: `packing throughput, one store path of ${(big.bytes / MB).toFixed(0)} MB and ${big.files} files as one layer`,
    unit: 'MB/s',
    better: 'higher',
    ...throughputs(big.bytes, samples.ours, samples.pigz),
    baselineLabel: 'tar | pigz -p 2 -6 of the same path',
    target: { kind: 'ratio-min', value: 1.0 },
  });
  figures.add({
    id: 'pack.big_path_rss',
    label: 'peak RSS packing that store path',
    unit: 'MB',
    better: 'lower',
    ours: median(samples.rss) / 1024,
    baselineLabel: 'absolute',
    target: { kind: 'abs-max', value: 200 },
  });
}
