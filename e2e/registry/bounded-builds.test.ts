// Bounded work for anonymous clients (README: Running it safely). A flood of requests for
// distinct names fills the build queue to NIXERY_MAX_QUEUED_BUILDS and no further, the rest are
// refused with 429 and Retry-After; the flood's clients give up after 2 s and their queued builds
// go with them, never reaching Nix; a real pull afterwards gets its image. Then the closure-size
// limit, and case variants of a name sharing one build. Requests go to 127.0.0.1 only.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { commandLine, descendantsOf, eventually, within } from '@nixery/test-support';
import { metricValue } from '../support/metrics.ts';
import { pullAndUnpack, runInRoot } from '../support/oci-client.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const MAX_QUEUED = 8;
const FLOOD = 298;
const ABANDON_AFTER_MS = 2_000;
/** Each phase of a Nix run: the two `slow` builds that hold the build slots end after this. */
const NIX_TIMEOUT_SECONDS = 6;
/** The cold pull after the flood: both slots free once NIX_TIMEOUT ends the slow builds, then a build of a few seconds. */
const COLD_PULL_BOUND_MS = 30_000;
const NIX_PROGRAMS = new Set(['nix', 'nix-instantiate', 'nix-store', 'nix-build']);

/** Nix processes the registry runs now, with their command lines. */
function nixProcesses(registryPid: number): { pid: number; argv: string[] }[] {
  return descendantsOf(registryPid).flatMap((pid) => {
    const argv = commandLine(pid);
    return NIX_PROGRAMS.has(path.basename(argv[0] ?? '')) ? [{ pid, argv }] : [];
  });
}

/** The package list an image name hands Nix (image/name.ts), as resolve.nix receives it. */
function packagesJson(name: string): string {
  return JSON.stringify([...new Set([...name.split('/'), 'cacert', 'iana-etc'])].sort());
}

/** The sum of a counter's samples over all its labels. */
async function metricTotal(baseUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .reduce((sum, line) => sum + Number(line.split(/\s+/).at(-1)), 0);
}

/** Distinct names nothing has built: half name no package, half are new combinations of real ones. */
function floodNames(count: number): string[] {
  const real = ['hello', 'git', 'htop', 'nano', 'cowsay', 'alpha', 'beta', 'mytool', '7zip', 'coreutils', 'moreutils', 'libshared', 'haskellpackages.pandoc', 'perlpackages.json'];
  const combinations: string[] = [];
  for (let i = 0; i < real.length; i++) {
    for (let j = i + 1; j < real.length; j++) {
      for (let k = j + 1; k < real.length; k++) combinations.push(`${real[i]}/${real[j]}/${real[k]}`);
    }
  }
  const missing = Array.from({ length: Math.ceil(count / 2) }, (_, i) => `flood-missing-${i}`);
  return [...missing, ...combinations.slice(0, count - missing.length)];
}

interface Answer {
  status: number;
  retryAfter: string | null;
  code?: string;
  reason?: string;
}

describe('registry: bounded on-demand builds', () => {
  let registry: RegistryProcess;
  let work: string;

  before(async () => {
    work = await tempDir('nixery-e2e-bounded-');
    registry = await startRegistry({
      env: {
        NIX_TIMEOUT: String(NIX_TIMEOUT_SECONDS),
        NIXERY_MAX_CONCURRENT_BUILDS: '2',
        NIXERY_MAX_QUEUED_BUILDS: String(MAX_QUEUED),
        // Every request of this test comes from 127.0.0.1: the queue, not the per-client limit, is under test.
        NIXERY_CLIENT_BUILDS_PER_MINUTE: '10000',
        NIXERY_MAX_CLOSURE_SIZE: '16Mi',
      },
    });
  });
  after(async () => {
    await registry?.stop();
    if (registry) await fs.rm(registry.storagePath, { recursive: true, force: true });
    await fs.rm(work, { recursive: true, force: true });
  });

  it(`queues at most ${MAX_QUEUED} of ${FLOOD} concurrent cold requests, drops those abandoned unstarted, and still serves a cold pull`, async () => {
    const pid = registry.child.pid!;
    // Two builds that NIX_TIMEOUT ends hold both build slots, so the flood can only queue.
    const slow = ['slow', 'slow/hello'].map((name) => fetch(`${registry.url}/v2/${name}/manifests/latest`).then((r) => r.status));
    await eventually('both build slots taken', async () => ((await metricValue(registry.url, 'nixery_builds_in_flight')) === 2 ? true : undefined), 20_000, 50);

    const clients = new AbortController();
    const names = floodNames(FLOOD);
    assert.equal(new Set(names).size, FLOOD);
    const floodLists = new Set(names.map(packagesJson));

    // Sampled from the flood to the end: the queue's length, and every evaluation of a flood name
    // (each build starts with one, nix-instantiate of resolve.nix with the package list as JSON).
    let sampling = true;
    let maxQueue = 0;
    const strayNix = new Set<string>();
    const samplers = [
      (async () => {
        while (sampling) {
          maxQueue = Math.max(maxQueue, await metricValue(registry.url, 'nixery_build_queue_length'));
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
      (async () => {
        while (sampling) {
          for (const { pid: nixPid, argv } of nixProcesses(pid)) {
            const list = argv[argv.indexOf('packagesJson') + 1];
            if (argv.includes('packagesJson') && list !== undefined && floodLists.has(list)) strayNix.add(`${nixPid} ${argv.join(' ')}`);
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      })(),
    ];

    const flood = names.map(async (name): Promise<Answer | 'abandoned'> => {
      try {
        const response = await fetch(`${registry.url}/v2/${name}/manifests/latest`, { signal: clients.signal });
        const body = (await response.json()) as { errors?: { code: string; detail?: { reason?: string } }[] };
        const error = body.errors?.[0];
        return { status: response.status, retryAfter: response.headers.get('retry-after'), ...(error ? { code: error.code, reason: error.detail?.reason } : {}) };
      } catch (error) {
        if (clients.signal.aborted) return 'abandoned';
        throw error;
      }
    });
    await new Promise((r) => setTimeout(r, ABANDON_AFTER_MS));
    clients.abort();
    const outcomes = await within(10_000, 'the flood requests to end', Promise.all(flood));

    const answered = outcomes.filter((o): o is Answer => o !== 'abandoned');
    const abandoned = outcomes.length - answered.length;
    assert.equal(abandoned, MAX_QUEUED, 'the queued requests waited until their clients gave up');
    assert.equal(answered.length, FLOOD - MAX_QUEUED);
    for (const answer of answered) assert.deepEqual(answer, { status: 429, retryAfter: '10', code: 'TOOMANYREQUESTS', reason: 'queue_full' });
    await eventually('the abandoned builds to leave the queue', async () => ((await metricValue(registry.url, 'nixery_build_queue_length')) === 0 ? true : undefined), 2_000, 20);
    assert.equal(await metricValue(registry.url, 'nixery_builds_rejected_total', { reason: 'abandoned' }), MAX_QUEUED);
    assert.equal(await metricValue(registry.url, 'nixery_builds_rejected_total', { reason: 'queue_full' }), FLOOD - MAX_QUEUED);

    // A real client pulls a name nothing has built: it waits for a slot, then gets its image.
    const started = Date.now();
    const rootfs = await within(COLD_PULL_BOUND_MS, 'the cold pull after the flood', pullAndUnpack(registry.host, 'shell/hello/git:latest', path.join(work, 'cold')));
    const pullMs = Date.now() - started;
    assert.equal((await runInRoot(rootfs, ['/bin/hello'])).trim(), 'Hello, world!');
    assert.deepEqual(await within(10_000, 'the slow builds to time out', Promise.all(slow)), [503, 503]);

    await eventually('no Nix process left', () => (nixProcesses(pid).length === 0 ? true : undefined), 10_000, 50);
    sampling = false;
    await Promise.all(samplers);
    assert.ok(maxQueue <= MAX_QUEUED, `the queue held ${maxQueue} builds, more than ${MAX_QUEUED}`);
    assert.equal(maxQueue, MAX_QUEUED, 'the flood filled the queue (the sampling saw it)');
    assert.deepEqual([...strayNix], [], 'no Nix process ran for a flood request');
    // The two slow builds and the cold pull are the only builds that ran.
    assert.equal(await metricTotal(registry.url, 'nixery_builds_total'), 3);
    assert.equal(await metricValue(registry.url, 'nixery_builds_total', { result: 'success' }), 1);
    assert.ok(pullMs < COLD_PULL_BOUND_MS);
  });

  it('refuses an image whose closure exceeds NIXERY_MAX_CLOSURE_SIZE with 403 DENIED naming both sizes, before packing', async () => {
    // bigdata: 48 MiB of random bytes.
    const response = await fetch(`${registry.url}/v2/bigdata/manifests/latest`);
    assert.equal(response.status, 403);
    const body = (await response.json()) as { errors: { code: string; message: string; detail: { closureBytes: number; maxClosureBytes: number } }[] };
    const [error] = body.errors;
    assert.equal(error!.code, 'DENIED');
    assert.equal(error!.detail.maxClosureBytes, 16 * 1024 ** 2);
    assert.ok(error!.detail.closureBytes > 48 * 1024 ** 2, JSON.stringify(error));
    assert.match(error!.message, /^the image's closure is \d+(\.\d)? MiB \(\d+ bytes as Nix archives\), more than the 16 MiB \(16777216 bytes\) this registry builds on demand per image$/);
    assert.equal(await metricValue(registry.url, 'nixery_builds_rejected_total', { reason: 'closure_too_large' }), 1);
    const layers = await fs.readdir(path.join(registry.storagePath, 'blobs/sha256'));
    const large = [];
    for (const blob of layers) if ((await fs.stat(path.join(registry.storagePath, 'blobs/sha256', blob))).size > 16 * 1024 ** 2) large.push(blob);
    assert.deepEqual(large, [], 'no layer of it was stored');
  });

  it('builds case variants of a name once: the variants cost an evaluation each and pack nothing', async () => {
    const digest = async (name: string) => {
      const response = await fetch(`${registry.url}/v2/${name}/manifests/latest`);
      assert.equal(response.status, 200, name);
      return response.headers.get('docker-content-digest');
    };
    const first = await digest('alpha/beta');
    const packed = await metricTotal(registry.url, 'nixery_layer_cache_total');
    for (const variant of ['Alpha/beta', 'ALPHA/BETA', 'beta/aLpHa']) assert.equal(await digest(variant), first, variant);
    assert.equal(await metricTotal(registry.url, 'nixery_layer_cache_total'), packed, 'no layer was looked up, let alone packed, for a variant');
  });
});
