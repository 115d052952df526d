// Cold build time, split by stage, against what a user would do by hand with the same Nix:
// nix-build, nix-store -qR and tar | pigz -p 2 of the closure. Each side gets a package set
// with its own nonce, so both realise derivations that were never built; both copy the same
// corpus into the store and pack the same bytes. Upload: our push (nixery build --push) into
// docker-registry (the CNCF distribution registry, not ours, so neither side is favoured) against
// curl uploading the baseline's tarball to the same registry the same way (POST, then PUT).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ensureCorpus } from '../lib/corpus.ts';
import { NIXERY_BIN, MB, type Context } from '../lib/context.ts';
import { bash, mkdirp, run, runOk } from '../lib/exec.ts';
import { median, type Figures } from '../lib/figures.ts';
import { writePackageSet } from '../lib/pkgset.ts';
import { startDockerRegistry } from '../lib/servers.ts';

interface OursRun {
  wallMs: number;
  builtMs: number;
  uploadMs: number;
  uploadedBytes: number;
  timings: { evaluateMs: number; realiseMs: number; graphMs: number; layeringMs: number; packingMs: number; sbomMs?: number; totalMs: number };
  layers: number;
  storePaths: string[];
}

interface BaselineRun {
  nixBuildMs: number;
  closureMs: number;
  packMs: number;
  totalMs: number;
  uploadMs: number;
  uploadedBytes: number;
  storePaths: string[];
}

export async function buildSuite(ctx: Context, figures: Figures): Promise<void> {
  const corpus = ensureCorpus(ctx.sizes.corpusBytes, ctx.cacheDir);
  const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const token = randomBytes(24).toString('hex');
  const dir = mkdirp(path.join(ctx.workDir, 'build'));
  // docker-registry has no authentication here; `nixery build --push` needs a token all the same.
  const target = await startDockerRegistry(mkdirp(path.join(dir, 'push-target')));
  const setFor = (nonce: string) => writePackageSet({ dir: path.join(dir, `set-${nonce}`), nonce, corpusRoot: corpus.root, app: corpus.packages });
  try {
    // Nix's own first-use costs (importing busybox into the store, the eval of resolve.nix's
    // helpers) are paid here, by neither side.
    await runOk('nix-instantiate', [setFor(`warm-${runId}`), '-A', 'benchapp'], { timeoutMs: 120_000 });

    const ours: OursRun[] = [];
    const base: BaselineRun[] = [];
    // Each side goes first equally often: with an odd count one side went second twice, and the
    // second build and upload of an iteration were the slow ones for both sides (full run of
    // 2026-11-25: uploads 149-162 MB/s second against 235-248 MB/s first).
    const iterations = ctx.sizes.iterations > 1 ? ctx.sizes.iterations + (ctx.sizes.iterations % 2) : 1;
    for (let i = 0; i < iterations; i++) {
      const steps = [
        async () => ours.push(await buildOurs(ctx, setFor(`ours-${runId}-${i}`), dir, target.host, token, i)),
        async () => base.push(await buildBaseline(ctx, setFor(`base-${runId}-${i}`), dir, target.url, i)),
      ];
      for (const s of i % 2 === 0 ? [1, 0] : [0, 1]) await steps[s]!();
      const o = ours.at(-1)!;
      const b = base.at(-1)!;
      ctx.log(`build: iteration ${i + 1}: ours ${o.builtMs.toFixed(0)} ms (${JSON.stringify(o.timings)}, ${o.layers} layers) + upload ${o.uploadMs.toFixed(0)} ms; baseline ${b.totalMs.toFixed(0)} ms (nix-build ${b.nixBuildMs.toFixed(0)}, -qR ${b.closureMs.toFixed(0)}, tar|pigz ${b.packMs.toFixed(0)}) + upload ${b.uploadMs.toFixed(0)} ms`);
      await forget([...o.storePaths, ...b.storePaths]);
    }

    const s = (ms: number) => ms / 1000;
    const m = (f: (r: OursRun) => number) => s(median(ours.map(f)));
    const mb = (f: (r: BaselineRun) => number) => s(median(base.map(f)));
    const size = `${(corpus.bytes / MB).toFixed(0)} MB closure, ${corpus.packages.length + 3} store paths`;
    figures.add({
      id: 'build.total',
      label: `cold build to an image in storage (${size})`,
      unit: 's',
      better: 'lower',
      ours: m((r) => r.builtMs),
      baseline: mb((r) => r.totalMs),
      baselineLabel: 'nix-build + nix-store -qR + tar | pigz -p 2',
      target: { kind: 'ratio-max', value: 1.15 },
      samples: { ours: ours.map((r) => s(r.builtMs)), baseline: base.map((r) => s(r.totalMs)) },
      note: 'ours is the whole `nixery build` process up to its "image built" log line (start-up, source fingerprint, Nix, layering, packing with fsync into storage); the baseline writes one .tar.gz.',
    });
    figures.add({
      id: 'build.evaluate_realise',
      label: 'cold build: evaluate + realise',
      unit: 's',
      better: 'lower',
      ours: m((r) => r.timings.evaluateMs + r.timings.realiseMs),
      baseline: mb((r) => r.nixBuildMs),
      baselineLabel: 'nix-build',
    });
    figures.add({ id: 'build.evaluate', label: 'cold build: evaluate', unit: 's', better: 'lower', ours: m((r) => r.timings.evaluateMs), baselineLabel: 'part of nix-build' });
    figures.add({ id: 'build.realise', label: 'cold build: realise', unit: 's', better: 'lower', ours: m((r) => r.timings.realiseMs), baselineLabel: 'part of nix-build' });
    figures.add({
      id: 'build.graph',
      label: 'cold build: closure graph',
      unit: 's',
      better: 'lower',
      ours: m((r) => r.timings.graphMs),
      baseline: mb((r) => r.closureMs),
      baselineLabel: 'nix-store -qR',
    });
    figures.add({ id: 'build.layering', label: 'cold build: layering', unit: 's', better: 'lower', ours: m((r) => r.timings.layeringMs), baselineLabel: 'none (one layer)' });
    figures.add({
      id: 'build.packing',
      label: `cold build: packing into storage (${median(ours.map((r) => r.layers))} layers)`,
      unit: 's',
      better: 'lower',
      ours: m((r) => r.timings.packingMs),
      baseline: mb((r) => r.packMs),
      baselineLabel: 'tar | pigz -p 2 > file',
    });
    // A registry from before SBOMs (NIXERY_BENCH_REGISTRY_BIN) reports none.
    if (ours.every((r) => r.timings.sbomMs !== undefined)) {
      figures.add({ id: 'build.sbom', label: 'cold build: SBOM and its referrer manifests, after the image', unit: 's', better: 'lower', ours: m((r) => r.timings.sbomMs!), baselineLabel: 'none (the baseline makes no SBOM)' });
    }
    figures.add({
      id: 'build.other',
      label: 'cold build: process start-up, configuration, source fingerprint',
      unit: 's',
      better: 'lower',
      ours: m((r) => r.builtMs - r.timings.totalMs),
      baselineLabel: 'in the stages above',
    });
    figures.add({
      id: 'build.upload',
      label: 'upload of the built image to a registry',
      unit: 'MB/s',
      better: 'higher',
      ours: median(ours.map((r) => r.uploadedBytes / MB / s(r.uploadMs))),
      baseline: median(base.map((r) => r.uploadedBytes / MB / s(r.uploadMs))),
      baselineLabel: 'curl, one blob: POST, then PUT of the tarball',
      samples: { ours: ours.map((r) => r.uploadedBytes / MB / s(r.uploadMs)), baseline: base.map((r) => r.uploadedBytes / MB / s(r.uploadMs)) },
      note: `ours: \`nixery build --push\` (HEAD per blob; the config in a single POST, answered 202, then PUT; each layer an empty POST then PUT, 3 at a time; then the manifest), ${m((r) => r.uploadMs).toFixed(2)} s from the "image built" log line to the process's exit; both into docker-registry (CNCF distribution, filesystem storage).`,
    });
  } finally {
    await target.stop();
  }
}

async function buildOurs(ctx: Context, setDir: string, dir: string, targetHost: string, token: string, i: number): Promise<OursRun> {
  const storage = mkdirp(path.join(dir, `ours-storage-${i}`));
  let builtAt: number | undefined;
  const spawnedAt = Date.now();
  const ran = await runOk(process.execPath, [NIXERY_BIN, 'build', '-p', 'benchapp', '--push', `${targetHost}/bench/ours:cold-${i}`], {
    env: { ...process.env, NIXERY_PKGS_PATH: setDir, STORAGE_PATH: storage, NIX_TIMEOUT: '900', NIXERY_PUSH_TOKEN: token },
    timeoutMs: 1_200_000,
    onStderrLine: (line) => {
      if (!line.includes('"image built"')) return;
      try {
        builtAt = Date.parse((JSON.parse(line) as { time: string }).time);
      } catch {
        // not a log line
      }
    },
  });
  const exitedAt = spawnedAt + ran.ms;
  if (builtAt === undefined) throw new Error(`nixery build logged no "image built" line:\n${ran.stderr.slice(-2000)}`);
  const result = JSON.parse(ran.stdout) as {
    timings: OursRun['timings'];
    layers: { size: number; storePaths: string[] }[];
    config: { size: number };
    size: number;
  };
  fs.rmSync(storage, { recursive: true, force: true });
  ctx.log(`build: ours ${JSON.stringify(result.timings)}`);
  return {
    wallMs: ran.ms,
    builtMs: builtAt - spawnedAt,
    uploadMs: exitedAt - builtAt,
    uploadedBytes: result.layers.reduce((sum, l) => sum + l.size, 0) + result.config.size + result.size,
    timings: result.timings,
    layers: result.layers.length,
    storePaths: result.layers.flatMap((l) => l.storePaths),
  };
}

async function buildBaseline(ctx: Context, setDir: string, dir: string, targetUrl: string, i: number): Promise<BaselineRun> {
  const tarball = path.join(dir, `baseline-${i}.tar.gz`);
  const built = await runOk('nix-build', ['--no-out-link', setDir, '-A', 'benchapp', '-A', 'cacert', '-A', 'iana-etc'], { timeoutMs: 1_200_000 });
  const outs = built.stdout.trim().split('\n');
  const closure = await runOk('nix-store', ['-qR', ...outs]);
  const paths = closure.stdout.trim().split('\n');
  const list = path.join(dir, `baseline-${i}.paths`);
  fs.writeFileSync(list, paths.map((p) => p.slice(1)).join('\n') + '\n');
  const packed = await bash(`tar -C / -c --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -T ${list} | pigz -p 2 -6 > ${tarball}`, { timeoutMs: 1_200_000 });
  const digest = (await runOk('sha256sum', [tarball])).stdout.split(' ')[0]!;
  const bytes = fs.statSync(tarball).size;
  const upload = await curlUpload(targetUrl, `bench/baseline-${i}`, tarball, `sha256:${digest}`);
  fs.rmSync(tarball, { force: true });
  ctx.log(`build: baseline nix-build ${built.ms.toFixed(0)} ms, -qR ${closure.ms.toFixed(0)} ms, tar|pigz ${packed.ms.toFixed(0)} ms`);
  return {
    nixBuildMs: built.ms,
    closureMs: closure.ms,
    packMs: packed.ms,
    totalMs: built.ms + closure.ms + packed.ms,
    uploadMs: upload.ms,
    uploadedBytes: bytes,
    storePaths: paths,
  };
}

/** The spec's monolithic upload in two requests, as docker-registry takes it: POST for a session, PUT of the body. */
async function curlUpload(registryUrl: string, repository: string, file: string, digest: string): Promise<{ ms: number }> {
  const started = await run('curl', ['-sS', '-f', '-o', '/dev/null', '-D', '-', '-X', 'POST', `${registryUrl}/v2/${repository}/blobs/uploads/`], { timeoutMs: 60_000 });
  const location = /^location:\s*(\S+)/im.exec(started.stdout)?.[1];
  if (started.code !== 0 || location === undefined) throw new Error(`curl: starting an upload failed: ${started.stderr}${started.stdout}`);
  const url = new URL(location, registryUrl).href;
  const put = await run('curl', ['-sS', '-f', '-o', '/dev/null', '-X', 'PUT', '-T', file, '-H', 'Content-Type: application/octet-stream', `${url}${url.includes('?') ? '&' : '?'}digest=${digest}`], { timeoutMs: 600_000 });
  if (put.code !== 0) throw new Error(`curl upload failed: ${put.stderr}`);
  return { ms: started.ms + put.ms };
}

/** Removes this run's store paths again (they are only ours: every one carries the run's nonce). */
async function forget(paths: string[]): Promise<void> {
  const unique = [...new Set(paths)].filter((p) => /^\/nix\/store\/[a-z0-9]{32}-/.test(p));
  if (unique.length === 0) return;
  await run('nix-store', ['--delete', '--ignore-liveness', ...unique], { timeoutMs: 300_000 });
}
