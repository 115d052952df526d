// Pulls while building (#24): a registry that builds must keep serving. Warm manifest and blob
// GETs at a steady rate (lib/steady-load.ts: an open loop, latency counted from when a request was
// due) against one registry process, idle and while it runs two cold builds of different images
// (package-set variants with fresh nonces, so both realise, layer and pack everything); then
// containerd's whole `ctr images pull` of the bench image (the corpus, `benchapp`) from ours
// against docker-registry holding the same image, a fresh containerd for every pull.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ensureCorpus } from '../lib/corpus.ts';
import { MB, type Context } from '../lib/context.ts';
import { mkdirp, runOk } from '../lib/exec.ts';
import { median, type Figures } from '../lib/figures.ts';
import { forgetPackageSet, writePackageSet } from '../lib/pkgset.ts';
import { ANY_MANIFEST, buildsTotal, getManifest } from '../lib/registry-api.ts';
import { startBenchContainerd } from '../lib/containerd.ts';
import { startDockerRegistry, startNixery, type Server } from '../lib/servers.ts';
import { steadyLoad, summarize, type LatencySummary, type Sample, type SteadyTarget } from '../lib/steady-load.ts';

/** The steady load: a node pulling resolves manifests far more often than it downloads layers. */
const MANIFESTS_PER_SECOND = 100;
const BLOBS_PER_SECOND = 10;
/** The blob the load downloads: `benchblob`'s random file, a layer of about this size. */
const BLOB_BYTES = 1 << 20;
/**
 * The load's generator runs above the builds (the bench runs as root): what is measured is the
 * registry's latency, not the generator's wait for a core on the same machine. Idle and building
 * loads alike.
 */
const LOAD_NICE = -10;
/** Every load's first second (connections opened, code warming up) is no sample of either side. */
const WARM_UP_SECONDS = 1;

interface Run {
  manifest: LatencySummary;
  blob: LatencySummary;
}

export async function pullsSuite(ctx: Context, figures: Figures): Promise<void> {
  const corpus = ensureCorpus(ctx.sizes.corpusBytes, ctx.cacheDir);
  const dir = mkdirp(path.join(ctx.workDir, 'pulls'));
  const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const iterations = ctx.sizes.iterations;
  // Two cold images per iteration, each the corpus under a nonce of its own.
  const coldImages = Array.from({ length: 2 * iterations }, (_, i) => `coldapp${i}`);
  const setDir = writePackageSet({
    dir: path.join(dir, 'set'),
    nonce: `pulls-${runId}`,
    corpusRoot: corpus.root,
    app: corpus.packages,
    blobBytes: BLOB_BYTES,
    variantNonces: coldImages.map((_, i) => `pulls-${runId}-cold-${i}`),
  });
  const servers: { stop(): Promise<void> }[] = [];
  try {
    const ours = await startNixery(mkdirp(path.join(dir, 'nixery')), { NIXERY_PKGS_PATH: setDir });
    servers.push(ours);
    await getManifest(ours.url, 'benchapp');
    const blobManifest = await getManifest(ours.url, 'benchblob');
    const blob = blobManifest.layers.reduce((a, b) => (b.size > a.size ? b : a));
    ctx.log(`pulls: the bench image is built; the blob is ${(blob.size / MB).toFixed(2)} MB`);
    const targets: SteadyTarget[] = [
      { name: 'manifest', url: `${ours.url}/v2/benchapp/manifests/latest`, headers: { Accept: ANY_MANIFEST }, perSecond: MANIFESTS_PER_SECOND },
      { name: 'blob', url: `${ours.url}/v2/benchblob/blobs/${blob.digest}`, perSecond: BLOBS_PER_SECOND },
    ];

    const idle: Run[] = [];
    const building: Run[] = [];
    const windows: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const steps = [
        async () => {
          const started = performance.now();
          const samples = await steadyLoad(targets, { maxSeconds: WARM_UP_SECONDS + ctx.sizes.wrkSeconds, nice: LOAD_NICE });
          idle.push(checked('idle', summarizeRun(samples, started + WARM_UP_SECONDS * 1000)));
        },
        async () => {
          const cold = [coldImages[2 * i]!, coldImages[2 * i + 1]!];
          const { run, windowSeconds } = await whileBuilding(ours, targets, cold);
          building.push(checked('while building', run));
          windows.push(windowSeconds);
          await forgetPackageSet(setDir, cold);
        },
      ];
      for (const s of i % 2 === 0 ? [0, 1] : [1, 0]) await steps[s]!();
      const line = (r: Run) => `manifest p50 ${r.manifest.p50Ms.toFixed(1)} p99 ${r.manifest.p99Ms.toFixed(1)} ms, blob p50 ${r.blob.p50Ms.toFixed(1)} p99 ${r.blob.p99Ms.toFixed(1)} ms`;
      ctx.log(`pulls: iteration ${i + 1}: idle ${line(idle.at(-1)!)}; while building (${windows.at(-1)!.toFixed(1)} s) ${line(building.at(-1)!)}`);
    }
    const note = `an open-loop load (lib/steady-load.ts) of ${MANIFESTS_PER_SECOND} manifest GETs/s by tag and ${BLOBS_PER_SECOND} GETs/s of a ${(blob.size / MB).toFixed(1)} MB blob, latency from when each request was due to its last byte; idle for ${ctx.sizes.wrkSeconds} s, while building from the two cold requests to the end of the later build (${windows.map((w) => w.toFixed(0)).join(', ')} s).`;
    for (const target of ['manifest', 'blob'] as const) {
      const what = target === 'manifest' ? 'warm manifest GET by tag' : `warm blob GET (${(blob.size / MB).toFixed(1)} MB)`;
      for (const [q, pick] of [['p50', (s: LatencySummary) => s.p50Ms], ['p99', (s: LatencySummary) => s.p99Ms]] as const) {
        figures.add({
          id: `pulls.${target}_${q}_building`,
          label: `${what}, ${q} latency at a steady rate while two cold builds run`,
          unit: 'ms',
          better: 'lower',
          ours: median(building.map((r) => pick(r[target]))),
          baseline: median(idle.map((r) => pick(r[target]))),
          baselineLabel: 'the same load, registry idle',
          ...(q === 'p99' ? { target: { kind: 'ratio-max' as const, value: 2 } } : {}),
          samples: { ours: building.map((r) => pick(r[target])), baseline: idle.map((r) => pick(r[target])) },
          ...(target === 'manifest' && q === 'p99' ? { note } : {}),
        });
      }
    }

    const registry = await startDockerRegistry(mkdirp(path.join(dir, 'docker-registry')));
    servers.push(registry);
    await runOk('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${ours.host}/benchapp:latest`, `docker://${registry.host}/benchapp:latest`], { timeoutMs: 600_000 });
    const pulls: Record<'ours' | 'registry', number[]> = { ours: [], registry: [] };
    for (let i = 0; i < iterations; i++) {
      const sides: ['ours' | 'registry', Server][] = [['ours', ours], ['registry', registry]];
      for (const [who, server] of i % 2 === 0 ? sides : sides.reverse()) {
        pulls[who].push(await containerdPull(mkdirp(path.join(dir, `containerd-${who}-${i}`)), `${server.host}/benchapp:latest`));
      }
      ctx.log(`pulls: ctr pull ${i + 1}: ours ${pulls.ours.at(-1)!.toFixed(0)} ms, docker-registry ${pulls.registry.at(-1)!.toFixed(0)} ms`);
    }
    figures.add({
      id: 'pulls.containerd_pull',
      label: `containerd \`ctr images pull\` of the bench image (${(corpus.bytes / MB).toFixed(0)} MB closure), fetch and unpack`,
      unit: 's',
      better: 'lower',
      ours: median(pulls.ours) / 1000,
      baseline: median(pulls.registry) / 1000,
      baselineLabel: 'docker-registry, same image',
      target: { kind: 'ratio-max', value: 1.0 },
      samples: { ours: pulls.ours.map((ms) => ms / 1000), baseline: pulls.registry.map((ms) => ms / 1000) },
      note: 'a fresh private containerd (overlayfs snapshotter, plain HTTP) in a tmpfs of its own for every pull, so its content store starts empty and no disk write-back of an earlier pull slows a later one; the image copied from ours into docker-registry with skopeo; order alternates.',
    });
  } finally {
    for (const s of servers.reverse()) await s.stop();
    await forgetPackageSet(setDir, ['benchapp', 'benchblob', ...coldImages]).catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The steady load while two cold builds run: both images requested at once after the load
 * started, the load stopped once both answered; the samples due from the requests to the later
 * answer are the figure's.
 */
async function whileBuilding(ours: Server, targets: SteadyTarget[], images: string[]): Promise<{ run: Run; windowSeconds: number }> {
  const before = await buildsTotal(ours.url);
  let release!: () => void;
  const requested = new Promise<void>((resolve) => (release = resolve));
  let from = NaN;
  let to = NaN;
  const builds = requested.then(async () => {
    from = performance.now();
    await Promise.all(images.map((image) => getManifest(ours.url, image)));
    to = performance.now();
  });
  // Sending stops when the builds end (or fail: the failure is thrown below).
  const load = steadyLoad(targets, { until: builds.catch(() => {}), maxSeconds: 1800, nice: LOAD_NICE });
  // The load is steady before the builds are asked for.
  setTimeout(release, WARM_UP_SECONDS * 1000);
  const [samples] = await Promise.all([load, builds]);
  const built = (await buildsTotal(ours.url)) - before;
  if (built !== images.length) throw new Error(`${built} builds ran for ${images.length} cold images: the window was not two cold builds`);
  return { run: summarizeRun(samples, from, to), windowSeconds: (to - from) / 1000 };
}

function summarizeRun(samples: Sample[], from?: number, to?: number): Run {
  return { manifest: summarize(samples, 'manifest', from, to), blob: summarize(samples, 'blob', from, to) };
}

/** A load whose answers were not all 2xx (or had too few samples) measured something else: no figure from it. */
function checked(what: string, run: Run): Run {
  for (const [target, s] of Object.entries(run)) {
    if (s.failed > 0 || s.requests < 10) throw new Error(`${what}: ${s.failed} of ${s.requests} ${target} requests failed (or too few were sent)${s.firstFailure ? `; the first: ${s.firstFailure}` : ''}`);
  }
  return run;
}

/** Milliseconds of `ctr images pull` into a containerd started for it alone (its content store empty). */
async function containerdPull(dir: string, reference: string): Promise<number> {
  const containerd = await startBenchContainerd(dir);
  try {
    return (await containerd.ctr(['images', 'pull', '--plain-http', reference])).ms;
  } finally {
    await containerd.stop();
  }
}
