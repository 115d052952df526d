// Warm serving against docker-registry (the same image copied into it with skopeo) and nginx
// (the same blob file), with wrk; then concurrent pulls of a warm image and concurrent requests
// for one cold image.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ensureCorpus, type CorpusPackage } from '../lib/corpus.ts';
import { MB, type Context } from '../lib/context.ts';
import { mkdirp, run, runOk } from '../lib/exec.ts';
import { median, type Figures } from '../lib/figures.ts';
import { forgetPackageSet, writePackageSet } from '../lib/pkgset.ts';
import { startDockerRegistry, startNginx, startNixery, type Server } from '../lib/servers.ts';
import { wrk, type WrkResult } from '../lib/wrk.ts';
import { ANY_MANIFEST, buildsTotal, DOCKER_MANIFEST, getManifest } from '../lib/registry-api.ts';

export async function serveSuite(ctx: Context, figures: Figures): Promise<void> {
  const corpus = ensureCorpus(ctx.sizes.corpusBytes, ctx.cacheDir);
  const dir = mkdirp(path.join(ctx.workDir, 'serve'));
  const nonce = `serve-${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const setDir = writePackageSet({ dir: path.join(dir, 'set'), nonce, corpusRoot: corpus.root, app: [], pull: pickPull(corpus.packages, ctx.sizes.pullImageBytes), blobBytes: ctx.sizes.blobBytes });
  const servers: Server[] = [];
  try {
    const ours = await startNixery(mkdirp(path.join(dir, 'nixery')), { NIXERY_PKGS_PATH: setDir });
    servers.push(ours);
    const blobManifest = await getManifest(ours.url, 'benchblob');
    await getManifest(ours.url, 'benchpull');
    const registry = await startDockerRegistry(mkdirp(path.join(dir, 'docker-registry')));
    servers.push(registry);
    for (const image of ['benchblob', 'benchpull']) {
      await runOk('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${ours.host}/${image}:latest`, `docker://${registry.host}/${image}:latest`], { timeoutMs: 300_000 });
    }
    const blob = blobManifest.layers.reduce((a, b) => (b.size > a.size ? b : a));
    const blobDir = path.join(ours.storagePath, 'blobs', 'sha256');
    const nginx = await startNginx(mkdirp(path.join(dir, 'nginx')), blobDir);
    servers.push(nginx);
    const hex = blob.digest.slice('sha256:'.length);
    const blobUrls = {
      ours: `${ours.url}/v2/benchblob/blobs/${blob.digest}`,
      registry: `${registry.url}/v2/benchblob/blobs/${blob.digest}`,
      nginx: `${nginx.url}/blobs/${hex}`,
    };
    for (const [who, url] of Object.entries(blobUrls)) {
      const response = await fetch(url, { method: 'HEAD' });
      const length = Number(response.headers.get('content-length'));
      if (response.status !== 200 || length !== blob.size) throw new Error(`${who} answers HEAD ${url} with ${response.status}, ${length} bytes (expected ${blob.size})`);
    }
    ctx.log(`serve: the blob is ${(blob.size / MB).toFixed(1)} MB; servers: ours ${ours.host}, docker-registry ${registry.host}, nginx ${nginx.host}`);

    // Manifests by tag, as clients pull.
    const manifestUrl = (s: Server) => `${s.url}/v2/benchpull/manifests/latest`;
    for (const connections of [16, 64]) {
      const o: WrkResult[] = [];
      const r: WrkResult[] = [];
      for (let i = 0; i < ctx.sizes.iterations; i++) {
        const runs = [
          async () => o.push(await load(ctx, manifestUrl(ours), connections, { Accept: ANY_MANIFEST })),
          async () => r.push(await load(ctx, manifestUrl(registry), connections, { Accept: ANY_MANIFEST })),
        ];
        for (const s of i % 2 === 0 ? [0, 1] : [1, 0]) await runs[s]!();
      }
      ctx.log(`serve: manifests at ${connections} connections: ours ${median(o.map((x) => x.rps)).toFixed(0)}/s, docker-registry ${median(r.map((x) => x.rps)).toFixed(0)}/s`);
      figures.add({
        id: `serve.manifest_rps_c${connections}`,
        label: `manifest GET by tag, ${connections} connections`,
        unit: 'req/s',
        better: 'higher',
        ours: median(o.map((x) => x.rps)),
        baseline: median(r.map((x) => x.rps)),
        baselineLabel: 'docker-registry',
        target: { kind: 'ratio-min', value: 1.0 },
        samples: { ours: o.map((x) => x.rps), baseline: r.map((x) => x.rps) },
        ...errorNote(o, r),
      });
      figures.add({
        id: `serve.manifest_p99_c${connections}`,
        label: `manifest GET p99 latency, ${connections} connections`,
        unit: 'ms',
        better: 'lower',
        ours: median(o.map((x) => x.p99Ms)),
        baseline: median(r.map((x) => x.p99Ms)),
        baselineLabel: 'docker-registry',
      });
    }

    // The same, with the package source as big as a nixpkgs checkout (NIXERY_PKGS_PATH=~/nixpkgs).
    {
      const bigSet = path.join(dir, 'big-set');
      fs.cpSync(setDir, bigSet, { recursive: true });
      const perDir = 100;
      for (let d = 0; d * perDir < ctx.sizes.sourceFiles; d++) {
        const sub = mkdirp(path.join(bigSet, 'pkgs', `group-${d}`));
        for (let f = 0; f < perDir && d * perDir + f < ctx.sizes.sourceFiles; f++) {
          fs.writeFileSync(path.join(sub, `package-${f}.nix`), `{ stdenv, fetchurl }:\nstdenv.mkDerivation { pname = "filler-${d}-${f}"; version = "1.0"; }\n`.repeat(8));
        }
      }
      const big = await startNixery(mkdirp(path.join(dir, 'nixery-big-source')), { NIXERY_PKGS_PATH: bigSet }, 'nixery-big-source');
      servers.push(big);
      await getManifest(big.url, 'benchpull');
      const o: WrkResult[] = [];
      const r: WrkResult[] = [];
      for (let i = 0; i < ctx.sizes.iterations; i++) {
        const runs = [
          async () => o.push(await load(ctx, manifestUrl(big), 16, { Accept: ANY_MANIFEST })),
          async () => r.push(await load(ctx, manifestUrl(registry), 16, { Accept: ANY_MANIFEST })),
        ];
        for (const s of i % 2 === 0 ? [0, 1] : [1, 0]) await runs[s]!();
      }
      await big.stop();
      ctx.log(`serve: manifests with a ${ctx.sizes.sourceFiles}-file package source: ours ${median(o.map((x) => x.rps)).toFixed(0)}/s, docker-registry ${median(r.map((x) => x.rps)).toFixed(0)}/s`);
      figures.add({
        id: 'serve.manifest_rps_big_source',
        label: `manifest GET by tag, 16 connections, package source of ${ctx.sizes.sourceFiles.toLocaleString('en-US')} files`,
        unit: 'req/s',
        better: 'higher',
        ours: median(o.map((x) => x.rps)),
        baseline: median(r.map((x) => x.rps)),
        baselineLabel: 'docker-registry',
        target: { kind: 'ratio-min', value: 1.0 },
        samples: { ours: o.map((x) => x.rps), baseline: r.map((x) => x.rps) },
        note: 'NIXERY_PKGS_PATH pointing at a tree the size of a nixpkgs checkout: the registry walks it to fingerprint the source when its last fingerprint is over 1 s old; requests arriving during a walk use the previous one.',
        ...errorNote(o, r),
      });
    }

    for (const connections of [1, 8]) {
      const results: Record<keyof typeof blobUrls, WrkResult[]> = { ours: [], registry: [], nginx: [] };
      const order: (keyof typeof blobUrls)[] = ['ours', 'registry', 'nginx'];
      for (let i = 0; i < ctx.sizes.iterations; i++) {
        const rotated = [...order.slice(i % 3), ...order.slice(0, i % 3)];
        for (const who of rotated) results[who].push(await load(ctx, blobUrls[who], connections, {}, 60));
      }
      const rate = (xs: WrkResult[]) => median(xs.map((x) => x.bytesPerSecond / MB));
      ctx.log(`serve: blob at ${connections} connections: ours ${rate(results.ours).toFixed(0)} MB/s, docker-registry ${rate(results.registry).toFixed(0)} MB/s, nginx ${rate(results.nginx).toFixed(0)} MB/s`);
      const label = `blob GET throughput (${(blob.size / MB).toFixed(0)} MB layer), ${connections} connection${connections > 1 ? 's' : ''}`;
      figures.add({
        id: `serve.blob_vs_nginx_c${connections}`,
        label,
        unit: 'MB/s',
        better: 'higher',
        ours: rate(results.ours),
        baseline: rate(results.nginx),
        baselineLabel: 'nginx, same file',
        target: { kind: 'ratio-min', value: 0.9 },
        ...errorNote(results.ours, results.nginx),
      });
      figures.add({
        id: `serve.blob_vs_registry_c${connections}`,
        label,
        unit: 'MB/s',
        better: 'higher',
        ours: rate(results.ours),
        baseline: rate(results.registry),
        baselineLabel: 'docker-registry',
        target: { kind: 'ratio-min', value: 1.0 },
        ...errorNote(results.ours, results.registry),
      });
    }

    figures.begin('concurrency');
    await concurrency(ctx, figures, dir, ours, registry);
  } finally {
    for (const s of servers.reverse()) await s.stop();
    await forgetPackageSet(setDir, ['benchblob', 'benchpull', 'benchcold']).catch(() => {});
  }
}

async function concurrency(ctx: Context, figures: Figures, dir: string, ours: Server & { storagePath: string }, registry: Server): Promise<void> {
  const pulls = ctx.sizes.pulls;
  const pull = async (host: string, tag: string) => {
    const target = path.join(dir, 'pulls', tag);
    mkdirp(path.dirname(target));
    return run('skopeo', ['copy', '--src-tls-verify=false', `docker://${host}/benchpull:latest`, `oci:${target}:latest`], { timeoutMs: 600_000 });
  };
  const single = await pull(ours.host, 'single-ours');
  if (single.code !== 0) throw new Error(`a single pull failed: ${single.stderr}`);
  const singleRegistry = await pull(registry.host, 'single-registry');
  const many = async (host: string, who: string) => {
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: pulls }, (_, i) => pull(host, `${who}-${i}`)));
    return { ms: performance.now() - started, errors: results.filter((r) => r.code !== 0), };
  };
  const oursMany = await many(ours.host, 'many-ours');
  const registryMany = await many(registry.host, 'many-registry');
  ctx.log(`concurrency: one pull ${single.ms.toFixed(0)} ms; ${pulls} pulls: ours ${oursMany.ms.toFixed(0)} ms (${oursMany.errors.length} errors), docker-registry ${registryMany.ms.toFixed(0)} ms (${registryMany.errors.length} errors)`);
  figures.add({
    id: 'concurrency.pull_errors',
    label: `${pulls} concurrent pulls of a warm image: failed pulls`,
    unit: '',
    better: 'lower',
    ours: oursMany.errors.length,
    baseline: registryMany.errors.length,
    baselineLabel: 'docker-registry',
    target: { kind: 'abs-eq', value: 0 },
    ...(oursMany.errors.length ? { note: oursMany.errors[0]!.stderr.slice(0, 300) } : {}),
  });
  figures.add({
    id: 'concurrency.pull_time',
    label: `${pulls} concurrent pulls: wall time against one pull`,
    unit: 's',
    better: 'lower',
    ours: oursMany.ms / 1000,
    baseline: single.ms / 1000,
    baselineLabel: 'one pull',
    note: `skopeo copy to temporary OCI directories; ${pulls} pulls on 2 cores. The same against docker-registry: ${(registryMany.ms / 1000).toFixed(2)} s for ${pulls}, ${(singleRegistry.ms / 1000).toFixed(2)} s for one.`,
  });
  figures.add({
    id: 'concurrency.pulls_vs_registry',
    label: `${pulls} concurrent pulls: wall time`,
    unit: 's',
    better: 'lower',
    ours: oursMany.ms / 1000,
    baseline: registryMany.ms / 1000,
    baselineLabel: 'docker-registry',
  });

  // One cold image, requested many times at once: one build.
  const before = await buildsTotal(ours.url);
  const requests = ctx.sizes.coldRequests;
  const started = performance.now();
  const statuses = await Promise.all(
    Array.from({ length: requests }, async () => {
      const response = await fetch(`${ours.url}/v2/benchcold/manifests/latest`, { headers: { Accept: DOCKER_MANIFEST }, signal: AbortSignal.timeout(600_000) });
      await response.arrayBuffer();
      return response.status;
    }),
  );
  const coldMs = performance.now() - started;
  const builds = (await buildsTotal(ours.url)) - before;
  const failed = statuses.filter((s) => s !== 200).length;
  ctx.log(`concurrency: ${requests} concurrent requests of a cold image: ${builds} build(s), ${failed} failed, ${coldMs.toFixed(0)} ms`);
  figures.add({
    id: 'concurrency.cold_builds',
    label: `${requests} concurrent requests of one cold image: builds (nixery_builds_total)`,
    unit: '',
    better: 'lower',
    ours: builds,
    baselineLabel: `${requests} requests`,
    target: { kind: 'abs-eq', value: 1 },
    ...(failed ? { note: `${failed} of ${requests} requests did not answer 200` } : {}),
  });
}

async function load(ctx: Context, url: string, connections: number, headers: Record<string, string>, timeoutSeconds = 10): Promise<WrkResult> {
  const result = await wrk(url, { connections, seconds: ctx.sizes.wrkSeconds, headers, workDir: ctx.workDir, timeoutSeconds });
  // A load whose answers were not all 2xx measured something else: no figure from it.
  if (result.non2xx > 0 || result.requests === 0) throw new Error(`${url}: ${result.non2xx} of ${result.requests} answers were not 2xx`);
  return result;
}

function errorNote(ours: WrkResult[], baseline: WrkResult[]): { note?: string } {
  const bad = (xs: WrkResult[]) => xs.reduce((s, x) => s + x.errors + x.non2xx, 0);
  const o = bad(ours);
  const b = bad(baseline);
  return o || b ? { note: `errors or non-2xx answers during the runs: ours ${o}, baseline ${b}` } : {};
}

/** Corpus packages, smallest first, adding up to about `bytes`. */
function pickPull(packages: CorpusPackage[], bytes: number): CorpusPackage[] {
  const sorted = [...packages].sort((a, b) => a.bytes - b.bytes);
  const picked: CorpusPackage[] = [];
  let total = 0;
  for (const p of sorted) {
    if (total + p.bytes > bytes && picked.length > 0) break;
    picked.push(p);
    total += p.bytes;
  }
  return picked;
}
