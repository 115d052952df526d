// `node e2e/bench/ab-manifests.ts OLD_NIXERY_JS [NEW_NIXERY_JS]`: manifest GETs by tag against two
// registry builds serving the same package set, wrk alternating between them round by round, and
// each build's CPU seconds per request (from /proc). The bench's serve figures compare us with
// docker-registry; this compares us with an earlier us, for "did this change cost anything on the
// warm path". Environment: ROUNDS (8), SECONDS_PER_RUN (5), FILES (40000: files in the package
// source, which the registry walks for its fingerprint; 0 leaves the walk out), CONNECTIONS (16).
// Build the old one from a worktree: git worktree add /tmp/old REV && (cd /tmp/old && npm ci && npx tsc -b).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureCorpus } from './lib/corpus.ts';
import { freePort } from '@nixery/test-support';
import { httpOk, mkdirp, startDaemon, stopAllDaemons, type Daemon } from './lib/exec.ts';
import { median } from './lib/figures.ts';
import { writePackageSet } from './lib/pkgset.ts';
import { wrk } from './lib/wrk.ts';

const ANY_MANIFEST = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');
const [oldBin, newBin = path.resolve(import.meta.dirname, '../../registry/bin/nixery.js')] = process.argv.slice(2);
if (!oldBin) {
  process.stderr.write('usage: node e2e/bench/ab-manifests.ts OLD_NIXERY_JS [NEW_NIXERY_JS]\n');
  process.exit(64);
}
const numberFrom = (name: string, fallback: number) => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number, got ${process.env[name]}`);
  return value;
};
const ROUNDS = numberFrom('ROUNDS', 8);
const SECONDS = numberFrom('SECONDS_PER_RUN', 5);
const FILES = numberFrom('FILES', 40_000);
const CONNECTIONS = numberFrom('CONNECTIONS', 16);

/** User + system CPU seconds of a process (fields 14 and 15 of /proc/PID/stat, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-ab-'));
try {
  const corpus = ensureCorpus(16_000_000, path.join(os.tmpdir(), 'nixery-bench-cache'));
  const pull = [...corpus.packages].sort((a, b) => a.bytes - b.bytes).slice(0, 4);
  const setDir = writePackageSet({ dir: path.join(work, 'set'), nonce: `ab-${Date.now().toString(36)}`, corpusRoot: corpus.root, app: [], pull, blobBytes: 1 << 20 });
  // The same filler as the serve suite's big-source figure.
  for (let d = 0; d * 100 < FILES; d++) {
    const sub = mkdirp(path.join(setDir, 'pkgs', `group-${d}`));
    for (let f = 0; f < 100 && d * 100 + f < FILES; f++) {
      fs.writeFileSync(path.join(sub, `package-${f}.nix`), `{ stdenv, fetchurl }:\nstdenv.mkDerivation { pname = "filler-${d}-${f}"; version = "1.0"; }\n`.repeat(8));
    }
  }
  const servers: Record<'old' | 'new', { url: string; daemon: Daemon }> = {} as never;
  for (const [name, bin] of [['old', oldBin], ['new', newBin]] as const) {
    const port = await freePort();
    const daemon = await startDaemon(name, process.execPath, [bin, 'serve', '--host', '127.0.0.1'], {
      env: { ...process.env, PORT: String(port), STORAGE_PATH: mkdirp(path.join(work, name, 'storage')), NIX_TIMEOUT: '900', NIXERY_PKGS_PATH: setDir },
      logFile: path.join(work, `${name}.log`),
      ready: () => httpOk(`http://127.0.0.1:${port}/healthz`),
    });
    const url = `http://127.0.0.1:${port}/v2/benchpull/manifests/latest`;
    const first = await fetch(url, { headers: { Accept: ANY_MANIFEST } });
    if (first.status !== 200) throw new Error(`${name} (${bin}) answers ${first.status}: ${await first.text()}`);
    servers[name] = { url, daemon };
  }
  const results = { old: [] as { rps: number; cpuMsPerRequest: number }[], new: [] as { rps: number; cpuMsPerRequest: number }[] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of round % 2 === 0 ? (['old', 'new'] as const) : (['new', 'old'] as const)) {
      const { url, daemon } = servers[name];
      const before = cpuSeconds(daemon.child.pid!);
      const run = await wrk(url, { connections: CONNECTIONS, seconds: SECONDS, headers: { Accept: ANY_MANIFEST }, workDir: work });
      if (run.non2xx || run.errors) throw new Error(`${name}: ${run.non2xx} non-2xx answers, ${run.errors} errors`);
      const cpu = cpuSeconds(daemon.child.pid!) - before;
      results[name].push({ rps: Math.round(run.rps), cpuMsPerRequest: +((cpu / run.requests) * 1000).toFixed(4) });
      process.stdout.write(`round ${round} ${name}: ${Math.round(run.rps)} req/s, ${((cpu / run.requests) * 1000).toFixed(3)} ms CPU a request\n`);
    }
  }
  const summary = (name: 'old' | 'new') => ({
    rps: median(results[name].map((r) => r.rps)),
    cpuMsPerRequest: median(results[name].map((r) => r.cpuMsPerRequest)),
    samples: results[name].map((r) => r.rps),
  });
  const old = summary('old');
  const now = summary('new');
  process.stdout.write(`${JSON.stringify({ files: FILES, rounds: ROUNDS, seconds: SECONDS, connections: CONNECTIONS, old, new: now, rpsRatio: +(now.rps / old.rps).toFixed(3), cpuRatio: +(now.cpuMsPerRequest / old.cpuMsPerRequest).toFixed(3) }, null, 2)}\n`);
} finally {
  await stopAllDaemons();
  fs.rmSync(work, { recursive: true, force: true });
}
