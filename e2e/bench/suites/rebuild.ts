// A rebuild in proportion to what changed: after a cold `nixery build --push` of the corpus image
// (benchapp), the same image with one small package added (benchsmall, a derivation never built
// before, so Nix builds it) built into the same storage and pushed to the same repository. Only
// the changed layers are packed (the layer cache has the rest) and uploaded (HEAD finds the rest).
// Both are whole `nixery build --push` processes, into docker-registry as in the build suite.
//
// The rebuild needs the cold build before it, so within an iteration their order is fixed; each
// iteration takes a package set with a new nonce (both builds cold for Nix where they should be),
// and its store paths are deleted after it.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { ensureCorpus } from '../lib/corpus.ts';
import { NIXERY_BIN, MB, type Context } from '../lib/context.ts';
import { mkdirp, runOk } from '../lib/exec.ts';
import { median, type Figures } from '../lib/figures.ts';
import { forgetPackageSet, writePackageSet } from '../lib/pkgset.ts';
import { startDockerRegistry } from '../lib/servers.ts';

interface Push {
  ms: number;
  uploadedBytes: number;
  layers: number;
  /** Layers packed by this build (not from the layer cache). */
  packed: number;
  timings: Record<string, number>;
}

export async function rebuildSuite(ctx: Context, figures: Figures): Promise<void> {
  const corpus = ensureCorpus(ctx.sizes.corpusBytes, ctx.cacheDir);
  const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const token = randomBytes(24).toString('hex');
  const dir = mkdirp(path.join(ctx.workDir, 'rebuild'));
  const target = await startDockerRegistry(mkdirp(path.join(dir, 'push-target')));
  try {
    // Nix's first-use costs are paid here, by neither build.
    await runOk('nix-instantiate', [writePackageSet({ dir: path.join(dir, 'set-warm'), nonce: `warm-${runId}`, corpusRoot: corpus.root, app: corpus.packages }), '-A', 'benchapp'], { timeoutMs: 120_000 });
    const cold: Push[] = [];
    const rebuilt: Push[] = [];
    const iterations = ctx.sizes.iterations > 1 ? ctx.sizes.iterations + (ctx.sizes.iterations % 2) : 1;
    for (let i = 0; i < iterations; i++) {
      const setDir = writePackageSet({ dir: path.join(dir, `set-${i}`), nonce: `rebuild-${runId}-${i}`, corpusRoot: corpus.root, app: corpus.packages });
      const storage = mkdirp(path.join(dir, `storage-${i}`));
      const repository = `${target.host}/bench/rebuild-${i}`;
      try {
        cold.push(await push(setDir, storage, ['benchapp'], `${repository}:cold`, token));
        rebuilt.push(await push(setDir, storage, ['benchapp', 'benchsmall'], `${repository}:changed`, token));
      } finally {
        await forgetPackageSet(setDir, ['benchapp', 'benchsmall', 'cacert', 'iana-etc']);
      }
      const [c, r] = [cold.at(-1)!, rebuilt.at(-1)!];
      ctx.log(`rebuild: iteration ${i + 1}: cold ${c.ms.toFixed(0)} ms (${c.packed} layers packed, ${(c.uploadedBytes / MB).toFixed(1)} MB up, ${JSON.stringify(c.timings)}); one package added ${r.ms.toFixed(0)} ms (${r.packed} of ${r.layers} layers packed, ${(r.uploadedBytes / MB).toFixed(3)} MB up, ${JSON.stringify(r.timings)})`);
    }

    const s = (ms: number) => ms / 1000;
    const size = `${(corpus.bytes / MB).toFixed(0)} MB closure`;
    figures.add({
      id: 'build.rebuild_fraction',
      label: `rebuild and push after one small package was added (${size})`,
      unit: 's',
      better: 'lower',
      ours: s(median(rebuilt.map((r) => r.ms))),
      baseline: s(median(cold.map((r) => r.ms))),
      baselineLabel: 'the cold build and push of the original image',
      target: { kind: 'ratio-max', value: 0.15 },
      samples: { ours: rebuilt.map((r) => s(r.ms)), baseline: cold.map((r) => s(r.ms)) },
      note: `both whole \`nixery build --push\` processes into docker-registry, the rebuild into the cold build's storage and repository; it packed ${median(rebuilt.map((r) => r.packed))} of ${median(rebuilt.map((r) => r.layers))} layers.`,
    });
    figures.add({
      id: 'build.rebuild_uploaded_bytes',
      label: 'rebuild after one small package was added: image bytes uploaded',
      unit: 'MB',
      better: 'lower',
      ours: median(rebuilt.map((r) => r.uploadedBytes / MB)),
      baseline: median(cold.map((r) => r.uploadedBytes / MB)),
      baselineLabel: 'the cold push of the original image',
      samples: { ours: rebuilt.map((r) => r.uploadedBytes / MB), baseline: cold.map((r) => r.uploadedBytes / MB) },
      note: 'layers and config as `nixery build --push` reports them (`pushed.uploadedBytes`); the SBOM and manifests are not counted.',
    });
  } finally {
    await target.stop();
  }
}

async function push(setDir: string, storage: string, packages: string[], reference: string, token: string): Promise<Push> {
  const ran = await runOk(process.execPath, [NIXERY_BIN, 'build', '-p', packages.join(','), '--push', reference], {
    // No binary cache: this machine has no network, and Nix asking an unreachable one costs ~5 s
    // per realise of anything missing (a connect timeout), in both builds alike — what would be
    // measured is that timeout, not the rebuild. (The registry does the same for its bundled set.)
    env: { ...process.env, NIXERY_PKGS_PATH: setDir, STORAGE_PATH: storage, NIX_TIMEOUT: '900', NIXERY_PUSH_TOKEN: token, NIX_CONFIG: 'substituters =' },
    timeoutMs: 1_200_000,
  });
  const result = JSON.parse(ran.stdout) as { layers: { cached: boolean }[]; pushed?: { uploadedBytes?: number }; timings: Record<string, number> };
  // A registry from before this figure (NIXERY_BENCH_REGISTRY_BIN) does not report the bytes.
  if (typeof result.pushed?.uploadedBytes !== 'number') throw new Error(`nixery build --push reported no pushed.uploadedBytes: ${ran.stdout.slice(0, 500)}`);
  return { ms: ran.ms, uploadedBytes: result.pushed.uploadedBytes, layers: result.layers.length, packed: result.layers.filter((l) => !l.cached).length, timings: result.timings };
}
