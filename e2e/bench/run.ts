// `npm run bench [-- --smoke] [--only pack,build,rebuild,serve,pulls,operator,storage] [--out DIR]`: every figure
// against its baseline, measured side by side in this run; prints the table and writes it to
// e2e/bench/results/ as JSON and Markdown (latest.* for a full run, smoke.* for --smoke).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '@nixery/test-support';
import { FULL, SMOKE, type Context } from './lib/context.ts';
import { run, runOk, stopAllDaemons } from './lib/exec.ts';
import { Figures, renderMarkdown, renderText, type RunInfo } from './lib/figures.ts';
import { buildSuite } from './suites/build.ts';
import { operatorSuite } from './suites/operator.ts';
import { packSuite } from './suites/pack.ts';
import { pullsSuite } from './suites/pulls.ts';
import { rebuildSuite } from './suites/rebuild.ts';
import { serveSuite } from './suites/serve.ts';
import { storageSuite } from './suites/storage.ts';

const SUITES = { pack: packSuite, build: buildSuite, rebuild: rebuildSuite, serve: serveSuite, pulls: pullsSuite, operator: operatorSuite, storage: storageSuite } as const;
type SuiteName = keyof typeof SUITES;

interface Args {
  smoke: boolean;
  only: SuiteName[];
  out: string;
  keep: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { smoke: process.env.NIXERY_BENCH_SMOKE === '1', only: Object.keys(SUITES) as SuiteName[], out: '', keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--smoke') args.smoke = true;
    else if (a === '--keep') args.keep = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      const value = a.includes('=') ? a.slice('--only='.length) : argv[++i] ?? '';
      const names = value.split(',').filter(Boolean);
      for (const n of names) if (!(n in SUITES)) throw new Error(`unknown suite ${n}; suites: ${Object.keys(SUITES).join(', ')}`);
      args.only = names as SuiteName[];
    } else if (a === '--out' || a.startsWith('--out=')) {
      args.out = a.includes('=') ? a.slice('--out='.length) : argv[++i] ?? '';
    } else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: npm run bench [-- --smoke] [--only pack,build,rebuild,serve,pulls,operator,storage] [--out DIR] [--keep]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!args.out) args.out = path.join(REPO_ROOT, 'e2e/bench/results');
  return args;
}

async function toolVersions(): Promise<Record<string, string>> {
  const version = async (cmd: string, args: string[], pattern: RegExp) => {
    try {
      const r = await run(cmd, args, { timeoutMs: 10_000 });
      return pattern.exec(r.stdout + r.stderr)?.[1] ?? '?';
    } catch {
      return 'missing';
    }
  };
  return {
    nix: await version('nix-build', ['--version'], /(\d+\.\d+\.\d+)/),
    gzip: await version('gzip', ['--version'], /gzip (\S+)/),
    pigz: await version('pigz', ['--version'], /pigz (\S+)/),
    wrk: await version('wrk', ['-v'], /wrk (\S+)/),
    nginx: await version('nginx', ['-v'], /nginx\/(\S+)/),
    'docker-registry': await version('docker-registry', ['--version'], /(v?\d+\.\d+\.\d+\S*)/),
    skopeo: await version('skopeo', ['--version'], /version (\S+)/),
  };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const sizes = args.smoke ? SMOKE : FULL;
  const cacheDir = path.join(os.tmpdir(), 'nixery-bench-cache');
  fs.mkdirSync(cacheDir, { recursive: true });
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-bench-'));
  const started = Date.now();
  const log = (message: string) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${message}\n`);
  const ctx: Context = { smoke: args.smoke, sizes, cacheDir, workDir, log, tools: await toolVersions() };
  const figures = new Figures();
  const loadavgStart = os.loadavg();
  const onSignal = () => {
    void stopAllDaemons().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  log(`${args.smoke ? 'smoke' : 'full'} run of ${args.only.join(', ')}; scratch ${workDir}`);
  // Every suite measures the compiled registry (registry/dist), as it ships: bring it up to date with the sources.
  await runOk(process.execPath, [path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-b'], { cwd: REPO_ROOT });
  try {
    for (const name of args.only) {
      figures.begin(name);
      const suiteStart = Date.now();
      try {
        await SUITES[name](ctx, figures);
      } catch (error) {
        figures.fail((error as Error).stack ?? String(error));
        log(`${name} failed: ${(error as Error).stack ?? String(error)}`);
      } finally {
        await stopAllDaemons();
      }
      log(`${name} done in ${((Date.now() - suiteStart) / 1000).toFixed(1)} s`);
    }
  } finally {
    if (!args.keep) fs.rmSync(workDir, { recursive: true, force: true });
  }

  const info: RunInfo = {
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date().toISOString(),
    mode: args.smoke ? 'smoke' : 'full',
    host: { cpus: os.cpus().length, loadavgStart, loadavgEnd: os.loadavg(), node: process.version, kernel: os.release() },
    tools: ctx.tools,
    sizes: { ...sizes },
  };
  const base = args.smoke ? 'smoke' : 'latest';
  fs.mkdirSync(args.out, { recursive: true });
  fs.writeFileSync(path.join(args.out, `${base}.json`), JSON.stringify({ ...info, suites: args.only, figures: figures.list, errors: figures.errors }, null, 2) + '\n');
  fs.writeFileSync(path.join(args.out, `${base}.md`), renderMarkdown(info, figures));
  process.stdout.write(renderText(figures) + '\n');
  if (figures.errors.length) {
    process.stdout.write(`\n${figures.errors.length} suite(s) failed: ${figures.errors.map((e) => e.suite).join(', ')}\n`);
  }
  process.stdout.write(`\nwritten to ${path.join(args.out, `${base}.json`)} and ${base}.md\n`);
  return figures.errors.length ? 1 : 0;
}

process.exitCode = await main();
